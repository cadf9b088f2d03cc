//! Recognising the processes that forward a published port into a container.

use std::net::IpAddr;

use crate::model::{Process, Proto};

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

/// Whether the process is Docker's userland proxy. The name is checked on both `comm` and
/// the program path, since `comm` is cut at 15 bytes and may be renamed.
pub fn is_docker_proxy(process: &Process) -> bool {
    process.name == "docker-proxy"
        || process
            .cmdline
            .first()
            .is_some_and(|arg0| arg0.rsplit('/').next() == Some("docker-proxy"))
}

/// Whether the process is Podman's `conmon`, which holds a rootful container's published
/// ports while the container runs.
pub fn is_conmon(process: &Process) -> bool {
    process.name == "conmon"
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
    let name = process.name.as_str();
    let program = process
        .cmdline
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");
    let line = process.cmdline.join(" ").to_ascii_lowercase();
    let is = |n: &str| name == n || program == n;
    if is("com.docker.backend")
        || name == "com.docker.back"
        || name.starts_with("vpnkit")
        || program.starts_with("vpnkit")
        || line.contains("docker-desktop")
    {
        Some("Docker Desktop")
    } else if is("wslrelay") || is("wslrelay.exe") {
        Some("Docker Desktop (WSL)")
    } else if line.contains("orbstack") || name.starts_with("OrbStack") {
        Some("OrbStack")
    } else if line.contains("colima") {
        Some("Colima")
    } else if is("limactl") || line.contains("/.lima/") {
        Some("Lima")
    } else if is("rootlesskit") || name == "rootlesskit" {
        Some("rootless Docker")
    } else if is("rootlessport") || name.starts_with("rootlessport") {
        Some("rootless Podman")
    } else {
        None
    }
}

/// Whether the process is the Docker engine itself (it holds reserving sockets when the
/// userland proxy is disabled).
pub fn is_dockerd(process: &Process) -> bool {
    process.name == "dockerd"
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
