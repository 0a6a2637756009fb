//! Configuration errors: every problem found in one pass, each with its TOML path and position.

use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted TOML path of the offending value, e.g. `regions[0].pools[1].members[2].az`.
    pub path: String,
    /// 1-based line and column of the value in the source, when it could be located.
    pub position: Option<(usize, usize)>,
    /// What is wrong, in words a user can act on.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{line}:{col}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found in a configuration, in source order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// Where the configuration came from (a file path, `<demo>`, `etcd://...`).
    pub origin: String,
    /// The problems, at least one.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: {n} error{} in configuration",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  {}:{e}", self.origin)?;
        }
        Ok(())
    }
}

/// Collects errors during validation; paths are built as the validator descends.
#[derive(Debug, Default)]
pub struct Errors {
    list: Vec<ConfigError>,
}

impl Errors {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigError {
            path: path.into(),
            position: None,
            message: message.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Parses every string of a list, recording `"{s:?} is not {what}"` at `{path}[i]` for each
    /// one that does not parse; returns the ones that do.
    pub fn parse_list<T: std::str::FromStr>(
        &mut self,
        items: &[String],
        path: &str,
        what: &str,
    ) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let v = s.parse().ok();
                if v.is_none() {
                    self.push(format!("{path}[{i}]"), format!("{s:?} is not {what}"));
                }
                v
            })
            .collect()
    }

    /// [`Errors::parse_list`] for CIDR networks, truncated to their prefix (`10.1.2.3/8` → `10.0.0.0/8`).
    pub fn networks(&mut self, items: &[String], path: &str) -> Vec<ipnet::IpNet> {
        let nets: Vec<ipnet::IpNet> =
            self.parse_list(items, path, "a CIDR network (e.g. \"10.0.0.0/8\")");
        nets.into_iter().map(|n| n.trunc()).collect()
    }

    pub(crate) fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }
}
