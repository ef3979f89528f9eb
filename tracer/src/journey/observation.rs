//! One kernel event, decoded into userspace terms: the unit that is recorded, replayed and
//! correlated. Addresses become `Ipv4Addr`, ports host order; nothing is named yet.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use tracer_common::{PacketEvent, flags, kind};

use crate::events::KernelEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    /// Packet arriving on an interface (TC ingress).
    Ingress,
    /// Packet leaving through an interface (TC egress).
    Egress,
    /// Packet freed as a drop (`tp_btf/kfree_skb`), with the kernel's reason where it has one.
    Drop,
    /// The routing decision for a received packet (`tp_btf/fib_table_lookup`); `ifindex` is
    /// the input device and [`Observation::route`] what the lookup chose.
    Route,
    /// Netfilter rewriting the packet's addresses (`nf_nat_manip_pkt`, by fentry or
    /// kprobe): the packet as it was before; [`Observation::nat`] what it becomes.
    Nat,
}

impl Hook {
    /// Its number in recordings (every format): 0 ingress, 1 egress, 2 drop, 3 route
    /// lookup, 4 NAT rewrite. Written in files: never renumber.
    pub const fn number(self) -> u8 {
        match self {
            Self::Ingress => 0,
            Self::Egress => 1,
            Self::Drop => 2,
            Self::Route => 3,
            Self::Nat => 4,
        }
    }

    /// The hook numbered `number` in recordings; `None` for a number no format uses.
    pub const fn from_number(number: u8) -> Option<Self> {
        Some(match number {
            0 => Self::Ingress,
            1 => Self::Egress,
            2 => Self::Drop,
            3 => Self::Route,
            4 => Self::Nat,
            _ => return None,
        })
    }
}

/// A NAT rewrite as netfilter made it: which addresses it changed, and the conntrack
/// entry that says to what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatRewrite {
    /// The source (a masquerade, or a reply's un-DNAT) or the destination (a DNAT, or a
    /// reply's un-masquerade).
    pub manip: NatManip,
    /// Whether the packet travels its connection's reply direction.
    pub reply_direction: bool,
    /// The connection as its first packet set it up, and as its replies are expected.
    pub original: Tuple,
    pub reply: Tuple,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NatManip {
    Source,
    Destination,
}

impl NatRewrite {
    /// `packet` as the rewrite leaves it: conntrack makes a packet of one direction look
    /// like the reverse of the other direction's tuple, in the addresses it rewrites.
    pub fn apply(&self, packet: Tuple) -> Tuple {
        let other = if self.reply_direction {
            self.original
        } else {
            self.reply
        };
        let target = other.reversed();
        match self.manip {
            NatManip::Source => Tuple {
                src: target.src,
                sport: target.sport,
                ..packet
            },
            NatManip::Destination => Tuple {
                dst: target.dst,
                dport: target.dport,
                ..packet
            },
        }
    }
}

/// What one FIB table lookup chose, as the kernel reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RouteChoice {
    /// 254 main, 255 local, …
    pub table: u32,
    pub gateway: Option<Ipv4Addr>,
    /// The output device's interface index; 0 when none.
    pub oif: u32,
    /// 0 a route matched; a negative errno otherwise (`-EAGAIN` nothing matched).
    pub err: i32,
}

impl RouteChoice {
    /// `main`, `local`, `default`, or the number.
    pub fn table_name(&self) -> String {
        match self.table {
            253 => "default".to_owned(),
            254 => "main".to_owned(),
            255 => "local".to_owned(),
            n => n.to_string(),
        }
    }

    /// What kind of answer the lookup gave, in `ip route`'s words: `unicast` (or `local`,
    /// told by the caller from the device), `none` when nothing matched, or the kind of
    /// route that refuses the packet.
    pub fn outcome(&self) -> &'static str {
        const EAGAIN: i32 = 11;
        const EINVAL: i32 = 22;
        const EACCES: i32 = 13;
        const EHOSTUNREACH: i32 = 113;
        match -self.err {
            0 => "unicast",
            EAGAIN => "none",
            EINVAL => "blackhole",
            EACCES => "prohibit",
            EHOSTUNREACH => "unreachable",
            _ => "error",
        }
    }
}

/// The IP protocol of a packet, by its number in the IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpProto {
    Icmp,
    Tcp,
    Udp,
    Sctp,
    Other(u8),
}

impl IpProto {
    pub const fn from_number(number: u8) -> Self {
        match number {
            1 => Self::Icmp,
            6 => Self::Tcp,
            17 => Self::Udp,
            132 => Self::Sctp,
            n => Self::Other(n),
        }
    }

    pub const fn number(self) -> u8 {
        match self {
            Self::Icmp => 1,
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
            Self::Other(n) => n,
        }
    }

    /// `tcp`, `udp`, `icmp`, `sctp`; `ip` for the rest.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Icmp => "icmp",
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
            Self::Other(_) => "ip",
        }
    }
}

impl std::fmt::Display for IpProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// As its name (`"tcp"`), which is how journeys have always spelled it.
impl Serialize for IpProto {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for IpProto {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(match name.as_ref() {
            "icmp" => Self::Icmp,
            "tcp" => Self::Tcp,
            "udp" => Self::Udp,
            "sctp" => Self::Sctp,
            _ => Self::Other(0),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    pub proto: IpProto,
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
    /// UDP only: `tracer_common::payload_hash` of the first 8 payload bytes; 0 for other
    /// protocols, shorter payloads, and recordings from before it was captured (format 3
    /// and older).
    #[serde(default)]
    pub payload_hash: u32,
    pub outer: Option<Outer>,
    pub drop_reason: u32,
    /// Drops only: the kernel gave no reason (its `kfree_skb` tracepoint has none before
    /// Linux 5.17, or `follow --drop-hook no-reason`); `drop_reason` is then meaningless.
    pub reason_unknown: bool,
    /// Drops only: another `sk_buff` still shares this one's data when it is freed (the
    /// kernel's `skb_cloned()`): a copy of the packet dies, not necessarily the packet
    /// (`journey::fate`).
    pub shared_data: bool,
    pub skb_len: u32,
    pub mark: u32,
    /// Route observations only: what the lookup chose.
    pub route: Option<RouteChoice>,
    /// NAT observations only: the rewrite.
    pub nat: Option<NatRewrite>,
}

fn ip(raw: u32) -> Ipv4Addr {
    Ipv4Addr::from(raw.to_ne_bytes())
}

impl Observation {
    /// `None` for an event kind this build does not know.
    pub fn from_kernel(event: &KernelEvent) -> Option<Self> {
        match event {
            KernelEvent::Packet(p) => Self::from_event(p),
            KernelEvent::Route(r) => {
                let mut obs = Self::from_event(&r.packet)?;
                obs.route = Some(RouteChoice {
                    table: r.table,
                    gateway: (r.gateway != 0).then(|| ip(r.gateway)),
                    oif: r.oif,
                    err: r.err,
                });
                Some(obs)
            }
            KernelEvent::Nat(n) => {
                let mut obs = Self::from_event(&n.packet)?;
                let tuple = |t: &tracer_common::CtTuple| {
                    let proto = IpProto::from_number(t.proto);
                    // ICMP's "ports" in conntrack are the echo id and the type/code:
                    // packets' tuples carry none.
                    let ports = proto != IpProto::Icmp;
                    Tuple {
                        proto,
                        src: ip(t.saddr),
                        dst: ip(t.daddr),
                        sport: if ports { u16::from_be(t.sport) } else { 0 },
                        dport: if ports { u16::from_be(t.dport) } else { 0 },
                    }
                };
                // The kernel side writes zeros for a tuple it could not read: no rewrite
                // is known then, and explanation infers it as on a kernel without the hook.
                let unreadable = |t: &tracer_common::CtTuple| t.saddr == 0 || t.daddr == 0;
                if unreadable(&n.original) || unreadable(&n.reply) {
                    return Some(obs);
                }
                obs.nat = Some(NatRewrite {
                    manip: if n.manip == tracer_common::manip::SRC {
                        NatManip::Source
                    } else {
                        NatManip::Destination
                    },
                    reply_direction: n.dir != 0,
                    original: tuple(&n.original),
                    reply: tuple(&n.reply),
                });
                Some(obs)
            }
        }
    }

    /// `None` for an event kind this build does not know.
    pub fn from_event(e: &PacketEvent) -> Option<Self> {
        let hook = match e.header.kind {
            kind::TC_INGRESS => Hook::Ingress,
            kind::TC_EGRESS => Hook::Egress,
            kind::KFREE_SKB => Hook::Drop,
            kind::FIB_LOOKUP => Hook::Route,
            kind::NAT => Hook::Nat,
            _ => return None,
        };
        Some(Self {
            ts_ns: e.header.ts_ns,
            cpu: e.header.cpu,
            hook,
            netns_cookie: e.header.netns_cookie,
            ifindex: e.ifindex,
            tuple: Tuple {
                proto: IpProto::from_number(e.ip_proto),
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
            payload_hash: e.payload_hash,
            outer: (e.flags & flags::ENCAPSULATED != 0).then(|| Outer {
                src: ip(e.outer_saddr),
                dst: ip(e.outer_daddr),
                sport: u16::from_be(e.outer_sport),
                dport: u16::from_be(e.outer_dport),
                vni: e.vni,
            }),
            drop_reason: e.drop_reason,
            reason_unknown: e.flags & flags::REASON_UNKNOWN != 0,
            shared_data: e.flags & flags::SHARED_DATA != 0,
            skb_len: e.skb_len,
            mark: e.mark,
            route: None,
            nat: None,
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
            IpProto::Tcp => self.tcp_flag_names(),
            IpProto::Icmp => match (self.icmp_type, self.icmp_code) {
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

    #[test]
    fn a_rewrite_with_unreadable_tuples_reports_no_rewrite() {
        let packet = PacketEvent {
            header: EventHeader {
                kind: kind::NAT,
                abi: ABI_VERSION,
                ..Default::default()
            },
            saddr: u32::from_ne_bytes([10, 244, 102, 137]),
            daddr: u32::from_ne_bytes([10, 109, 60, 89]),
            ip_proto: 6,
            ..Default::default()
        };
        let read = tracer_common::CtTuple {
            saddr: packet.saddr,
            daddr: packet.daddr,
            proto: 6,
            ..Default::default()
        };
        let event = |original, reply| {
            KernelEvent::Nat(tracer_common::NatEvent {
                packet,
                original,
                reply,
                manip: tracer_common::manip::DST,
                ..Default::default()
            })
        };
        let obs = Observation::from_kernel(&event(read, read)).unwrap();
        assert!(obs.nat.is_some());
        for (original, reply) in [(read, Default::default()), (Default::default(), read)] {
            let obs = Observation::from_kernel(&event(original, reply)).unwrap();
            assert_eq!(obs.hook, Hook::Nat);
            assert_eq!(obs.nat, None);
        }
    }
}
