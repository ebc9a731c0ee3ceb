//! Connection plumbing for PostgreSQL: the URL (parsed, defaulted and redacted),
//! the schema its search path names, and the advisory-lock keys and
//! notification channel derived from that schema.

use crate::store::{StoreError, StoreResult};
use std::error::Error as _;
use std::time::Duration;

/// `url` with any password replaced by `***`, fit for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    // postgres://user:password@host/…
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    // …?password=secret&… (and the key=value form)
    let lower = out.to_ascii_lowercase();
    let mut redacted = String::with_capacity(out.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password=") {
        let value_start = i + found + "password=".len();
        let value_end = out[value_start..]
            .find(['&', ' '])
            .map_or(out.len(), |e| value_start + e);
        redacted.push_str(&out[i..value_start]);
        redacted.push_str("***");
        i = value_end;
    }
    redacted.push_str(&out[i..]);
    redacted
}

/// What every connection of a store is made with: the driver's settings and
/// the TLS connector ([`super::tls`]).
#[derive(Clone)]
pub struct Connect {
    /// The driver's settings, `sslmode` mapped to the driver's modes.
    pub config: tokio_postgres::Config,
    /// The TLS connector honouring `sslmode` and `sslrootcert`.
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
}

/// The variable naming a file that holds the database password.
pub const PASSWORD_FILE_VAR: &str = "JOBSLOT_DATABASE_PASSWORD_FILE";

/// Parses a `postgres://` URL (or key=value string), adding jobslot's defaults
/// where the URL is silent: an application name, a connect timeout, and
/// generic plans for prepared statements. TLS settings (`sslmode`,
/// `sslrootcert`) are taken out first and honoured as libpq does; the
/// password may come from the file `JOBSLOT_DATABASE_PASSWORD_FILE` names
/// (a URL that has a password too is an error).
///
/// Generic plans: every statement jobslot prepares is planned once per
/// connection instead of at each execution. With the default `auto`, PostgreSQL
/// kept planning the hot statements (the claim, the batched ends) each time,
/// which measured as about a third of its CPU per task; the plans are the same
/// index walks either way (`plan_tests.rs` checks the claim's in both modes).
pub fn parse_config(url: &str) -> StoreResult<Connect> {
    let bad = |why: String| StoreError::Url {
        url: redact_url(url),
        why,
    };
    let (rest, tls_params) = super::params::take_tls_params(url).map_err(bad)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| bad(message(&e)))?;
    let (mode, tls) = super::tls::connector(&tls_params).map_err(bad)?;
    config.ssl_mode(mode);
    let password_file = std::env::var_os(PASSWORD_FILE_VAR);
    if let Some(password) = password_from_file(&config, password_file.as_deref()).map_err(bad)? {
        config.password(password);
    }
    if config.get_application_name().is_none() {
        config.application_name("jobslot");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let options = config.get_options().unwrap_or_default();
    if !options.contains("plan_cache_mode") {
        let options = format!("{options} -c plan_cache_mode=force_generic_plan");
        config.options(options.trim_start());
    }
    Ok(Connect { config, tls })
}

/// The password in `file` (the value of `JOBSLOT_DATABASE_PASSWORD_FILE`),
/// unless unset; an error when the URL has a password too.
fn password_from_file(
    config: &tokio_postgres::Config,
    file: Option<&std::ffi::OsStr>,
) -> Result<Option<String>, String> {
    let in_url = config.get_password().map(|_| String::new());
    crate::secret_file::resolve("the URL's password", in_url, PASSWORD_FILE_VAR, file)
        .map(|p| p.filter(|_| config.get_password().is_none()))
        .map_err(|e| e.to_string())
}

/// The entries of a `search_path` setting, unquoted; unquoted names are
/// folded to lower case as PostgreSQL does.
pub fn search_path_entries(setting: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut chars = setting.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut name = String::new();
        if first == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        name.push('"');
                    } else {
                        break;
                    }
                } else {
                    name.push(c);
                }
            }
            while chars.peek().is_some_and(|c| *c != ',') {
                chars.next();
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                name.push(c);
            }
            name = name.trim().to_lowercase();
        }
        if !name.is_empty() {
            entries.push(name);
        }
    }
    entries
}

/// `name` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// FNV-1a, 64 bits: stable across processes and versions, unlike std's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The advisory-lock key of `purpose` (`"migrate"`, `"apply"`) in `schema`:
/// instances sharing a schema share the key; other schemas do not contend.
pub fn lock_key(purpose: &str, schema: &str) -> i64 {
    fnv1a(&format!("jobslot {purpose} {schema}")) as i64
}

/// The LISTEN/NOTIFY channel of a schema: `jobslot_<schema>`, lower-case
/// letters, digits and `_` only, within PostgreSQL's 63-byte identifiers.
pub fn channel_name(schema: &str) -> String {
    let clean: String = schema
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("jobslot_{clean}");
    if name.len() <= 63 && clean == schema {
        return name;
    }
    // Changed or too long: a hash of the real name keeps channels apart.
    let mut short: String = name.chars().take(46).collect();
    short.push_str(&format!("_{:016x}", fnv1a(schema)));
    short
}

/// A driver error's message with its cause (the driver's own `Display` names
/// only the kind, e.g. "db error"); a certificate the TLS settings refuse is
/// the verifier's sentence alone.
pub fn message(e: &tokio_postgres::Error) -> String {
    if let Some(why) = super::verify::explanation(e) {
        return format!("TLS: {why}");
    }
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_plans_are_asked_for_unless_the_url_chooses() {
        let c = parse_config("postgres://h/db?options=-csearch_path%3Djobs")
            .expect("parse")
            .config;
        assert_eq!(
            c.get_options(),
            Some("-csearch_path=jobs -c plan_cache_mode=force_generic_plan")
        );
        let c = parse_config("postgres://h/db").expect("parse").config;
        assert_eq!(
            c.get_options(),
            Some("-c plan_cache_mode=force_generic_plan")
        );
        let c = parse_config("postgres://h/db?options=-cplan_cache_mode%3Dauto")
            .expect("parse")
            .config;
        assert_eq!(c.get_options(), Some("-cplan_cache_mode=auto"));
    }

    #[test]
    fn a_password_file_fills_in_a_url_without_one_and_conflicts_with_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").expect("write");
        let file = Some(file.as_os_str());
        let bare: tokio_postgres::Config = "postgres://bob@h/db".parse().expect("parse");
        let got = password_from_file(&bare, file).expect("file");
        assert_eq!(got.as_deref(), Some("from-file"));
        assert_eq!(password_from_file(&bare, None).expect("none"), None);
        let with: tokio_postgres::Config = "postgres://bob:pw@h/db".parse().expect("parse");
        let e = password_from_file(&with, file).expect_err("both");
        assert!(e.contains(PASSWORD_FILE_VAR) && e.contains("URL"), "{e}");
        assert_eq!(password_from_file(&with, None).expect("url only"), None);
    }

    #[test]
    fn redaction_hides_passwords_in_every_url_form() {
        assert_eq!(
            redact_url("postgres://bob:s3cr@t@db:5432/x?options=-csearch_path%3Dy"),
            "postgres://bob:***@db:5432/x?options=-csearch_path%3Dy"
        );
        assert_eq!(
            redact_url("postgresql://db/x?user=bob&password=hunter2&sslmode=disable"),
            "postgresql://db/x?user=bob&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("host=db password=hunter2 user=bob"),
            "host=db password=*** user=bob"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
    }

    #[test]
    fn search_path_entries_unquote_and_fold() {
        assert_eq!(
            search_path_entries(r#""$user", public"#),
            ["$user", "public"]
        );
        assert_eq!(
            search_path_entries(r#"Js_ABC ,"My ""Odd"" One",x"#),
            ["js_abc", r#"My "Odd" One"#, "x"]
        );
        assert!(search_path_entries("").is_empty());
    }

    #[test]
    fn channel_names_are_safe_identifiers() {
        assert_eq!(channel_name("js_abc"), "jobslot_js_abc");
        let odd = channel_name("My Schema");
        assert!(odd.starts_with("jobslot_my_schema_"), "{odd}");
        assert_ne!(odd, channel_name("my_schema"));
        let long = channel_name(&"s".repeat(100));
        assert!(long.len() <= 63, "{long}");
        assert!(
            channel_name("Ünï")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        );
    }
}
