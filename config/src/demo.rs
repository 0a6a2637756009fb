//! The embedded demo world: what `switchyard run` serves with no config file.

use crate::{parse_str, World};

/// The demo world's documented admin token (it binds loopback only).
pub const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";

const DEMO: &str = include_str!("demo.toml");

/// The demo world as TOML, with its fixed `127.0.x.y` addresses.
pub fn demo_toml() -> &'static str {
    DEMO
}

/// The demo world moved to `127.{net}.x.y` (same ports), so tests can run several worlds side by
/// side without clashing with each other or with a running demo. `net = 0` is the demo itself.
pub fn demo_toml_on(net: u8) -> String {
    DEMO.replace("127.0.", &format!("127.{net}."))
}

/// The validated demo world.
pub fn demo_world() -> World {
    parse_str(DEMO, "<demo>").expect("the embedded demo world is valid")
}
