//! The L7 gateway: instances, limits, JWT keys, routes and compositions.
//!
//! Layout: `raw` (the TOML tables as written, with defaults), `validate` (checks them and resolves
//! service names) and `model` (the validated types the gateway runs on); `cors` holds all three
//! for `[gateway.cors]`.

mod cors;
mod model;
mod raw;
mod validate;

pub use cors::{Cors, RawCors};

pub use model::{
    Access, DeviceProfile, Gateway, GatewayInstance, GatewayTls, Jwt, JwtKey, KeySource, Limits,
    Part, ProfileOverride, Route,
};
pub use raw::{
    RawAccessLog, RawDeviceProfile, RawGateway, RawGatewayInstance, RawGatewayTls,
    RawIdentityHeaders, RawJwt, RawJwtKey, RawLimits, RawPart, RawProfileOverride, RawRoute,
    RawSplit,
};

#[cfg(test)]
mod tests;
