//! Human durations in configuration files (`"250ms"`, `"2s"`, `"1h 30m"`).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration written for humans; (de)serializes through `humantime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                de::Error::custom(format!(
                    "invalid duration {s:?} ({e}); write e.g. \"500ms\", \"2s\", \"1m\""
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// Shorthand used by `#[serde(default = ...)]` functions.
pub const fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

/// Shorthand used by `#[serde(default = ...)]` functions.
pub const fn millis(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_millis(n))
}
