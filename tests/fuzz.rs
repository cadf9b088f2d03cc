//! Property tests of every parser that reads outside input: port specs typed by users,
//! command lines and /proc files written by other programs, engine timestamps. None may
//! panic, whatever the bytes; valid input must round-trip.

use proptest::prelude::*;

use portreap::analyze::forwarder::{parse_conmon, parse_docker_proxy};
use portreap::analyze::time::parse_rfc3339;
use portreap::host::procfs::{
    parse_cgroup_container_id, parse_cmdline, parse_passwd, parse_socket_link, parse_stat,
};
use portreap::model::Proto;
use portreap::portspec::PortSpec;

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
