//! Port specifications as users type them: `3000`, `3000/udp`, `8000-8100`, `80,443/tcp`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::Proto;

/// An inclusive range of ports; a single port is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    /// First port of the range.
    pub start: u16,
    /// Last port of the range, never below `start`.
    pub end: u16,
}

impl PortRange {
    /// Whether `port` lies inside the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One item of a port specification: a range, optionally limited to one protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSel {
    /// Ports selected.
    pub range: PortRange,
    /// `None` selects both TCP and UDP.
    pub proto: Option<Proto>,
}

impl PortSel {
    /// Whether a socket or binding on `proto`/`port` is selected.
    pub fn matches(&self, proto: Proto, port: u16) -> bool {
        self.range.contains(port) && self.proto.is_none_or(|p| p == proto)
    }
}

/// A parsed, comma-separated port specification. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec(pub Vec<PortSel>);

impl PortSpec {
    /// Whether any item selects `proto`/`port`.
    pub fn matches(&self, proto: Proto, port: u16) -> bool {
        self.0.iter().any(|sel| sel.matches(proto, port))
    }

    /// Whether any item selects a port of `range` on `proto`.
    pub fn overlaps(&self, proto: Proto, range: PortRange) -> bool {
        self.0.iter().any(|sel| {
            sel.proto.is_none_or(|p| p == proto)
                && sel.range.start <= range.end
                && range.start <= sel.range.end
        })
    }
}

/// Why a port specification was rejected; the message is meant for the user as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpecError(String);

impl fmt::Display for PortSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PortSpecError {}

fn parse_port(text: &str) -> Result<u16, PortSpecError> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortSpecError(format!(
            "'{text}' is not a port number (expected 1-65535)"
        )));
    }
    match text.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(PortSpecError(format!(
            "port {text} is out of range (expected 1-65535)"
        ))),
    }
}

fn parse_sel(item: &str) -> Result<PortSel, PortSpecError> {
    let (ports, proto) = match item.split_once('/') {
        Some((ports, proto)) => {
            let proto = match proto.trim().to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                other => {
                    return Err(PortSpecError(format!(
                        "unknown protocol '{other}' (expected tcp or udp)"
                    )))
                }
            };
            (ports, Some(proto))
        }
        None => (item, None),
    };
    let range = match ports.split_once('-') {
        Some((start, end)) => {
            let (start, end) = (parse_port(start)?, parse_port(end)?);
            if start > end {
                return Err(PortSpecError(format!(
                    "range {start}-{end} is reversed (write {end}-{start})"
                )));
            }
            PortRange { start, end }
        }
        None => {
            let port = parse_port(ports)?;
            PortRange {
                start: port,
                end: port,
            }
        }
    };
    Ok(PortSel { range, proto })
}

impl FromStr for PortSpec {
    type Err = PortSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Err(PortSpecError("empty port specification".into()));
        }
        text.split(',')
            .map(parse_sel)
            .collect::<Result<_, _>>()
            .map(PortSpec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(start: u16, end: u16, proto: Option<Proto>) -> PortSel {
        PortSel {
            range: PortRange { start, end },
            proto,
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!("3000".parse(), Ok(PortSpec(vec![sel(3000, 3000, None)])));
        assert_eq!(
            "3000/udp".parse(),
            Ok(PortSpec(vec![sel(3000, 3000, Some(Proto::Udp))]))
        );
        assert_eq!(
            "8000-8100".parse(),
            Ok(PortSpec(vec![sel(8000, 8100, None)]))
        );
        assert_eq!(
            "80,443/TCP, 53/udp".parse(),
            Ok(PortSpec(vec![
                sel(80, 80, None),
                sel(443, 443, Some(Proto::Tcp)),
                sel(53, 53, Some(Proto::Udp))
            ]))
        );
        assert_eq!("1-65535".parse(), Ok(PortSpec(vec![sel(1, 65535, None)])));
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for (input, reason) in [
            ("0", "port 0 is out of range"),
            ("65536", "port 65536 is out of range"),
            ("70000", "port 70000 is out of range"),
            ("99999999999999999999", "is out of range"),
            ("9-3", "range 9-3 is reversed"),
            ("abc", "'abc' is not a port number"),
            ("-5", "'' is not a port number"),
            ("+5", "'+5' is not a port number"),
            ("80/sctp", "unknown protocol 'sctp'"),
            ("80,", "'' is not a port number"),
            ("", "empty port specification"),
        ] {
            let err = input.parse::<PortSpec>().unwrap_err().to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
        }
    }

    #[test]
    fn matching_respects_protocol_and_range() {
        let spec: PortSpec = "8000-8002/tcp,53".parse().unwrap();
        assert!(spec.matches(Proto::Tcp, 8001));
        assert!(!spec.matches(Proto::Udp, 8001));
        assert!(spec.matches(Proto::Udp, 53));
        assert!(spec.matches(Proto::Tcp, 53));
        assert!(!spec.matches(Proto::Tcp, 8003));
    }
}
