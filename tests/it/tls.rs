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
pub fn make_certs(dir: &Path) {
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

/// A TCP listener on 127.0.0.1 relaying to the unix `socket`: plain, or with `tls` TLS
/// with the certificates [`make_certs`] made there, demanding a client certificate (as
/// `dockerd --tlsverify` does). The relay and its `tcp://` URL.
pub fn front(socket: &Path, tls: Option<&Path>) -> (ChildGuard, String) {
    let port = free_port();
    let listen = match tls.map(Path::display) {
        Some(d) => format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={d}/server-cert.pem,key={d}/server-key.pem,cafile={d}/ca.pem,verify=1"
        ),
        None => format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
    };
    let socat = Command::new("socat")
        .args([listen, format!("UNIX-CONNECT:{}", socket.display())])
        .spawn()
        .expect("socat (Debian's socat package)");
    let guard = ChildGuard(socat);
    eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("socat never listened");
    (guard, format!("tcp://127.0.0.1:{port}"))
}

#[test]
fn a_tls_endpoint_through_docker_tls_verify_and_through_a_context() {
    if !require_engine() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let (_socat, url) = front(Path::new("/var/run/docker.sock"), Some(certs.path()));
    let d = certs.path().display();

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
        assert_success(&out);
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
    assert_success(&out);
    let doc = scan(
        &[("DOCKER_CONFIG", config.path().to_str().unwrap())],
        &["--context", "tlsctx"],
    );
    assert_eq!(doc["engine"]["reachable"], true, "{doc:#}");
    assert_eq!(doc["engine"]["source"], "context tlsctx");
}

#[test]
fn a_server_another_ca_signed_and_a_broken_key_are_refused_and_named() {
    let (_engine_dir, host) = fake_engine(|_| (200, "{}".to_owned()));
    let socket = Path::new(host.strip_prefix("unix://").unwrap());
    let (good, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make_certs(good.path());
    make_certs(other.path());
    let (_socat, url) = front(socket, Some(good.path()));
    let scan = |cert_dir: &Path| -> String {
        let out = portreap()
            .env("DOCKER_HOST", &url)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_dir)
            .args(["scan", "--json", "--port", "1"])
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["engine"]["reachable"], false, "{doc:#}");
        doc["engine"]["error"].as_str().unwrap().to_owned()
    };

    // The client's own certificate is fine, but the CA it trusts did not sign the server's.
    let mixed = tempfile::tempdir().unwrap();
    std::fs::copy(other.path().join("ca.pem"), mixed.path().join("ca.pem")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(good.path().join(file), mixed.path().join(file)).unwrap();
    }
    let error = scan(mixed.path());
    assert!(error.contains("certificate"), "{error}");

    // A key file that holds no key is named, with what is wrong with it.
    std::fs::copy(good.path().join("ca.pem"), mixed.path().join("ca.pem")).unwrap();
    std::fs::write(mixed.path().join("key.pem"), "not a key\n").unwrap();
    let error = scan(mixed.path());
    let key = mixed.path().join("key.pem");
    assert!(
        error.contains(&format!("TLS file {}: no private key", key.display())),
        "{error}"
    );
}
