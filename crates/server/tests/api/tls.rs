//! A test certificate authority and HTTPS servers of the tests' own on 127.0.0.1 (a federated issuer, a client's
//! `jwks_uri`): the CA's PEM file is what Keyward is told to trust with `extra_ca_file`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tower::ServiceExt;

/// What a server needs to fetch from the test's HTTPS servers on 127.0.0.1: Keyward fetches from public addresses
/// only unless told otherwise.
pub const ALLOW_LOOPBACK: (&str, &str) = ("KEYWARD_OUTBOUND_PRIVATE_ADDRESSES", "allow");

/// A certificate authority whose PEM is written to a file, and a certificate for 127.0.0.1 it signed.
pub struct TestCa {
    /// The CA certificate's PEM file.
    pub pem_file: PathBuf,
    leaf: CertificateDer<'static>,
    leaf_key: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Keyward test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pem_file = dir.path().join("ca.pem");
        std::fs::write(&pem_file, ca_cert.pem()).unwrap();
        TestCa {
            pem_file,
            leaf: leaf.der().clone(),
            leaf_key: leaf_key.serialize_der(),
            _dir: dir,
        }
    }

    /// Serves `router` over HTTPS on 127.0.0.1 with the certificate this CA signed; returns `https://127.0.0.1:PORT`
    /// (the task ends with the test's runtime).
    pub async fn serve(&self, router: Router) -> String {
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![self.leaf.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.clone())),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                        router.clone().oneshot(req.map(Body::new))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        format!("https://127.0.0.1:{}", addr.port())
    }
}
