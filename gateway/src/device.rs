//! Device classes: `X-Client-Type` first, then `User-Agent` substrings, else `default`.

use http::HeaderMap;

use crate::spec::DeviceProfileSpec;

/// The profile of a request no profile claims.
pub const DEFAULT_PROFILE: &str = "default";

/// Pick the device profile name for a request.
pub fn classify<'a>(profiles: &'a [DeviceProfileSpec], headers: &HeaderMap) -> &'a str {
    if profiles.is_empty() {
        return DEFAULT_PROFILE;
    }
    if let Some(ct) = headers.get("x-client-type").and_then(|v| v.to_str().ok()) {
        let ct = ct.trim();
        for p in profiles {
            if p.name.eq_ignore_ascii_case(ct)
                || p.client_types.iter().any(|c| c.eq_ignore_ascii_case(ct))
            {
                return &p.name;
            }
        }
    }
    if let Some(ua) = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        let ua = ua.to_ascii_lowercase();
        for p in profiles {
            if p.user_agent_contains
                .iter()
                .any(|pat| ua.contains(&pat.to_ascii_lowercase()))
            {
                return &p.name;
            }
        }
    }
    DEFAULT_PROFILE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles() -> Vec<DeviceProfileSpec> {
        vec![
            DeviceProfileSpec {
                name: "mobile".into(),
                client_types: vec!["ios".into(), "android".into()],
                user_agent_contains: vec!["Mobile".into(), "Android".into()],
            },
            DeviceProfileSpec {
                name: "web".into(),
                client_types: vec![],
                user_agent_contains: vec!["Mozilla".into()],
            },
        ]
    }

    #[test]
    fn header_then_user_agent() {
        let p = profiles();
        let mut h = HeaderMap::new();
        assert_eq!(classify(&p, &h), "default");
        h.insert(
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14) Mobile".parse().unwrap(),
        );
        assert_eq!(classify(&p, &h), "mobile");
        h.insert("user-agent", "Mozilla/5.0 (X11)".parse().unwrap());
        assert_eq!(classify(&p, &h), "web");
        h.insert("x-client-type", "iOS".parse().unwrap());
        assert_eq!(classify(&p, &h), "mobile");
        h.insert("x-client-type", "web".parse().unwrap());
        assert_eq!(classify(&p, &h), "web");
    }
}
