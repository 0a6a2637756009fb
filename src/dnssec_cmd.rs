//! `switchyard dnssec keygen|ds`: make a zone's signing key, print the DS record its parent
//! publishes. Key files are read by `[[dns.zones]] dnssec_keys` (docs/dnssec.md).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DnssecArgs {
    #[command(subcommand)]
    pub what: DnssecWhat,
}

#[derive(Debug, Subcommand)]
pub enum DnssecWhat {
    /// Make a new signing key for ZONE (a combined key: KSK and ZSK in one).
    Keygen {
        /// The zone, e.g. example.test.
        zone: String,
        /// 13 = ECDSA P-256 SHA-256 (the default, what most validators expect), 15 = Ed25519.
        #[arg(long, default_value_t = 13)]
        algorithm: u8,
        /// Write the key here (mode 0600, never overwritten); default: `<zone>+<tag>.key` in
        /// the current directory.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print the DS record(s) the parent zone publishes for ZONE's keys.
    Ds {
        /// The zone, e.g. example.test.
        zone: String,
        /// Key files; default: the zone's `dnssec_keys` in --config, else the demo world's key.
        #[arg(long)]
        key: Vec<PathBuf>,
        /// World config to take the zone's key files from.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn absolute(zone: &str) -> String {
    let z = zone.to_ascii_lowercase();
    if z.ends_with('.') {
        z
    } else {
        format!("{z}.")
    }
}

/// Runs `switchyard dnssec ...`.
pub fn run(args: &DnssecArgs) -> anyhow::Result<()> {
    match &args.what {
        DnssecWhat::Keygen {
            zone,
            algorithm,
            out,
        } => {
            let zone = absolute(zone);
            let text =
                switchyard_dns::dnssec::generate(&zone, *algorithm).map_err(anyhow::Error::msg)?;
            let kf = switchyard_dns::dnssec::parse_key_file(&text).map_err(anyhow::Error::msg)?;
            let path = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{zone}+{}.key", kf.key.tag)));
            write_new(&path, &text)?;
            println!("{}", path.display());
            println!("{}", kf.key.ds_text(&zone).map_err(anyhow::Error::msg)?);
            Ok(())
        }
        DnssecWhat::Ds { zone, key, config } => {
            let zone = absolute(zone);
            let files = if !key.is_empty() {
                key.clone()
            } else if let Some(c) = config {
                let world = switchyard_config::load_file(c).map_err(|e| anyhow::anyhow!("{e}"))?;
                let z = world
                    .dns
                    .zones
                    .iter()
                    .find(|z| z.origin == zone)
                    .with_context(|| format!("{}: no zone {zone}", c.display()))?;
                if z.dnssec_keys.is_empty() {
                    bail!("{}: zone {zone} has no dnssec_keys", c.display());
                }
                z.dnssec_keys.iter().map(PathBuf::from).collect()
            } else {
                vec![demo_key_path(&zone)?]
            };
            let keys =
                switchyard_dns::dnssec::load_keys(&zone, &files).map_err(anyhow::Error::msg)?;
            for k in keys {
                println!("{}", k.ds_text(&zone).map_err(anyhow::Error::msg)?);
            }
            Ok(())
        }
    }
}

/// Writes a secret file that must not exist yet, readable by its owner only.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where the demo world keeps its state: `$SWITCHYARD_STATE_DIR`, else
/// `$XDG_STATE_HOME/switchyard`, else `~/.local/state/switchyard`.
pub fn state_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("SWITCHYARD_STATE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return Ok(PathBuf::from(d).join("switchyard"));
    }
    let home =
        std::env::var_os("HOME").context("no HOME, XDG_STATE_HOME or SWITCHYARD_STATE_DIR")?;
    Ok(PathBuf::from(home).join(".local/state/switchyard"))
}

fn demo_key_path(zone: &str) -> anyhow::Result<PathBuf> {
    Ok(state_dir()?.join("demo").join(format!("{zone}key")))
}

/// The demo world's key for `zone`, made on first use under the state directory.
pub fn demo_key(zone: &str) -> anyhow::Result<PathBuf> {
    let path = demo_key_path(zone)?;
    if !path.exists() {
        let dir = path.parent().expect("a file in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = switchyard_dns::dnssec::generate(zone, 13).map_err(anyhow::Error::msg)?;
        if let Err(e) = write_new(&path, &text) {
            // another process made it first: use that one
            if path.exists() {
                return Ok(path);
            }
            return Err(e);
        }
        tracing::info!(key = %path.display(), zone, "made the demo world's DNSSEC key");
    }
    Ok(path)
}

/// The demo world signs `example.test.` with a key kept under the state directory (made at
/// first start). If that fails the demo runs unsigned, with a warning.
pub fn sign_demo(mut world: switchyard_config::World) -> switchyard_config::World {
    for z in &mut world.dns.zones {
        if z.origin == "example.test." && z.dnssec_keys.is_empty() {
            match demo_key(&z.origin) {
                Ok(p) => z.dnssec_keys.push(p.to_string_lossy().into_owned()),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "demo world runs unsigned"),
            }
        }
    }
    world
}
