//! Property tests of every parser that reads outside input: port specs typed by users,
//! command lines and /proc files written by other programs, engine timestamps. None may
//! panic, whatever the bytes; valid input must round-trip.

use proptest::prelude::*;

use portreap::analyze::forwarder::{parse_conmon, parse_docker_proxy};
use portreap::host::procfs::{
    parse_cgroup_container_id, parse_cmdline, parse_passwd, parse_socket_link, parse_stat,
};
use portreap::model::Proto;
use portreap::portspec::PortSpec;
use portreap::time::parse_rfc3339;

fn args() -> impl Strategy<Value = Vec<String>> {
    let word = prop_oneof![
        Just("-proto".to_owned()),
        Just("-host-ip".to_owned()),
        Just("-host-port".to_owned()),
        Just("-container-ip".to_owned()),
        Just("-container-port".to_owned()),
        Just("-c".to_owned()),
        Just("-n".to_owned()),
        Just("--cid=".to_owned()),
        Just("tcp".to_owned()),
        Just("::".to_owned()),
        "[0-9]{1,6}",
        "[0-9a-f:.]{0,20}",
        ".{0,12}",
    ];
    prop::collection::vec(word, 0..14)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn port_specs_never_panic(text in ".{0,40}") {
        let _ = text.parse::<PortSpec>();
    }

    #[test]
    fn valid_port_specs_round_trip(start in 1u16..=65535, len in 0u16..100, udp in any::<bool>()) {
        let end = start.saturating_add(len);
        let text = if udp { format!("{start}-{end}/udp") } else { format!("{start}-{end}") };
        let spec: PortSpec = text.parse().unwrap();
        let proto = if udp { Proto::Udp } else { Proto::Tcp };
        prop_assert!(spec.matches(proto, end));
        prop_assert_eq!(spec.matches(Proto::Tcp, start), !udp);
        prop_assert!(start == 1 || !spec.matches(Proto::Udp, start - 1));
    }

    #[test]
    fn forwarder_command_lines_never_panic(line in args()) {
        let _ = parse_docker_proxy(&line);
        let _ = parse_conmon(&line);
    }

    #[test]
    fn a_parsed_proxy_is_what_the_command_line_says(
        port in 1u16..=65535, cport in 1u16..=65535, a in any::<u8>(), b in any::<u8>()
    ) {
        let ip = format!("172.17.{a}.{b}");
        let line: Vec<String> = format!(
            "/usr/sbin/docker-proxy -proto udp -host-ip 0.0.0.0 -host-port {port} -container-ip {ip} -container-port {cport}"
        ).split(' ').map(str::to_owned).collect();
        let t = parse_docker_proxy(&line).unwrap();
        prop_assert_eq!(t.proto, Proto::Udp);
        prop_assert_eq!((t.host_port, t.container_port), (port, cport));
        prop_assert_eq!(t.container_ip.to_string(), ip);
    }

    #[test]
    fn proc_files_never_panic(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_stat(&raw);
        let _ = parse_cmdline(&raw);
        let _ = parse_socket_link(&raw);
        let text = String::from_utf8_lossy(&raw);
        let _ = parse_cgroup_container_id(&text);
        let _ = parse_passwd(&text);
        let _ = parse_rfc3339(&text);
    }

    #[test]
    fn stat_lines_with_hostile_names_parse(name in "[^\\x00]{0,15}", ppid in any::<u32>(), start in any::<u64>()) {
        let line = format!("42 ({name}) S {ppid} 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0");
        let stat = parse_stat(line.as_bytes()).unwrap();
        prop_assert_eq!(stat.name, name);
        prop_assert_eq!(stat.ppid, ppid);
        prop_assert_eq!(stat.start_ticks, start);
    }

    #[test]
    fn timestamps_never_panic(text in "[0-9T:.Z+-]{0,40}") {
        let _ = parse_rfc3339(&text);
    }
}

/// Text with terminal escapes, controls and direction overrides mixed in.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\x1b]52;c;eA==\x07".to_owned()),
        Just("\x1b[2J".to_owned()),
        Just("\x1b[31m".to_owned()),
        Just("\u{9b}1m".to_owned()),
        Just("\u{202e}".to_owned()),
        Just("\n".to_owned()),
        Just("\r".to_owned()),
        "[\\x00-\\x1f\\x7f]{1,3}",
        ".{0,8}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

fn drives_a_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_shown_line_has_nothing_that_drives_a_terminal(text in hostile_text()) {
        let shown = portreap::report::safe::line(&text);
        prop_assert!(!shown.chars().any(drives_a_terminal), "{shown:?}");
    }

    #[test]
    fn the_last_guard_lets_through_newlines_and_colours_only(text in hostile_text()) {
        let shown = portreap::report::safe::text(&text);
        let mut rest: &str = &shown;
        while let Some(at) = rest.find(|c: char| c != '\n' && drives_a_terminal(c)) {
            // Only a colour sequence: ESC [ digits and ; then m.
            let seq = &rest[at..];
            let body = seq.strip_prefix("\x1b[");
            prop_assert!(body.is_some(), "{shown:?}");
            let body = body.unwrap_or_default();
            let params = body.bytes().take_while(|b| b.is_ascii_digit() || *b == b';').count();
            prop_assert_eq!(body.as_bytes().get(params), Some(&b'm'), "{:?}", shown);
            rest = &body[params + 1..];
        }
    }
}

proptest! {
    // Each case runs a shell.
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn a_quoted_word_is_read_back_by_a_shell_as_itself(word in "[^\\x00]{0,24}") {
        let quoted = portreap::shell::quote(&word);
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {quoted}")])
            .output()
            .unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&out.stdout), word);
    }
}
