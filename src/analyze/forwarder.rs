//! Recognising the processes that forward a published port into a container.

use std::net::IpAddr;

use crate::model::{known, EngineKind, HostFacts, Process, Proto};

/// What a `docker-proxy` command line says it forwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    /// Protocol forwarded.
    pub proto: Proto,
    /// Host address listened on.
    pub host_ip: Option<IpAddr>,
    /// Host port listened on.
    pub host_port: u16,
    /// Container address traffic goes to.
    pub container_ip: IpAddr,
    /// Container port traffic goes to.
    pub container_port: u16,
}

/// Whether the process calls itself Docker's userland proxy, by `comm` or by its program
/// path (`comm` is cut at 15 bytes and may be renamed). A claim only: see [`role`].
pub fn is_docker_proxy(process: &Process) -> bool {
    process.name == known::DOCKER_PROXY
        || process
            .cmdline
            .first()
            .is_some_and(|arg0| arg0.rsplit('/').next() == Some(known::DOCKER_PROXY))
}

/// Whether the process calls itself Podman's `conmon`, which holds a rootful container's
/// published ports while the container runs. A claim only: see [`role`].
pub fn is_conmon(process: &Process) -> bool {
    process.name == known::CONMON
}

/// What a socket-holding process proves to be, from what no unprivileged user can forge:
/// its executable, its user and its parent chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Docker's userland proxy, started by the engine with this PID, or by no engine
    /// alive (its engine is gone: the classic leak).
    DockerProxy {
        /// The engine among its ancestors.
        engine: Option<u32>,
    },
    /// Podman's container monitor, running as this user.
    Conmon {
        /// Its user (rootful Podman: 0).
        uid: u32,
    },
    /// A Docker engine itself (it holds published ports with the userland proxy off).
    Engine,
    /// A desktop or rootless engine's forwarder (never signalled), named by its product.
    Desktop(&'static str),
    /// An ordinary process.
    Plain,
    /// An ordinary process that calls itself a forwarder or an engine and is not one.
    Impostor {
        /// What it calls itself.
        claims: &'static str,
        /// What disproves it.
        why: String,
    },
}

/// Proves the role of `p`. A process that only calls itself a forwarder is an
/// [`Role::Impostor`]: the kernel's facts name the program it runs and its user, and a
/// real forwarder runs the engine's program, as the engine's user, below the engine.
pub fn role(host: &HostFacts, p: &Process) -> Role {
    if is_docker_proxy(p) {
        return proxy_role(host, p);
    }
    if is_conmon(p) {
        return match (&p.exe, p.uid) {
            (Some(exe), Some(uid)) if exe.is_trusted(known::CONMON) => Role::Conmon { uid },
            _ => impostor(known::CONMON, p, "the conmon installed by root"),
        };
    }
    if is_dockerd(p) {
        return if host.engine(p.pid).is_some() {
            Role::Engine
        } else {
            impostor(known::DOCKERD, p, "the dockerd installed by root")
        };
    }
    desktop_product(p).map_or(Role::Plain, Role::Desktop)
}

fn proxy_role(host: &HostFacts, p: &Process) -> Role {
    if !p
        .exe
        .as_ref()
        .is_some_and(|e| e.is_trusted(known::DOCKER_PROXY))
    {
        return impostor(known::DOCKER_PROXY, p, "the docker-proxy installed by root");
    }
    let engine = host
        .ancestors(p.pid)
        .find_map(|a| host.engine(a.pid).filter(|e| e.kind == EngineKind::Docker));
    // An engine starts its proxies as its own user; without an engine, only root's
    // (rootless proxies live in the engine's own network namespace, not here).
    let expected_uid = engine.map_or(0, |e| e.uid);
    if p.uid != Some(expected_uid) {
        let uid = p
            .uid
            .map_or("an unknown user".into(), |u| format!("uid {u}"));
        let whose = match engine {
            Some(e) => format!("its engine (pid {}) runs as uid {}", e.pid, e.uid),
            None => "no engine started it, and only root's proxies hold host ports".into(),
        };
        return Role::Impostor {
            claims: known::DOCKER_PROXY,
            why: format!("it runs as {uid}, and {whose}"),
        };
    }
    Role::DockerProxy {
        engine: engine.map(|e| e.pid),
    }
}

fn impostor(claims: &'static str, p: &Process, real: &str) -> Role {
    let why = match &p.exe {
        Some(exe) => format!(
            "it runs {}{}, not {real}",
            exe.path,
            if exe.owner == 0 && !exe.shared_write {
                String::new()
            } else {
                format!(" (a file of uid {} or writable by others)", exe.owner)
            }
        ),
        None => "its executable cannot be read, so it is not proven".into(),
    };
    Role::Impostor { claims, why }
}

/// The container id a `conmon` command line monitors (`-c ID` / `--cid ID`), and its name
/// (`-n NAME` / `--name NAME`).
pub fn parse_conmon(cmdline: &[String]) -> Option<(String, Option<String>)> {
    let mut id = None;
    let mut name = None;
    let mut args = cmdline.iter().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let slot = match flag {
            "-c" | "--cid" => &mut id,
            "-n" | "--name" => &mut name,
            _ => continue,
        };
        *slot = inline.or_else(|| args.next().cloned());
    }
    let id = id.filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_hexdigit()))?;
    Some((id, name))
}

/// The product whose port forwarder this process is, for engines that run in a VM or a
/// user namespace and forward published ports from a host process: Docker Desktop
/// (`com.docker.backend`, `vpnkit`, the WSL relay), OrbStack, Colima and Lima, rootless
/// Docker (`rootlesskit`) and rootless Podman (`rootlessport`). Such a process is never
/// signalled: it serves every container of its engine.
pub fn desktop_product(process: &Process) -> Option<&'static str> {
    let program = process
        .cmdline
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");
    let line = process.cmdline.join(" ").to_ascii_lowercase();
    known::DESKTOP_FORWARDERS
        .iter()
        .find(|f| f.is(&process.name, program, &line))
        .map(|f| f.product)
}

/// Whether the process calls itself the Docker engine (it holds reserving sockets when the
/// userland proxy is disabled). A claim only: see [`role`].
pub fn is_dockerd(process: &Process) -> bool {
    process.name == known::DOCKERD
}

/// Parses `docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 3000 -container-ip
/// 172.17.0.2 -container-port 80` (Go flag syntax: `-flag value`, `--flag value` or
/// `-flag=value`, in any order). Newer engines add flags such as `-use-listen-fd`, which are
/// ignored. `None` unless the target is complete.
pub fn parse_docker_proxy(cmdline: &[String]) -> Option<ProxyTarget> {
    let mut proto = None;
    let mut host_ip = None;
    let mut host_port = None;
    let mut container_ip = None;
    let mut container_port = None;
    let mut args = cmdline.iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        let wants_value = matches!(
            name,
            "proto" | "host-ip" | "host-port" | "container-ip" | "container-port"
        );
        if !wants_value {
            continue;
        }
        let Some(value) = inline.or_else(|| args.next().cloned()) else {
            break;
        };
        match name {
            "proto" => {
                proto = match value.as_str() {
                    "tcp" | "tcp4" | "tcp6" => Some(Proto::Tcp),
                    "udp" | "udp4" | "udp6" => Some(Proto::Udp),
                    _ => None,
                }
            }
            "host-ip" => host_ip = value.parse().ok(),
            "host-port" => host_port = value.parse().ok(),
            "container-ip" => container_ip = value.parse().ok(),
            "container-port" => container_port = value.parse().ok(),
            _ => {}
        }
    }
    Some(ProxyTarget {
        proto: proto?,
        host_ip,
        host_port: host_port?,
        container_ip: container_ip?,
        container_port: container_port?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_engine_20_command_line() {
        let t = parse_docker_proxy(&args(
            "/usr/sbin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 3000 -container-ip 172.17.0.2 -container-port 80",
        ))
        .unwrap();
        assert_eq!(t.proto, Proto::Tcp);
        assert_eq!(t.host_ip, Some("0.0.0.0".parse().unwrap()));
        assert_eq!(t.host_port, 3000);
        assert_eq!(t.container_ip, "172.17.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(t.container_port, 80);
    }

    #[test]
    fn parses_ipv6_udp_newer_flags_and_equals_syntax() {
        let t = parse_docker_proxy(&args(
            "docker-proxy -proto udp -host-ip :: -host-port 53 -container-ip 172.17.0.3 -container-port 5353 -use-listen-fd",
        ))
        .unwrap();
        assert_eq!(
            (t.proto, t.host_port, t.container_port),
            (Proto::Udp, 53, 5353)
        );
        assert_eq!(t.host_ip, Some("::".parse().unwrap()));
        let t = parse_docker_proxy(&args(
            "docker-proxy --container-port=80 -use-listen-fd -proto=tcp --host-port=8080 -container-ip=fd00::2",
        ))
        .unwrap();
        assert_eq!(t.container_ip, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(t.host_ip, None);
    }

    #[test]
    fn incomplete_or_garbage_is_none() {
        assert_eq!(
            parse_docker_proxy(&args("docker-proxy -proto tcp -host-port")),
            None
        );
        assert_eq!(
            parse_docker_proxy(&args(
                "docker-proxy -proto sctp -host-port 1 -container-ip 1.2.3.4 -container-port 2"
            )),
            None
        );
        assert_eq!(
            parse_docker_proxy(&args(
                "docker-proxy -proto tcp -host-port 99999 -container-ip 1.2.3.4 -container-port 2"
            )),
            None
        );
        assert_eq!(parse_docker_proxy(&[]), None);
    }

    #[test]
    fn parses_conmon_command_lines() {
        let line = args("/usr/bin/conmon --api-version 1 -c 294a7c855e99 -u 294a7c855e99 -r /usr/bin/runc -b /var/lib/x -n pm1 --exit-dir /run/libpod/exits");
        assert_eq!(
            parse_conmon(&line),
            Some(("294a7c855e99".into(), Some("pm1".into())))
        );
        assert_eq!(
            parse_conmon(&args("conmon --cid=abc123 --name=web")),
            Some(("abc123".into(), Some("web".into())))
        );
        assert_eq!(parse_conmon(&args("conmon -n web")), None);
        assert_eq!(parse_conmon(&args("conmon -c not-hex")), None);
        assert_eq!(parse_conmon(&args("conmon -c")), None);
    }

    /// Process tables as these products show them in `/proc` (name, command line).
    #[test]
    fn recognises_desktop_and_rootless_forwarders() {
        let table = [
            ("com.docker.back", "/opt/docker-desktop/bin/com.docker.backend --addr unix:///home/u/.docker/desktop/backend.sock", Some("Docker Desktop")),
            ("vpnkit-bridge", "/usr/bin/vpnkit-bridge --addr listen://1999 host", Some("Docker Desktop")),
            ("docker-desktop-", "/mnt/wsl/docker-desktop/docker-desktop-user-distro proxy --distro-name Ubuntu", Some("Docker Desktop")),
            ("wslrelay.exe", "wslrelay.exe --mode 2 --vm-id {x}", Some("Docker Desktop (WSL)")),
            ("limactl", "/usr/local/bin/limactl hostagent --pidfile /home/u/.colima/_lima/colima/ha.pid colima", Some("Colima")),
            ("ssh", "ssh -F /dev/null -o IdentityFile=/home/u/.lima/_config/user -L 127.0.0.1:8080:127.0.0.1:8080 lima-default", Some("Lima")),
            ("limactl", "/usr/bin/limactl hostagent --pidfile /home/u/.lima/default/ha.pid default", Some("Lima")),
            ("rootlesskit", "rootlesskit --net=slirp4netns --mtu=65520 --port-driver=builtin --copy-up=/etc /usr/bin/dockerd-rootless.sh", Some("rootless Docker")),
            ("rootlessport", "rootlessport", Some("rootless Podman")),
            ("OrbStack Helper", "/Applications/OrbStack.app/Contents/Frameworks/OrbStack Helper.app", Some("OrbStack")),
            ("docker-proxy", "/usr/sbin/docker-proxy -proto tcp -host-port 80", None),
            ("nginx", "nginx: master process /usr/sbin/nginx", None),
            ("ssh", "ssh -L 8080:localhost:80 build-box", None),
        ];
        for (name, line, expected) in table {
            let p = Process {
                name: name.into(),
                cmdline: line.split(' ').map(str::to_owned).collect(),
                ..Process::default()
            };
            assert_eq!(desktop_product(&p), expected, "{name}: {line}");
            // The walk's sieve reads the same table: what is recognised is also read.
            assert!(expected.is_none() || known::may_forward(name), "{name}");
            let never = crate::analyze::findings::never_act(&p);
            assert_eq!(never.is_some(), expected.is_some(), "{name}: {never:?}");
        }
    }

    #[test]
    fn recognises_proxies_by_name_or_path() {
        let mut p = Process {
            name: "docker-proxy".into(),
            ..Process::default()
        };
        assert!(is_docker_proxy(&p));
        p.name = "renamed".into();
        p.cmdline = vec!["/usr/libexec/docker/docker-proxy".into()];
        assert!(is_docker_proxy(&p));
        p.cmdline = vec!["/usr/bin/my-docker-proxy-thing".into()];
        assert!(!is_docker_proxy(&p));
    }
}
