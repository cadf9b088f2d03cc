//! Endpoint resolution against fake environments and config directories.

use super::*;
use std::collections::HashMap;

struct MapEnv(HashMap<&'static str, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn env(pairs: &[(&'static str, &str)]) -> MapEnv {
    MapEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
}

#[test]
fn one_socket_by_two_paths_is_one_engine_and_two_sockets_of_one_name_are_two() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    std::os::unix::fs::symlink(&a, dir.path().join("via")).unwrap();
    let _one = std::os::unix::net::UnixListener::bind(a.join("docker.sock")).unwrap();
    let _two = std::os::unix::net::UnixListener::bind(b.join("docker.sock")).unwrap();
    let engine = |pid, path: PathBuf| crate::model::LocalEngine {
        pid,
        kind: crate::model::EngineKind::Docker,
        uid: 0,
        sockets: vec![format!("unix://{}", path.display())],
        own_mount_ns: false,
        mnt_ns: None,
        data_root: None,
    };
    let found = [
        engine(10, a.join("docker.sock")),
        engine(10, dir.path().join("via/docker.sock")),
        engine(11, b.join("docker.sock")),
    ];
    let ours: Vec<String> = local_sockets(None, &found, &env(&[]))
        .into_iter()
        .map(|e| e.url)
        .filter(|url| url.contains(dir.path().to_str().unwrap()))
        .collect();
    assert_eq!(
        ours,
        vec![
            format!("unix://{}", a.join("docker.sock").display()),
            format!("unix://{}", b.join("docker.sock").display()),
        ]
    );
}

fn write_context(dir: &Path, name: &str, host: &str) {
    let meta = dir.join("contexts/meta").join(format!("hash-of-{name}"));
    fs::create_dir_all(&meta).unwrap();
    let json = serde_json::json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}});
    fs::write(meta.join("meta.json"), json.to_string()).unwrap();
}

#[test]
fn precedence_flag_env_context_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().to_str().unwrap();
    write_context(
        dir.path(),
        "desk",
        "unix:///home/u/.docker/desktop/docker.sock",
    );
    fs::write(
        dir.path().join("config.json"),
        r#"{"currentContext":"desk"}"#,
    )
    .unwrap();

    let e = resolve(
        Some("tcp://h:1"),
        None,
        &env(&[("DOCKER_HOST", "unix:///x")]),
    )
    .unwrap();
    assert_eq!(
        (e.url.as_str(), &e.source),
        ("tcp://h:1", &Source::HostFlag)
    );

    let e = resolve(
        None,
        None,
        &env(&[("DOCKER_HOST", "unix:///x"), ("DOCKER_CONFIG", cfg)]),
    )
    .unwrap();
    assert_eq!(
        (e.url.as_str(), &e.source),
        ("unix:///x", &Source::DockerHost)
    );

    let e = resolve(None, None, &env(&[("DOCKER_CONFIG", cfg)])).unwrap();
    assert_eq!(e.url, "unix:///home/u/.docker/desktop/docker.sock");
    assert_eq!(e.source, Source::Context("desk".into()));
    assert_eq!(e.source.to_string(), "context desk");

    write_context(dir.path(), "other", "tcp://10.0.0.1:2375");
    let e = resolve(
        None,
        None,
        &env(&[("DOCKER_CONFIG", cfg), ("DOCKER_CONTEXT", "other")]),
    )
    .unwrap();
    assert_eq!(e.url, "tcp://10.0.0.1:2375");

    let e = resolve(
        None,
        None,
        &env(&[("DOCKER_CONFIG", cfg), ("DOCKER_CONTEXT", "default")]),
    )
    .unwrap();
    assert_eq!(
        (e.url.as_str(), &e.source),
        (DEFAULT_HOST, &Source::Context("default".into()))
    );

    let e = resolve(None, None, &env(&[])).unwrap();
    assert_eq!(e.url, DEFAULT_HOST);
}

#[test]
fn context_flag_wins_over_docker_host_and_docker_context() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().to_str().unwrap();
    write_context(dir.path(), "second", "unix:///run/podman/podman.sock");
    write_context(dir.path(), "desk", "unix:///desk.sock");
    let e = resolve(
        None,
        Some("second"),
        &env(&[
            ("DOCKER_CONFIG", cfg),
            ("DOCKER_HOST", "unix:///x"),
            ("DOCKER_CONTEXT", "desk"),
        ]),
    )
    .unwrap();
    assert_eq!(e.url, "unix:///run/podman/podman.sock");
    assert_eq!(e.source, Source::Context("second".into()));
    let err = resolve(None, Some("nope"), &env(&[("DOCKER_CONFIG", cfg)])).unwrap_err();
    assert!(
        matches!(&err, Error::ContextNotFound { context, .. } if context == "nope"),
        "{err}"
    );
    assert!(err.to_string().contains("docker context 'nope' not found"));
    assert_eq!(err.source(), Source::Context("nope".into()));
}

#[test]
fn home_dot_docker_is_the_default_config_dir() {
    let home = tempfile::tempdir().unwrap();
    let cfg = home.path().join(".docker");
    write_context(&cfg, "rootless", "unix:///run/user/1000/docker.sock");
    fs::write(
        cfg.join("config.json"),
        r#"{"auths":{},"currentContext":"rootless"}"#,
    )
    .unwrap();
    let e = resolve(None, None, &env(&[("HOME", home.path().to_str().unwrap())])).unwrap();
    assert_eq!(e.url, "unix:///run/user/1000/docker.sock");
}

#[test]
fn unknown_context_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = resolve(
        None,
        None,
        &env(&[
            ("DOCKER_CONFIG", dir.path().to_str().unwrap()),
            ("DOCKER_CONTEXT", "gone"),
        ]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("docker context 'gone' not found"),
        "{err}"
    );
}

#[test]
fn a_source_reads_back_as_written_and_names_only_real_contexts() {
    let sources = [
        Source::HostFlag,
        Source::DockerHost,
        Source::Context("my ctx".into()),
        Source::Context("default".into()),
        Source::Default,
        Source::Discovered("Docker engine pid 7 (uid 0)".into()),
    ];
    for source in sources {
        let json = serde_json::to_value(&source).unwrap();
        assert_eq!(json, source.to_string());
        assert_eq!(serde_json::from_value::<Source>(json).unwrap(), source);
    }
    assert!("test".parse::<Source>().is_err());
    assert_eq!(
        Source::Context("my ctx".into()).named_context(),
        Some("my ctx")
    );
    assert_eq!(Source::Context("default".into()).named_context(), None);
    assert_eq!(Source::DockerHost.named_context(), None);
}

#[test]
fn urls() {
    assert_eq!(
        parse_url("unix:///var/run/docker.sock"),
        Ok(Transport::Unix("/var/run/docker.sock".into()))
    );
    assert_eq!(
        parse_url("tcp://127.0.0.1:2375"),
        Ok(Transport::Tcp("127.0.0.1:2375".into()))
    );
    assert_eq!(
        parse_url("ssh://me@box"),
        Err(Error::UnsupportedScheme("ssh".into()))
    );
    assert!(parse_url("ssh://me@box")
        .unwrap_err()
        .to_string()
        .contains("'ssh://' is not supported"));
    assert!(parse_url("/var/run/docker.sock")
        .unwrap_err()
        .to_string()
        .contains("not an engine URL"));
    assert_eq!(
        parse_url("unix://"),
        Err(Error::NoSocketPath("unix://".into()))
    );
    assert_eq!(parse_url("tcp://"), Err(Error::NoHost("tcp://".into())));
}
