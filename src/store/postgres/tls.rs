//! TLS to PostgreSQL through rustls, with libpq's meaning of `sslmode` and
//! `sslrootcert` (libpq's "Protection Provided in Different Modes"):
//!
//! - `disable`: no TLS.
//! - `prefer` (the default): TLS when the server offers it, plain otherwise;
//!   the certificate is not checked (encryption against passive listeners only).
//! - `require`: TLS or nothing; the certificate is not checked, except that,
//!   as in libpq, an existing root CA file (`sslrootcert`, or the default
//!   `~/.postgresql/root.crt`) makes it `verify-ca`.
//! - `verify-ca`: the certificate chain must lead to a CA in the root file.
//! - `verify-full`: that, and the certificate must be for the host connected to.
//!
//! `sslrootcert=system` means the system's trust store; like libpq it makes
//! `verify-full` the default and refuses weaker modes. Every connection jobslot
//! makes to PostgreSQL (the pool, the listener, the vacuum) uses the
//! [`MakeRustlsConnect`] built here, with an explicit crypto provider
//! (aws-lc-rs, the one rustls is built with), so no process-wide default is
//! involved. Verification failures are reported as sentences saying which
//! root file did not trust the certificate, or which host it does not match.

use super::verify::{Unverified, checking};
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::SslMode as DriverMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The URL's `sslmode`, with libpq's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified.
    Prefer,
    /// TLS, unverified (unless a root CA file exists: then as `VerifyCa`).
    Require,
    /// TLS, chain checked against the root CAs.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names.
    pub fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            // libpq's `allow` tries plain first; the driver cannot.
            other => {
                return Err(format!(
                    "sslmode {other:?} is not supported (use disable, prefer, require, verify-ca or verify-full)"
                ));
            }
        })
    }
}

/// The TLS settings of a connection string, as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `sslmode`, if given.
    pub mode: Option<String>,
    /// `sslrootcert`, if given.
    pub root_cert: Option<String>,
}

/// The driver's mode and the connector for `params`: what every connection
/// of a store uses.
pub fn connector(params: &TlsParams) -> Result<(DriverMode, MakeRustlsConnect), String> {
    let system = params.root_cert.as_deref() == Some("system");
    let mode = match &params.mode {
        Some(m) => SslMode::parse(m)?,
        None if system => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if system && mode != SslMode::VerifyFull {
        return Err(format!(
            "weak sslmode {:?} may not be used with sslrootcert=system (use \"verify-full\")",
            params.mode.as_deref().unwrap_or_default()
        ));
    }
    let explicit = params
        .root_cert
        .as_ref()
        .filter(|_| !system)
        .map(PathBuf::from);
    let default_file =
        || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".postgresql").join("root.crt"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        SslMode::Disable | SslMode::Prefer => Arc::new(Unverified(provider.clone())),
        SslMode::Require => match explicit.or_else(|| default_file().filter(|f| f.exists())) {
            Some(file) => verifier(&Roots::File(file), false, &provider)?,
            None => Arc::new(Unverified(provider.clone())),
        },
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = match (system, explicit) {
                (true, _) => Roots::System,
                (false, Some(file)) => Roots::File(file),
                (false, None) => Roots::File(default_file().ok_or(
                    "no sslrootcert given, and no HOME to find ~/.postgresql/root.crt in",
                )?),
            };
            verifier(&roots, mode == SslMode::VerifyFull, &provider)?
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let driver_mode = match mode {
        SslMode::Disable => DriverMode::Disable,
        SslMode::Prefer => DriverMode::Prefer,
        _ => DriverMode::Require,
    };
    Ok((driver_mode, MakeRustlsConnect::new(config)))
}

/// Where trusted CAs come from.
enum Roots {
    File(PathBuf),
    System,
}

impl Roots {
    /// How messages name them.
    fn describe(&self) -> String {
        match self {
            Roots::File(f) => format!("sslrootcert {}", f.display()),
            Roots::System => "the system's trust store (sslrootcert=system)".to_string(),
        }
    }

    fn load(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match self {
            Roots::File(file) => {
                // Read first: the PEM reader's errors do not name the file.
                let pem = std::fs::read(file).map_err(|e| {
                    format!(
                        "cannot read the root certificate file (sslrootcert) {}: {e}",
                        file.display()
                    )
                })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        format!(
                            "the root certificate file {} is not valid PEM: {e}",
                            file.display()
                        )
                    })?;
                    store.add(cert).map_err(|e| {
                        format!(
                            "the root certificate file {} holds a bad certificate: {e}",
                            file.display()
                        )
                    })?;
                }
            }
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                store.add_parsable_certificates(found.certs);
            }
        }
        if store.is_empty() {
            return Err(format!("{} holds no certificate", self.describe()));
        }
        Ok(store)
    }
}

/// The checking verifier for `roots`.
fn verifier(
    roots: &Roots,
    name: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    checking(roots.load()?, roots.describe(), name, provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(mode: Option<&str>, root: Option<&str>) -> Result<DriverMode, String> {
        let params = TlsParams {
            mode: mode.map(String::from),
            root_cert: root.map(String::from),
        };
        connector(&params).map(|(m, _)| m)
    }

    #[test]
    fn modes_map_to_the_driver_as_libpq_means_them() {
        assert_eq!(mode_of(None, None), Ok(DriverMode::Prefer));
        assert_eq!(mode_of(Some("disable"), None), Ok(DriverMode::Disable));
        assert_eq!(mode_of(Some("require"), None), Ok(DriverMode::Require));
        let e = mode_of(Some("allow"), None).expect_err("allow");
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn root_files_are_named_when_missing_and_system_wants_verify_full() {
        let e = mode_of(Some("verify-full"), Some("/nonexistent/ca.pem")).expect_err("missing");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        // Stricter than libpq: an explicit root file must exist with `require` too.
        let e = mode_of(Some("require"), Some("/nonexistent/ca.pem")).expect_err("missing");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = mode_of(Some("verify-ca"), Some("system")).expect_err("weak");
        assert!(e.contains("weak sslmode \"verify-ca\""), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let e = mode_of(Some("verify-ca"), empty.to_str()).expect_err("empty");
        assert!(e.contains("holds no certificate"), "{e}");
    }
}
