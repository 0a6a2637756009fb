//! The embedded demo world: what `switchyard run` serves with no config file.
//!
//! `demo.toml` describes it whole, HTTPS included: per region an L4 listener on port 8443 that
//! passes TLS through to the gateways' TLS listeners, whose certificate files (`tls/api.pem`,
//! `tls/api.key`) the binary creates from a demo CA under its state directory. Those files do
//! not exist next to a printed copy, so [`demo_toml`] (what `switchyard demo-config` prints and
//! tests run) is the same world without the HTTPS parts, and [`demo_toml_https`] the whole one.

use crate::{parse_str, World};

/// The demo world's documented admin token (it binds loopback only).
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

const DEMO: &str = include_str!("demo.toml");

/// The demo world as TOML, with its fixed `127.0.x.y` addresses, without the HTTPS listeners
/// (which need certificate files).
pub fn demo_toml() -> &'static str {
    static PLAIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PLAIN.get_or_init(|| without_https(DEMO))
}

/// The whole demo world, HTTPS included (certificate paths relative to the state directory).
pub fn demo_toml_https() -> &'static str {
    DEMO
}

/// The demo world moved to `127.{net}.x.y` (same ports), so tests can run several worlds side by
/// side without clashing with each other or with a running demo. `net = 0` is the demo itself.
pub fn demo_toml_on(net: u8) -> String {
    demo_toml().replace("127.0.", &format!("127.{net}."))
}

/// [`demo_toml_on`] with the HTTPS listeners.
pub fn demo_toml_https_on(net: u8) -> String {
    DEMO.replace("127.0.", &format!("127.{net}."))
}

/// The validated demo world (without the HTTPS listeners).
pub fn demo_world() -> World {
    parse_str(demo_toml(), "<demo>").expect("the embedded demo world is valid")
}

/// The validated demo world with the HTTPS listeners.
pub fn demo_world_https() -> World {
    parse_str(DEMO, "<demo>").expect("the embedded demo world is valid")
}

/// Takes the HTTPS parts out of the demo text: the pools named `*-tls`, the listeners named
/// `*-https`, each gateway instance's `tls`, `[dns]`'s `tls` and `https` (DoT, DoH), and the
/// comment lines that describe them.
fn without_https(src: &str) -> String {
    use toml_edit::{DocumentMut, Item, Value};
    let mut doc: DocumentMut = src.parse().expect("demo.toml parses");
    let named = |t: &toml_edit::Table, suffix: &str| {
        t.get("name")
            .and_then(Item::as_str)
            .is_some_and(|n| n.ends_with(suffix))
    };
    if let Some(regions) = doc
        .get_mut("regions")
        .and_then(Item::as_array_of_tables_mut)
    {
        for r in regions.iter_mut() {
            for (key, suffix) in [("pools", "-tls"), ("listeners", "-https")] {
                if let Some(a) = r.get_mut(key).and_then(Item::as_array_of_tables_mut) {
                    a.retain(|t| !named(t, suffix));
                }
            }
        }
    }
    if let Some(list) = doc
        .get_mut("gateway")
        .and_then(|g| g.get_mut("instances"))
        .and_then(Item::as_array_mut)
    {
        for v in list.iter_mut() {
            if let Value::InlineTable(t) = v {
                t.remove("tls");
            }
        }
    }
    // DoT and DoH (the same certificate files)
    if let Some(dns) = doc.get_mut("dns").and_then(Item::as_table_mut) {
        dns.remove("tls");
        dns.remove("https");
    }
    // the inline tables lost their last key: keep the space before the brace
    doc.to_string().replace("\"},\n", "\" },\n")
}
