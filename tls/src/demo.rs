//! A small certificate authority (rcgen) for the demo world, `switchyard cert issue` and tests:
//! it creates ECDSA P-256 (or Ed25519, RSA) leaf certificates for DNS names and IP addresses.
//! Not for production: the CA key sits in a file next to its certificate.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::TlsError;

/// The key algorithm of an issued certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    /// ECDSA P-256 with SHA-256 (the default: the cheapest full handshake).
    #[default]
    EcdsaP256,
    /// Ed25519.
    Ed25519,
    /// RSA 2048 with SHA-256.
    Rsa2048,
}

/// What to issue.
#[derive(Debug, Clone, Default)]
pub struct IssueOptions {
    /// The key algorithm.
    pub key: KeyKind,
    /// Validity in days from now (negative with `days_before`: an expired certificate);
    /// 0 means 365.
    pub days: i64,
    /// Not valid before this many days ago (default 1).
    pub days_before: i64,
    /// A client certificate (`clientAuth` usage) instead of a server one.
    pub client: bool,
    /// Subject common name (default: the first name).
    pub common_name: Option<String>,
    /// A CRL distribution point URL to name in the certificate (scanners rate a certificate
    /// without any revocation information HIGH).
    pub crl_url: Option<String>,
}

/// An issued certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (leaf only; the CA is known to clients separately).
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl Issued {
    /// Writes the certificate and key (the key readable by the owner only).
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        write_file(cert, &self.cert_pem, 0o644)?;
        write_file(key, &self.key_pem, 0o600)
    }
}

/// A CA that signs certificates.
pub struct DemoCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DemoCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCa").finish_non_exhaustive()
    }
}

fn rc(e: rcgen::Error) -> TlsError {
    TlsError::Config(format!("certificate generation failed: {e}"))
}

impl DemoCa {
    /// A new CA (ECDSA P-256, valid ten years) named `name`.
    pub fn create(name: &str) -> Result<DemoCa, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rc)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Switchyard demo");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key).map_err(rc)?;
        Ok(DemoCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA in `dir` (`ca.pem`, `ca.key`), created there first if missing.
    pub fn load_or_create(dir: &Path) -> Result<DemoCa, TlsError> {
        let (cert, key) = Self::files(dir);
        if cert.exists() && key.exists() {
            return Self::load(&cert, &key);
        }
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Read {
            file: dir.to_path_buf(),
            source,
        })?;
        let ca = Self::create("Switchyard demo CA")?;
        write_file(&key, &ca.issuer.key().serialize_pem(), 0o600)?;
        write_file(&cert, &ca.cert_pem, 0o644)?;
        Ok(ca)
    }

    /// A CA from its certificate and key files.
    pub fn load(cert: &Path, key: &Path) -> Result<DemoCa, TlsError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| TlsError::Read {
                file: p.to_path_buf(),
                source,
            })
        };
        let cert_pem = read(cert)?;
        let kp = KeyPair::from_pem(&read(key)?)
            .map_err(|e| TlsError::invalid(key, format!("not a usable CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, kp)
            .map_err(|e| TlsError::invalid(cert, format!("not a usable CA certificate: {e}")))?;
        Ok(DemoCa { cert_pem, issuer })
    }

    /// `dir/ca.pem` and `dir/ca.key`.
    pub fn files(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("ca.pem"), dir.join("ca.key"))
    }

    /// The CA certificate (PEM), what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate for `names` (DNS names, `*.` wildcards, IP addresses).
    pub fn issue(&self, names: &[String], opts: &IssueOptions) -> Result<Issued, TlsError> {
        let alg = match opts.key {
            KeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
            KeyKind::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
        };
        let key = KeyPair::generate_for(alg).map_err(rc)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(rc)?;
        let mut dn = DistinguishedName::new();
        let cn = opts
            .common_name
            .clone()
            .or_else(|| names.first().cloned())
            .unwrap_or_else(|| "switchyard".into());
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if opts.key == KeyKind::Rsa2048 {
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        params.extended_key_usages = vec![if opts.client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let now = time::OffsetDateTime::now_utc();
        let days = if opts.days == 0 { 365 } else { opts.days };
        let before = if opts.days_before == 0 {
            1
        } else {
            opts.days_before
        };
        params.not_before = now - time::Duration::days(before);
        params.not_after = now + time::Duration::days(days);
        if let Some(u) = &opts.crl_url {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![u.clone()],
            }];
        }
        let cert = params.signed_by(&key, &self.issuer).map_err(rc)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Read {
        file: path.to_path_buf(),
        source,
    };
    // write beside, then rename: a reader (reload) never sees half a file
    let tmp = path.with_extension("tmp~");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}
