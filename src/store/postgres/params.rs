//! Taking the TLS settings out of a connection string before the driver
//! parses it: `tokio-postgres` knows neither `sslrootcert` nor the `sslmode`
//! values `verify-ca` and `verify-full`, which jobslot implements itself
//! ([`super::tls`]). Both forms are handled: `postgres://…?sslmode=…&…` and
//! libpq's `key=value` list (values possibly quoted).

use super::tls::TlsParams;

/// Keys taken out of the string.
const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

/// `url` without its TLS settings, and those settings.
pub fn take_tls_params(url: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let mut keep = |key: &str, value: String| -> bool {
        match key {
            "sslmode" => params.mode = Some(value),
            "sslrootcert" => params.root_cert = Some(value),
            _ => return true,
        }
        false
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !TLS_KEYS.contains(&key) || keep(key, percent_decode(value)?) {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(url)? {
            if keep(&key, value.clone()) {
                kept.push(format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept.join(" ")
    };
    Ok((rest, params))
}

/// `%XX` sequences decoded.
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {value:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{value:?} is not UTF-8 once decoded"))
}

/// The pairs of a libpq `key=value` list: spaces around `=` allowed; a value
/// is `'quoted'` (with `\` escapes) or runs to the next space.
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("{key:?} has no value (key=value expected)"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("the value of {key:?} has no closing quote")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: Option<&str>, root: Option<&str>) -> TlsParams {
        TlsParams {
            mode: mode.map(String::from),
            root_cert: root.map(String::from),
        }
    }

    #[test]
    fn tls_settings_leave_urls() {
        let (rest, p) = take_tls_params(
            "postgres://u:pw@db/x?sslmode=verify-full&options=-c%20a%3Db&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("url");
        assert_eq!(rest, "postgres://u:pw@db/x?options=-c%20a%3Db");
        assert_eq!(p, params(Some("verify-full"), Some("/etc/ca.pem")));
        let (rest, p) = take_tls_params("postgresql://db/x?sslmode=require").expect("url");
        assert_eq!(rest, "postgresql://db/x");
        assert_eq!(p, params(Some("require"), None));
        let (rest, p) = take_tls_params("postgres://db/x").expect("url");
        assert_eq!(rest, "postgres://db/x");
        assert_eq!(p, TlsParams::default());
    }

    #[test]
    fn tls_settings_leave_key_value_strings() {
        let (rest, p) = take_tls_params(
            r"host=db sslmode = verify-ca password='a\'b c' sslrootcert='/my certs/ca.pem' user=bob",
        )
        .expect("key=value");
        assert_eq!(rest, r"host='db' password='a\'b c' user='bob'");
        assert_eq!(p, params(Some("verify-ca"), Some("/my certs/ca.pem")));
        let config: tokio_postgres::Config = rest.parse().expect("the driver parses the rest");
        assert_eq!(config.get_password(), Some(&b"a'b c"[..]));
        assert!(take_tls_params("host=db sslmode='x").is_err());
    }
}
