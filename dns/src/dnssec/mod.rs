//! DNSSEC online signing: zone keys from files, DNSKEY/DS, RRSIGs made when an answer is first
//! given and cached per RRset ([`cache`]), and compact denial of existence ([`deny`]).
//!
//! Crypto is hickory-proto's (`dnssec-ring`): ECDSA P-256 SHA-256 (algorithm 13) and Ed25519
//! (15). We only build the RFC 4034 §3.1.8.1 "to be signed" bytes from our pre-encoded RDATA.
//!
//! A key file is text (so it can be read and diffed), with the private key as base64 PKCS#8:
//! ```text
//! ; switchyard DNSSEC key: keep it secret
//! zone: example.test.
//! algorithm: 13
//! private-key: MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg...
//! ```

pub mod cache;
pub mod deny;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use data_encoding::BASE64;
use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, SigningKey};
use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::BinEncodable;
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::zone::{rtype, Rr};

/// DNSKEY flags of a combined signing key: zone key + secure entry point (257).
pub const CSK_FLAGS: u16 = 257;

/// One zone key: the signer and its public DNSKEY.
pub struct ZoneKey {
    /// DNSSEC algorithm number: 13 = ECDSAP256SHA256 (RFC 6605) or 15 = ED25519 (RFC 8080).
    pub algorithm: u8,
    /// Key tag (RFC 4034 Appendix B).
    pub tag: u16,
    /// DNSKEY RDATA (flags, protocol, algorithm, public key).
    pub dnskey: Box<[u8]>,
    /// The private key that makes RRSIGs.
    pub signer: Box<dyn SigningKey>,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZoneKey(alg {}, tag {})", self.algorithm, self.tag)
    }
}

/// A parsed key file.
pub struct KeyFile {
    /// The zone it is for (lowercase, with the trailing dot).
    pub zone: String,
    /// The key.
    pub key: ZoneKey,
}

fn signer(algorithm: u8, pkcs8: &[u8]) -> Result<Box<dyn SigningKey>, String> {
    let der = PrivatePkcs8KeyDer::from(pkcs8.to_vec());
    match algorithm {
        13 => EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256)
            .map(|k| Box::new(k) as Box<dyn SigningKey>)
            .map_err(|e| format!("not an ECDSA P-256 key: {e}")),
        15 => Ed25519SigningKey::from_pkcs8(&der)
            .map(|k| Box::new(k) as Box<dyn SigningKey>)
            .map_err(|e| format!("not an Ed25519 key: {e}")),
        other => Err(format!(
            "algorithm {other} is not supported (13 = ECDSA P-256 SHA-256, 15 = Ed25519)"
        )),
    }
}

impl ZoneKey {
    /// A key from its algorithm number and PKCS#8 bytes.
    pub fn from_pkcs8(algorithm: u8, pkcs8: &[u8]) -> Result<Self, String> {
        let signer = signer(algorithm, pkcs8)?;
        let public = signer
            .to_public_key()
            .map_err(|e| format!("public key: {e}"))?;
        let dnskey = DNSKEY::with_flags(CSK_FLAGS, public);
        let tag = dnskey
            .calculate_key_tag()
            .map_err(|e| format!("key tag: {e}"))?;
        let rdata = dnskey.to_bytes().map_err(|e| format!("DNSKEY: {e}"))?;
        Ok(ZoneKey {
            algorithm,
            tag,
            dnskey: rdata.into_boxed_slice(),
            signer,
        })
    }

    /// The DS record a parent publishes for this key (SHA-256, RFC 4509), in presentation
    /// format: `example.test. IN DS 12345 13 2 ABCD...`.
    pub fn ds_text(&self, zone: &str) -> Result<String, String> {
        let name = Name::from_ascii(zone).map_err(|e| format!("{zone}: {e}"))?;
        let public = self
            .signer
            .to_public_key()
            .map_err(|e| format!("public key: {e}"))?;
        let digest = DNSKEY::with_flags(CSK_FLAGS, public)
            .to_digest(&name, DigestType::SHA256)
            .map_err(|e| format!("digest: {e}"))?;
        Ok(format!(
            "{} IN DS {} {} 2 {}",
            zone,
            self.tag,
            self.algorithm,
            data_encoding::HEXUPPER.encode(digest.as_ref())
        ))
    }

    /// The DNSKEY record in presentation format (for trust anchors).
    pub fn dnskey_text(&self, zone: &str) -> String {
        format!(
            "{} IN DNSKEY {} 3 {} {}",
            zone,
            CSK_FLAGS,
            self.algorithm,
            BASE64.encode(&self.dnskey[4..])
        )
    }

    /// Checks that a signature made with this key verifies with its published public key.
    pub fn self_test(&self) -> Result<(), String> {
        let msg = b"switchyard key self-test";
        let sig = self
            .signer
            .sign(&hickory_proto::dnssec::TBS::from(&msg[..]))
            .map_err(|e| format!("signing: {e}"))?;
        let public = self
            .signer
            .to_public_key()
            .map_err(|e| format!("public key: {e}"))?;
        public
            .verify(msg, &sig)
            .map_err(|e| format!("the key does not verify its own signature: {e}"))
    }
}

/// Makes a new key file's text for `zone` with `algorithm` (13 or 15).
pub fn generate(zone: &str, algorithm: u8) -> Result<String, String> {
    let pkcs8 = match algorithm {
        13 => EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256),
        15 => Ed25519SigningKey::generate_pkcs8(),
        other => return Err(format!("algorithm {other} is not supported (13 or 15)")),
    }
    .map_err(|e| format!("key generation: {e}"))?;
    let zone = absolute(zone);
    let key = ZoneKey::from_pkcs8(algorithm, pkcs8.secret_pkcs8_der())?;
    Ok(format!(
        "; switchyard DNSSEC key (key tag {}): keep it secret\nzone: {zone}\nalgorithm: {algorithm}\nprivate-key: {}\n",
        key.tag,
        BASE64.encode(pkcs8.secret_pkcs8_der())
    ))
}

fn absolute(zone: &str) -> String {
    let z = zone.to_ascii_lowercase();
    if z.ends_with('.') {
        z
    } else {
        format!("{z}.")
    }
}

/// Parses a key file's text.
pub fn parse_key_file(text: &str) -> Result<KeyFile, String> {
    let (mut zone, mut alg, mut key) = (None, None, None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("line {}: expected `name: value`", i + 1));
        };
        let v = v.trim();
        match k.trim() {
            "zone" => zone = Some(absolute(v)),
            "algorithm" => {
                alg = Some(
                    v.parse::<u8>()
                        .map_err(|_| format!("line {}: bad algorithm {v:?}", i + 1))?,
                )
            }
            "private-key" => {
                key = Some(
                    BASE64
                        .decode(v.as_bytes())
                        .map_err(|e| format!("line {}: private-key is not base64: {e}", i + 1))?,
                )
            }
            other => return Err(format!("line {}: unknown field {other:?}", i + 1)),
        }
    }
    let zone = zone.ok_or("no `zone:` line")?;
    let alg = alg.ok_or("no `algorithm:` line")?;
    let key = key.ok_or("no `private-key:` line")?;
    Ok(KeyFile {
        zone,
        key: ZoneKey::from_pkcs8(alg, &key)?,
    })
}

/// Reads and checks the key files of one zone: each must parse, be for `zone`, and sign what
/// its public key verifies.
pub fn load_keys(zone: &str, files: &[std::path::PathBuf]) -> Result<Vec<ZoneKey>, String> {
    let zone = absolute(zone);
    let mut keys = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let kf = parse_key_file(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        if kf.zone != zone {
            return Err(format!(
                "{}: the key is for zone {}, not {zone}",
                f.display(),
                kf.zone
            ));
        }
        kf.key
            .self_test()
            .map_err(|e| format!("{}: {e}", f.display()))?;
        keys.push(kf.key);
    }
    Ok(keys)
}

/// Signing settings of one zone.
#[derive(Debug)]
pub struct ZoneSigning {
    /// Every published key (the DNSKEY RRset); the first signs.
    pub keys: Vec<ZoneKey>,
    /// Signatures are valid this long from now...
    pub validity: Duration,
    /// ...and from this long before now (clock skew of validators).
    pub inception_offset: Duration,
    /// The apex, lowercase wire (the signer name of every RRSIG).
    pub apex: Box<[u8]>,
}

impl ZoneSigning {
    /// The signing key.
    pub fn active(&self) -> &ZoneKey {
        &self.keys[0]
    }

    /// The DNSKEY records of the apex, one per key, with `ttl`.
    pub fn dnskey_rrs(&self, ttl: u32) -> Vec<Rr> {
        self.keys
            .iter()
            .map(|k| Rr {
                owner: self.apex.clone(),
                rtype: rtype::DNSKEY,
                ttl,
                rdata: k.dnskey.clone(),
                target: None,
            })
            .collect()
    }
}

/// Shared handle.
pub type Signing = Arc<ZoneSigning>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_sign_and_give_a_ds() {
        for alg in [13u8, 15] {
            let text = generate("Example.Test", alg).unwrap();
            let kf = parse_key_file(&text).unwrap();
            assert_eq!(kf.zone, "example.test.");
            assert_eq!(kf.key.algorithm, alg);
            kf.key.self_test().unwrap();
            let ds = kf.key.ds_text("example.test.").unwrap();
            assert!(
                ds.starts_with(&format!("example.test. IN DS {} {alg} 2 ", kf.key.tag)),
                "{ds}"
            );
            assert_eq!(ds.len() - ds.rfind(' ').unwrap() - 1, 64, "SHA-256 hex");
            assert_eq!(&kf.key.dnskey[..4], &[1, 1, 3, alg]);
        }
        assert!(parse_key_file("zone: x.\nalgorithm: 8\nprivate-key: AAAA\n").is_err());
        assert!(parse_key_file("zone: x.\n")
            .err()
            .unwrap()
            .contains("algorithm"));
    }
}
