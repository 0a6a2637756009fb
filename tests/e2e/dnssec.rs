//! `switchyard dnssec keygen|ds` and `switchyard check` with DNSSEC keys, as a user meets them.

use crate::harness::{bin, TempDir};
use std::process::Command;

fn switchyard(args: &[&str], state: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env("SWITCHYARD_STATE_DIR", state)
        .output()
        .expect("run switchyard");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keygen_ds_and_check_agree_and_check_rejects_foreign_or_missing_keys() {
    let dir = TempDir::new("dnssec-cli");
    let st = dir.0.join("state");
    let key = dir.0.join("example.key");
    let k = key.to_str().unwrap();
    let (code, out, err) = switchyard(&["dnssec", "keygen", "example.test", "--out", k], &st);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], k);
    assert!(
        lines[1].starts_with("example.test. IN DS ") && lines[1].contains(" 13 2 "),
        "{out}"
    );
    // the same DS from the key file, and from a config that names it
    let (code, ds, _) = switchyard(&["dnssec", "ds", "example.test.", "--key", k], &st);
    assert_eq!((code, ds.trim()), (0, lines[1]));
    let with_key = |path: &str| {
        switchyard_config::demo_toml().replacen(
            "origin = \"example.test.\"",
            &format!("origin = \"example.test.\"\n  dnssec_keys = [\"{path}\"]"),
            1,
        )
    };
    let cfg = dir.write("signed.toml", &with_key(k));
    let c = cfg.to_str().unwrap();
    let (code, ds, err) = switchyard(&["dnssec", "ds", "example.test", "--config", c], &st);
    assert_eq!((code, ds.trim()), (0, lines[1]), "{err}");
    let (code, _, err) = switchyard(&["check", "--config", c], &st);
    assert_eq!(code, 0, "{err}");
    // a key of another zone, a missing key: check says which and why
    let other = dir.0.join("other.key");
    let o = other.to_str().unwrap();
    assert_eq!(
        switchyard(&["dnssec", "keygen", "other.test.", "--out", o], &st).0,
        0
    );
    let cfg = dir.write("foreign.toml", &with_key(o));
    let (code, _, err) = switchyard(&["check", "--config", cfg.to_str().unwrap()], &st);
    assert_eq!(code, 2);
    assert!(
        err.contains("the key is for zone other.test., not example.test."),
        "{err}"
    );
    let cfg = dir.write("missing.toml", &with_key("nope.key"));
    let (code, _, err) = switchyard(&["check", "--config", cfg.to_str().unwrap()], &st);
    assert_eq!(code, 2);
    assert!(
        err.contains("nope.key") && err.contains("DNSSEC key"),
        "{err}"
    );
    // keygen never overwrites a key
    let (code, _, err) = switchyard(&["dnssec", "keygen", "example.test", "--out", k], &st);
    assert_eq!(code, 1, "{err}");
}
