//! TCP with mutual TLS: a client certificate from the daemon's client CA works;
//! no certificate, or one from another CA, is refused.

mod support;

use std::path::Path;

use buildd_proto::control::control_client::ControlClient;
use buildd_proto::control::{InfoRequest, StatusRequest};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use support::{Daemon, TestSession, dockerfile_solve, served, solve};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf certificate and its key, as PEM.
    fn leaf(&self, san: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![san.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A client over TLS, presenting `identity` if given.
async fn connect(
    port: u16,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<ControlClient<tonic::transport::Channel>, String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .map_err(|e| e.to_string())?;
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    Ok(ControlClient::new(channel))
}

async fn info(port: u16, ca: &str, identity: Option<&(String, String)>) -> Result<(), String> {
    connect(port, ca, identity)
        .await?
        .info(InfoRequest {})
        .await
        .map(drop)
        .map_err(|e| format!("{e:?}"))
}

/// A daemon serving TCP with a server certificate of `ca`, which also signs the
/// client certificates it accepts; and its port.
fn tls_daemon(certs: &Path, ca: &Ca) -> (Daemon, u16) {
    let (server_cert, server_key) = ca.leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let d = Daemon::start(&[
        "--tcp",
        &format!("127.0.0.1:{port}"),
        "--tls-cert",
        &write(certs, "server.pem", &server_cert),
        "--tls-key",
        &write(certs, "server-key.pem", &server_key),
        "--tls-client-ca",
        &write(certs, "ca.pem", &ca.pem()),
    ]);
    (d, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_requires_a_client_certificate_from_the_client_ca() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("buildd test ca");
    let good = ca.leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = Ca::new("another ca").leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
    let (d, port) = tls_daemon(certs.path(), &ca);
    // The TCP listener is bound before the unix one answers.
    info(port, &ca.pem(), Some(&good)).await.unwrap();
    assert!(
        info(port, &ca.pem(), None).await.is_err(),
        "no certificate accepted"
    );
    assert!(
        info(port, &ca.pem(), Some(&stranger)).await.is_err(),
        "a certificate of another CA accepted"
    );
    // Refusals did not hurt the daemon.
    info(port, &ca.pem(), Some(&good)).await.unwrap();
    d.client().await.info(InfoRequest {}).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tcp_a_session_belongs_to_the_certificate_that_opened_it() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("buildd test ca");
    let alice = ca.leaf("alice", ExtendedKeyUsagePurpose::ClientAuth);
    let mallory = ca.leaf("mallory", ExtendedKeyUsagePurpose::ClientAuth);
    let (_d, port) = tls_daemon(certs.path(), &ca);
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    std::fs::write(ctx.path().join("f"), "f").unwrap();
    let a = connect(port, &ca.pem(), Some(&alice)).await.unwrap();
    let m = connect(port, &ca.pem(), Some(&mallory)).await.unwrap();
    let session = TestSession::open(&a, &"9".repeat(32), served(ctx.path())).await;
    let err = solve(&m, dockerfile_solve("stolen", &session, "k"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    solve(&a, dockerfile_solve("own", &session, "k"))
        .await
        .unwrap();
    let err = m
        .clone()
        .status(StatusRequest {
            r#ref: "own".into(),
        })
        .await
        .expect_err("status of another certificate's build is refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
}

#[test]
fn tcp_without_tls_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_buildd"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--addr")
        .arg(format!("unix://{}", dir.path().join("s.sock").display()))
        .args(["--tcp", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tcp needs --tls-cert"), "{err}");
}
