//! RFC 1035 zone files, parsed by hickory-proto's zone file parser.

use hickory_proto::rr::Name;
use hickory_proto::serialize::txt::Parser;

use super::{Zone, ZoneBuilder};
use crate::Error;

/// Parses zone file text. `origin` is used when the file has no `$ORIGIN`.
pub fn parse_zone_file(text: &str, origin: Option<&str>) -> Result<Zone, Error> {
    let origin = origin
        .map(|o| Name::from_ascii(o).map_err(|e| Error::ZoneFile(format!("origin {o:?}: {e}"))))
        .transpose()?;
    let (origin, sets) = Parser::new(text, None, origin)
        .parse()
        .map_err(|e| Error::ZoneFile(e.to_string()))?;
    let mut builder = ZoneBuilder::new(&origin);
    for set in sets.values() {
        for record in set.records_without_rrsigs() {
            builder.add(record)?;
        }
    }
    builder.build()
}
