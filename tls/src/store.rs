//! A reloadable set of certificates: the SNI table behind an `ArcSwap`, so a handshake reads it
//! without a lock and a reload swaps it without touching open connections. A reload that fails
//! (any file unreadable, unparsable, or a key that does not match) keeps the current table and
//! returns the error naming the file and the reason.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::cert::{self, CertInfo, CertSource};
use crate::resolver::SniResolver;
use crate::TlsError;

struct Loaded {
    resolver: SniResolver,
    infos: Vec<CertInfo>,
}

/// The certificates of one listener (or several sharing them). Implements rustls'
/// [`ResolvesServerCert`], so a `ServerConfig` built once keeps serving the newest certificates.
pub struct CertStore {
    sources: Vec<CertSource>,
    current: ArcSwap<Loaded>,
    /// File modification times at the last (attempted) load, for [`CertStore::reload_if_changed`].
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads every source (the first is the default certificate). Fails on the first unusable
    /// file, or when `sources` is empty.
    pub fn load(sources: Vec<CertSource>) -> Result<Arc<CertStore>, TlsError> {
        let stamps = stamps(&sources);
        let loaded = load_all(&sources)?;
        Ok(Arc::new(CertStore {
            sources,
            current: ArcSwap::from_pointee(loaded),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The files this store reads.
    pub fn sources(&self) -> &[CertSource] {
        &self.sources
    }

    /// Reads every file again; on success the new certificates serve the next handshakes, on
    /// error the current ones stay and the error says which file and why.
    pub fn reload(&self) -> Result<Vec<CertInfo>, TlsError> {
        let now = stamps(&self.sources);
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = now;
        let loaded = load_all(&self.sources)?;
        let infos = loaded.infos.clone();
        self.current.store(Arc::new(loaded));
        Ok(infos)
    }

    /// [`CertStore::reload`] when a file's modification time changed since the last load (a
    /// cheap `stat` per file: call it every few seconds). None when nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<Vec<CertInfo>, TlsError>> {
        let now = stamps(&self.sources);
        if *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) == now {
            return None;
        }
        Some(self.reload())
    }

    /// The certificates in use, in the order configured.
    pub fn infos(&self) -> Vec<CertInfo> {
        self.current.load().infos.clone()
    }

    /// The certificate chosen for a server name (what a handshake with this SNI gets).
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        self.current.load().resolver.pick(sni).clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .load()
                .resolver
                .pick(hello.server_name())
                .clone(),
        )
    }
}

fn load_all(sources: &[CertSource]) -> Result<Loaded, TlsError> {
    let certs = sources
        .iter()
        .map(cert::load)
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = SniResolver::new(&certs)
        .ok_or_else(|| TlsError::Config("no certificate configured".into()))?;
    Ok(Loaded {
        resolver,
        infos: certs.into_iter().map(|c| c.info).collect(),
    })
}

fn stamps(sources: &[CertSource]) -> Vec<Option<SystemTime>> {
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    sources
        .iter()
        .flat_map(|s| [mtime(&s.cert), mtime(&s.key)])
        .collect()
}
