//! Build script: stamps the binary with its git revision and build date for `--version`.
//!
//! Both tolerate a tree without git (a source tarball): the revision is then `unknown`, unless
//! the packager sets `SWITCHYARD_GIT_REV`. The date honours `SOURCE_DATE_EPOCH` (reproducible
//! builds) and is otherwise today's date (UTC).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SWITCHYARD_GIT_REV");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let rev = match std::env::var("SWITCHYARD_GIT_REV") {
        Ok(r) if !r.is_empty() => r,
        _ => git_rev().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=SWITCHYARD_GIT_REV={rev}");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=SWITCHYARD_BUILD_DATE={}", civil_date(secs));
}

/// `git rev-parse --short=12 HEAD` in the source tree, and a rerun when HEAD moves.
fn git_rev() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rerun when HEAD changes (checkout) or the branch it names moves (commit).
    let abs = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]).map(abs) {
        rerun_if_exists(&git_dir.join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--git-common-dir"]).map(abs) {
        rerun_if_exists(&common.join("packed-refs"));
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            rerun_if_exists(&common.join(r));
        }
    }
    Some(rev)
}

fn rerun_if_exists(p: &Path) {
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time (Howard Hinnant's days-to-civil algorithm).
fn civil_date(secs: u64) -> String {
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
