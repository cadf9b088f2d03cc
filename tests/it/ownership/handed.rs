//! Processes that hold a port without being its program: a socket an unprivileged user
//! made and handed to a process of another user (the system bus takes descriptors over
//! D-Bus; here a root process takes it over `SCM_RIGHTS`), and a daemon of a system user.
//! `free --kill-processes --yes` run as root leaves both alone, and says why.

use std::time::Duration;

use crate::common::*;

/// Runs `free PORT --kill-processes --yes --json` as root; its refusals' reasons.
fn refusals(port: u16) -> Vec<String> {
    let out = portreap()
        .args([
            "free",
            &port.to_string(),
            "--kill-processes",
            "--yes",
            "--json",
        ])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc["actions"], serde_json::json!([]), "{doc:#}");
    doc["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_socket_handed_over_by_another_user_is_not_its_holders_to_lose() {
    if !is_root() {
        eprintln!("skipping: needs root to change users");
        return;
    }
    // The child becomes uid 65534, listens, hands its socket to the root parent over a
    // unix socket pair and exits; the parent keeps it and announces the port.
    let script = r#"import os,socket,time
a,b=socket.socketpair()
if os.fork()==0:
    os.setgid(65534); os.setuid(65534)
    s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()
    socket.send_fds(b,[str(s.getsockname()[1]).encode()],[s.fileno()]); os._exit(0)
msg,fds,_,_=socket.recv_fds(a,16,1)
kept=socket.socket(fileno=fds[0])
os.wait()
print(msg.decode(),flush=True)
time.sleep(600)
"#;
    let (holder, port) =
        first_line(std::process::Command::new("/usr/bin/python3").args(["-c", script]));
    let port: u16 = port.trim().parse().unwrap();
    let reasons = refusals(port);
    let pid = holder.0.id();
    assert!(
        reasons.iter().any(|r| r
            == &format!("the socket on 127.0.0.1:{port}/tcp was made by uid 65534 and handed to python3 (pid {pid}, uid 0), which did not make it: stop the program of uid 65534 that made it")),
        "{reasons:?}"
    );
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!port_free(port));
}

#[test]
fn a_daemon_of_a_system_user_is_not_signalled() {
    if !is_root() {
        eprintln!("skipping: needs root to change users");
        return;
    }
    // uid 150: a system user's daemon, leading its own session (setsid).
    let (daemon, port) = first_line(
        std::process::Command::new("setpriv")
            .args(["--reuid=150", "--regid=150", "--clear-groups", "setsid", "/usr/bin/python3", "-c"])
            .arg("import socket,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(600)"),
    );
    let port: u16 = port.trim().parse().unwrap();
    // setsid forks when it leads a group already; the listener is the one holding the port.
    let reasons = eventually(Duration::from_secs(5), || {
        let r = refusals(port);
        (!r.is_empty()).then_some(r)
    })
    .unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("runs as system user 150 on its own")),
        "{reasons:?}"
    );
    assert!(!port_free(port));
    drop(daemon);
}
