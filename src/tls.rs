//! rustls server configuration from the PEM texts the supervisor reads.
//! TLS 1.2 and 1.3 only (rustls supports nothing older), no client certificates.
//!
//! Shared by the http worker (which serves with it) and the supervisor and
//! configuration validation (which build it once before accepting new
//! material, so a certificate and key that do not match are refused at
//! reload instead of taking the API down).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use serde::{Deserialize, Serialize};

/// PEM texts of the server certificate chain and key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsMaterial {
    /// Certificate chain.
    pub cert_pem: String,
    /// Private key.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsMaterial { .. }")
    }
}

/// Builds the acceptor; errors name what is wrong, never the key itself.
/// rustls checks here that the key is the certificate's.
pub fn acceptor(m: &TlsMaterial) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_slice_iter(m.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes())
        .map_err(|e| format!("private key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Our order, not the client's: OpenSSL clients (curl, Python, wrk) put
    // AES-256 first, whose SHA-384 key schedule has no CPU instructions on
    // x86 and was the largest single cost of a handshake; see provider().
    config.ignore_client_order = true;
    // One ticket a connection: a client resumes once per new connection,
    // and each ticket is a cache entry and a record to write.
    config.send_tls13_tickets = 1;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The *ring* provider with the AES-128-GCM / SHA-256 suites first.
///
/// All suites stay offered; the order only decides what two parties that
/// both support everything settle on. AES-128-GCM is what TLS 1.3 requires
/// every implementation to support, and SHA-256 runs on the CPU's SHA
/// instructions where SHA-384 does not, which makes a new connection's
/// handshake cheaper for the agent.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}
