//! Switchyard's configuration: one TOML file describes the whole world (regions, AZs, L4 pools and
//! listeners, gateway instances and routes, services, DNS zones and GSLB names, the admin API).
//!
//! Data flows one way: TOML text → raw serde structs ([`RawWorld`], unknown keys rejected, each
//! one reported) → one validation pass that reports *every* problem with its TOML path and line:column
//! ([`ConfigErrors`]) → a typed [`World`] in which references are resolved and values typed.
//! Runtime code never re-checks. This crate does no I/O beyond reading the file it is given, so
//! any other source (etcd, an admin push) feeds the same validation through [`parse_str`].
//!
//! ## Layout
//! - [`world`]: the top-level raw document and the validated [`World`]; one module per part of
//!   it: [`region`] (regions, AZs), [`lb`] (L4 pools and listeners), [`health`] (checks, passive
//!   ejection, policies), [`services`], [`gateway`] (raw structs, validation, model, CORS),
//!   [`dns`] (listeners, zones, GSLB names), [`tls`] (certificate lists of TLS listeners);
//! - [`error`] (every problem in one pass), [`locate`] (TOML path → line:column),
//!   [`duration`] (human durations); `demo` (the embedded demo world) and `tests`.

pub mod dns;
pub mod duration;
pub mod error;
pub mod gateway;
pub mod health;
pub mod lb;
pub mod locate;
pub mod region;
pub mod services;
pub mod tls;
pub mod world;

mod demo;

pub use demo::{
    demo_toml, demo_toml_https, demo_toml_https_on, demo_toml_on, demo_world, demo_world_https,
    DEMO_ADMIN_TOKEN,
};
pub use error::{ConfigError, ConfigErrors};
pub use world::{Part, RawWorld, World};

use std::path::Path;

/// Parses and validates TOML text. `origin` names the source in error messages.
///
/// Every problem is reported at once, in source order: structural ones (unknown keys, wrong
/// types) and, for what is left after taking those keys out, the validation's. Only a TOML
/// syntax error stops at the first.
pub fn parse_str(src: &str, origin: &str) -> Result<World, ConfigErrors> {
    let (raw, mut errors) = RawWorld::parse_all(src);
    let fail = |errors| ConfigErrors {
        origin: origin.to_string(),
        errors,
    };
    let Some(raw) = raw else {
        return Err(fail(errors));
    };
    match raw.validate(Some(src), origin) {
        Ok(world) if errors.is_empty() => Ok(world),
        Ok(_) => Err(fail(errors)),
        Err(semantic) => {
            errors.extend(semantic.errors);
            errors.sort_by_key(|e| e.position.unwrap_or((usize::MAX, 0)));
            Err(fail(errors))
        }
    }
}

/// Reads, parses and validates a file; relative paths inside it are taken from its folder.
pub fn load_file(path: &Path) -> Result<World, ConfigErrors> {
    let origin = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        origin: origin.clone(),
        errors: vec![ConfigError {
            path: "(file)".into(),
            position: None,
            message: format!("cannot read {origin}: {e}"),
        }],
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(parse_str(&src, &origin)?.resolve_paths(&base))
}

#[cfg(test)]
mod tests;
