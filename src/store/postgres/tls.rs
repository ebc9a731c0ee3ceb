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

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
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
            Some(file) => checking(&Roots::File(file), false, &provider)?,
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
            checking(&roots, mode == SslMode::VerifyFull, &provider)?
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

/// A verifier checking the chain against `roots`, and the host name if `name`.
fn checking(
    roots: &Roots,
    name: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let inner =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots.load()?), provider.clone())
            .build()
            .map_err(|e| format!("TLS setup with {}: {e}", roots.describe()))?;
    Ok(Arc::new(Checking {
        inner,
        name,
        roots: roots.describe(),
    }))
}

/// The `verify-ca` / `verify-full` verifier: webpki's, with its errors
/// explained and (for `verify-ca`) the host name left unchecked. webpki
/// checks the chain before the name, so a name error means the chain passed.
#[derive(Debug)]
struct Checking {
    inner: Arc<WebPkiServerVerifier>,
    name: bool,
    roots: String,
}

/// An explanation carried through rustls' error to the driver's message
/// ([`explanation`] finds it again).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Explained(String);

/// The TLS error inside a driver error (a refused certificate, a failed
/// handshake), if that is what it is: not a lost connection, and no reason
/// to try again.
pub fn tls_error(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let io = std::error::Error::source(e)?.downcast_ref::<std::io::Error>()?;
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The verifier's explanation inside a driver error, if there is one.
pub fn explanation(e: &tokio_postgres::Error) -> Option<String> {
    match tls_error(e)? {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<Explained>().map(|x| x.0.clone())
        }
        _ => None,
    }
}

/// `DnsName("db")` → `db`: the names a certificate presents, as people write them.
fn plain_name(presented: &str) -> &str {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
}

impl Checking {
    fn explain(&self, e: rustls::Error, host: &ServerName<'_>) -> rustls::Error {
        let host = host.to_str();
        let why = match &e {
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
                format!("the server's certificate does not match the host name {host:?}")
            }
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => {
                let names: Vec<&str> = presented.iter().map(|p| plain_name(p)).collect();
                format!(
                    "the server's certificate does not match the host name {host:?}: it is for {}",
                    if names.is_empty() {
                        "no host name".to_string()
                    } else {
                        names.join(", ")
                    }
                )
            }
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "the server's certificate is not trusted by {}: it was not issued by a CA in it",
                self.roots
            ),
            rustls::Error::InvalidCertificate(c) => {
                format!(
                    "the server's certificate is not trusted by {}: {c}",
                    self.roots
                )
            }
            _ => return e,
        };
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Explained(
            why,
        )))))
    }
}

impl ServerCertVerifier for Checking {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match (self.inner).verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.name => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(self.explain(e, server_name)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The `prefer` / `require` verifier: any certificate is accepted (libpq's
/// meaning: encryption without authentication), but the handshake's
/// signatures are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
