//! Parsers for the `/proc` files portreap reads. Pure functions over file contents, so the
//! odd cases (names with spaces and parentheses, non-UTF-8 command lines, cgroup layouts of
//! every driver) are unit-tested without a live process.

/// The fields of `/proc/PID/stat` that portreap uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Command name (`comm`), may contain spaces and parentheses.
    pub name: String,
    /// State (`R`, `S`, `Z` for a zombie that has ended, ...).
    pub state: char,
    /// Parent PID.
    pub ppid: u32,
    /// Session id: the PID of the session's leader (a login shell, or a daemon that
    /// called setsid).
    pub session: u32,
    /// Controlling terminal as the kernel encodes it (`tty_nr`); 0 for none.
    pub tty_nr: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The name sits between the first `(` and the *last* `)`,
/// because a process may call itself `a) b (c`.
pub fn parse_stat(raw: &[u8]) -> Option<Stat> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let name = String::from_utf8_lossy(&raw[open + 1..close]).into_owned();
    let rest = std::str::from_utf8(raw.get(close + 1..)?).ok()?;
    // After the name: state(3) ppid(4) pgrp(5) session(6) tty_nr(7) ... starttime(22);
    // index 0 here is field 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(Stat {
        name,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        tty_nr: fields.get(4)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Names a controlling terminal from its `tty_nr` the way `ps` does (`pts/3`, `tty1`);
/// `None` for no terminal. The device number packs the major in bits 8-19 and the minor
/// in bits 0-7 and 20-31.
pub fn tty_name(tty_nr: u32) -> Option<String> {
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    Some(match major {
        // Unix98 pseudo-terminals take majors 136-143, 256 minors each.
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("tty {major}:{minor}"),
    })
}

/// Splits `/proc/PID/cmdline` into arguments. Arguments that are not UTF-8 are decoded
/// lossily: they are shown to people and matched against ASCII flags, never executed.
pub fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Finds the container id in `/proc/PID/cgroup`, whatever the cgroup driver:
/// `/docker/<id>` (cgroupfs), `/system.slice/docker-<id>.scope` (systemd),
/// `/libpod-<id>` and `libpod-conmon-<id>` (Podman), nested `/docker/<id>/...` paths.
pub fn parse_cgroup_container_id(raw: &str) -> Option<String> {
    for line in raw.lines() {
        // hierarchy-id:controllers:path
        let Some(path) = line.splitn(3, ':').nth(2) else {
            continue;
        };
        for component in path.split('/') {
            let component = component.strip_suffix(".scope").unwrap_or(component);
            let candidate = ["docker-", "libpod-", "cri-containerd-", "crio-"]
                .iter()
                .find_map(|prefix| component.strip_prefix(prefix))
                .unwrap_or(component);
            if is_container_id(candidate) {
                return Some(candidate.to_owned());
            }
        }
    }
    None
}

/// Extracts the inode from a `/proc/PID/fd/N` link target of the form `socket:[12345]`.
pub fn parse_socket_link(target: &[u8]) -> Option<u32> {
    let inner = target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// The listening unix sockets of `/proc/net/unix` that are bound to a path, as (inode,
/// path). Abstract sockets (`@name`) have no file to reach, and are left out.
pub fn parse_unix_listeners(raw: &str) -> Vec<(u32, String)> {
    // Num: RefCount Protocol Flags Type St Inode Path; __SO_ACCEPTCON marks a listener.
    const ACCEPTCON: u32 = 0x0001_0000;
    raw.lines()
        .skip(1)
        .filter_map(|line| {
            // Seven fields, then the path, which may itself hold spaces; the inode is
            // padded, so fields are split on runs of spaces.
            let mut rest = line.trim_start();
            let mut fields = [""; 7];
            for field in &mut fields {
                let end = rest.find(' ').unwrap_or(rest.len());
                *field = &rest[..end];
                rest = rest[end..].trim_start_matches(' ');
            }
            let flags = u32::from_str_radix(fields[3], 16).ok()?;
            let inode = fields[6].parse().ok()?;
            let path = rest.trim_end();
            (flags & ACCEPTCON != 0 && path.starts_with('/')).then(|| (inode, path.to_owned()))
        })
        .collect()
}

/// `(uid, name)` pairs of a passwd file; malformed lines are skipped.
pub fn parse_passwd(raw: &str) -> Vec<(u32, String)> {
    raw.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            (!name.is_empty()).then(|| (uid, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0b17663780e62005a0630698a8082781dbc238a3bf5acc66843ce33f4c589a50";

    #[test]
    fn stat_with_plain_and_hostile_names() {
        let raw = b"2676 (docker-proxy) S 2428 2428 2428 0 -1 1077936384 1119 0 0 0 0 0 0 0 20 0 8 0 123456 1 2 3";
        assert_eq!(
            parse_stat(raw),
            Some(Stat {
                name: "docker-proxy".into(),
                state: 'S',
                ppid: 2428,
                session: 2428,
                tty_nr: 0,
                start_ticks: 123456
            })
        );
        let raw = b"7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0";
        assert_eq!(parse_stat(raw).unwrap().name, "a) b (c");
        assert_eq!(parse_stat(raw).unwrap().start_ticks, 99);
        assert_eq!(parse_stat(raw).unwrap().state, 'R');
        let raw = b"7 (\xff\xfe) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0";
        assert_eq!(parse_stat(raw).unwrap().name, "\u{fffd}\u{fffd}");
        assert_eq!(parse_stat(b"7 (x) R 1"), None);
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b") ("), None);
    }

    #[test]
    fn terminals_named_as_ps_names_them() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name(34816).as_deref(), Some("pts/0"));
        assert_eq!(tty_name(34819).as_deref(), Some("pts/3"));
        // pts/300: major 137, minor 44.
        assert_eq!(tty_name((137 << 8) | 44).as_deref(), Some("pts/300"));
        // pts/1000 needs the high minor bits: major 139, minor 232.
        assert_eq!(tty_name((139 << 8) | 232).as_deref(), Some("pts/1000"));
        assert_eq!(tty_name(1025).as_deref(), Some("tty1"));
        assert_eq!(tty_name((4 << 8) | 64).as_deref(), Some("ttyS0"));
        assert_eq!(tty_name((5 << 8) | 1).as_deref(), Some("tty 5:1"));
        let raw = b"9 (node) S 1 9 4 34819 9 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0";
        let stat = parse_stat(raw).unwrap();
        assert_eq!((stat.session, stat.tty_nr), (4, 34819));
    }

    #[test]
    fn cmdline_splits_on_nul_and_tolerates_garbage() {
        assert_eq!(
            parse_cmdline(b"/usr/sbin/docker-proxy\0-proto\0tcp\0"),
            vec!["/usr/sbin/docker-proxy", "-proto", "tcp"]
        );
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        assert_eq!(parse_cmdline(b"a\0\xff\0"), vec!["a", "\u{fffd}"]);
        // Processes that rewrite their title use spaces, not NULs.
        assert_eq!(parse_cmdline(b"nginx: worker"), vec!["nginx: worker"]);
    }

    #[test]
    fn cgroup_layouts_of_every_driver() {
        let v1 = format!("12:pids:/docker/{ID}\n0::/docker/{ID}\n");
        assert_eq!(parse_cgroup_container_id(&v1).as_deref(), Some(ID));
        let systemd = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse_cgroup_container_id(&systemd).as_deref(), Some(ID));
        let podman = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        assert_eq!(parse_cgroup_container_id(&podman).as_deref(), Some(ID));
        let nested = format!("0::/docker/{ID}/docker/abc\n");
        assert_eq!(parse_cgroup_container_id(&nested).as_deref(), Some(ID));
        assert_eq!(
            parse_cgroup_container_id("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
        assert_eq!(parse_cgroup_container_id("0::/\n"), None);
        assert_eq!(parse_cgroup_container_id("garbage"), None);
        // Upper-case hex is not an id Docker produces.
        let upper = format!("0::/docker/{}\n", ID.to_uppercase());
        assert_eq!(parse_cgroup_container_id(&upper), None);
    }

    #[test]
    fn passwd_lines() {
        let raw = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n# c\nbad\n:x:5:5::/:/\n";
        assert_eq!(
            parse_passwd(raw),
            vec![(0, "root".into()), (1000, "alice".into())]
        );
    }

    #[test]
    fn unix_listeners() {
        let raw = "Num       RefCount Protocol Flags    Type St Inode Path\n\
0000000000000000: 00000002 00000000 00010000 0001 01  5619 /var/run/docker.sock\n\
0000000000000000: 00000003 00000000 00000000 0001 03 5620 /var/run/docker.sock\n\
0000000000000000: 00000002 00000000 00010000 0001 01 5621 @/containerd-shim/x.sock\n\
0000000000000000: 00000002 00000000 00010000 0001 01 5622 /run/a dir/with spaces.sock\n\
0000000000000000: 00000002 00000000 00000000 0002 01 5623 /run/systemd/notify\n";
        assert_eq!(
            parse_unix_listeners(raw),
            vec![
                (5619, "/var/run/docker.sock".to_owned()),
                (5622, "/run/a dir/with spaces.sock".to_owned())
            ]
        );
    }

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link(b"socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link(b"pipe:[12345]"), None);
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
    }
}
