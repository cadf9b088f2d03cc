//! The request filter checked against the kernel's own rules, and dumps of real sockets.

use super::*;

/// The kernel's interpreter (`inet_diag_bc_run`) and its checks
/// (`inet_diag_bc_audit`), for the operations the filter uses.
fn run(code: &[u8], port: u16) -> bool {
    let mut at = 0usize;
    let mut len = code.len() as isize;
    while len > 0 {
        let op = &code[at..at + 4];
        let arg = u16::from_ne_bytes([code[at + 6], code[at + 7]]);
        let yes = match op[0] {
            INET_DIAG_BC_S_GE => port >= arg,
            INET_DIAG_BC_S_LE => port <= arg,
            INET_DIAG_BC_JMP => false,
            other => panic!("unexpected op {other}"),
        };
        let jump = if yes {
            usize::from(op[1])
        } else {
            usize::from(u16::from_ne_bytes([op[2], op[3]]))
        };
        at += jump;
        len -= jump as isize;
    }
    len == 0
}

/// The kernel's `valid_cc`: `target` bytes from the start lies on the chain of "yes"
/// jumps from the first instruction (or is the end).
fn valid_cc(code: &[u8], target: usize) -> bool {
    let mut at = 0;
    while at <= code.len() {
        if at == target {
            return true;
        }
        if at > target || at == code.len() {
            return false;
        }
        let yes = usize::from(code[at + 1]);
        if yes < 4 || yes % 4 != 0 {
            return false;
        }
        at += yes;
    }
    false
}

/// The kernel's `inet_diag_bc_audit`, for the operations the filter uses.
fn audit(code: &[u8]) {
    let mut at = 0;
    while at < code.len() {
        let len = code.len() - at;
        let yes = usize::from(code[at + 1]);
        let no = usize::from(u16::from_ne_bytes([code[at + 2], code[at + 3]]));
        assert!((4..=len).contains(&yes) && yes % 4 == 0, "{code:?} at {at}");
        assert!(no <= len + 4 && no % 4 == 0, "{code:?} at {at}");
        if no < len {
            assert!(
                valid_cc(code, at + no),
                "no-jump at {at} off the chain: {code:?}"
            );
        }
        at += if code[at] == INET_DIAG_BC_JMP { 4 } else { 8 };
    }
}

/// The listening (TCP) or bound (UDP) sockets.
fn dump(family: u8, proto: Proto, ports: Option<&[PortRange]>) -> io::Result<Vec<Socket>> {
    Ok(dump_states(family, proto, States::Listening, ports)?
        .into_iter()
        .map(|e| e.socket)
        .collect())
}

#[test]
fn the_filter_accepts_exactly_the_ranges() {
    let cases: &[&[(u16, u16)]] = &[
        &[(8080, 8080)],
        &[(1, 65535)],
        &[(80, 80), (443, 443), (8000, 8010)],
        &[(3000, 3002), (2999, 2999)],
    ];
    for ranges in cases {
        let ranges: Vec<PortRange> = ranges
            .iter()
            .map(|&(start, end)| PortRange { start, end })
            .collect();
        let code = bytecode(&ranges);
        audit(&code);
        for port in [
            0, 1, 79, 80, 81, 442, 443, 2999, 3000, 3001, 3002, 3003, 7999, 8000, 8005, 8010, 8011,
            8079, 8080, 8081, 65535,
        ] {
            let want = ranges.iter().any(|r| r.contains(port));
            assert_eq!(run(&code, port), want, "{ranges:?} port {port}");
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_answer_parses_or_is_refused(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)
    ) {
        let mut out = Vec::new();
        let ask = Ask {
            kind: SOCK_DIAG_BY_FAMILY,
            family: libc::AF_INET as u8,
            proto: Proto::Tcp,
            states: 0,
        };
        let _ = parse(&data, &ask, &mut out);
    }
}

#[test]
fn the_kernel_filters_as_asked() {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pb) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let all = dump(libc::AF_INET as u8, Proto::Tcp, None).unwrap();
    assert!(all.iter().any(|s| s.port == pa) && all.iter().any(|s| s.port == pb));
    let only = dump(
        libc::AF_INET as u8,
        Proto::Tcp,
        Some(&[PortRange { start: pa, end: pa }]),
    )
    .unwrap();
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(only[0].port, pa);
    // Several ranges: the kernel takes the program (it refused one off the yes-chain).
    let both = dump(
        libc::AF_INET as u8,
        Proto::Tcp,
        Some(&[
            PortRange { start: pa, end: pa },
            PortRange { start: 1, end: 1 },
            PortRange { start: pb, end: pb },
        ]),
    )
    .unwrap();
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(only[0].ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(only[0].inode != 0);
    let u = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let pu = u.local_addr().unwrap().port();
    let udp = dump(
        libc::AF_INET6 as u8,
        Proto::Udp,
        Some(&[PortRange { start: pu, end: pu }]),
    )
    .unwrap();
    assert_eq!(udp.len(), 1, "{udp:?}");
    assert_eq!(udp[0].ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
}

mod states_tests {
    use super::*;

    #[test]
    fn a_socket_bound_and_never_used_is_reported_with_state_close() {
        let s = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        let only = [PortRange {
            start: port,
            end: port,
        }];
        let found =
            dump_states(libc::AF_INET as u8, Proto::Tcp, States::Others, Some(&only)).unwrap();
        // Kernels before 6.8 do not dump the bind table at all.
        if let [entry] = found.as_slice() {
            assert_eq!(entry.state, 7, "{entry:?}");
            assert_eq!(entry.socket.port, port);
            assert_ne!(entry.socket.inode, 0);
        } else {
            assert!(found.is_empty(), "{found:?}");
        }
    }
}
