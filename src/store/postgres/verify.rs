//! The certificate verifiers behind `sslmode` ([`super::tls`]): webpki's
//! for `verify-ca`/`verify-full`, with its errors turned into sentences that
//! the driver's message carries ([`explanation`]), and the accept-any
//! verifier of `prefer`/`require`, which still checks the handshake's
//! signatures.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// A verifier checking the chain against `roots` (called `described` in
/// messages), and the host name if `name`.
pub fn checking(
    roots: RootCertStore,
    described: String,
    name: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS setup with {described}: {e}"))?;
    Ok(Arc::new(Checking {
        inner,
        name,
        roots: described,
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
pub struct Unverified(pub Arc<CryptoProvider>);

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
