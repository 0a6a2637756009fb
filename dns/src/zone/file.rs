//! RFC 1035 zone files, read by our own [`super::reader`] and built into a [`Zone`].

use super::reader::{parse_name, read};
use super::{rtype, Zone, ZoneBuilder};
use crate::Error;

/// Parses zone file text. `origin` is used when the file has no `$ORIGIN`; without either,
/// the apex is the owner of the SOA record.
pub fn parse_zone_file(text: &str, origin: Option<&str>) -> Result<Zone, Error> {
    parse_zone_text(text, origin, "zone")
}

/// [`parse_zone_file`] with `source` (a file path, or `config`) naming the text in errors,
/// which read `source:line:col: cause`.
pub fn parse_zone_text(text: &str, origin: Option<&str>, source: &str) -> Result<Zone, Error> {
    let origin = origin
        .map(|o| {
            let abs = if o.ends_with('.') {
                o.to_string()
            } else {
                format!("{o}.")
            };
            parse_name(&abs, None).map_err(|e| Error::ZoneFile(format!("origin {o:?}: {e}")))
        })
        .transpose()?;
    let entries =
        read(text, origin.as_deref(), source).map_err(|e| Error::ZoneFile(e.to_string()))?;
    let apex = match origin {
        Some(o) => o,
        None => entries
            .iter()
            .find(|e| e.rtype == rtype::SOA)
            .map(|e| e.owner.clone())
            .ok_or_else(|| {
                Error::ZoneFile(format!("{source}: no origin given and no SOA record"))
            })?,
    };
    let mut builder = ZoneBuilder::new(&apex);
    for e in &entries {
        builder.add(e)?;
    }
    builder.build()
}
