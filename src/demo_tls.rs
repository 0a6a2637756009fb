//! The demo world's TLS material: a demo CA and the gateways' certificate for
//! `api.example.test` and the VIPs, created at first use under a state directory (and by
//! `switchyard cert demo --dir DIR` for a printed demo config), plus `switchyard demo-ca` and
//! `switchyard cert issue`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use switchyard_tls::demo::{DemoCa, IssueOptions, KeyKind};

use crate::cli::{CertArgs, CertCommand, KeyType};

/// The names the demo gateways' certificate covers.
pub const DEMO_NAMES: [&str; 6] = [
    "api.example.test",
    "*.example.test",
    "localhost",
    "127.0.0.1",
    "127.0.1.1",
    "127.0.2.1",
];

/// Where the demo keeps its state: `--state-dir`/`SWITCHYARD_STATE_DIR`, else
/// `$XDG_STATE_HOME/switchyard`, else `~/.local/state/switchyard`, else a folder in the
/// temporary directory named after the user id.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("XDG_STATE_HOME") {
        return p.join("switchyard");
    }
    if let Some(h) = env("HOME") {
        return h.join(".local/state/switchyard");
    }
    // the uid keeps users apart on a shared /tmp
    std::env::temp_dir().join(format!("switchyard-{}", uid()))
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

/// The demo CA and certificate files under `dir/tls/`.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    /// The CA certificate (what clients trust: `curl --cacert`).
    pub ca: PathBuf,
    /// The gateways' certificate chain.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// `dir/tls/{ca.pem,ca.key,api.pem,api.key}`, created when missing. Processes starting together
/// agree on one CA: a new set is made in a private folder and renamed into place, the loser of
/// the rename using the winner's.
pub fn ensure(dir: &Path) -> anyhow::Result<DemoFiles> {
    let tls = dir.join("tls");
    let files = DemoFiles {
        ca: tls.join("ca.pem"),
        cert: tls.join("api.pem"),
        key: tls.join("api.key"),
    };
    let complete = |f: &DemoFiles| {
        [&f.ca, &f.cert, &f.key, &tls.join("ca.key")]
            .iter()
            .all(|p| p.exists())
    };
    if complete(&files) {
        return Ok(files);
    }
    if tls.join("ca.pem").exists() && tls.join("ca.key").exists() {
        // the CA is there, a leaf is missing (deleted by hand): issue it again
        let ca = DemoCa::load_or_create(&tls)?;
        issue_demo(&ca, &files.cert, &files.key)?;
        return Ok(files);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".tls-{}-{}", std::process::id(), nanos()));
    let ca = DemoCa::load_or_create(&tmp)?;
    issue_demo(&ca, &tmp.join("api.pem"), &tmp.join("api.key"))?;
    if std::fs::rename(&tmp, &tls).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::ensure!(
            complete(&files),
            "{} exists but lacks the demo CA or certificate",
            tls.display()
        );
    }
    Ok(files)
}

fn issue_demo(ca: &DemoCa, cert: &Path, key: &Path) -> anyhow::Result<()> {
    let names: Vec<String> = DEMO_NAMES.iter().map(|s| s.to_string()).collect();
    ca.issue(&names, &IssueOptions::default())?
        .write(cert, key)?;
    Ok(())
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `switchyard demo-ca`: prints the demo CA certificate (creating it first if needed).
pub fn print_ca(state: Option<&Path>) -> anyhow::Result<()> {
    let files = ensure(&state_dir(state))?;
    let pem = std::fs::read_to_string(&files.ca)
        .with_context(|| format!("reading {}", files.ca.display()))?;
    print!("{pem}");
    Ok(())
}

/// `switchyard cert ...`.
pub fn cert(args: &CertArgs) -> anyhow::Result<()> {
    match &args.command {
        CertCommand::Demo { dir } => {
            let f = ensure(dir)?;
            println!("CA:          {}", f.ca.display());
            println!("certificate: {}", f.cert.display());
            println!("key:         {}", f.key.display());
            Ok(())
        }
        CertCommand::Issue {
            names,
            out,
            key_type,
            days,
            client,
            state_dir: sd,
        } => {
            let files = ensure(&state_dir(sd.as_deref()))?;
            let ca_dir = files.ca.parent().unwrap_or(Path::new("."));
            let ca = DemoCa::load_or_create(ca_dir)?;
            let base = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(names[0].replace('*', "wildcard")));
            let cert = base.with_extension("pem");
            let key = base.with_extension("key");
            let opts = IssueOptions {
                key: match key_type {
                    KeyType::Ecdsa => KeyKind::EcdsaP256,
                    KeyType::Ed25519 => KeyKind::Ed25519,
                    KeyType::Rsa => KeyKind::Rsa2048,
                },
                days: *days,
                client: *client,
                ..Default::default()
            };
            ca.issue(names, &opts)?.write(&cert, &key)?;
            println!("certificate: {}", cert.display());
            println!("key:         {}", key.display());
            println!("issued by:   {} (switchyard demo-ca)", files.ca.display());
            Ok(())
        }
    }
}
