//! Where a request may come from: the `Host` it names (against DNS
//! rebinding), the `Origin` and `Sec-Fetch-Site` a browser adds (against
//! other web pages), and the JSON content type every POST must declare (a
//! cross-site HTML form cannot send it without a preflight the API never
//! grants).

use axum::http::{HeaderMap, header};
use std::net::{IpAddr, SocketAddr};

/// The host names a request's `Host` may give.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// The address the API is bound to.
    bind: Option<IpAddr>,
    /// Names given with `--api-allowed-hosts` (lower case, without port);
    /// `*` allows every host.
    names: Vec<String>,
}

impl AllowedHosts {
    /// The hosts an API bound to `bind` serves, plus `extra` names.
    pub fn new(bind: Option<SocketAddr>, extra: &[String]) -> Self {
        let names = extra
            .iter()
            .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .map(|n| match split_host(&n) {
                Some((host, _)) if n != "*" => host,
                _ => n,
            })
            .collect();
        AllowedHosts {
            bind: bind.map(|a| a.ip()),
            names,
        }
    }

    /// Any host (for a router built without a socket, as in unit tests).
    pub fn any() -> Self {
        AllowedHosts {
            bind: None,
            names: vec!["*".to_string()],
        }
    }

    /// Whether the host part of a `Host` header is one this API serves:
    /// an address literal equal to the bound one (any literal when bound to
    /// every address: a literal cannot be rebound), `localhost` names when
    /// bound to loopback (or to every address), and the names allowed.
    pub fn allows(&self, host: &str) -> bool {
        if self.names.iter().any(|n| n == "*") {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return match self.bind {
                Some(b) if b.is_unspecified() => true,
                Some(b) if b.is_loopback() => ip == b || ip.is_loopback(),
                Some(b) => ip == b,
                None => false,
            };
        }
        let loopback_names = self
            .bind
            .is_some_and(|b| b.is_loopback() || b.is_unspecified());
        if loopback_names && (host == "localhost" || host.ends_with(".localhost")) {
            return true;
        }
        self.names.contains(&host)
    }
}

/// Splits `host[:port]` (or `[v6]:port`) into lower-case host and port.
fn split_host(authority: &str) -> Option<(String, Option<u16>)> {
    let a = authority.trim();
    if a.is_empty() {
        return None;
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((format!("[{}]", inside.to_ascii_lowercase()), port));
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_ascii_lowercase(), Some(p.parse().ok()?))),
        Some(_) => Some((format!("[{}]", a.to_ascii_lowercase()), None)),
        None => Some((a.to_ascii_lowercase(), None)),
    }
}

/// Why a request is refused before its route sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` names a host this API does not serve (421).
    Host(String),
    /// A browser says the request comes from another origin (403).
    Origin(String),
}

/// Checks `Host`, `Origin` and `Sec-Fetch-Site`. `tls`: whether the API is
/// served over TLS (the default port of the request's own origin).
pub fn check(headers: &HeaderMap, allowed: &AllowedHosts, tls: bool) -> Result<(), Refusal> {
    let host = headers
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let host = match host {
        // HTTP/1.0 clients may send none; browsers always do.
        None => None,
        Some(h) => match split_host(&h) {
            Some((name, port)) if allowed.allows(&name) => Some((name, port)),
            _ => return Err(Refusal::Host(h)),
        },
    };
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(Refusal::Origin(
            "a cross-site request (Sec-Fetch-Site)".into(),
        ));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let text = origin.to_str().unwrap_or("\u{fffd}");
    let own_port = if tls { 443 } else { 80 };
    let same = (|| {
        let (scheme, rest) = text.split_once("://")?;
        let default = match (scheme.to_ascii_lowercase().as_str(), tls) {
            ("http", false) => 80,
            ("https", true) => 443,
            _ => return Some(false),
        };
        let (oname, oport) = split_host(rest)?;
        let (hname, hport) = host.as_ref()?;
        Some(oname == *hname && oport.unwrap_or(default) == hport.unwrap_or(own_port))
    })();
    if same == Some(true) {
        Ok(())
    } else {
        Err(Refusal::Origin(format!("Origin {text}")))
    }
}

/// Whether `headers` declare a JSON body (`application/json`, any
/// parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn loopback() -> AllowedHosts {
        AllowedHosts::new(Some("127.0.0.1:7474".parse().expect("addr")), &[])
    }

    #[test]
    fn a_loopback_api_serves_its_address_and_localhost_only() {
        let a = loopback();
        for ok in [
            "127.0.0.1",
            "localhost",
            "LOCALHOST.",
            "app.localhost",
            "[::1]",
        ] {
            assert!(a.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "10.0.0.1", "localhost.evil.example", ""] {
            assert!(!a.allows(bad), "{bad}");
        }
        let named = AllowedHosts::new(
            Some("10.0.0.5:7474".parse().expect("addr")),
            &["Jobs.Example.com:8443".to_string()],
        );
        assert!(named.allows("jobs.example.com"));
        assert!(named.allows("10.0.0.5"));
        assert!(!named.allows("localhost"));
        assert!(!named.allows("10.0.0.6"));
        let every = AllowedHosts::new(Some("0.0.0.0:7474".parse().expect("addr")), &[]);
        assert!(every.allows("192.168.1.20") && every.allows("localhost"));
        assert!(!every.allows("evil.example"));
    }

    #[test]
    fn hosts_origins_and_fetch_sites_are_checked() {
        let a = loopback();
        assert_eq!(
            check(&headers(&[("host", "127.0.0.1:7474")]), &a, false),
            Ok(())
        );
        assert_eq!(check(&headers(&[]), &a, false), Ok(()));
        assert!(matches!(
            check(&headers(&[("host", "evil.example:7474")]), &a, false),
            Err(Refusal::Host(_))
        ));
        let same = [
            ("host", "localhost:7474"),
            ("origin", "http://localhost:7474"),
        ];
        assert_eq!(check(&headers(&same), &a, false), Ok(()));
        for origin in [
            "http://evil.example",
            "http://localhost:3000",
            "null",
            "https://localhost:7474",
        ] {
            let h = headers(&[("host", "localhost:7474"), ("origin", origin)]);
            assert!(
                matches!(check(&h, &a, false), Err(Refusal::Origin(_))),
                "{origin}"
            );
        }
        let tls = [("host", "localhost"), ("origin", "https://localhost")];
        assert_eq!(check(&headers(&tls), &a, true), Ok(()));
        let cross = [("host", "localhost:7474"), ("sec-fetch-site", "cross-site")];
        assert!(matches!(
            check(&headers(&cross), &a, false),
            Err(Refusal::Origin(_))
        ));
    }

    #[test]
    fn only_json_counts_as_json() {
        assert!(is_json(&headers(&[("content-type", "application/json")])));
        assert!(is_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(!is_json(&headers(&[])));
    }
}
