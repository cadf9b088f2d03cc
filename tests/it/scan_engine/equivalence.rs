//! The narrower views (the default one, `why`, `scan --port`, settled containers taken
//! from the list) against the full facts: the same answer on what they cover.

use super::*;

/// The default view reads only forwarders' descriptors (and, for ports a container asks
/// for, the other processes'): its answer must equal the full walk's, restricted to the
/// same ports.
#[test]
fn the_default_view_equals_the_full_walk_on_its_ports() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (published, wanted) = (free_port(), free_port());
    httpd(&mut cleanup, &unique("walk"), published);
    // An exited --restart always container asks for a port a plain process now holds:
    // the plain owner must be named in the default view too.
    let dormant = unique("walkdormant");
    run_container(
        &mut cleanup,
        &dormant,
        &["-p", &format!("{wanted}:80"), "--restart", "always"],
        &["httpd", "-f", "-p", "80"],
    );
    docker(&["stop", "-t", "1", &dormant]);
    let _plain = std::net::TcpListener::bind(("0.0.0.0", wanted)).unwrap();
    let _other = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    // A container blocked by a plain process: its finding names that process.
    let taken = free_port();
    let _taker = std::net::TcpListener::bind(("0.0.0.0", taken)).unwrap();
    assert_blocked(&mut cleanup, &unique("walkblocked"), taken);
    // A plain process beside a live binding, on another address of its port (the default
    // view does not read it: neither view shows it), and one on exactly the address of a
    // binding whose proxy died (read, or it would pass for the engine's).
    // Random host ports (`-p 127.0.0.1::80`), as busy hosts have them: no container asks
    // for these ports by number, only its live binding holds them.
    let beside = httpd_on_random_port(&mut cleanup, "walkrandom");
    let exact = httpd_on_random_port(&mut cleanup, "walkrandom");
    let _beside = std::net::TcpListener::bind(("127.0.0.2", beside)).unwrap();
    let proxy = scan_port(exact)["ports"][0]["pids"][0].as_u64().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &proxy.to_string()])
        .status()
        .unwrap()
        .success());
    let _exact = eventually(Duration::from_secs(10), || {
        std::net::TcpListener::bind(("127.0.0.1", exact)).ok()
    })
    .expect("the dead proxy's port");

    let default = json(&["scan", "--json"]);
    let full = json(&["scan", "--json", "--all"]);
    // Only this test's ports: tests running beside it change theirs between the two scans.
    let other = _other.local_addr().unwrap().port();
    let ours = |p: &serde_json::Value| {
        [published, wanted, taken, other, beside, exact]
            .iter()
            .any(|port| p["port"] == *port)
    };
    let docker_ports: Vec<&serde_json::Value> = full["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ours(p))
        .filter(|p| {
            p["owner"]["kind"] != "process" && p["owner"]["kind"] != "unknown"
                || p["findings"] != serde_json::json!([])
        })
        .collect();
    let shown: Vec<&serde_json::Value> = default["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ours(p))
        .collect();
    assert!(!shown.is_empty());
    assert_eq!(shown, docker_ports);
    let timeless = |doc: &serde_json::Value| -> Vec<serde_json::Value> {
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["ports"].as_array().unwrap().iter().any(ours))
            .map(|f| {
                let mut f = f.clone();
                strip_clock(&mut f);
                f
            })
            .collect()
    };
    assert_eq!(timeless(&default), timeless(&full));
    let f = findings_on(&default, wanted);
    assert_eq!(f[0]["kind"], "dormant-binding");
    // The plain socket on the dead proxy's address is its holder's, in both views: the
    // binding is a reservation with no socket, never that socket's owner.
    let on_exact: Vec<&serde_json::Value> = shown
        .iter()
        .copied()
        .filter(|p| p["port"] == exact)
        .collect();
    assert_eq!(on_exact.len(), 1, "{on_exact:#?}");
    assert_eq!(on_exact[0]["bound"], false, "{on_exact:#?}");
    assert_eq!(on_exact[0]["owner"]["via"], "reservation", "{on_exact:#?}");
    assert!(shown.iter().all(|p| p["ip"] != "127.0.0.2"));
    // The holder of the wanted port is named in the default view's facts too.
    let why = portreap()
        .args(["why", &wanted.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&why.stdout).contains("is held by process"));
}

/// `why PORT` and `scan --port` read less than a full scan: owners only for the sockets on
/// their ports, inspects only for the containers that can bear on them. Their answer must
/// equal the one computed from the full facts (`debug snapshot`, replayed).
#[test]
fn why_and_port_scans_equal_the_full_facts_on_their_ports() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let base = free_ports(8);
    let port = |i: u16| base + i;
    // A running container publishing two ports; a paused one publishing two.
    run_container(
        &mut cleanup,
        &unique("eqrun"),
        &[
            "-p",
            &format!("{}:80", port(0)),
            "-p",
            &format!("{}:81", port(1)),
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let paused = unique("eqpaused");
    run_container(
        &mut cleanup,
        &paused,
        &[
            "-p",
            &format!("{}:80", port(2)),
            "-p",
            &format!("{}:81", port(3)),
        ],
        &["httpd", "-f", "-p", "80"],
    );
    docker(&["pause", &paused]);
    // A plain process on a port an exited --restart always container wants.
    let dormant = unique("eqdormant");
    run_container(
        &mut cleanup,
        &dormant,
        &["-p", &format!("{}:80", port(4)), "--restart", "always"],
        &["httpd", "-f", "-p", "80"],
    );
    docker(&["stop", "-t", "1", &dormant]);
    let _plain = std::net::TcpListener::bind(("0.0.0.0", port(4))).unwrap();
    // A compose project superseded by the one its directory names today: the old one holds
    // a port the current one wants, and the current one's running member publishes an
    // unrelated port (it must be inspected all the same: the verdict needs its age).
    let dir = tempfile::tempdir().unwrap();
    let current = unique("eqcurrent").replace('-', "");
    let project_dir = dir.path().join(&current);
    std::fs::create_dir(&project_dir).unwrap();
    let working_dir = format!(
        "com.docker.compose.project.working_dir={}",
        project_dir.display()
    );
    let old_project = format!("com.docker.compose.project={current}old");
    let new_project = format!("com.docker.compose.project={current}");
    run_container(
        &mut cleanup,
        &unique("eqold"),
        &[
            "-l",
            &old_project,
            "-l",
            &working_dir,
            "-p",
            &format!("{}:80", port(5)),
        ],
        &["httpd", "-f", "-p", "80"],
    );
    std::thread::sleep(Duration::from_millis(1100));
    run_container(
        &mut cleanup,
        &unique("eqnew"),
        &[
            "-l",
            &new_project,
            "-l",
            &working_dir,
            "-p",
            &format!("{}:80", port(6)),
        ],
        &["httpd", "-f", "-p", "80"],
    );
    let blocked = unique("eqnewblocked");
    cleanup.container(&blocked);
    docker(&[
        "create",
        "--name",
        &blocked,
        "-l",
        &new_project,
        "-l",
        &working_dir,
        "-p",
        &format!("{}:80", port(5)),
        &image(),
        "httpd",
        "-f",
        "-p",
        "80",
    ]);

    let snapshot = tempfile::NamedTempFile::new().unwrap();
    let out = portreap().args(["debug", "snapshot"]).output().unwrap();
    assert!(out.status.success());
    std::fs::write(snapshot.path(), &out.stdout).unwrap();
    let full = snapshot.path().to_str().unwrap();
    // A plain holder's origin is read for the asked ports only (the full facts do not
    // walk every process's parents): context, not judgement, so it is left out here.
    let timeless = |mut doc: Value| -> Value {
        strip_clock(&mut doc);
        for port in doc["ports"].as_array_mut().into_iter().flatten() {
            port.as_object_mut().unwrap().remove("origin");
        }
        doc
    };
    for p in [port(0), port(2), port(4), port(5), port(6)] {
        let p = p.to_string();
        let live = timeless(json(&["why", &p, "--json"]));
        let replay = timeless(json(&["why", &p, "--json", "--snapshot", full]));
        assert_eq!(live["ports"], replay["ports"], "why {p}");
        assert_eq!(live["findings"], replay["findings"], "why {p}");
        assert_eq!(live["why"], replay["why"], "why {p}");
        assert!(!live["ports"].as_array().unwrap().is_empty(), "why {p}");
        let live = timeless(json(&["scan", "--json", "--port", &p]));
        let replay = timeless(json(&["scan", "--json", "--port", &p, "--snapshot", full]));
        assert_eq!(live["ports"], replay["ports"], "scan --port {p}");
        assert_eq!(live["findings"], replay["findings"], "scan --port {p}");
    }
    // The cases are the ones meant: each port's verdict.
    let kinds = |p: u16| -> Vec<String> {
        findings_on(&json(&["why", &p.to_string(), "--json"]), p)
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(kinds(port(2)).contains(&"paused-container".to_owned()));
    assert!(kinds(port(4)).contains(&"dormant-binding".to_owned()));
    assert!(kinds(port(5)).contains(&"orphaned-compose".to_owned()));
    assert!(kinds(port(0)).is_empty());
}

/// The default view takes running containers with nothing to judge (up two minutes, no
/// failing health check, their own network, no second compose project beside them) from
/// the engine's list instead of inspecting each: its ports, owners and findings must
/// equal the full answer's, an orphaned compose container among them. Waits the two
/// minutes the engine's status needs to say so.
#[test]
fn settled_containers_are_listed_not_inspected_with_the_same_answer() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let base = free_ports(3);
    let (plain, healthy, orphan) = (base, base + 1, base + 2);
    let names = [
        unique("settled"),
        unique("settledhealth"),
        unique("settledorphan"),
    ];
    let serve = ["httpd", "-f", "-p", "80"];
    run_container(
        &mut cleanup,
        &names[0],
        &["-p", &format!("{plain}:80")],
        &serve,
    );
    run_container(
        &mut cleanup,
        &names[1],
        &["-p", &format!("{healthy}:80"), "--health-cmd", "true"],
        &serve,
    );
    let gone = tempfile::tempdir().unwrap().path().join("shop");
    let label = |key: &str, value: &str| format!("com.docker.compose.{key}={value}");
    run_container(
        &mut cleanup,
        &names[2],
        &[
            "-p",
            &format!("{orphan}:80"),
            "-l",
            &label("project", &names[2].replace('-', "")),
            "-l",
            &label("service", "web"),
            "-l",
            &label("project.working_dir", &gone.display().to_string()),
        ],
        &serve,
    );
    let settled = |name: &String| {
        let status = docker(&[
            "ps",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.Status}}",
        ]);
        status.starts_with("Up 2 minutes") && !status.contains("starting")
    };
    eventually(Duration::from_secs(240), || {
        names.iter().all(settled).then_some(())
    })
    .expect("containers up for two minutes");

    let default = json(&["scan", "--json"]);
    let full = json(&["scan", "--json", "--all"]);
    let ours = |p: &&Value| {
        [plain, healthy, orphan]
            .iter()
            .any(|port| p["port"] == *port)
    };
    let mut shown: Vec<Value> = default["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(ours)
        .cloned()
        .collect();
    let mut complete: Vec<Value> = full["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter(ours)
        .cloned()
        .collect();
    assert_eq!(shown.len(), 6, "{shown:#?}");
    for entry in &shown {
        assert_eq!(entry["container"]["inspected"], false, "{entry:#}");
    }
    for entry in &complete {
        assert_eq!(entry["container"]["inspected"], true, "{entry:#}");
    }
    // What only the inspect tells; everything else must be equal, the creation time to
    // the second the list gives (the age guards read it: it was missing once).
    let forget_inspect = |entry: &mut Value| {
        let doc = entry["container"].as_object_mut().unwrap();
        for key in ["inspected", "started_at", "restart_policy"] {
            doc.remove(key);
        }
        let created = doc["created"].as_str().expect("a creation time").to_owned();
        doc["created"] = Value::from(&created[..19]);
    };
    shown
        .iter_mut()
        .chain(complete.iter_mut())
        .for_each(forget_inspect);
    assert_eq!(shown, complete);
    let health = |doc: &Value| {
        doc["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["port"] == healthy)
            .unwrap()["container"]["health"]
            .clone()
    };
    assert_eq!(health(&default), "healthy");
    assert_eq!(health(&full), "healthy");
    let mut findings = [default, full].map(|doc| {
        let mut found: Vec<Value> = doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["ports"].as_array().unwrap().iter().any(|p| ours(&p)))
            .cloned()
            .collect();
        for f in &mut found {
            strip_clock(f);
            forget_inspect(f);
        }
        found
    });
    assert_eq!(findings[0], findings[1]);
    let found = std::mem::take(&mut findings[0]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["kind"], "orphaned-compose");
    assert_eq!(found[0]["container"]["name"], names[2].as_str());
}

/// A container's port bindings never change, so portreap remembers them: `why` then
/// skips the inspect of a stopped container remembered to ask for other ports. The
/// answer with the cache warm must equal the first run's and `--no-cache`'s; the cache
/// is proven to decide (an entry rewritten to other ports hides the container); and a
/// file others can write, or an entry of another container, is not believed.
#[test]
fn remembered_bindings_spare_inspects_with_the_same_answer() {
    if !require_engine() {
        return;
    }
    let mut cleanup = Cleanup::default();
    let (asked, other) = (free_port(), free_port());
    let serve = ["httpd", "-f", "-p", "80"];
    let (wanter, bystander) = (unique("cachewanter"), unique("cachebystander"));
    for (name, port) in [(&wanter, asked), (&bystander, other)] {
        run_container(&mut cleanup, name, &["-p", &format!("{port}:80")], &serve);
        docker(&["stop", "-t", "1", name]);
    }
    let _plain = std::net::TcpListener::bind(("0.0.0.0", asked)).unwrap();
    let home = tempfile::tempdir().unwrap();
    let why = |extra: &[&str]| -> Value {
        let out = portreap()
            .env("XDG_CACHE_HOME", home.path())
            .args(["why", &asked.to_string(), "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert_success(&out);
        let mut doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        strip_clock(&mut doc);
        doc["why"].clone()
    };
    let wanters = |answer: &Value| -> Vec<String> {
        answer[0]["wanted_by"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let cold = why(&[]);
    assert!(wanters(&cold).contains(&wanter), "{cold:#}");
    assert!(!wanters(&cold).contains(&bystander), "{cold:#}");

    // What was remembered: each container's requested port, in a file only root reads.
    let file = home.path().join("portreap/bindings.json");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let mut cache: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let (wanter_id, bystander_id) = (container_id(&wanter), container_id(&bystander));
    let engine = remembered_by_engine(&mut cache, &wanter_id);
    let port_of = |entry: &Value| entry["requested"][0]["host_ports"]["start"].clone();
    assert_eq!(port_of(&engine[&wanter_id]), asked);
    assert_eq!(port_of(&engine[&bystander_id]), other);

    assert_eq!(why(&[]), cold);
    assert_eq!(why(&["--no-cache"]), cold);

    // The cache decides: the wanter, said to ask for another port, is not inspected.
    engine[&wanter_id]["requested"][0]["host_ports"] =
        serde_json::json!({"start": other, "end": other});
    let forged = engine[&wanter_id].clone();
    let write = |cache: &Value, mode: u32| {
        std::fs::write(&file, cache.to_string()).unwrap();
        let perms = std::os::unix::fs::PermissionsExt::from_mode(mode);
        std::fs::set_permissions(&file, perms).unwrap();
    };
    write(&cache, 0o600);
    assert_eq!(why(&["--no-cache"]), cold, "--no-cache reads no file");
    assert!(!wanters(&why(&[])).contains(&wanter));
    // Not believed: a file anyone can write, an entry made for another container.
    write(&cache, 0o666);
    assert_eq!(why(&[]), cold);
    let mut other_container = cache.clone();
    let entries = remembered_by_engine(&mut other_container, &wanter_id);
    entries[&wanter_id] = forged;
    entries[&wanter_id]["created"] = serde_json::json!(1);
    write(&other_container, 0o600);
    assert_eq!(why(&[]), cold);
}
