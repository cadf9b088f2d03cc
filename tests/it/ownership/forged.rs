//! What local users control (a process named and argued as docker-proxy, a cgroup named
//! after a container) never makes a forwarder or a container's process.

use super::*;

/// Starts, as user `nobody`, a Python listener on `port` that names itself `docker-proxy`
/// (kernel `comm` through prctl, `argv[0]` through exec) and whose arguments say it
/// forwards to `target_ip:80` for `claimed_port`.
fn spoofed_proxy(port: u16, claimed_port: u16, target_ip: &str) -> ChildGuard {
    let script = format!(
        "import ctypes,socket,time\n\
         ctypes.CDLL(None).prctl(15, b'docker-proxy', 0, 0, 0)\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {port})); s.listen(); time.sleep(120)"
    );
    let line = format!(
        "exec -a /usr/sbin/docker-proxy /usr/bin/python3 -c \"$0\" -proto tcp -host-ip 0.0.0.0 -host-port {claimed_port} -container-ip {target_ip} -container-port 80"
    );
    let child = as_nobody(None, "bash")
        .args(["-c", &line, &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv (util-linux)");
    ChildGuard(child)
}

#[test]
fn an_unprivileged_users_spoofed_proxy_is_an_ordinary_process() {
    if !require_engine() || !is_root() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let base = free_ports(2);
    let (pv, ps) = (base, base + 1);
    let victim = unique("own-victim");
    httpd(&mut cleanup, &victim, pv);
    let ip = docker(&[
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        &victim,
    ]);
    let spoof = spoofed_proxy(ps, pv, &ip);
    let doc = wait_listening(ps);
    let entry = v4_entry(&doc, ps);
    assert_eq!(entry["process"], "docker-proxy", "it does call itself that");
    assert_eq!(entry["owner"]["kind"], "process", "{doc:#}");
    assert_eq!(entry["container"], Value::Null, "{doc:#}");
    assert_eq!(entry["uid"], 65534);
    let detail = entry["owner"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("calls itself docker-proxy, but it runs /usr/bin/python3"),
        "{detail}"
    );
    assert!(findings_on(&doc, ps).is_empty(), "{doc:#}");

    // Neither free nor prune touches the victim for it.
    let out = portreap()
        .args(["free", &ps.to_string(), "--yes", "--json", "--grace", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the port stays held");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(planned(&report).is_empty(), "{report:#}");
    let (_, report) = prune(&["--yes", "--include-suspects", "--port", &ps.to_string()]);
    assert!(planned(&report).is_empty(), "{report:#}");
    assert_eq!(state_of(&victim), "running");

    // Named as what it is, it goes as any process does.
    let out = portreap()
        .args([
            "free",
            &format!("{ps}/tcp"),
            "--kill-processes",
            "--yes",
            "--json",
            "--grace",
            "1s",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["actions"][0]["action"], "kill-process");
    assert_eq!(state_of(&victim), "running");
    drop(spoof);
}

/// A cgroup of the pids hierarchy, removed (after its processes) when dropped.
struct CgroupGuard(std::path::PathBuf);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        let mut dirs: Vec<_> = std::iter::successors(Some(self.0.clone()), |d| {
            d.parent().map(std::path::Path::to_path_buf)
        })
        .take_while(|d| {
            d.starts_with("/sys/fs/cgroup/pids/")
                && d != std::path::Path::new("/sys/fs/cgroup/pids")
        })
        .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn a_cgroup_named_after_a_host_network_container_does_not_make_its_process() {
    if !require_engine() || !is_root() {
        return;
    }
    let root = std::path::Path::new("/sys/fs/cgroup/pids");
    assert!(root.is_dir(), "the pids cgroup hierarchy");
    let mut cleanup = Cleanup::default();
    let base = free_ports(2);
    let (pv, ps) = (base, base + 1);
    let victim = unique("own-hostnet");
    let port = pv.to_string();
    let id = run_container(
        &mut cleanup,
        &victim,
        &["--network", "host"],
        &["httpd", "-f", "-p", &port],
    );
    // A cgroup path ending in the victim's id, as a user given a delegated subtree can
    // make; a process of that user is placed in it.
    let dir = root.join(unique("own-cg")).join("docker").join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let guard = CgroupGuard(dir.clone());
    let (listener, ps_text) = {
        let child = as_nobody(None, "/usr/bin/python3")
            .args([
                "-c",
                &format!("import socket,time; s=socket.socket(); s.bind(('0.0.0.0',{ps})); s.listen(); time.sleep(120)"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        (ChildGuard(child), ps.to_string())
    };
    std::fs::write(dir.join("cgroup.procs"), listener.0.id().to_string()).unwrap();
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", listener.0.id())).unwrap();
    assert!(cgroup.contains(&id), "{cgroup}");
    let doc = wait_listening(ps);
    let entry = v4_entry(&doc, ps);
    assert_eq!(entry["owner"]["kind"], "process", "{doc:#}");
    assert_eq!(entry["container"], Value::Null, "{doc:#}");
    // The real one is still the container's.
    let doc = wait_listening(pv);
    let real = entries(&doc, "tcp", pv)
        .into_iter()
        .find(|e| e["bound"] == true)
        .unwrap()
        .clone();
    assert_eq!(real["owner"]["via"], "host-network", "{doc:#}");
    assert_eq!(real["container"]["name"], victim.as_str());

    let out = portreap()
        .args(["free", &ps_text, "--yes", "--json", "--grace", "1s"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    assert!(planned(&report).is_empty(), "{report:#}");
    assert_eq!(state_of(&victim), "running");
    drop(listener);
    drop(guard);
}
