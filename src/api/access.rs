//! Who may call the API: bearer tokens, each with a name and a role, and the
//! role each route needs.
//!
//! Tokens are kept as SHA-256 hashes only (`--api-tokens-file`, TOML), plus
//! `JOBSLOT_API_TOKEN` (or the file `JOBSLOT_API_TOKEN_FILE` names) as one
//! `admin` token. A presented token is hashed and compared with every entry
//! in constant time, so neither its length nor how much of it matched shows
//! in the time of an answer.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;

/// What a token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Every GET: tasks, logs, queues, instances, metrics.
    Read,
    /// Also enqueue, cancel and retry tasks.
    Operate,
    /// Also pause and resume queues, stop and start workers, and every
    /// other administrative operation.
    Admin,
}

impl Role {
    /// The role's name, as written in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    /// Parses `read`, `operate` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "operate" => Some(Role::Operate),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a request: the name of the token it carried and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name (`anonymous` when the API needs no token).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// The name of the token `JOBSLOT_API_TOKEN` sets.
pub const ENV_TOKEN_NAME: &str = "JOBSLOT_API_TOKEN";

/// One known token.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    sha256: [u8; 32],
    role: Role,
}

/// The tokens the API accepts. Empty and not required: every request is
/// served as `anonymous` with the `admin` role (the API then listens on
/// loopback only; see `cli::serve::check_exposure`).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
    required: bool,
}

/// Why a tokens file or a token source cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the API tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("the API tokens file {path} is not valid: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the entry.
        why: String,
    },
    /// `JOBSLOT_API_TOKEN_FILE` cannot be used.
    #[error(transparent)]
    TokenFile(#[from] crate::secret_file::SecretFileError),
}

/// The tokens file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    tokens: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    sha256: String,
    role: String,
}

/// The hex SHA-256 of `token`, as the tokens file holds it.
pub fn token_sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// No token: the API is open (loopback only).
    pub fn none() -> Tokens {
        Tokens::default()
    }

    /// One token with the `admin` role, named after `JOBSLOT_API_TOKEN`.
    pub fn single_admin(token: &str) -> Tokens {
        let mut t = Tokens::default();
        t.add_plain(ENV_TOKEN_NAME, token, Role::Admin);
        t
    }

    /// Adds a token given in clear (hashed here).
    pub fn add_plain(&mut self, name: &str, token: &str, role: Role) {
        self.entries.push(Entry {
            name: name.to_string(),
            sha256: Sha256::digest(token.as_bytes()).into(),
            role,
        });
        self.required = true;
    }

    /// Adds the entries of a tokens file; from then on a token is required,
    /// even if the file lists none.
    pub fn add_file(&mut self, path: &Path) -> Result<(), TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |why: String| TokensError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        let raw: RawFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        for (i, r) in raw.tokens.iter().enumerate() {
            let at = format!("tokens[{i}] (name {:?})", r.name);
            if r.name.trim().is_empty() {
                return Err(invalid(format!("tokens[{i}]: the name is empty")));
            }
            let sha256 = parse_hex32(&r.sha256).ok_or_else(|| {
                invalid(format!(
                    "{at}: sha256 must be 64 hex digits, the SHA-256 of the token (printf %s TOKEN | sha256sum)"
                ))
            })?;
            let role = Role::parse(&r.role).ok_or_else(|| {
                invalid(format!(
                    "{at}: role {:?} is not one of read, operate, admin",
                    r.role
                ))
            })?;
            if let Some(other) = self.entries.iter().find(|e| e.name == r.name) {
                return Err(invalid(format!(
                    "{at}: the name {:?} is used twice",
                    other.name
                )));
            }
            if let Some(other) = self.entries.iter().find(|e| e.sha256 == sha256) {
                return Err(invalid(format!(
                    "{at}: the same token as {:?}; each token must be different",
                    other.name
                )));
            }
            self.entries.push(Entry {
                name: r.name.clone(),
                sha256,
                role,
            });
        }
        self.required = true;
        Ok(())
    }

    /// Whether requests need a token.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The caller `presented` (a bearer token) is, if any. Every entry is
    /// compared, in constant time, whatever matched.
    pub fn identify(&self, presented: Option<&str>) -> Option<Caller> {
        if !self.required {
            return Some(Caller {
                name: "anonymous".to_string(),
                role: Role::Admin,
            });
        }
        let presented = presented?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.sha256.ct_eq(&digest)) {
                found = Some(e);
            }
        }
        found.map(|e| Caller {
            name: e.name.clone(),
            role: e.role,
        })
    }
}

/// The API token from `JOBSLOT_API_TOKEN`, or from the file
/// `JOBSLOT_API_TOKEN_FILE` names (one trailing newline dropped); `None` when
/// neither is set, an error when both are.
pub fn env_token() -> Result<Option<String>, TokensError> {
    let direct = std::env::var("JOBSLOT_API_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    Ok(crate::secret_file::resolve_env(
        "JOBSLOT_API_TOKEN",
        direct,
        "JOBSLOT_API_TOKEN_FILE",
    )?)
}

/// The role a request needs: `None` for the open routes (health, the
/// OpenAPI document, the Jobs page's files).
pub fn required_role(method: &axum::http::Method, path: &str, open: bool) -> Option<Role> {
    use axum::http::Method;
    if open {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        return Some(Role::Read);
    }
    let operate = method == Method::POST
        && (path == "/api/tasks"
            || (path.starts_with("/api/tasks/")
                && (path.ends_with("/cancel") || path.ends_with("/retry"))
                && path.matches('/').count() == 4));
    Some(if operate { Role::Operate } else { Role::Admin })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn tokens_are_found_by_hash_with_their_roles() {
        let (_d, path) = file(&format!(
            "[[tokens]]\nname = \"grafana\"\nsha256 = \"{}\"\nrole = \"read\"\n\n[[tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nrole = \"operate\"\n",
            token_sha256_hex("r-token"),
            token_sha256_hex("o-token").to_uppercase()
        ));
        let mut t = Tokens::single_admin("a-token");
        t.add_file(&path).expect("valid");
        let who = |s| t.identify(Some(s)).map(|c| (c.name, c.role));
        assert_eq!(who("r-token"), Some(("grafana".into(), Role::Read)));
        assert_eq!(who("o-token"), Some(("ops".into(), Role::Operate)));
        assert_eq!(who("a-token"), Some((ENV_TOKEN_NAME.into(), Role::Admin)));
        assert_eq!(who("x-token"), None);
        assert_eq!(t.identify(None), None);
    }

    #[test]
    fn bad_tokens_files_name_the_entry() {
        let cases = [
            (
                "[[tokens]]\nname = \"a\"\nsha256 = \"abc\"\nrole = \"read\"\n",
                "64 hex digits",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\nsha256 = \"{}\"\nrole = \"root\"\n",
                    token_sha256_hex("x")
                ),
                "\"root\" is not one of read, operate, admin",
            ),
            (
                &format!(
                    "[[tokens]]\nname = \"a\"\nsha256 = \"{0}\"\nrole = \"read\"\n[[tokens]]\nname = \"a\"\nsha256 = \"{1}\"\nrole = \"read\"\n",
                    token_sha256_hex("x"),
                    token_sha256_hex("y")
                ),
                "used twice",
            ),
            (
                "[[tokens]]\nname = \"a\"\nsha = \"x\"\nrole = \"read\"\n",
                "unknown field",
            ),
        ];
        for (text, want) in cases {
            let (_d, path) = file(text);
            let err = Tokens::none().add_file(&path).expect_err(text).to_string();
            assert!(err.contains(want), "{err} should contain {want}");
            assert!(err.contains("tokens.toml"), "{err}");
        }
    }

    #[test]
    fn an_empty_tokens_file_still_requires_a_token() {
        let (_d, path) = file("");
        let mut t = Tokens::none();
        assert!(t.identify(None).is_some());
        t.add_file(&path).expect("valid");
        assert!(t.required());
        assert_eq!(t.identify(Some("anything")), None);
    }

    #[test]
    fn routes_need_the_role_that_fits() {
        let id = "/api/tasks/0190a6e2-5b7c-7d3e-8f00-000000000000";
        assert_eq!(
            required_role(&Method::GET, "/api/tasks", false),
            Some(Role::Read)
        );
        assert_eq!(
            required_role(&Method::GET, "/metrics", false),
            Some(Role::Read)
        );
        assert_eq!(
            required_role(&Method::POST, "/api/tasks", false),
            Some(Role::Operate)
        );
        for verb in ["cancel", "retry"] {
            let path = format!("{id}/{verb}");
            assert_eq!(
                required_role(&Method::POST, &path, false),
                Some(Role::Operate)
            );
        }
        assert_eq!(
            required_role(&Method::POST, "/api/queues/q/pause", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::POST, "/api/workers/w/stop", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::DELETE, "/api/tasks", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::POST, "/api/tasks/x/y/cancel", false),
            Some(Role::Admin)
        );
        assert_eq!(required_role(&Method::GET, "/api/health", true), None);
    }
}
