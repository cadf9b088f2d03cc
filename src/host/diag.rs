//! Listening sockets from the kernel's `sock_diag` netlink interface, asked narrowly.
//!
//! `netstat2` dumps every TCP socket in every state and filters afterwards; a busy host
//! has tens of thousands of connections for a few hundred listeners. Here the kernel is
//! asked for listening TCP sockets only and, when only some ports matter (`why PORT`),
//! filters them itself with the same bytecode `ss 'sport = :PORT'` sends.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket as Netlink, Type};

use crate::model::{Proto, Socket};
use crate::portspec::PortRange;

// libc names the netlink constants; sock_diag's own (`linux/sock_diag.h`,
// `linux/inet_diag.h`) and the TCP states it does not.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The older request (`struct inet_diag_req`), TCP only. The kernel dumps it for both
/// families at once (`inet_diag_dump_compat` asks for `AF_UNSPEC`), so the tables are
/// walked once instead of once per family: the established table alone is walked
/// bucket by bucket whatever it holds (262,144 buckets on a 24 GiB machine, ~1.5 ms).
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_HDRLEN: usize = 16;
const INET_DIAG_REQ_BYTECODE: u16 = 1;
const INET_DIAG_BC_NOP: u8 = 0;
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;
/// The attribute every IPv6 socket's answer carries: whether it is `IPV6_V6ONLY`.
const INET_DIAG_SKV6ONLY: u16 = 11;
const TCP_LISTEN: u32 = 10;
/// `struct inet_diag_msg`: family, state, timer, retrans, the socket id (48 bytes),
/// expires, rqueue, wqueue, uid, inode.
const DIAG_MSG_LEN: usize = 72;

/// Which TCP sockets to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum States {
    /// Listening ones (UDP: every bound one, whatever is asked).
    Listening,
    /// Every other state, bound-inactive included (kernels before 6.8 leave those out).
    Others,
}

impl States {
    fn mask(self, proto: Proto) -> u32 {
        match (proto, self) {
            // A bound UDP socket is in state CLOSE, or ESTABLISHED once connected; both
            // hold the port.
            (Proto::Udp, _) => u32::MAX,
            (Proto::Tcp, States::Listening) => 1 << TCP_LISTEN,
            (Proto::Tcp, States::Others) => !(1 << TCP_LISTEN),
        }
    }
}

/// One socket of a dump, with what only some callers need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The socket.
    pub socket: Socket,
    /// Its TCP state as the kernel numbers it.
    pub state: u8,
    /// The remote end, when connected.
    pub peer: Option<SocketAddr>,
    /// The pending timer's expiry in milliseconds (TIME_WAIT's is the port's release).
    pub expires_ms: u32,
}

/// How many port ranges are filtered by the kernel; longer lists (rare: `why` with many
/// separate ports) are dumped whole and filtered here, which stays correct and costs one
/// full dump.
pub const MAX_FILTERED_RANGES: usize = 15;

/// The `proto` sockets in `states` of one address family (`AF_INET` or `AF_INET6`),
/// those whose port is in `ports` if given (at most [`MAX_FILTERED_RANGES`]), with their
/// states, peers and timers. Port 0 (unbound) is left out.
pub fn dump_states(
    family: u8,
    proto: Proto,
    states: States,
    ports: Option<&[PortRange]>,
) -> io::Result<Vec<Entry>> {
    let ask = Ask {
        kind: SOCK_DIAG_BY_FAMILY,
        family,
        proto,
        states: states.mask(proto),
    };
    dump(&ask, ports)
}

/// [`dump_states`] for TCP in both families at once, through the older request. Kernels
/// built without it answer an error: the caller then asks per family.
pub fn dump_tcp_states(states: States, ports: Option<&[PortRange]>) -> io::Result<Vec<Entry>> {
    let ask = Ask {
        kind: TCPDIAG_GETSOCK,
        family: libc::AF_INET as u8,
        proto: Proto::Tcp,
        states: states.mask(Proto::Tcp),
    };
    dump(&ask, ports)
}

/// One dump request's parameters.
struct Ask {
    /// The request's message type (the answer's carry the same).
    kind: u16,
    family: u8,
    proto: Proto,
    states: u32,
}

fn dump(ask: &Ask, ports: Option<&[PortRange]>) -> io::Result<Vec<Entry>> {
    let socket = Netlink::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(libc::NETLINK_SOCK_DIAG)),
    )?;
    socket.send(&request(ask, ports))?;
    let mut out = Vec::new();
    // Large reads: the kernel fills as many messages as fit, so a dump of thousands of
    // sockets takes a few dozen reads instead of hundreds.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A datagram socket: each read is one recv(2) of whole messages.
        let n = (&socket).read(&mut buf)?;
        if parse(&buf[..n], ask, &mut out)? {
            return Ok(out);
        }
    }
}

/// The dump request: `nlmsghdr`, `inet_diag_req_v2` (or the older `inet_diag_req`), and
/// the port filter if any.
fn request(ask: &Ask, ports: Option<&[PortRange]>) -> Vec<u8> {
    let protocol = match ask.proto {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    };
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    let mut req = Vec::with_capacity(128);
    req.extend_from_slice(&0u32.to_ne_bytes()); // length, set below
    req.extend_from_slice(&ask.kind.to_ne_bytes());
    req.extend_from_slice(&flags.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's

    // One TCP port asked: the socket id's source port too, which the kernel compares
    // before running the filter. (UDP's dump compares it in another byte order on some
    // kernels: the filter alone does there.)
    let mut id = [0u8; 48];
    if let (Some([only]), Proto::Tcp) = (ports, ask.proto) {
        if only.start == only.end {
            id[..2].copy_from_slice(&only.start.to_be_bytes());
        }
    }
    if ask.kind == TCPDIAG_GETSOCK {
        req.extend_from_slice(&[ask.family, 0, 0, 0]);
        req.extend_from_slice(&id);
        req.extend_from_slice(&ask.states.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes()); // tables: unused
    } else {
        req.extend_from_slice(&[ask.family, protocol, 0, 0]);
        req.extend_from_slice(&ask.states.to_ne_bytes());
        req.extend_from_slice(&id);
    }
    if let Some(ranges) = ports {
        let code = bytecode(ranges);
        let attr_len = 4 + code.len();
        req.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        req.extend_from_slice(&INET_DIAG_REQ_BYTECODE.to_ne_bytes());
        req.extend_from_slice(&code);
    }
    let len = req.len() as u32;
    req[..4].copy_from_slice(&len.to_ne_bytes());
    req
}

/// A filter program accepting a socket whose local port is in any of `ranges`. Per range:
/// "port >= start, else try the next range; port <= end, else try the next range", then,
/// between ranges, an always-taken jump to the end (accept). The kernel accepts a jump
/// target only if the chain of "yes" jumps from the start reaches it
/// (`inet_diag_bc_audit`), so each range's block must lie on that chain: the "yes" of
/// every comparison steps to the next instruction and the jump's "yes" to the next block,
/// as `ss` builds `or`. Landing exactly on the end accepts; one word past it rejects.
fn bytecode(ranges: &[PortRange]) -> Vec<u8> {
    const COMPARE: usize = 16;
    const JUMP: usize = 4;
    let total = ranges.len() * (COMPARE + JUMP) - JUMP;
    let op = |code: u8, yes: usize, no: usize| -> [u8; 4] {
        let [n0, n1] = (no as u16).to_ne_bytes();
        [code, yes as u8, n0, n1]
    };
    let value = |port: u16| -> [u8; 4] {
        let [p0, p1] = port.to_ne_bytes();
        [INET_DIAG_BC_NOP, 0, p0, p1]
    };
    let mut code = Vec::with_capacity(total);
    for (i, range) in ranges.iter().enumerate() {
        let at = i * (COMPARE + JUMP);
        let last = i + 1 == ranges.len();
        let next_or_reject = |from: usize| {
            if last {
                total - from + 4
            } else {
                at + COMPARE + JUMP - from
            }
        };
        code.extend_from_slice(&op(INET_DIAG_BC_S_GE, 8, next_or_reject(at)));
        code.extend_from_slice(&value(range.start));
        code.extend_from_slice(&op(INET_DIAG_BC_S_LE, 8, next_or_reject(at + 8)));
        code.extend_from_slice(&value(range.end));
        if !last {
            code.extend_from_slice(&op(INET_DIAG_BC_JMP, JUMP, total - (at + COMPARE)));
        }
    }
    code
}

/// Appends the sockets in one read of the dump to `out`; `true` once the dump is done.
fn parse(mut data: &[u8], ask: &Ask, out: &mut Vec<Entry>) -> io::Result<bool> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag answer");
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(data[..4].try_into().map_err(|_| bad())?) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(bad());
        }
        let body = &data[NLMSG_HDRLEN..len];
        match i32::from(kind) {
            libc::NLMSG_DONE => return Ok(true),
            libc::NLMSG_ERROR => {
                let errno = body
                    .get(..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(bad)?;
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(-errno));
                }
            }
            k if k == i32::from(ask.kind) && body.len() >= DIAG_MSG_LEN => {
                if let Some(entry) = entry_of(body, ask.proto) {
                    out.push(entry);
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        data = data.get(aligned..).unwrap_or(&[]);
    }
    Ok(false)
}

/// One `inet_diag_msg` and its attributes; `None` for an unbound socket or an unknown
/// family.
fn entry_of(msg: &[u8], proto: Proto) -> Option<Entry> {
    let family = i32::from(msg[0]);
    let port = u16::from_be_bytes([msg[4], msg[5]]);
    let peer_port = u16::from_be_bytes([msg[6], msg[7]]);
    let (src, dst) = (&msg[8..24], &msg[24..40]);
    let addr = |bytes: &[u8]| -> Option<IpAddr> {
        Some(match family {
            libc::AF_INET => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
            libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
            _ => return None,
        })
    };
    let ip = addr(src)?;
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(msg.get(at..at + 4)?.try_into().ok()?))
    };
    let peer_ip = addr(dst)?;
    let peer =
        (peer_port != 0 || !peer_ip.is_unspecified()).then(|| SocketAddr::new(peer_ip, peer_port));
    if port == 0 {
        return None;
    }
    Some(Entry {
        socket: Socket {
            proto,
            ip,
            port,
            inode: word(68)?,
            uid: word(64)?,
            pids: Vec::new(),
            v6only: (family == libc::AF_INET6)
                .then(|| v6only(&msg[DIAG_MSG_LEN..]))
                .flatten(),
        },
        state: msg[1],
        peer,
        expires_ms: word(52)?,
    })
}

/// The `INET_DIAG_SKV6ONLY` attribute among a message's attributes, if present.
fn v6only(mut attrs: &[u8]) -> Option<bool> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if kind == INET_DIAG_SKV6ONLY {
            return attrs.get(4).map(|b| *b != 0);
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests;
