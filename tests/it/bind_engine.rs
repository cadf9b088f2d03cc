//! The port as bind(2) sees it: TIME_WAIT, sockets bound and never listened on, pre-fork
//! families, dual-stack wildcards, privileged ports, and crash-looping containers; `why`,
//! `why --json` and `free` on real sockets, every suggestion pasted.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use serde_json::Value;

/// Runs a Python program that prints a port (and then whatever it likes), and waits.
fn python(program: &str) -> (ChildGuard, u16) {
    let (child, line) = first_line(Command::new("/usr/bin/python3").args(["-c", program]));
    (child, line.trim().parse().expect("a port"))
}

/// `portreap free PORT --yes --kill-processes --grace 1s`.
fn free_killing(port: u16) -> std::process::Output {
    portreap()
        .args([
            "free",
            &port.to_string(),
            "--yes",
            "--kill-processes",
            "--grace",
            "1s",
        ])
        .output()
        .unwrap()
}

fn why_text(port: u16) -> String {
    let out = portreap()
        .args(["why", &port.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn why_doc(port: u16) -> Value {
    json(&["why", &port.to_string(), "--json"])["why"][0].clone()
}

/// A port left in TIME_WAIT: a server (no SO_REUSEADDR) accepts, closes first, exits.
fn time_wait_port() -> u16 {
    let (mut server, port) = python(
        "import socket\n\
         s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n\
         print(s.getsockname()[1], flush=True)\n\
         c=socket.create_connection(s.getsockname()); a,_=s.accept()\n\
         a.close(); import time; time.sleep(0.2); c.close(); s.close()",
    );
    server.0.wait().unwrap();
    port
}

#[test]
fn a_port_in_time_wait_is_not_free_and_free_waits_for_it() {
    let port = time_wait_port();
    let plain = Command::new("/usr/bin/python3")
        .args([
            "-c",
            &format!("import socket; socket.socket().bind(('0.0.0.0',{port}))"),
        ])
        .output()
        .unwrap();
    assert!(!plain.status.success(), "the kernel refuses a plain bind");
    let text = why_text(port);
    assert!(
        text.contains(
            "held by no process, but a plain bind(2) fails until its TIME_WAIT connections expire"
        ),
        "{text}"
    );
    let doc = why_doc(port);
    assert_eq!(doc["free"], false, "{doc:#}");
    assert_eq!(doc["free_with_reuseaddr"], Value::Null, "{doc:#}");
    assert_eq!(doc["sockets"][0]["state"], "time-wait", "{doc:#}");
    assert!(doc["sockets"][0]["expires_ms"].as_u64().unwrap() > 0);
    // free names the reason, and exits 1: nothing can be signalled.
    let out = portreap()
        .args(["free", &port.to_string(), "--yes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("connection(s) in TIME_WAIT"), "{said}");
    // The suggestion waits for the kernel and then says the port is free; while it waits
    // it holds no lock (it acts on nothing), so another free goes ahead at once.
    let next = doc["next"][0].as_str().unwrap().to_owned();
    assert!(next.contains("--until-free"), "{next}");
    let (mut sh, _config) = paste(&next);
    let mut waiting = ChildGuard(sh.stdout(Stdio::piped()).spawn().unwrap());
    std::thread::sleep(Duration::from_secs(1));
    let other = free_port();
    let meanwhile = portreap()
        .args(["free", &other.to_string(), "--yes", "--wait", "2s"])
        .output()
        .unwrap();
    assert_eq!(meanwhile.status.code(), Some(0), "{meanwhile:?}");
    let mut said = String::new();
    std::io::Read::read_to_string(&mut waiting.0.stdout.take().unwrap(), &mut said).unwrap();
    let status = waiting.0.wait().unwrap();
    assert!(status.success(), "{next}: {said}");
    assert!(said.contains("All named ports are free"), "{said}");
}

#[test]
fn a_socket_bound_and_never_listened_on_holds_the_port() {
    let (_holder, port) = python(
        "import socket,time\n\
         s=socket.socket(); s.bind(('0.0.0.0',0))\n\
         print(s.getsockname()[1], flush=True); time.sleep(60)",
    );
    let text = why_text(port);
    assert!(text.contains("which does not listen on it"), "{text}");
    assert!(text.contains("bound but never listened on"), "{text}");
    let doc = why_doc(port);
    assert_eq!(doc["free"], false);
    assert_eq!(doc["sockets"][0]["state"], "bound-inactive", "{doc:#}");
    let out = free_killing(port);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(port_free(port));
}

/// A parent and three children sharing one listening socket, as pre-fork servers do.
fn pre_fork_family() -> (ChildGuard, u16) {
    python(
        "import socket,os,time\n\
         s=socket.socket(); s.bind(('0.0.0.0',0)); s.listen(8)\n\
         for i in range(3):\n    if os.fork()==0:\n        time.sleep(60); os._exit(0)\n\
         print(s.getsockname()[1], flush=True); time.sleep(60)",
    )
}

#[test]
fn a_pre_fork_family_is_freed_whole_and_its_kill_suggestion_is_valid_shell() {
    let (_family, port) = pre_fork_family();
    let doc = why_doc(port);
    let kill = doc["next"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|s| s.starts_with("kill "))
        .unwrap_or_else(|| panic!("{doc:#}"))
        .to_owned();
    let pids: Vec<&str> = kill.split_whitespace().skip(1).collect();
    assert_eq!(pids.len(), 4, "{kill}");
    assert!(pids.iter().all(|p| p.parse::<u32>().is_ok()), "{kill}");
    pasted(&kill);
    assert!(
        eventually(Duration::from_secs(5), || port_free(port).then_some(())).is_some(),
        "{kill} left {port} held"
    );

    let (_family, port) = pre_fork_family();
    let out = free_killing(port);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(said.matches("done     kill").count(), 4, "{said}");
    assert!(!said.contains("restart the engine"), "{said}");
    assert!(port_free(port));
}

#[test]
fn a_dual_stack_wildcard_is_said_to_take_ipv4_too() {
    let (_holder, port) = python(
        "import socket,time\n\
         s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
         s.bind(('::',0)); s.listen(1)\n\
         print(s.getsockname()[1], flush=True); time.sleep(60)",
    );
    let text = why_text(port);
    assert!(
        text.contains(":: (every IPv6 address, and IPv4 too: dual-stack)"),
        "{text}"
    );
}

#[test]
fn a_free_privileged_port_needs_root_for_a_user() {
    if !is_root() {
        return;
    }
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A privileged port nothing holds.
    let Some(port) = (1..start.min(1024)).rev().find(|&p| port_free(p)) else {
        return;
    };
    let out = as_nobody(None, assert_cmd::cargo::cargo_bin("portreap"))
        .args(["why", &port.to_string()])
        .env_remove("DOCKER_HOST")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("needs root or CAP_NET_BIND_SERVICE"),
        "{text}"
    );
}

#[test]
fn a_crash_looping_container_is_seen_by_why_as_by_scan() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let name = unique("loop");
    let port = free_port();
    cleanup.container(&name);
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--restart",
        "always",
        "-p",
        &format!("{port}:80"),
        &image(),
        "sh",
        "-c",
        "sleep 0.3; exit 3",
    ]);
    // Caught looping by scan (restarts back off, so it is seen either way).
    let scanned = eventually(Duration::from_secs(30), || {
        let doc = json(&["scan", "--json", "--port", &port.to_string()]);
        let looping = findings_on(&doc, port)
            .iter()
            .any(|f| f["kind"] == "restarting-container");
        looping.then_some(doc)
    });
    assert!(scanned.is_some(), "never seen looping");
    for _ in 0..3 {
        let doc = why_doc(port);
        let held = doc["free"] == false;
        let wanted = doc["wanted_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == name.as_str());
        assert!(held || wanted, "why lost the loop: {doc:#}");
        let text = why_text(port);
        assert!(!text.contains("nothing will take it"), "{text}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A listener that prints "PORT PID" and stays 60 s, for a shell to start.
const SHELLED: &str = "/usr/bin/python3 -c 'import socket,os,time; s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen(); print(s.getsockname()[1], os.getpid(), flush=True); time.sleep(60)'";

/// Kills a process by PID when dropped: the listeners below outlive what started them.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// Reads "PORT PID" from `line`.
fn port_and_pid(line: &str) -> (u16, KillOnDrop) {
    let mut words = line.split_whitespace();
    let port = words.next().and_then(|w| w.parse().ok());
    let pid = words.next().and_then(|w| w.parse().ok());
    match (port, pid) {
        (Some(port), Some(pid)) => (port, KillOnDrop(pid)),
        _ => panic!("no port and pid in {line:?}"),
    }
}

fn origin_of(port: u16) -> Value {
    let doc = json(&["why", &port.to_string(), "--json"]);
    let origin = doc["ports"][0]["origin"].clone();
    assert!(origin.is_object(), "{doc:#}");
    origin
}

#[test]
fn a_plain_holder_says_where_it_runs_and_who_started_it() {
    let dir = tempfile::tempdir().unwrap();
    // Started by this test through a shell that stays (`; true` keeps sh from exec'ing).
    let (_sh, line) = first_line(
        Command::new("sh")
            .args(["-c", &format!("{SHELLED}; true")])
            .current_dir(dir.path()),
    );
    let (port, listener) = port_and_pid(&line);
    let origin = origin_of(port);
    let cwd = dir.path().to_str().unwrap();
    assert_eq!(origin["cwd"], cwd, "{origin:#}");
    assert_eq!(
        origin["started_by"]["pid"],
        std::process::id(),
        "{origin:#}"
    );
    assert_eq!(origin["through"][0]["name"], "sh", "{origin:#}");
    assert_eq!(origin["parent_gone"], false, "{origin:#}");
    let text = why_text(port);
    assert!(text.contains(&format!("directory: {cwd}")), "{text}");
    assert!(
        text.contains(&format!(
            "(pid {}) through sh (pid {})",
            std::process::id(),
            _sh.0.id()
        )),
        "{text}"
    );
    drop(listener);
}

#[test]
fn a_holder_whose_shell_has_exited_is_said_to_be_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // setsid: the shell leads a session of its own, starts the listener in the
    // background and exits, as a closed terminal's shell does.
    let status = Command::new("setsid")
        .args([
            "sh",
            "-c",
            &format!("{SHELLED} > {} & exit 0", out.display()),
        ])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let line = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&out)
            .ok()
            .filter(|l| l.ends_with('\n'))
    })
    .expect("the listener started");
    let (port, _listener) = port_and_pid(&line);
    let origin = origin_of(port);
    assert_eq!(origin["parent_gone"], true, "{origin:#}");
    assert_eq!(origin["session_alive"], false, "{origin:#}");
    assert_eq!(origin["started_by"], Value::Null, "{origin:#}");
    assert_eq!(origin["tty"], Value::Null, "{origin:#}");
    let text = why_text(port);
    assert!(text.contains("parent: gone, adopted by pid 1"), "{text}");
    assert!(text.contains("session: its leader (pid"), "{text}");
    assert!(text.contains("terminal: none"), "{text}");
}

#[test]
fn a_holder_on_a_terminal_names_it() {
    // script(1) gives the shell a pseudo-terminal as its controlling terminal.
    let (_script, line) = first_line(
        Command::new("script")
            .args(["-qec", &format!("{SHELLED}; true"), "/dev/null"])
            .stdin(Stdio::piped()),
    );
    let (port, _listener) = port_and_pid(&line);
    let origin = origin_of(port);
    let tty = origin["tty"]
        .as_str()
        .unwrap_or_else(|| panic!("{origin:#}"));
    assert!(tty.starts_with("pts/"), "{origin:#}");
    assert_eq!(origin["started_by"]["name"], "script", "{origin:#}");
    let text = why_text(port);
    assert!(text.contains(&format!("terminal: {tty}")), "{text}");
}
