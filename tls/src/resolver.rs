//! Certificate choice by SNI: exact names first, then a wildcard one label deep, then the
//! default (the first certificate listed). Built once per (re)load; lookups allocate nothing for
//! names up to 253 bytes.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::cert::LoadedCert;

/// An immutable SNI → certificate table.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<Box<str>, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.` (`*.example.test` → `example.test`).
    wildcard: HashMap<Box<str>, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// A table over `certs` (the first one is the default). None when `certs` is empty.
    /// When two certificates claim the same name, the first listed wins.
    pub fn new(certs: &[LoadedCert]) -> Option<SniResolver> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for n in &c.info.names {
                match n.strip_prefix("*.") {
                    Some(suffix) => {
                        wildcard
                            .entry(suffix.into())
                            .or_insert_with(|| c.key.clone());
                    }
                    None => {
                        exact
                            .entry(n.as_str().into())
                            .or_insert_with(|| c.key.clone());
                    }
                }
            }
        }
        Some(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    /// The certificate for a server name (any case), or the default.
    pub fn pick(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        self.find(sni).unwrap_or(&self.default)
    }

    /// The certificate whose names cover `sni` (exact, then wildcard), without the default.
    pub fn find(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let sni = sni?;
        let mut buf = [0u8; 253];
        let name = lower(sni, &mut buf)?;
        if let Some(k) = self.exact.get(name) {
            return Some(k);
        }
        let (_, suffix) = name.split_once('.')?;
        self.wildcard.get(suffix)
    }
}

/// `s` in ASCII lower case, in `buf` (None: longer than a DNS name can be).
fn lower<'a>(s: &str, buf: &'a mut [u8; 253]) -> Option<&'a str> {
    let b = s.as_bytes();
    let out = buf.get_mut(..b.len())?;
    for (o, c) in out.iter_mut().zip(b) {
        *o = c.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}
