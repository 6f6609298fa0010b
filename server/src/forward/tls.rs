//! DNS over TLS to upstreams (RFC 7858; CoreDNS's `forward . tls://IP` with `tls [CERT KEY]
//! [CA]` and `tls_servername NAME`): the client a `forward` builds from its files, and the
//! handshake that opens a connection. The queries themselves go over the pipelined connections
//! of [`super::pool`], like the node-local pool's plain TCP ones.
//!
//! What is trusted: the certificates of the CA file when `tls` names one, else the system's
//! roots, read once per process with `rustls-native-certs` (the bundle `SSL_CERT_FILE` names, else
//! OpenSSL's default locations). What is verified, and sent as SNI, is `tls_servername`; without
//! it the upstream's address, which the certificate must then carry as an IP address SAN (no SNI
//! is sent for an address, RFC 6066 §3), as CoreDNS's Go client does. TLS 1.2 and 1.3 only
//! (CoreDNS's minimum is 1.2), with the `ring` provider kube's rustls already brings in.
//! Sessions are resumed from an in-memory cache (RFC 7858 §3.4's advice on reusing sessions).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The port of DNS over TLS (RFC 7858 §3.1), used when a `tls://` upstream names none.
pub const DOT_PORT: u16 = 853;

/// Connections kept open to one TLS upstream at most; each carries many queries at once.
pub const CONNECTIONS: usize = 2;

/// A file of the `tls` option that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file holds no PEM item of the kind needed, or a malformed one.
    #[error("{}: {what}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
}

impl TlsFileError {
    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            TlsFileError::Read { path, .. } | TlsFileError::Content { path, .. } => path,
        }
    }
}

/// The material a client was built from: two clients are equal when their files held the
/// same certificates and key (plans are compared in tests, and a rustls configuration cannot
/// be).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Material {
    ca: Option<Vec<CertificateDer<'static>>>,
    chain: Vec<CertificateDer<'static>>,
    key: Option<Vec<u8>>,
}

/// A TLS client configuration for upstreams: its trust anchors and, for client
/// authentication, a certificate and key. Cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    material: Material,
    config: Arc<ClientConfig>,
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        self.material == other.material
    }
}

impl Eq for TlsClient {}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("ca_certificates", &self.material.ca.as_ref().map(Vec::len))
            .field("client_certificate", &!self.material.chain.is_empty())
            .finish()
    }
}

impl TlsClient {
    /// A client that trusts the system's roots and authenticates with no certificate
    /// (CoreDNS's bare `tls`, and a `tls://` upstream with no `tls` option).
    pub fn system() -> Self {
        let material = Material {
            ca: None,
            chain: Vec::new(),
            key: None,
        };
        Self::build(material, None)
            .unwrap_or_else(|_| unreachable!("a client without a certificate always builds"))
    }

    /// A client that trusts the certificates of the PEM file `ca` (or the system's roots), and
    /// authenticates with the certificate chain and key of the PEM files `identity`
    /// (CoreDNS's `tls CERT KEY [CA]` and `tls CA`). Fails naming the file that is wrong.
    pub fn from_files(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsFileError> {
        let anchors = ca.map(read_certificates).transpose()?;
        let (chain, key) = match identity {
            Some((cert, key)) => (read_certificates(cert)?, Some(read_key(key)?)),
            None => (Vec::new(), None),
        };
        let material = Material {
            ca: anchors,
            chain,
            key: key.as_ref().map(|k| k.secret_der().to_vec()),
        };
        Self::build(material, key).map_err(|problem| match (problem, ca, identity) {
            (Problem::Ca(what), Some(ca), _) => content(ca, what),
            (Problem::Identity(what), _, Some((cert, key))) => {
                content(cert, format!("{what} (with the key of {})", key.display()))
            }
            (Problem::Ca(what) | Problem::Identity(what), ..) => content(Path::new(""), what),
        })
    }

    fn build(material: Material, key: Option<PrivateKeyDer<'static>>) -> Result<Self, Problem> {
        let roots = match &material.ca {
            Some(certificates) => {
                let mut roots = RootCertStore::empty();
                for certificate in certificates {
                    roots
                        .add(certificate.clone())
                        .map_err(|e| Problem::Ca(format!("not a usable CA certificate: {e}")))?;
                }
                Arc::new(roots)
            }
            None => system_roots(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Problem::Identity(e.to_string()))?
            .with_root_certificates(roots);
        let config = match key {
            Some(key) => builder
                .with_client_auth_cert(material.chain.clone(), key)
                .map_err(|e| Problem::Identity(format!("the certificate cannot be used: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsClient {
            material,
            config: Arc::new(config),
        })
    }

    /// Opens a TLS connection to `addr`, verifying its certificate for `name`. The caller
    /// bounds the time it takes.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        name: &ServerName<'static>,
    ) -> io::Result<TlsStream<TcpStream>> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        TlsConnector::from(self.config.clone())
            .connect(name.clone(), stream)
            .await
    }
}

/// What stopped a client from being built.
enum Problem {
    /// The CA file's certificates.
    Ca(String),
    /// The client certificate and key.
    Identity(String),
}

/// The TLS upstreams of one `forward` and how they are reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsUpstreams {
    /// The upstreams (of [`super::config::ForwardConfig::upstreams`]) asked over TLS.
    pub upstreams: Vec<SocketAddr>,
    /// Trust anchors and client certificate.
    pub client: TlsClient,
    /// The name verified in the certificates and sent as SNI (`tls_servername`); `None`: the
    /// upstream's address.
    pub server_name: Option<ServerName<'static>>,
}

impl TlsUpstreams {
    /// The name the certificate of the upstream at `addr` must be valid for.
    pub fn name_for(&self, addr: SocketAddr) -> ServerName<'static> {
        match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::IpAddress(addr.ip().into()),
        }
    }
}

/// The system's roots, read once per process; logged when there are none.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    errors = ?found.errors,
                    "forward: no system CA certificates found; tls:// upstreams without a CA \
                     file (`tls CA`) will fail verification"
                );
            }
            Arc::new(roots)
        })
        .clone()
}

/// Every certificate of the PEM file at `path`; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(content(
            path,
            "no PEM certificate (BEGIN CERTIFICATE) in the file",
        ));
    }
    Ok(certificates)
}

/// The private key of the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(path)?;
    let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        content(
            path,
            format!("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file: {e}"),
        )
    })?;
    Ok(key)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn content(path: &Path, what: impl Into<String>) -> TlsFileError {
    TlsFileError::Content {
        path: path.to_owned(),
        what: what.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::cache::CacheKey;
    use crate::forward::config::DEFAULT_EXPIRE;
    use crate::forward::pool::TcpPool;
    use crate::forward::upstream::ExchangeError;
    use clusterdns_zone::wire::HEADER_LEN;
    use rustls::server::WebPkiClientVerifier;
    use rustls::ServerConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    /// A file of server/testdata/tls/ (its README says what each is).
    pub(crate) fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/tls")
            .join(name)
    }

    const NAME: &[u8] = b"\x03www\x07example\x04test\x00";

    /// A DNS-over-TLS server on loopback with the test certificate for `dns.test` and
    /// 127.0.0.1: it answers every query (NOERROR, the question echoed), the first one of each
    /// connection last, so answers come out of order; with `client_ca`, it asks for a client
    /// certificate. Returns its address and the count of connections it accepted.
    async fn dot_server(client_ca: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let chain = read_certificates(&testdata("server.pem")).unwrap();
        let key = read_key(&testdata("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            true => {
                let mut roots = RootCertStore::empty();
                for ca in read_certificates(&testdata("ca.pem")).unwrap() {
                    roots.add(ca).unwrap();
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            false => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(chain, key).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let (mut reader, writer) = tokio::io::split(stream);
                    let writer = Arc::new(tokio::sync::Mutex::new(writer));
                    let mut first = true;
                    while let Ok(len) = reader.read_u16().await {
                        let mut query = vec![0u8; usize::from(len)];
                        if reader.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        let delay = if first { 50 } else { 0 };
                        first = false;
                        let writer = writer.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                            let question_end = HEADER_LEN + NAME.len() + 4;
                            let mut answer = query[..question_end].to_vec();
                            answer[2..4].copy_from_slice(&[0x81, 0x80]);
                            answer[10..12].copy_from_slice(&[0, 0]);
                            let mut frame = (answer.len() as u16).to_be_bytes().to_vec();
                            frame.extend_from_slice(&answer);
                            let mut writer = writer.lock().await;
                            let _ = writer.write_all(&frame).await;
                            let _ = writer.flush().await;
                        });
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn pool(addr: SocketAddr, client: TlsClient, name: &str) -> TcpPool {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        TcpPool::tls(addr, CONNECTIONS, client, name, DEFAULT_EXPIRE, 1232)
    }

    fn trusting_the_test_ca() -> TlsClient {
        TlsClient::from_files(Some(&testdata("ca.pem")), None).unwrap()
    }

    async fn ask(pool: &TcpPool) -> Result<u8, ExchangeError> {
        let key = CacheKey::new(NAME, 1, 1, false);
        let exchanged = pool.exchange(&key, Duration::from_secs(2)).await?;
        Ok(exchanged.response.rcode())
    }

    #[tokio::test]
    async fn queries_are_pipelined_on_few_reused_connections() {
        let (addr, accepted) = dot_server(false).await;
        let pool = pool(addr, trusting_the_test_ca(), "dns.test");
        for _ in 0..3 {
            let asked = (0..20).map(|_| ask(&pool));
            for answer in futures_util::future::join_all(asked).await {
                assert_eq!(answer.expect("answered over TLS"), 0);
            }
        }
        assert_eq!(pool.opened(), CONNECTIONS as u64);
        assert_eq!(pool.reused(), 60 - CONNECTIONS as u64);
        assert_eq!(accepted.load(Ordering::Relaxed), CONNECTIONS);
    }

    #[tokio::test]
    async fn the_address_is_verified_when_no_name_is_given() {
        let (addr, _) = dot_server(false).await;
        let tls = TlsUpstreams {
            upstreams: vec![addr],
            client: trusting_the_test_ca(),
            server_name: None,
        };
        let name = tls.name_for(addr);
        let pool = TcpPool::tls(addr, 1, tls.client, name, DEFAULT_EXPIRE, 1232);
        assert_eq!(ask(&pool).await.expect("127.0.0.1 is a SAN"), 0);
    }

    #[tokio::test]
    async fn a_certificate_not_valid_for_the_name_or_not_trusted_fails() {
        let (addr, _) = dot_server(false).await;
        let wrong_name = pool(addr, trusting_the_test_ca(), "dns.example");
        let error = ask(&wrong_name).await.expect_err("wrong name");
        assert!(
            matches!(error, ExchangeError::Tls(_)) && error.to_string().contains("certificate"),
            "{error}"
        );
        let system = pool(addr, TlsClient::system(), "dns.test");
        let error = ask(&system)
            .await
            .expect_err("issuer not among the system roots");
        assert!(
            matches!(error, ExchangeError::Tls(_)) && error.to_string().contains("certificate"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_client_certificate_is_presented_when_configured() {
        let (addr, _) = dot_server(true).await;
        let with_identity = TlsClient::from_files(
            Some(&testdata("ca.pem")),
            Some((&testdata("client.pem"), &testdata("client.key"))),
        )
        .unwrap();
        assert_eq!(
            ask(&pool(addr, with_identity, "dns.test")).await.unwrap(),
            0
        );
        let without = pool(addr, trusting_the_test_ca(), "dns.test");
        assert!(ask(&without).await.is_err(), "the server asks for one");
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        // A server that answers one query per connection, then closes it.
        let chain = read_certificates(&testdata("server.pem")).unwrap();
        let key = read_key(&testdata("server.key")).unwrap();
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    continue;
                };
                let Ok(len) = stream.read_u16().await else {
                    continue;
                };
                let mut query = vec![0u8; usize::from(len)];
                let _ = stream.read_exact(&mut query).await;
                let question_end = HEADER_LEN + NAME.len() + 4;
                let mut answer = query[..question_end].to_vec();
                answer[2..4].copy_from_slice(&[0x81, 0x80]);
                answer[10..12].copy_from_slice(&[0, 0]);
                let _ = stream.write_u16(answer.len() as u16).await;
                let _ = stream.write_all(&answer).await;
                let _ = stream.shutdown().await;
            }
        });
        let name = ServerName::try_from("dns.test").unwrap();
        let pool = TcpPool::tls(addr, 1, trusting_the_test_ca(), name, DEFAULT_EXPIRE, 1232);
        for _ in 0..3 {
            assert_eq!(ask(&pool).await.expect("answered"), 0);
            // Let the reader see the close before the next query.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pool.opened(), 3);
    }

    #[test]
    fn bad_files_are_refused_naming_the_file() {
        let missing = testdata("missing.pem");
        let error = TlsClient::from_files(Some(&missing), None).unwrap_err();
        assert_eq!(error.path(), missing);
        assert!(error
            .to_string()
            .starts_with(&format!("{}: ", missing.display())));

        // A key where the CA belongs: no certificate in it.
        let key = testdata("server.key");
        let error = TlsClient::from_files(Some(&key), None).unwrap_err();
        assert_eq!(error.path(), key);
        assert!(error.to_string().contains("no PEM certificate"), "{error}");

        // A certificate where the key belongs.
        let cert = testdata("client.pem");
        let error = TlsClient::from_files(None, Some((&cert, &cert))).unwrap_err();
        assert_eq!(error.path(), cert);
        assert!(error.to_string().contains("no PEM private key"), "{error}");

        // A key that is not the certificate's.
        let other = testdata("other.key");
        let error = TlsClient::from_files(None, Some((&cert, &other))).unwrap_err();
        assert_eq!(error.path(), cert);
        assert!(error.to_string().contains("other.key"), "{error}");

        let fine = TlsClient::from_files(
            Some(&testdata("ca.pem")),
            Some((&cert, &testdata("client.key"))),
        );
        assert!(fine.is_ok());
    }

    #[test]
    fn clients_compare_by_what_they_were_built_from() {
        assert_eq!(TlsClient::system(), TlsClient::system());
        assert_eq!(trusting_the_test_ca(), trusting_the_test_ca());
        assert_ne!(trusting_the_test_ca(), TlsClient::system());
    }
}
