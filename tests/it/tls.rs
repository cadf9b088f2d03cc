//! A TLS engine endpoint: the real engine behind socat's OpenSSL listener, which demands
//! a client certificate (as `dockerd --tlsverify` does), with certificates made here.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`, named as
/// the docker CLI expects (`ca.pem`, `cert.pem`, `key.pem` for the client).
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=portreap test CA",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
            "-out",
            "server-cert.pem",
        ],
    );
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=client",
            "-keyout",
            "key.pem",
            "-out",
            "client.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.cnf",
            "-out",
            "cert.pem",
        ],
    );
}

#[test]
fn a_tls_endpoint_through_docker_tls_verify_and_through_a_context() {
    if !require_engine() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let port = free_port();
    let d = certs.path().display();
    let listen = format!(
        "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={d}/server-cert.pem,key={d}/server-key.pem,cafile={d}/ca.pem,verify=1"
    );
    let socat = Command::new("socat")
        .args([&listen, "UNIX-CONNECT:/var/run/docker.sock"])
        .spawn()
        .expect("socat (Debian's socat package)");
    let _socat = ChildGuard(socat);
    let url = format!("tcp://127.0.0.1:{port}");
    eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("socat never listened");

    let scan = |envs: &[(&str, &str)], args: &[&str]| -> serde_json::Value {
        let mut cmd = portreap();
        cmd.env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd
            .args(args)
            .args(["scan", "--json", "--port", "1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let cert_path = certs.path().to_str().unwrap();

    // DOCKER_HOST + DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, as for the docker CLI.
    let doc = scan(
        &[
            ("DOCKER_HOST", &url),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", cert_path),
        ],
        &[],
    );
    assert_eq!(doc["engine"]["reachable"], true, "{doc:#}");
    assert_eq!(doc["engine"]["kind"], "Docker");

    // Plain HTTP to a TLS endpoint fails, and says the engine could not be reached.
    let doc = scan(&[("DOCKER_HOST", &url)], &[]);
    assert_eq!(doc["engine"]["reachable"], false, "{doc:#}");

    // TLS asked for without the files: a clear reason.
    let empty = tempfile::tempdir().unwrap();
    let doc = scan(
        &[
            ("DOCKER_HOST", &url),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", empty.path().to_str().unwrap()),
        ],
        &[],
    );
    assert_eq!(doc["engine"]["reachable"], false);
    assert!(
        doc["engine"]["error"]
            .as_str()
            .unwrap()
            .contains("lacks ca.pem, cert.pem and key.pem"),
        "{doc:#}"
    );

    // A context whose TLS material the docker CLI stored.
    let config = tempfile::tempdir().unwrap();
    let out = Command::new("docker")
        .args([
            "context",
            "create",
            "tlsctx",
            "--docker",
            &format!("host={url},ca={d}/ca.pem,cert={d}/cert.pem,key={d}/key.pem"),
        ])
        .env("DOCKER_CONFIG", config.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = scan(
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
        &["--context", "tlsctx"],
    );
    assert_eq!(doc["engine"]["reachable"], true, "{doc:#}");
    assert_eq!(doc["engine"]["source"], "context tlsctx");
}
