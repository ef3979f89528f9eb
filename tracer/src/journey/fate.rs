//! # Drop fate: which drop events end a packet
//!
//! `tp_btf/kfree_skb` fires whenever the kernel frees an `sk_buff` with a drop reason. That
//! is not always the packet's death:
//!
//! - **Copies.** A packet delivered on a host can be copied: every raw socket of its
//!   protocol gets a clone (two `ping`s running at once each get every echo reply), packet
//!   sockets (tcpdump) get clones, and the clones a socket does not want are freed with a
//!   reason (`SOCKET_FILTER` when its filter refuses them). The packet itself may then be
//!   freed too, with `NO_SOCKET`, because no ICMP "ping" socket claimed it — while its
//!   copies sit in the raw sockets' queues. None of these is the packet's fate.
//! - **After delivery.** A packet sitting in a socket's receive queue is freed with
//!   `QUEUE_PURGE` or `SOCKET_CLOSE` when the socket goes away (a namespace torn down under
//!   a running follow): it had been delivered, possibly long ago.
//!
//! The rule decides from kernel facts, never from counting:
//!
//! 1. The kernel program reads, at the tracepoint, whether another `sk_buff` still shares
//!    the freed one's data — the kernel's own `skb_cloned()` (`skb->cloned` and the shared
//!    info's data reference count above one) — into the observation's `shared_data`.
//! 2. The drop reason's class ([`ReasonClass`], the audit below):
//!    - **Path**: the packet died on its way (no route, netfilter, MTU, qdisc, device,
//!      neighbour, tunnel, …). Always its fate, whatever `shared_data` says: a TCP segment
//!      is a clone of the copy the sender keeps for retransmission, and that copy is not the
//!      packet continuing.
//!    - **Receiving stack**: the packet reached a host's socket layer or a transport
//!      protocol there and was refused (no listener, a socket filter, a full receive buffer,
//!      TCP state checks, bad checksum). With `shared_data`, it is a *copy* refused while
//!      another copy lives on: a note, never a verdict. Without it, after the packet was
//!      seen entering a Pod, it is the receiving side refusing what the path delivered: a
//!      note on the delivery ("nothing listens on … port 8080"), verdict delivered.
//!      Otherwise (the packet was not seen entering a Pod — e.g. addressed to a node) it is
//!      the packet's fate.
//!    - **Queued**: the packet had been queued on a socket (`QUEUE_PURGE`, `SOCKET_CLOSE`):
//!      delivered, discarded later. A note, never a verdict.
//! 3. A drop that is not a fate joins the journey of the packet it belongs to (copies may
//!    be freed several times at one place: the assembler lets a shared one repeat a hook)
//!    and becomes a note on the hop before it. When it has no journey to join (a late
//!    `QUEUE_PURGE`, a copy whose packet was not followed in), it is counted
//!    (`late_discards` in every summary) and not shown as a journey.
//!
//! ## Without a reason
//!
//! Before Linux 5.17 the tracepoint has no reason argument (and `follow --drop-hook
//! no-reason` reads none on any kernel). Such a drop is judged by rule 1's kernel fact and
//! the journey alone, as a receiving-stack reason is: with `shared_data` a copy; after the
//! packet was seen entering a Pod a note on the delivery; otherwise the packet's fate. The
//! facts decide the cases that matter most — the copies raw and packet sockets discard,
//! and any drop on a node after routing or NAT made the data private. Known limit: a path
//! drop while the data is still shared (a TCP segment dropped by its own Pod's qdisc,
//! before any router) is called a copy, and a packet purged from a socket's queue after
//! delivery is called refused by the receiving side.
//!
//! ## Audit of the kernel's drop reasons (Linux 6.18 `enum skb_drop_reason`)
//!
//! - Queued: `QUEUE_PURGE`, `SOCKET_CLOSE`.
//! - Receiving stack: `NO_SOCKET`, `SOCKET_FILTER`, `SOCKET_RCVBUFF`, `SOCKET_BACKLOG`,
//!   `PROTO_MEM`, `UNIX_*`, `PACKET_SOCK_ERROR`, every `TCP_*` (state, sequence, window,
//!   PAWS, MD5/AO authentication, listen overflow, checksum), `UDP_CSUM`, `ICMP_CSUM`,
//!   `IP_NOPROTO` (no handler for the protocol on the destination host),
//!   `UNHANDLED_PROTO`, `XFRM_POLICY` on input, `SKB_UCOPY_FAULT` (copying to the
//!   application failed).
//! - Path: everything else — `NOT_SPECIFIED`, `PKT_TOO_SMALL`, `NETFILTER_DROP`,
//!   `OTHERHOST`, `IP_CSUM`, `IP_INHDR`, `IP_RPFILTER`, `UNICAST_IN_L2_MULTICAST`,
//!   `IP_OUTNOROUTES`, `IP_INNOROUTES`, `IP_INADDRERRORS`, `IP_LOCAL_SOURCE`,
//!   `IP_INVALID_SOURCE`, `IP_LOCALNET`, `IP_INVALID_DEST`, `PKT_TOO_BIG`, `BPF_CGROUP_*`,
//!   `IPV6*`, `NEIGH_*`, `TC_*`, `SECURITY_HOOK`, `QDISC_*`, `CAKE_FLOOD`, `FQ_*`,
//!   `CPU_BACKLOG`, `XDP`, `SKB_CSUM`, `SKB_GSO_SEG`, `DEV_HDR`, `DEV_READY`, `FULL_RING`,
//!   `NOMEM`, `HDR_TRUNC`, `TAP_*`, `INVALID_PROTO`, `DUP_FRAG`, `FRAG_*`, `VXLAN_*`,
//!   `MAC_*`, `NO_TX_TARGET`, `IP_TUNNEL_ECN`, `TUNNEL_TXINFO`, `LOCAL_MAC`,
//!   `ARP_PVLAN_DISABLE`, `BRIDGE_*`, `CAN*`, `PFMEMALLOC`, `DUALPI2_STEP_DROP`, `PSP_*`,
//!   `RECURSION_LIMIT`, and any name a later kernel adds (a new reason is a path drop until
//!   audited: a false "dropped" is visible, a hidden drop is not).
//!
//! `NOT_SPECIFIED` is what every `kfree_skb()` without a reason gives: on kernels before
//! about 6.4 that is most of the TCP stack's frees (a FIN freed 40 ms after it entered the
//! Pod, on Debian's 6.1). Before the packet entered a Pod it is a path drop as above; after,
//! it names no path and is judged as a drop without a reason.
//!
//! Known limit: with `shared_data`, a receiving-stack refusal of the only copy that
//! *reaches a socket* is still called a copy when the sender's retransmission copy shares
//! its data — a TCP segment to a closed port that crossed no router and no NAT (both make
//! the packet's data private). On the paths tracer follows a Pod's packets are routed by
//! its node, so this does not arise there.

use super::{
    assemble::RawJourney,
    observation::{Hook, Observation},
};
use crate::drop_reason::DropReasons;

/// What a drop reason says about where the packet was (see the module doc's audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonClass {
    /// No reason to go by (the kernel's tracepoint has none): judged by the kernel facts
    /// alone, as a receiving-stack reason (module doc, "Without a reason").
    Unknown,
    /// On its way: routing, netfilter, devices, queues, tunnels.
    Path,
    /// At a destination host's transport or socket layer.
    ReceivingStack,
    /// Already queued on a socket.
    Queued,
}

impl ReasonClass {
    pub fn of(name: &str) -> Self {
        match name {
            "QUEUE_PURGE" | "SOCKET_CLOSE" => Self::Queued,
            "NO_SOCKET" | "SOCKET_FILTER" | "SOCKET_RCVBUFF" | "SOCKET_BACKLOG" | "PROTO_MEM"
            | "PACKET_SOCK_ERROR" | "UDP_CSUM" | "ICMP_CSUM" | "IP_NOPROTO" | "UNHANDLED_PROTO"
            | "XFRM_POLICY" | "SKB_UCOPY_FAULT" => Self::ReceivingStack,
            _ if name.starts_with("TCP_") || name.starts_with("UNIX_") => Self::ReceivingStack,
            _ => Self::Path,
        }
    }
}

/// A drop that was not the packet's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// A copy refused by a socket that did not want it; another copy lives on.
    Copy,
    /// Discarded from a socket's queue after delivery.
    AfterDelivery,
    /// The only copy, refused by the receiving side after the path delivered it into a Pod.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropFate {
    /// The packet ended here: the journey's verdict is "dropped".
    Fate,
    /// Not its end: a note on the hop before.
    Discard(Discard),
}

/// What a drop event means; `delivered` says whether the packet was already seen entering
/// a Pod.
pub fn of(obs: &Observation, reasons: &DropReasons, delivered: bool) -> DropFate {
    let class = if obs.reason_unknown {
        ReasonClass::Unknown
    } else {
        match ReasonClass::of(&reasons.name(obs.drop_reason)) {
            // Inside the Pod that received it, "not specified" names no path (module doc).
            ReasonClass::Path if delivered && reasons.is_unspecific(obs.drop_reason) => {
                ReasonClass::Unknown
            }
            class => class,
        }
    };
    match class {
        ReasonClass::Path => DropFate::Fate,
        ReasonClass::Queued => DropFate::Discard(Discard::AfterDelivery),
        ReasonClass::ReceivingStack | ReasonClass::Unknown if obs.shared_data => {
            DropFate::Discard(Discard::Copy)
        }
        ReasonClass::ReceivingStack | ReasonClass::Unknown if delivered => {
            DropFate::Discard(Discard::Refused)
        }
        ReasonClass::ReceivingStack | ReasonClass::Unknown => DropFate::Fate,
    }
}

/// Whether a drop event may join a packet already seen dropped at the same place: only a
/// copy (its data shared with another `sk_buff`) dies more than once.
pub fn may_repeat(obs: &Observation) -> bool {
    obs.hook == Hook::Drop && obs.shared_data
}

/// A journey made only of drops that are not a fate (a copy or a queued packet discarded,
/// with nothing else of the packet seen): not a journey to show (module doc, rule 3).
pub fn only_late_discards(raw: &RawJourney, reasons: &DropReasons) -> bool {
    raw.observations.iter().all(|obs| {
        obs.hook == Hook::Drop
            && matches!(
                of(obs, reasons, false),
                DropFate::Discard(Discard::Copy | Discard::AfterDelivery)
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_SPECIFIED: u32 = 1;
    const NO_SOCKET: u32 = 2;
    const SOCKET_FILTER: u32 = 4;
    const INNOROUTES: u32 = 90;
    const QUEUE_PURGE: u32 = 100;

    fn reasons() -> DropReasons {
        DropReasons::from_pairs(&[
            (NO_SOCKET, "NO_SOCKET"),
            (SOCKET_FILTER, "SOCKET_FILTER"),
            (INNOROUTES, "IP_INNOROUTES"),
            (QUEUE_PURGE, "QUEUE_PURGE"),
        ])
    }

    fn drop(reason: u32, shared_data: bool) -> Observation {
        let mut obs = crate::journey::assemble::tests::obs(
            0,
            1,
            2,
            Hook::Drop,
            [10, 244, 184, 84],
            [10, 244, 102, 137],
            0,
        );
        obs.drop_reason = reason;
        obs.shared_data = shared_data;
        obs
    }

    #[test]
    fn path_drops_are_fates_even_when_shared() {
        let r = reasons();
        assert_eq!(of(&drop(INNOROUTES, false), &r, false), DropFate::Fate);
        assert_eq!(of(&drop(INNOROUTES, true), &r, true), DropFate::Fate);
    }

    #[test]
    fn copies_refused_by_sockets_are_never_fates() {
        let r = reasons();
        for reason in [NO_SOCKET, SOCKET_FILTER] {
            for delivered in [false, true] {
                assert_eq!(
                    of(&drop(reason, true), &r, delivered),
                    DropFate::Discard(Discard::Copy)
                );
            }
        }
    }

    #[test]
    fn not_specified_inside_the_receiving_pod_is_a_note_and_before_it_a_fate() {
        let r = DropReasons::from_pairs(&[(NOT_SPECIFIED, "NOT_SPECIFIED")]);
        assert_eq!(
            of(&drop(NOT_SPECIFIED, false), &r, true),
            DropFate::Discard(Discard::Refused)
        );
        assert_eq!(
            of(&drop(NOT_SPECIFIED, true), &r, true),
            DropFate::Discard(Discard::Copy)
        );
        assert_eq!(of(&drop(NOT_SPECIFIED, false), &r, false), DropFate::Fate);
        assert_eq!(of(&drop(NOT_SPECIFIED, true), &r, false), DropFate::Fate);
    }

    #[test]
    fn the_only_copy_refused_after_delivery_is_a_note_and_before_it_a_fate() {
        let r = reasons();
        assert_eq!(
            of(&drop(NO_SOCKET, false), &r, true),
            DropFate::Discard(Discard::Refused)
        );
        assert_eq!(of(&drop(NO_SOCKET, false), &r, false), DropFate::Fate);
    }

    #[test]
    fn queued_packets_purged_later_are_not_drops_and_alone_are_not_journeys() {
        let r = reasons();
        let purged = drop(QUEUE_PURGE, false);
        assert_eq!(
            of(&purged, &r, false),
            DropFate::Discard(Discard::AfterDelivery)
        );
        let alone = RawJourney {
            id: 1,
            observations: vec![purged],
        };
        assert!(only_late_discards(&alone, &r));
        let copies = RawJourney {
            id: 2,
            observations: vec![drop(SOCKET_FILTER, true), drop(NO_SOCKET, true)],
        };
        assert!(only_late_discards(&copies, &r));
        let real = RawJourney {
            id: 3,
            observations: vec![drop(NO_SOCKET, false)],
        };
        assert!(!only_late_discards(&real, &r), "a lone refusal is a fate");
    }

    #[test]
    fn reasons_are_classed_as_the_audit_says() {
        assert_eq!(ReasonClass::of("TCP_OLD_DATA"), ReasonClass::ReceivingStack);
        assert_eq!(
            ReasonClass::of("UNIX_SKIP_OOB"),
            ReasonClass::ReceivingStack
        );
        assert_eq!(ReasonClass::of("SOCKET_CLOSE"), ReasonClass::Queued);
        assert_eq!(ReasonClass::of("NETFILTER_DROP"), ReasonClass::Path);
        assert_eq!(ReasonClass::of("A_REASON_FROM_2030"), ReasonClass::Path);
    }

    #[test]
    fn without_a_reason_the_kernel_facts_decide() {
        let r = reasons();
        let unknown = |shared_data| {
            let mut obs = drop(0, shared_data);
            obs.reason_unknown = true;
            obs
        };
        // A copy that sockets refused is still a copy; the only copy dying on a node (no
        // route, a netfilter rule) is still the packet's end.
        assert_eq!(
            of(&unknown(true), &r, false),
            DropFate::Discard(Discard::Copy)
        );
        assert_eq!(of(&unknown(false), &r, false), DropFate::Fate);
        assert_eq!(
            of(&unknown(false), &r, true),
            DropFate::Discard(Discard::Refused)
        );
        let copies = RawJourney {
            id: 3,
            observations: vec![unknown(true)],
        };
        assert!(only_late_discards(&copies, &r));
    }
}
