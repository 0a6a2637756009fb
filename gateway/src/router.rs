//! Route table: host, path (exact / prefix / `{param}`), method and header matching.
//!
//! Pure: [`Router::lookup`] takes a normalised path and returns a [`Lookup`]. Routes are sorted
//! once by specificity (host, literal segments, exact before prefix, segment count, headers,
//! methods), so the first full match is the most specific one. Paths that match some route but
//! not its method give [`Lookup::MethodNotAllowed`] with the union of allowed methods.

use http::{HeaderMap, Method};

use crate::spec::RouteSpec;

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Param(String),
}

#[derive(Debug, Clone)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.test` stored as `.example.test`.
    Suffix(String),
}

#[derive(Debug)]
struct Compiled {
    index: usize,
    host: HostMatch,
    segs: Vec<Seg>,
    prefix: bool,
    methods: Vec<Method>,
    headers: Vec<(http::HeaderName, String)>,
}

/// Captured `{param}` values plus what followed a prefix match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `(name, value)` of each `{param}`, in path order.
    pub values: Vec<(String, String)>,
    /// Remainder after a prefix route (`""` or starting with `/`).
    pub rest: String,
}

impl Params {
    /// The value of a `{param}`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The router's answer for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Index into the spec's route list.
    Found(usize, Params),
    /// No route serves the path and host (404).
    NotFound,
    /// `Allow` header value.
    MethodNotAllowed(String),
}

/// Routes compiled for matching on host, path segments, method and headers.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Compiled>,
}

fn compile_segs(path: &str) -> Vec<Seg> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Seg::Param(name.to_string()),
                None => Seg::Lit(s.to_string()),
            },
        )
        .collect()
}

impl Router {
    /// Compile routes, most specific first.
    pub fn new(routes: &[RouteSpec]) -> Router {
        let mut compiled: Vec<Compiled> = routes
            .iter()
            .enumerate()
            .map(|(index, r)| Compiled {
                index,
                host: match r.host.as_deref() {
                    None => HostMatch::Any,
                    Some(h) => match h.strip_prefix('*') {
                        Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
                        None => HostMatch::Exact(h.to_ascii_lowercase()),
                    },
                },
                segs: compile_segs(&r.path),
                prefix: r.prefix,
                methods: r.methods.clone(),
                headers: r.headers.clone(),
            })
            .collect();
        compiled.sort_by_key(|c| std::cmp::Reverse(c.rank()));
        Router { routes: compiled }
    }

    /// Find the most specific route for a normalised path.
    pub fn lookup(
        &self,
        host: Option<&str>,
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Lookup {
        let host = host.map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h));
        let mut allow: Vec<&Method> = Vec::new();
        for r in &self.routes {
            if !r.host_matches(host) || !r.headers_match(headers) {
                continue;
            }
            let Some(params) = r.path_matches(path) else {
                continue;
            };
            // HEAD is served wherever GET is (RFC 9110 §9.3.2)
            if r.methods.is_empty()
                || r.methods
                    .iter()
                    .any(|m| m == method || (m == Method::GET && method == Method::HEAD))
            {
                return Lookup::Found(r.index, params);
            }
            allow.extend(r.methods.iter());
        }
        if allow.is_empty() {
            return Lookup::NotFound;
        }
        let mut names: Vec<&str> = allow.iter().map(|m| m.as_str()).collect();
        if names.contains(&"GET") {
            names.push("HEAD");
        }
        names.sort_unstable();
        names.dedup();
        Lookup::MethodNotAllowed(names.join(", "))
    }
}

impl Compiled {
    fn rank(&self) -> (u8, usize, bool, usize, usize, bool) {
        let host = match self.host {
            HostMatch::Exact(_) => 2,
            HostMatch::Suffix(_) => 1,
            HostMatch::Any => 0,
        };
        let lits = self
            .segs
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count();
        (
            host,
            lits,
            !self.prefix,
            self.segs.len(),
            self.headers.len(),
            !self.methods.is_empty(),
        )
    }

    fn host_matches(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (HostMatch::Any, _) => true,
            (HostMatch::Exact(h), Some(x)) => h.eq_ignore_ascii_case(x),
            (HostMatch::Suffix(s), Some(x)) => {
                x.len() > s.len() && x[x.len() - s.len()..].eq_ignore_ascii_case(s)
            }
            _ => false,
        }
    }

    fn headers_match(&self, headers: &HeaderMap) -> bool {
        self.headers
            .iter()
            .all(|(name, want)| match headers.get(name) {
                Some(v) => want == "*" || v.as_bytes() == want.as_bytes(),
                None => false,
            })
    }

    fn path_matches(&self, path: &str) -> Option<Params> {
        let mut params = Params::default();
        let mut rest = path;
        for seg in &self.segs {
            let after = rest.strip_prefix('/')?;
            let (head, tail) = match after.find('/') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            };
            match seg {
                Seg::Lit(l) if l == head => {}
                Seg::Param(name) if !head.is_empty() => {
                    params.values.push((name.clone(), head.to_string()))
                }
                _ => return None,
            }
            rest = tail;
        }
        if rest.is_empty() || (self.segs.is_empty() && rest == "/") {
            return Some(params);
        }
        if !self.prefix {
            return None;
        }
        params.rest = rest.to_string();
        Some(params)
    }
}

/// Build the upstream path from the route's strip/rewrite settings.
pub fn upstream_path(route: &RouteSpec, path: &str, params: &Params) -> String {
    if let Some(tpl) = &route.rewrite {
        return interpolate(tpl, |name| {
            if name == "rest" {
                Some(params.rest.clone())
            } else {
                params.get(name).map(str::to_string)
            }
        });
    }
    if let Some(prefix) = &route.strip_prefix {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if rest.is_empty() {
                return "/".into();
            }
            if rest.starts_with('/') {
                return rest.to_string();
            }
        }
    }
    path.to_string()
}

/// Replace `{name}` placeholders; unknown names become empty.
pub fn interpolate(tpl: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(tpl.len() + 16);
    let mut rest = tpl;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                let name = &rest[open + 1..open + close];
                out.push_str(&lookup(name).unwrap_or_default());
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::RouteSpec;

    fn r(name: &str, path: &str, prefix: bool, methods: &[Method]) -> RouteSpec {
        let mut r = RouteSpec::new(name, path, prefix, "svc");
        r.methods = methods.to_vec();
        r
    }

    fn table() -> (Vec<RouteSpec>, Router) {
        let mut admin = r("admin", "/v1/admin", true, &[]);
        admin.host = None;
        let mut hosted = r("hosted", "/v1/users/{id}", false, &[Method::GET]);
        hosted.host = Some("internal.example.test".into());
        let routes = vec![
            r("users", "/v1/users/{id}", false, &[Method::GET]),
            r("users-me", "/v1/users/me", false, &[Method::GET]),
            r("orders", "/v1/orders", true, &[]),
            r("pay", "/v1/payments", false, &[Method::POST]),
            admin,
            r("catchall", "/v1/{x}", true, &[Method::GET]),
            hosted,
        ];
        let router = Router::new(&routes);
        (routes, router)
    }

    fn name(t: &(Vec<RouteSpec>, Router), host: Option<&str>, path: &str, m: Method) -> String {
        match t.1.lookup(host, path, &m, &HeaderMap::new()) {
            Lookup::Found(i, _) => t.0[i].name.clone(),
            Lookup::NotFound => "404".into(),
            Lookup::MethodNotAllowed(a) => format!("405 {a}"),
        }
    }

    #[test]
    fn most_specific_wins() {
        let t = table();
        assert_eq!(name(&t, None, "/v1/users/42", Method::GET), "users");
        assert_eq!(name(&t, None, "/v1/users/me", Method::GET), "users-me");
        assert_eq!(
            name(
                &t,
                Some("internal.example.test:8080"),
                "/v1/users/1",
                Method::GET
            ),
            "hosted"
        );
        assert_eq!(name(&t, None, "/v1/orders", Method::DELETE), "orders");
        assert_eq!(name(&t, None, "/v1/orders/7/items", Method::GET), "orders");
        assert_eq!(name(&t, None, "/v1/admin/", Method::GET), "admin");
        assert_eq!(name(&t, None, "/v1/admin/x", Method::GET), "admin");
        assert_eq!(name(&t, None, "/v1/adminx", Method::GET), "catchall");
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        let t = table();
        assert_eq!(name(&t, None, "/v2/x", Method::GET), "404");
        assert_eq!(name(&t, None, "/v1/users/42/", Method::GET), "catchall");
        assert_eq!(name(&t, None, "/v1/payments", Method::GET), "catchall");
        assert_eq!(
            name(&t, None, "/v1/payments/x", Method::PUT),
            "405 GET, HEAD"
        );
        assert_eq!(
            name(&t, None, "/v1/users/42", Method::POST),
            "405 GET, HEAD"
        );
    }

    #[test]
    fn params_and_rewrite() {
        let t = table();
        let Lookup::Found(i, p) =
            t.1.lookup(None, "/v1/orders/7/items", &Method::GET, &HeaderMap::new())
        else {
            panic!()
        };
        assert_eq!(p.rest, "/7/items");
        let mut route = t.0[i].clone();
        route.strip_prefix = Some("/v1".into());
        assert_eq!(
            upstream_path(&route, "/v1/orders/7/items", &p),
            "/orders/7/items"
        );
        route.rewrite = Some("/api/orders{rest}".into());
        assert_eq!(
            upstream_path(&route, "/v1/orders/7/items", &p),
            "/api/orders/7/items"
        );
        let Lookup::Found(_, p) =
            t.1.lookup(None, "/v1/users/42", &Method::GET, &HeaderMap::new())
        else {
            panic!()
        };
        assert_eq!(p.get("id"), Some("42"));
        assert_eq!(
            interpolate("/users/{id}?x={nope}", |n| p.get(n).map(str::to_string)),
            "/users/42?x="
        );
    }

    #[test]
    fn header_match_is_more_specific() {
        let mut beta = r("beta", "/v1/users/{id}", false, &[Method::GET]);
        beta.headers = vec![(http::HeaderName::from_static("x-beta"), "1".into())];
        let routes = vec![r("users", "/v1/users/{id}", false, &[Method::GET]), beta];
        let router = Router::new(&routes);
        let mut h = HeaderMap::new();
        assert!(matches!(
            router.lookup(None, "/v1/users/1", &Method::GET, &h),
            Lookup::Found(0, _)
        ));
        h.insert("x-beta", "1".parse().unwrap());
        assert!(matches!(
            router.lookup(None, "/v1/users/1", &Method::GET, &h),
            Lookup::Found(1, _)
        ));
    }
}
