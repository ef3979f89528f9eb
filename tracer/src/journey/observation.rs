//! One kernel event, decoded into userspace terms: the unit that is recorded, replayed and
//! correlated. Addresses become `Ipv4Addr`, ports host order; nothing is named yet.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use tracer_common::{PacketEvent, flags, kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Packet arriving on an interface (TC ingress).
    Ingress,
    /// Packet leaving through an interface (TC egress).
    Egress,
    /// Packet freed with a drop reason (`tp_btf/kfree_skb`).
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Ports (TCP/UDP), 0 for ICMP.
    pub sport: u16,
    pub dport: u16,
}

impl Tuple {
    pub fn reversed(self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..self
        }
    }

    pub fn protocol_name(self) -> &'static str {
        match self.proto {
            1 => "icmp",
            6 => "tcp",
            17 => "udp",
            132 => "sctp",
            _ => "ip",
        }
    }

    /// `10.244.102.137:41234 → 10.109.60.89:80` (no ports for ICMP).
    pub fn describe(self) -> String {
        if self.sport == 0 && self.dport == 0 {
            format!("{} → {}", self.src, self.dst)
        } else {
            format!("{}:{} → {}:{}", self.src, self.sport, self.dst, self.dport)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outer {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub vni: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub cpu: u32,
    pub hook: Hook,
    pub netns_cookie: u64,
    pub ifindex: u32,
    pub tuple: Tuple,
    pub ip_id: u16,
    pub ip_len: u16,
    pub ttl: u8,
    pub dont_fragment: bool,
    pub later_fragment: bool,
    pub tcp_seq: u32,
    pub tcp_ack: u32,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_id: u16,
    pub icmp_seq: u16,
    pub outer: Option<Outer>,
    pub drop_reason: u32,
    pub skb_len: u32,
    pub mark: u32,
}

fn ip(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

impl Observation {
    /// `None` for an event kind this build does not know.
    pub fn from_event(e: &PacketEvent) -> Option<Self> {
        let hook = match e.header.kind {
            kind::TC_INGRESS => Hook::Ingress,
            kind::TC_EGRESS => Hook::Egress,
            kind::KFREE_SKB => Hook::Drop,
            _ => return None,
        };
        Some(Self {
            ts_ns: e.header.ts_ns,
            cpu: e.header.cpu,
            hook,
            netns_cookie: e.header.netns_cookie,
            ifindex: e.ifindex,
            tuple: Tuple {
                proto: e.ip_proto,
                src: ip(e.saddr),
                dst: ip(e.daddr),
                sport: u16::from_be(e.sport),
                dport: u16::from_be(e.dport),
            },
            ip_id: u16::from_be(e.ip_id),
            ip_len: u16::from_be(e.ip_len),
            ttl: e.ttl,
            dont_fragment: e.flags & flags::DONT_FRAGMENT != 0,
            later_fragment: e.flags & flags::LATER_FRAGMENT != 0,
            tcp_seq: u32::from_be(e.tcp_seq),
            tcp_ack: u32::from_be(e.tcp_ack),
            tcp_flags: e.tcp_flags,
            icmp_type: e.icmp_type,
            icmp_code: e.icmp_code,
            icmp_id: u16::from_be(e.icmp_id),
            icmp_seq: u16::from_be(e.icmp_seq),
            outer: (e.flags & flags::ENCAPSULATED != 0).then(|| Outer {
                src: ip(e.outer_saddr),
                dst: ip(e.outer_daddr),
                sport: u16::from_be(e.outer_sport),
                dport: u16::from_be(e.outer_dport),
                vni: e.vni,
            }),
            drop_reason: e.drop_reason,
            skb_len: e.skb_len,
            mark: e.mark,
        })
    }

    /// `SYN`, `SYN,ACK`, `ACK,PSH`, … for TCP.
    pub fn tcp_flag_names(&self) -> String {
        const NAMES: [(u8, &str); 6] = [
            (0x02, "SYN"),
            (0x10, "ACK"),
            (0x08, "PSH"),
            (0x01, "FIN"),
            (0x04, "RST"),
            (0x20, "URG"),
        ];
        NAMES
            .iter()
            .filter(|(bit, _)| self.tcp_flags & bit != 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A one-word summary: `SYN`, `echo-request`, `dest-unreachable/frag-needed`, …
    pub fn summary(&self) -> String {
        match self.tuple.proto {
            6 => self.tcp_flag_names(),
            1 => match (self.icmp_type, self.icmp_code) {
                (8, _) => "echo-request".to_owned(),
                (0, _) => "echo-reply".to_owned(),
                (3, 4) => "frag-needed".to_owned(),
                (3, 3) => "port-unreachable".to_owned(),
                (3, 0) => "net-unreachable".to_owned(),
                (3, 1) => "host-unreachable".to_owned(),
                (3, c) => format!("unreachable/{c}"),
                (11, _) => "time-exceeded".to_owned(),
                (t, c) => format!("icmp {t}/{c}"),
            },
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{ABI_VERSION, EventHeader};

    use super::*;

    #[test]
    fn converts_byte_order_once() {
        let event = PacketEvent {
            header: EventHeader {
                kind: kind::TC_EGRESS,
                abi: ABI_VERSION,
                ..Default::default()
            },
            saddr: u32::from_ne_bytes([10, 244, 102, 137]),
            daddr: u32::from_ne_bytes([10, 109, 60, 89]),
            sport: 41234u16.to_be(),
            dport: 80u16.to_be(),
            ip_proto: 6,
            tcp_flags: 0x02,
            tcp_seq: 1000u32.to_be(),
            ..Default::default()
        };
        let obs = Observation::from_event(&event).unwrap();
        assert_eq!(
            obs.tuple.describe(),
            "10.244.102.137:41234 → 10.109.60.89:80"
        );
        assert_eq!(obs.tcp_seq, 1000);
        assert_eq!(obs.summary(), "SYN");
        assert_eq!(obs.hook, Hook::Egress);
        assert!(obs.outer.is_none());
    }
}
