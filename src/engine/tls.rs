//! TLS to an engine (`dockerd --tlsverify`), on portreap's own transport so that TLS
//! answers are capped and retried like the others. The engine is trusted by the CA in
//! `ca.pem` alone, as the docker CLI documents `--tlscacert` ("trust certs signed only by
//! this CA"); the client proves itself with `cert.pem` and `key.pem`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::endpoint::{Error, TlsFiles};
use super::transport::split_port;

/// An engine address and what it takes to speak TLS to it.
#[derive(Clone)]
pub struct Tls {
    addr: String,
    name: ServerName<'static>,
    connector: TlsConnector,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("addr", &self.addr).finish()
    }
}

impl Tls {
    /// Reads the certificates and key in `files` for the engine at `addr` (`host:port`).
    pub fn new(addr: &str, files: &TlsFiles) -> Result<Tls, Error> {
        let (host, _) = split_port(addr);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Error::TlsHostName(host.to_owned()))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&files.ca)? {
            roots
                .add(ca)
                .map_err(|e| bad(&files.ca, "unusable CA certificate", e))?;
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| bad(&files.key, "no private key", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&files.cert, "no TLS version", e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certificates(&files.cert)?, key)
            .map_err(|e| bad(&files.cert, "certificate and key do not match", e))?;
        // Every request opens a new connection, so resuming a session would save one round
        // trip; but a TLS front that verifies clients without a session id context
        // (OpenSSL's default: socat, stunnel) answers each resumption with an alert.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Tls {
            addr: addr.to_owned(),
            name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// `host:port` as configured.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The TLS session over a connected `tcp`, the engine's certificate verified.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

/// Every certificate in a PEM file; none is an error.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(path, "unreadable certificate", e))?;
    if certs.is_empty() {
        return Err(bad(
            path,
            "no certificate",
            "the file holds no PEM certificate",
        ));
    }
    Ok(certs)
}

fn bad(path: &Path, what: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::TlsMaterial {
        path: PathBuf::from(path),
        what,
        reason: reason.to_string(),
    }
}
