//! Session-ticket keys from a file, so that several appliances (or processes) behind one name
//! resume each other's TLS sessions, as HAProxy's `tls-ticket-keys` and nginx's
//! `ssl_session_ticket_key` do. Without a file each process has its own rotating key
//! ([`crate::provider_ticketer`]).
//!
//! The file holds one key per line, each the base64 of 48 random bytes (`openssl rand -base64
//! 48`): a 16-byte key name and a 32-byte AES-256-GCM key. The first key issues tickets; every
//! key decrypts them, so a rotation is: put a new key on the first line, reload every
//! appliance, drop the last line once the ticket lifetime has passed. Blank lines and `#`
//! comments are ignored.
//!
//! A ticket is `key name (16) || nonce (12) || AES-256-GCM(session state)`, authenticated with the
//! key name and the listener's client-certificate context as associated data: a session whose
//! client certificate was verified against one CA never resumes on a listener that trusts
//! another, even with the same keys.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

use crate::TlsError;

const NAME_LEN: usize = 16;
const KEY_LEN: usize = 32;
/// How long a client may keep a ticket (seconds), as the provider's own ticketer.
const LIFETIME: u32 = 6 * 60 * 60;

struct Key {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

/// Tickets sealed with the keys of a key file (see the module header).
pub struct FileTicketer {
    keys: Vec<Key>,
    /// Associated data after the key name: which client-certificate CA the listener trusts.
    context: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for FileTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the keys
        f.debug_struct("FileTicketer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl FileTicketer {
    /// Reads the key file at `path`; `client_ca` (the PEM bytes of the listener's client CA,
    /// if any) binds the tickets to it.
    pub fn load(path: &Path, client_ca: Option<&[u8]>) -> Result<FileTicketer, TlsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, client_ca).map_err(|reason| TlsError::invalid(path, reason))
    }

    fn parse(text: &str, client_ca: Option<&[u8]>) -> Result<FileTicketer, String> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|_| format!("line {}: not base64", i + 1))?;
            if bytes.len() != NAME_LEN + KEY_LEN {
                return Err(format!(
                    "line {}: a key is 48 bytes (`openssl rand -base64 48`), this one {}",
                    i + 1,
                    bytes.len()
                ));
            }
            let mut name = [0u8; NAME_LEN];
            name.copy_from_slice(&bytes[..NAME_LEN]);
            if keys.iter().any(|k| k.name == name) {
                return Err(format!(
                    "line {}: the same key name as an earlier key",
                    i + 1
                ));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &bytes[NAME_LEN..])
                .map_err(|_| format!("line {}: unusable key", i + 1))?;
            keys.push(Key {
                name,
                aead: LessSafeKey::new(unbound),
            });
        }
        if keys.is_empty() {
            return Err("no key: one base64 line per key (`openssl rand -base64 48`)".into());
        }
        let context = match client_ca {
            None => b"no-client-ca".to_vec(),
            Some(pem) => aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pem)
                .as_ref()
                .to_vec(),
        };
        Ok(FileTicketer {
            keys,
            context,
            rng: SystemRandom::new(),
        })
    }

    fn aad(&self, name: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(name.len() + self.context.len());
        aad.extend_from_slice(name);
        aad.extend_from_slice(&self.context);
        aad
    }

    /// Keys in the file.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never: a ticketer is built from at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl rustls::server::ProducesTickets for FileTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.aad(&key.name)),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if cipher.len() < NAME_LEN + NONCE_LEN + 16 {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(self.aad(name)), &mut buf)
            .ok()?;
        let n = plain.len();
        buf.truncate(n);
        Some(buf)
    }
}

/// The ticketer of a listener with a key file (see [`FileTicketer`]).
pub(crate) fn file_ticketer(
    path: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<dyn rustls::server::ProducesTickets>, TlsError> {
    let ca = client_ca
        .map(|p| {
            std::fs::read(p).map_err(|source| TlsError::Read {
                file: p.to_path_buf(),
                source,
            })
        })
        .transpose()?;
    Ok(Arc::new(FileTicketer::load(path, ca.as_deref())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    fn key(seed: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([seed; 48])
    }

    #[test]
    fn any_key_of_the_file_opens_what_the_first_sealed() {
        let old = FileTicketer::parse(&format!("{}\n", key(1)), None).unwrap();
        let rotated =
            FileTicketer::parse(&format!("# new first\n{}\n\n{}\n", key(2), key(1)), None).unwrap();
        assert_eq!(rotated.len(), 2);
        let t = old.encrypt(b"session state").unwrap();
        assert_eq!(&t[..16], &[1u8; 16]);
        assert_eq!(rotated.decrypt(&t).unwrap(), b"session state");
        // the rotated file issues with its first key, which the old file cannot open
        let t2 = rotated.encrypt(b"s2").unwrap();
        assert_eq!(&t2[..16], &[2u8; 16]);
        assert_eq!(old.decrypt(&t2), None);
        // two sealings of the same state differ (fresh nonce)
        assert_ne!(old.encrypt(b"x").unwrap(), old.encrypt(b"x").unwrap());
    }

    #[test]
    fn tampered_short_foreign_or_other_ca_tickets_are_refused() {
        let a = FileTicketer::parse(&key(1), None).unwrap();
        let mut t = a.encrypt(b"session state").unwrap();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert_eq!(a.decrypt(&t), None);
        assert_eq!(a.decrypt(&[1u8; 20]), None);
        assert_eq!(a.decrypt(b""), None);
        let other = FileTicketer::parse(&key(3), None).unwrap();
        assert_eq!(other.decrypt(&a.encrypt(b"s").unwrap()), None);
        // same keys, another client CA: refused
        let with_ca = FileTicketer::parse(&key(1), Some(b"CA one")).unwrap();
        let with_other_ca = FileTicketer::parse(&key(1), Some(b"CA two")).unwrap();
        let t = with_ca.encrypt(b"s").unwrap();
        assert_eq!(with_other_ca.decrypt(&t), None);
        assert_eq!(a.decrypt(&t), None);
        assert_eq!(with_ca.decrypt(&t).unwrap(), b"s");
    }

    #[test]
    fn a_broken_key_file_says_which_line_and_why() {
        let err = |t: &str| FileTicketer::parse(t, None).unwrap_err();
        assert!(err("").starts_with("no key"), "{}", err(""));
        assert!(err("# only a comment\n").starts_with("no key"));
        assert_eq!(err(&format!("{}\n!!!\n", key(1))), "line 2: not base64");
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        assert_eq!(
            err(&short),
            "line 1: a key is 48 bytes (`openssl rand -base64 48`), this one 32"
        );
        assert_eq!(
            err(&format!("{}\n{}\n", key(1), key(1))),
            "line 2: the same key name as an earlier key"
        );
    }
}
