//! # Packet identity: which observations are the same packet
//!
//! A packet is seen at several hooks (the Pod's `eth0`, the node-side veth, the uplink, the
//! tunnel device, the other node, a drop), and between two hooks it may be rewritten:
//! kube-proxy's DNAT changes the destination, masquerade the source, conntrack reverses
//! both on replies, VXLAN wraps it in an outer header. The kernel programs have no skb
//! identity to offer at TC hooks (and kprobes/fentry, which would, are unavailable on the
//! target machines), so identity is decided here, from header fields that **none of those
//! rewrites touch**:
//!
//! - IP protocol, IP identification and IP total length of the (inner) IPv4 header —
//!   NAT rewrites addresses and ports, VXLAN adds an outer header, neither touches these;
//! - TCP: sequence number, acknowledgement number and flags;
//! - ICMP: type, code, and the echo identifier and sequence;
//! - UDP: nothing more in the header, so two checks beyond the key ([`plausibly_same`]):
//!   the datagram shares a port with the journey so far (the client's port survives DNAT on
//!   requests and un-DNAT on replies), and its payload hash — of the first 8 payload bytes
//!   (`tracer_common::payload_hash`, computed by the kernel at every hook; no rewrite
//!   touches a payload) — is the journey's, where both hooks could read it. The hash matters
//!   because unconnected UDP with Don't Fragment set — most UDP clients on Linux — sends
//!   IP ID 0: two such datagrams of one length differ only in their payload.
//!
//! Those fields form the [`Key`]. An observation joins the open journey with the same key
//! whose last hop is at most [`HOP_WINDOW_NS`] older (one packet crosses a node in
//! microseconds; a different packet with the same key — a retransmission — carries a new IP
//! ID), provided the journey has not already been seen at that very hook (a packet passes
//! each hook once; the same key twice at one hook is a second packet). Addresses are
//! deliberately not part of the key: that is what lets a journey continue through NAT.
//!
//! Known limits: UDP datagrams with IP ID 0, equal length and the same first 8 payload
//! bytes (or fewer than 8, or unread at a hook: a payload outside the linear data of an
//! `sk_buff` read by a drop, NAT or route hook) within the window can be confused, as can
//! any UDP datagrams replayed from a recording of format 3 or older, which has no payload
//! hash; a GSO packet re-segmented between hooks continues as its first segment only. These
//! are rare on the paths tracer follows and are shown, not hidden: a confused packet appears as a journey
//! with an implausible path, a segment without a beginning as an `incomplete` journey.

use super::observation::{IpProto, Observation};

/// Longest gap between two hops of one packet.
pub const HOP_WINDOW_NS: u64 = 200_000_000;

/// The invariant header fields of a packet (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    proto: IpProto,
    ip_id: u16,
    ip_len: u16,
    a: u32,
    b: u32,
    c: u32,
}

impl Key {
    pub fn of(obs: &Observation) -> Self {
        let (a, b, c) = match obs.tuple.proto {
            IpProto::Tcp => (obs.tcp_seq, obs.tcp_ack, u32::from(obs.tcp_flags)),
            IpProto::Icmp => (
                (u32::from(obs.icmp_type) << 8) | u32::from(obs.icmp_code),
                u32::from(obs.icmp_id),
                u32::from(obs.icmp_seq),
            ),
            _ => (0, 0, 0),
        };
        Self {
            proto: obs.tuple.proto,
            ip_id: obs.ip_id,
            ip_len: obs.ip_len,
            a,
            b,
            c,
        }
    }
}

/// Extra check for protocols whose key is weak (UDP and others): the new observation
/// must share a port with the journey's latest observation and, where both hooks read the
/// UDP payload, have the same payload hash. (Not part of the [`Key`]: a hook that could not
/// read the payload — 0 — must still find the packet's journey.)
pub fn plausibly_same(last: &Observation, next: &Observation) -> bool {
    match next.tuple.proto {
        IpProto::Tcp | IpProto::Icmp => true,
        _ => {
            let (l, n) = (last.tuple, next.tuple);
            let shares_a_port = l.sport == n.sport
                || l.dport == n.dport
                || l.sport == n.dport
                || l.dport == n.sport;
            let (a, b) = (last.payload_hash, next.payload_hash);
            shares_a_port && (a == b || a == 0 || b == 0)
        }
    }
}
