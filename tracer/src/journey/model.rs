//! A journey as users see it: one packet's path, every hop named. This is what `--output
//! json` prints (one object per line) and what the TUI draws; the schema is documented in
//! `docs/json-schema.md` and versioned by [`SCHEMA_VERSION`]. Add fields freely; never
//! rename or repurpose one without bumping the version.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::observation::IpProto;
use crate::topology::ProxyMode;

pub const SCHEMA_VERSION: u32 = 1;

/// Names and notes: shared, not copied. Most hops of a flow repeat the same node,
/// interface, Pod and note, so a journey holds references into a few strings
/// ([`super::explain::Memo`] builds each once) — cheaper to build, clone and keep.
pub type Text = std::sync::Arc<str>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journey {
    pub schema: u32,
    /// Unique within a run.
    pub id: u64,
    /// `request` (from FROM towards TO), `reply` (back towards FROM) or `related` (e.g. an
    /// ICMP error a node generated about one of them).
    pub direction: Direction,
    /// `tcp`, `udp`, `icmp`, `sctp`, or `ip`.
    pub protocol: IpProto,
    /// TCP flags (`SYN,ACK`), ICMP kind (`echo-request`), empty for UDP.
    pub summary: String,
    /// The packet as its sender emitted it (first observed hop).
    pub original: Endpoints,
    /// IPv4 total length.
    pub length: u16,
    pub from: Named,
    pub to: Named,
    /// CLOCK_MONOTONIC nanoseconds of the first hop, and wall-clock time in RFC 3339.
    pub start_ns: u64,
    pub started_at: String,
    pub duration_ns: u64,
    pub verdict: Verdict,
    /// One line: where and why.
    pub diagnosis: String,
    pub drop: Option<DropInfo>,
    pub hops: Vec<Hop>,
    /// A sampling session only: the places its packet was counted at, for the flows to
    /// attribute the counts of the packets not traced. Not part of the JSON schema.
    #[serde(skip)]
    pub counted_at: Option<std::sync::Arc<super::counted::CountedAt>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Request,
    Reply,
    Related,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Delivered,
    Dropped,
    Incomplete,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Dropped => "dropped",
            Self::Incomplete => "incomplete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// An address and the Kubernetes names that apply to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub ip: Option<Ipv4Addr>,
    /// `namespace/name`.
    pub pod: Option<Text>,
    pub service: Option<Text>,
    pub node: Option<Text>,
}

impl Named {
    /// The most specific name: Pod, then Service, then node, then the address.
    pub fn label(&self) -> String {
        let mut out = String::new();
        self.write_label(&mut out);
        out
    }

    /// [`Self::label`] appended to `out`, for callers that label many journeys.
    pub fn write_label(&self, out: &mut String) {
        use std::fmt::Write as _;
        if let Some(pod) = &self.pod {
            out.push_str(pod.rsplit('/').next().unwrap_or(pod));
        } else if let Some(service) = &self.service {
            out.push_str("svc/");
            out.push_str(service.rsplit('/').next().unwrap_or(service));
        } else if let Some(node) = &self.node {
            out.push_str("node/");
            out.push_str(node);
        } else if let Some(ip) = self.ip {
            // Writing to a String cannot fail.
            let _ = write!(out, "{ip}");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HopKind {
    /// The packet left the Pod (its `eth0`, inside the Pod).
    PodEgress,
    /// The packet crossed a veth pair (Pod ↔ node).
    VethCrossing,
    /// kube-proxy rewrote the destination to a Service endpoint.
    ServiceDnat,
    /// conntrack reversed a Service DNAT on a reply (source back to the Service address).
    ReplyUndnat,
    /// Source rewritten (kube-proxy masquerade).
    Snat,
    /// conntrack gave a reply its masqueraded destination back.
    ReplyUnsnat,
    /// The kernel's route for the destination on this node.
    RouteDecision,
    /// Wrapped in VXLAN by a tunnel device.
    Encapsulation,
    /// Unwrapped by a tunnel device.
    Decapsulation,
    /// Left the node through its uplink.
    NodeEgress,
    /// Arrived on the node through its uplink.
    NodeIngress,
    /// Handed to the Pod (its `eth0`, inside the Pod).
    PodDelivery,
    /// Freed by the kernel with a drop reason.
    Drop,
    /// The node generated an ICMP error about this packet.
    IcmpError,
    /// An expected hop that no hook saw (hook missing, event lost, or the packet vanished
    /// without a drop event). Never a drop.
    NotObserved,
    /// The packet left for a node that is not traced from here.
    LeftTracedScope,
}

impl HopKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::PodEgress => "pod egress",
            Self::VethCrossing => "veth",
            Self::ServiceDnat => "service DNAT",
            Self::ReplyUndnat => "reply un-DNAT",
            Self::Snat => "SNAT",
            Self::ReplyUnsnat => "reply un-SNAT",
            Self::RouteDecision => "route",
            Self::Encapsulation => "VXLAN encap",
            Self::Decapsulation => "VXLAN decap",
            Self::NodeEgress => "node egress",
            Self::NodeIngress => "node ingress",
            Self::PodDelivery => "delivered",
            Self::Drop => "DROP",
            Self::IcmpError => "ICMP error",
            Self::NotObserved => "not observed",
            Self::LeftTracedScope => "left",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    /// Nanoseconds since the journey's first hop.
    pub t_ns: u64,
    pub node: Option<Text>,
    pub kind: HopKind,
    /// False for hops tracer infers (NAT, route) or expected but missed (`not_observed`).
    pub observed: bool,
    pub interface: Option<Text>,
    pub ifindex: Option<u32>,
    /// The other end of a veth pair, as `ip link` shows it from the other side (`eth0@if3`).
    pub peer: Option<Text>,
    pub pod: Option<Text>,
    pub service: Option<Text>,
    /// The packet's addresses at this hop.
    pub packet: Option<Endpoints>,
    pub nat: Option<Nat>,
    pub route: Option<RouteInfo>,
    pub encap: Option<Encap>,
    pub drop: Option<DropInfo>,
    /// A short human explanation.
    pub note: Text,
    /// For a hop tracer inferred: what it was worked out from, and why no hook saw it.
    #[serde(default)]
    pub inferred_from: Option<Text>,
    /// Which raw observation this hop is (observed hops only): lets exports reach the
    /// packet's full headers. Not part of the JSON schema.
    #[serde(skip)]
    pub observation: Option<usize>,
}

impl Hop {
    pub fn new(kind: HopKind, t_ns: u64, node: Option<Text>) -> Self {
        Self {
            t_ns,
            node,
            kind,
            observed: true,
            interface: None,
            ifindex: None,
            peer: None,
            pod: None,
            service: None,
            packet: None,
            nat: None,
            route: None,
            encap: None,
            drop: None,
            note: Text::default(),
            inferred_from: None,
            observation: None,
        }
    }

    /// A hop no hook saw but tracer worked out `from` what the hooks around it did.
    pub fn inferred(kind: HopKind, t_ns: u64, node: Option<Text>, from: String) -> Self {
        Self {
            observed: false,
            inferred_from: Some(from.into()),
            ..Self::new(kind, t_ns, node)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat {
    pub before: Endpoints,
    pub after: Endpoints,
    /// `namespace/name` of the Service whose rule did it.
    pub service: Option<Text>,
    /// The endpoint Pod chosen, `namespace/name`.
    pub endpoint_pod: Option<Text>,
    /// kube-proxy's iptables chains: `KUBE-SEP-…` (the DNAT) and `KUBE-SVC-…` (that chose
    /// it). Iptables mode only; the other modes have fields of their own below.
    pub chain: Option<Text>,
    pub service_chain: Option<Text>,
    /// 1-based position of the endpoint among the Service's ready endpoints, and their count.
    pub endpoint_index: Option<usize>,
    pub endpoints_total: Option<usize>,
    /// Which kube-proxy mode's rule did it, as found on the node (absent when no rule was
    /// found, and in recordings made before proxy modes).
    #[serde(default)]
    pub proxy_mode: Option<ProxyMode>,
    /// nftables mode: the `endpoint-…` chain that DNATed, and the `service-…` chain whose
    /// `numgen random` verdict map chose it.
    #[serde(default)]
    pub nft_chain: Option<Text>,
    #[serde(default)]
    pub nft_service_chain: Option<Text>,
    /// IPVS mode: the virtual server (`TCP 10.109.60.89:80 rr`) and the real server it chose
    /// (`10.244.5.203:80 Masq`).
    #[serde(default)]
    pub ipvs_virtual_server: Option<Text>,
    #[serde(default)]
    pub ipvs_real_server: Option<Text>,
    /// The conntrack entry, where the rewrite itself was observed (`nf_nat_manip_pkt`): the
    /// connection as its first packet set it up, and as its replies are expected. Absent
    /// for a NAT hop inferred between two hooks.
    #[serde(default)]
    pub conntrack: Option<Conntrack>,
}

/// A conntrack entry's two tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    pub original: Endpoints,
    pub reply: Endpoints,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// `10.244.184.64/26`; absent when no route matched.
    pub prefix: Option<Text>,
    pub gateway: Option<Ipv4Addr>,
    pub dev: Option<Text>,
    pub table: Text,
    pub protocol: Option<Text>,
    /// `unicast`, `blackhole`, …, or `none`.
    pub kind: Text,
    /// As `ip route` prints it.
    pub text: Text,
    /// MTU of the output device.
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encap {
    pub vni: u32,
    pub outer_src: Option<Ipv4Addr>,
    pub outer_dst: Option<Ipv4Addr>,
    pub udp_port: u16,
    pub device: Text,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropInfo {
    /// The kernel's name for the reason (`NO_SOCKET`, `NETFILTER_DROP`, …), from BTF.
    pub reason: Text,
    pub reason_code: u32,
    /// One line in plain language.
    pub hint: Text,
    pub node: Option<Text>,
    pub interface: Option<Text>,
}
