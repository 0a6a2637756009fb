//! `switchyard check` for certificate files: every problem of every file, not just the first.

use crate::cert::{self, CertInfo, CertSource};

/// Checks a listener's certificates: each file parses, each key matches its certificate, none
/// is expired or not yet valid at `now` (Unix seconds), and every name in `sni` is covered by
/// one of them. Returns (index of the source or None for a name problem, message) pairs and the
/// infos of the certificates that loaded.
pub fn check(
    sources: &[CertSource],
    sni: &[String],
    now: i64,
) -> (Vec<(Option<usize>, String)>, Vec<CertInfo>) {
    let mut problems = Vec::new();
    let mut infos = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        match cert::load(s) {
            Err(e) => problems.push((Some(i), e.to_string())),
            Ok(c) => {
                let f = c.info.file.display();
                if c.info.not_after < now {
                    problems.push((
                        Some(i),
                        format!("{f}: expired {} days ago", (now - c.info.not_after) / 86400),
                    ));
                } else if c.info.not_before > now {
                    problems.push((Some(i), format!("{f}: not valid yet")));
                }
                infos.push(c.info);
            }
        }
    }
    // names are judged only when every certificate loaded (a broken one may be the one that
    // covers them)
    let all_loaded = infos.len() == sources.len();
    for name in sni.iter().filter(|_| all_loaded) {
        if !infos.iter().any(|c| covers(&c.names, name)) {
            problems.push((None, format!("no certificate covers the name {name:?}")));
        }
    }
    (problems, infos)
}

/// Whether a certificate's names cover `name` (exact, or a wildcard one label deep).
pub fn covers(names: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    names.iter().any(|n| match n.strip_prefix("*.") {
        Some(suffix) => name.split_once('.').is_some_and(|(_, rest)| rest == suffix),
        None => *n == name,
    })
}
