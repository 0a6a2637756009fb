//! JWT verification with pinned algorithms, a bounded verification cache, and token minting.
//!
//! Every key carries the one algorithm it may verify; a token whose header names another
//! algorithm (HS/RS confusion) or `none` is rejected before any signature work. Results are
//! cached by the exact token bytes until `exp` (+ leeway), so a hot client pays for one signature
//! check. Failures are classified in [`AuthError`] (for metrics); all of them become the same 401.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::spec::{IssuerSpec, JwtSpec, KeyMaterial, KeySpec, SigningMaterial};
use crate::Error;

/// Why a token was rejected (a metric label; never sent to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// Several different credentials in one request.
    Multiple,
    /// An `Authorization` scheme other than `Bearer`.
    NotBearer,
    /// Not a decodable JWT, a header value that is not visible ASCII, or no `exp`.
    Malformed,
    /// `alg: none` or an algorithm not pinned by the matching key.
    Algorithm,
    /// No key has the token's `kid`, even after a JWKS refresh.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// Past `exp` (+ leeway).
    Expired,
    /// Before `nbf` (- leeway).
    NotYetValid,
    /// `iss` missing or not the issuer's.
    Issuer,
    /// `aud` missing or none of the accepted ones.
    Audience,
    /// No `sub`, a non-string `sub` (RFC 7519 §4.1.2: StringOrURI), an empty one, or one with
    /// control characters: nothing to forward as the identity or to rate-limit by.
    Subject,
    /// A role that cannot be forwarded unambiguously in the comma-joined roles header (a comma,
    /// whitespace, a quote or a control character in it, or an empty role).
    Roles,
    /// A route that identifies callers by client certificate got none.
    NoClientCert,
    /// The client certificate does not verify against the listener's CA bundle (other CA,
    /// expired, wrong usage).
    BadClientCert,
}

impl AuthError {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Multiple => "multiple",
            AuthError::NotBearer => "not_bearer",
            AuthError::Malformed => "malformed",
            AuthError::Algorithm => "algorithm",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Issuer => "issuer",
            AuthError::Audience => "audience",
            AuthError::Subject => "subject",
            AuthError::Roles => "roles",
            AuthError::NoClientCert => "client_cert_missing",
            AuthError::BadClientCert => "client_cert_invalid",
        }
    }
}

/// A verified caller.
#[derive(Debug)]
pub struct Identity {
    /// The `sub` claim.
    pub sub: String,
    /// Roles from the configured roles claim (empty when absent).
    pub roles: Vec<String>,
    /// All claims (for composition placeholders).
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `sub` as a header value, built once per verification rather than per request.
    pub sub_header: HeaderValue,
    /// The roles comma-joined as a header value, built once per verification.
    pub roles_header: HeaderValue,
    /// Unix seconds after which the cache must not serve it (exp + leeway).
    valid_until: u64,
}

/// One verification key with its pinned algorithm and the checks of its issuer.
pub struct Key {
    /// The key's `kid` (`None`: tried for tokens of any `kid`).
    pub kid: Option<String>,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    key: DecodingKey,
    validation: Arc<Validation>,
}

/// The keys of all issuers (a snapshot; JWKS refresh swaps a new one in).
#[derive(Default)]
pub struct KeySet {
    /// Every key; a token is checked against those matching its `kid` and algorithm.
    pub keys: Vec<Key>,
}

fn validation_for(issuer: &IssuerSpec, alg: Algorithm, leeway: Duration) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = leeway.as_secs();
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(iss) = &issuer.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    if issuer.audiences.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&issuer.audiences);
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    v
}

fn decoding_key(alg: Algorithm, material: &KeyMaterial) -> Result<DecodingKey, Error> {
    let bad = |e: jsonwebtoken::errors::Error| Error::Key(e.to_string());
    Ok(match (alg, material) {
        (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, KeyMaterial::Secret(s)) => {
            DecodingKey::from_secret(s)
        }
        (
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256,
            KeyMaterial::PublicPem(p),
        ) => DecodingKey::from_rsa_pem(p).map_err(bad)?,
        (Algorithm::ES256 | Algorithm::ES384, KeyMaterial::PublicPem(p)) => {
            DecodingKey::from_ec_pem(p).map_err(bad)?
        }
        (Algorithm::EdDSA, KeyMaterial::PublicPem(p)) => {
            DecodingKey::from_ed_pem(p).map_err(bad)?
        }
        (alg, _) => {
            return Err(Error::Key(format!(
                "key material does not fit algorithm {alg:?}"
            )))
        }
    })
}

/// The algorithm a JWK is pinned to: its `alg`, else implied by its key type.
fn jwk_alg(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if let Some(a) = jwk.common.key_algorithm {
        return match a {
            KeyAlgorithm::HS256 => Some(Algorithm::HS256),
            KeyAlgorithm::HS384 => Some(Algorithm::HS384),
            KeyAlgorithm::HS512 => Some(Algorithm::HS512),
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        AlgorithmParameters::OctetKey(_) => Some(Algorithm::HS256),
        _ => None,
    }
}

impl KeySet {
    /// Static keys (config + JWKS file) of all issuers.
    pub fn from_spec(spec: &JwtSpec) -> Result<KeySet, Error> {
        let mut set = KeySet::default();
        for issuer in &spec.issuers {
            set.add_issuer_keys(issuer, spec.leeway, &issuer.keys)?;
            for path in &issuer.jwks_files {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Key(format!("reading JWKS {}: {e}", path.display())))?;
                set.add_jwks(issuer, spec.leeway, &text)?;
            }
        }
        Ok(set)
    }

    fn add_issuer_keys(
        &mut self,
        issuer: &IssuerSpec,
        leeway: Duration,
        keys: &[KeySpec],
    ) -> Result<(), Error> {
        for k in keys {
            self.keys.push(Key {
                kid: k.kid.clone(),
                alg: k.alg,
                key: decoding_key(k.alg, &k.material)?,
                validation: Arc::new(validation_for(issuer, k.alg, leeway)),
            });
        }
        Ok(())
    }

    /// Add the keys of a JWKS document (keys without a usable algorithm are skipped).
    pub fn add_jwks(
        &mut self,
        issuer: &IssuerSpec,
        leeway: Duration,
        text: &str,
    ) -> Result<usize, Error> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| Error::Key(format!("JWKS: {e}")))?;
        let mut added = 0;
        for jwk in &set.keys {
            let Some(alg) = jwk_alg(jwk) else { continue };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            self.keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                key,
                validation: Arc::new(validation_for(issuer, alg, leeway)),
            });
            added += 1;
        }
        Ok(added)
    }

    /// Verify a token against the pinned keys. `roles_claim` names the roles claim.
    pub fn verify(
        &self,
        token: &str,
        roles_claim: &str,
        leeway: u64,
    ) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName => AuthError::Algorithm,
            _ => AuthError::Malformed,
        })?;
        let kid = header.kid.as_deref();
        let mut any = false;
        let mut last = AuthError::Algorithm;
        let mut tried = 0;
        for key in &self.keys {
            if kid.is_some() && key.kid.as_deref() != kid {
                continue;
            }
            any = true;
            if key.alg != header.alg {
                continue;
            }
            tried += 1;
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &key.validation,
            ) {
                Ok(data) => return identity(data.claims, roles_claim, leeway),
                Err(e) => {
                    last = classify(e.kind());
                    if last != AuthError::BadSignature {
                        return Err(last);
                    }
                }
            }
            if tried >= 8 {
                break;
            }
        }
        if !any && kid.is_some() {
            return Err(AuthError::UnknownKid);
        }
        Err(last)
    }

    /// Whether a `kid` is known (JWKS refresh trigger).
    pub fn knows_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn classify(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::Issuer,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::Issuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(_) => AuthError::Malformed,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::Algorithm,
        _ => AuthError::Malformed,
    }
}

/// The most bytes of a subject forwarded upstream.
const MAX_SUBJECT: usize = 256;

fn identity(
    claims: serde_json::Map<String, serde_json::Value>,
    roles_claim: &str,
    leeway: u64,
) -> Result<Identity, AuthError> {
    let sub = match claims.get("sub") {
        Some(serde_json::Value::String(s))
            if !s.is_empty() && s.len() <= MAX_SUBJECT && !s.chars().any(char::is_control) =>
        {
            s.clone()
        }
        _ => return Err(AuthError::Subject),
    };
    let roles: Vec<String> = match claims.get(roles_claim) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or(AuthError::Roles))
            .collect::<Result<_, _>>()?,
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        None => Vec::new(),
        Some(_) => return Err(AuthError::Roles),
    };
    if !roles.iter().all(|r| valid_role(r)) {
        return Err(AuthError::Roles);
    }
    let exp = claims.get("exp").and_then(|v| v.as_u64()).unwrap_or(0);
    let header = |s: &str| HeaderValue::from_str(s).map_err(|_| AuthError::Subject);
    Ok(Identity {
        sub_header: header(&sub)?,
        roles_header: header(&roles.join(","))?,
        sub,
        roles,
        claims,
        valid_until: exp.saturating_add(leeway),
    })
}

impl Identity {
    /// The identity of a verified client certificate: `sub` is `name` (its common name, else
    /// its first SAN), roles from the gateway's `client_cert_roles` (by that name or any SAN),
    /// built once per connection. None when the name cannot be forwarded as a header.
    pub fn from_client_cert(
        name: &str,
        sans: &[String],
        subject: &str,
        table: &std::collections::HashMap<String, Vec<String>>,
    ) -> Option<Identity> {
        let roles: Vec<String> = std::iter::once(name)
            .chain(sans.iter().map(String::as_str))
            .find_map(|n| table.get(n))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| valid_role(r))
            .collect();
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), name.into());
        claims.insert("cert_subject".into(), subject.into());
        Some(Identity {
            sub_header: HeaderValue::from_str(name).ok()?,
            roles_header: HeaderValue::from_str(&roles.join(",")).ok()?,
            sub: name.to_string(),
            roles,
            claims,
            valid_until: u64::MAX,
        })
    }
}

/// A role survives the comma-joined roles header unambiguously.
fn valid_role(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 128
        && r.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'"' | b'\\' | b';'))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const SHARDS: usize = 16;

/// Bounded cache of verified tokens keyed by their exact bytes.
pub struct VerifyCache {
    shards: Vec<Mutex<HashMap<Box<str>, Arc<Identity>>>>,
    per_shard: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl VerifyCache {
    /// A cache of about `entries` tokens (0: disabled, nothing is stored).
    pub fn new(entries: usize) -> VerifyCache {
        VerifyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: entries.div_ceil(SHARDS),
            hasher: Default::default(),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<HashMap<Box<str>, Arc<Identity>>> {
        &self.shards[(self.hasher.hash_one(token) as usize) % SHARDS]
    }

    /// The identity cached for `token`, unless it expired by `now` (Unix seconds).
    pub fn get(&self, token: &str, now: u64) -> Option<Arc<Identity>> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(token).lock().ok()?;
        let id = shard.get(token)?;
        (id.valid_until > now).then(|| id.clone())
    }

    /// Cache a verified token. A full shard first drops expired entries, then everything.
    pub fn put(&self, token: &str, id: Arc<Identity>, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let Ok(mut shard) = self.shard(token).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, v| v.valid_until > now);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(token.into(), id);
    }

    /// Tokens cached now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    /// Nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(serde::Serialize)]
struct MintClaims<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    iat: u64,
    exp: u64,
    #[serde(flatten)]
    roles: serde_json::Map<String, serde_json::Value>,
}

/// Sign a token with the first issuer that has a signing key (or an HS256 secret key).
/// Empty roles are dropped (`--roles ""` means none); a subject or role the gateway would
/// refuse is an error here rather than a token that never works.
pub fn mint(spec: &JwtSpec, sub: &str, roles: &[String], ttl: Duration) -> Result<String, Error> {
    if sub.is_empty() || sub.len() > MAX_SUBJECT || sub.chars().any(char::is_control) {
        return Err(Error::Key(format!(
            "subject {sub:?}: must be 1 to {MAX_SUBJECT} bytes without control characters"
        )));
    }
    let roles: Vec<&str> = roles
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
        return Err(Error::Key(format!(
            "role {bad:?}: roles are visible ASCII without , \" \\ or ;"
        )));
    }
    for issuer in &spec.issuers {
        let signing = issuer.signing.clone().or_else(|| {
            issuer.keys.iter().find_map(|k| match (&k.material, k.alg) {
                (
                    KeyMaterial::Secret(s),
                    Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512,
                ) => Some(crate::spec::SigningSpec {
                    kid: k.kid.clone(),
                    alg: k.alg,
                    material: SigningMaterial::Secret(s.clone()),
                }),
                _ => None,
            })
        });
        let Some(signing) = signing else { continue };
        let bad = |e: jsonwebtoken::errors::Error| Error::Key(e.to_string());
        let key = match (&signing.material, signing.alg) {
            (SigningMaterial::Secret(s), _) => EncodingKey::from_secret(s),
            (SigningMaterial::PrivatePem(p), Algorithm::ES256 | Algorithm::ES384) => {
                EncodingKey::from_ec_pem(p).map_err(bad)?
            }
            (SigningMaterial::PrivatePem(p), Algorithm::EdDSA) => {
                EncodingKey::from_ed_pem(p).map_err(bad)?
            }
            (SigningMaterial::PrivatePem(p), _) => EncodingKey::from_rsa_pem(p).map_err(bad)?,
        };
        let mut header = Header::new(signing.alg);
        header.kid = signing.kid.clone();
        let now = unix_now();
        let mut extra = serde_json::Map::new();
        extra.insert(
            spec.roles_claim.clone(),
            serde_json::Value::Array(
                roles
                    .iter()
                    .map(|r| serde_json::Value::String(r.to_string()))
                    .collect(),
            ),
        );
        let claims = MintClaims {
            sub,
            iss: issuer.issuer.as_deref(),
            aud: issuer.audiences.first().map(String::as_str),
            iat: now,
            exp: now + ttl.as_secs(),
            roles: extra,
        };
        return jsonwebtoken::encode(&header, &claims, &key).map_err(bad);
    }
    Err(Error::Key("no issuer has a signing key".into()))
}

#[cfg(test)]
mod tests;
