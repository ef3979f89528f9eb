//! Why a packet was dropped, in plain language: the kernel's reason (its name from BTF)
//! turned into a hint that names what is missing — the route to another node's Pod block,
//! the MTU that does not fit, the Service without endpoints — and what a drop that was not
//! the packet's fate ([`DropFate::Discard`]) says instead.

use std::net::Ipv4Addr;

use super::Context;
use crate::journey::{
    fate::Discard,
    model::{DropInfo, Text},
    observation::{IpProto, Observation},
};

/// The drop of a packet that ended there (its fate).
pub(super) fn info(
    obs: &Observation,
    node: Option<Text>,
    interface: Option<Text>,
    ctx: &Context<'_>,
) -> DropInfo {
    let reason = reason_name(obs, ctx);
    let where_ = node.as_deref().unwrap_or("this host").to_owned();
    let dst = obs.tuple.dst;
    let route = ctx.route_on(obs.netns_cookie, dst);
    let hint = match reason.as_str() {
        _ if obs.reason_unknown => {
            // Without the kernel's word, the one cause the tables can show for certain.
            if &*route.kind == "none" {
                format!(
                    "{UNKNOWN_REASON}; {where_}'s routing table has {}",
                    no_route(obs, ctx, &where_)
                )
            } else {
                format!("{UNKNOWN_REASON}: the kernel freed it on {where_}")
            }
        }
        "IP_INNOROUTES" | "IP_OUTNOROUTES" | "NO_ROUTE" | "IP_INADDRERRORS" => {
            no_route(obs, ctx, &where_)
        }
        "PKT_TOO_BIG" => {
            let mtu = route
                .mtu
                .map_or_else(|| "its MTU".to_owned(), |m| format!("MTU {m}"));
            let dev = route.dev.as_deref().unwrap_or("the output device");
            format!(
                "packet of {} bytes does not fit {dev} ({mtu}) on {where_}{}",
                obs.ip_len,
                if obs.dont_fragment {
                    " and has Don't Fragment set; the sender must learn the smaller MTU from ICMP frag-needed"
                } else {
                    ""
                }
            )
        }
        "NETFILTER_DROP" => {
            if obs.tuple.proto == IpProto::Icmp && obs.icmp_type == 3 && obs.icmp_code == 4 {
                format!(
                    "a netfilter rule on {where_} dropped the ICMP 'fragmentation needed' meant for {dst}: path MTU discovery cannot work (MTU black hole)"
                )
            } else if let Some(service) = ctx
                .cluster
                .service_by_cluster_ip(dst, obs.tuple.dport, obs.tuple.proto)
                .filter(|s| s.ready_endpoints == 0)
            {
                format!(
                    "Service {} has no endpoints: {}",
                    service.name,
                    super::nat::no_endpoints_refusal(
                        ctx,
                        obs.netns_cookie,
                        obs.tuple.proto,
                        std::net::SocketAddrV4::new(dst, obs.tuple.dport)
                    )
                )
            } else {
                format!("an iptables/nftables rule on {where_} dropped it")
            }
        }
        "NO_SOCKET" => no_listener(obs),
        // Given by the receive path's header checks and by forwarding's TTL check, both
        // before a router decrements the TTL: the TTL read at the drop is the one it
        // arrived with.
        "IP_INHDR" if obs.ttl <= 1 => ttl_ran_out(obs, &where_),
        "IP_INHDR" => {
            format!("{where_} found its IPv4 header invalid (length, version or checksum)")
        }
        "NOT_SPECIFIED" => "the kernel freed it without saying why".to_owned(),
        // The reason's name is said beside the hint wherever the hint is shown.
        _ => "the kernel dropped it".to_owned(),
    };
    DropInfo {
        reason: reason.into(),
        reason_code: obs.drop_reason,
        hint: hint.into(),
        node,
        interface,
    }
}

/// "its TTL ran out on cpu2 …": a packet a router could not forward any further.
fn ttl_ran_out(obs: &Observation, where_: &str) -> String {
    format!(
        "its TTL ran out on {where_} (it arrived with TTL {}): a routing loop, or a sender that set it this low (traceroute does); {where_} answers with ICMP time exceeded",
        obs.ttl
    )
}

/// What a drop read without a reason says instead of one.
const UNKNOWN_REASON: &str = "reason unknown on this kernel (its kfree_skb tracepoint has none)";

/// The reason's name from BTF, or `unknown` when the drop hook could not read one.
fn reason_name(obs: &Observation, ctx: &Context<'_>) -> String {
    if obs.reason_unknown {
        "unknown".to_owned()
    } else {
        ctx.reasons.name(obs.drop_reason)
    }
}

/// "no route to 10.244.102.137 (default/nettest, on cpu1) on gpu1; the route to cpu1's Pod
/// block 10.244.102.128/26 is missing on gpu1".
fn no_route(obs: &Observation, ctx: &Context<'_>, where_: &str) -> String {
    let dst = obs.tuple.dst;
    let owner = ctx
        .cluster
        .pod_by_ip(dst)
        .map(|p| match p.node {
            Some(n) => format!(" ({}, on {n})", p.name),
            None => format!(" ({})", p.name),
        })
        .unwrap_or_default();
    let block = block_of(ctx, dst)
        .map(|(node, prefix)| {
            format!("; the route to {node}'s Pod block {prefix} is missing on {where_}")
        })
        .unwrap_or_default();
    format!("no route to {dst}{owner} on {where_}{block}")
}

/// The node whose Pod block holds `ip`, judged from the other nodes' routing tables (a
/// node routes its own block as a local blackhole, as Calico does, or via its bridge).
fn block_of(ctx: &Context<'_>, ip: Ipv4Addr) -> Option<(String, String)> {
    let node = ctx.cluster.pod_by_ip(ip)?.node?;
    let host = ctx.topology.node_host(&node)?;
    let route = host
        .info
        .routes
        .iter()
        .filter(|r| r.contains(ip) && r.prefix < 32 && r.prefix >= 16)
        .max_by_key(|r| r.prefix)?;
    Some((node, format!("{}/{}", route.dst, route.prefix)))
}

/// "nothing listens on 10.244.184.84 port 8080" (no port for ICMP).
fn no_listener(obs: &Observation) -> String {
    match obs.tuple.proto {
        IpProto::Tcp | IpProto::Udp | IpProto::Sctp => format!(
            "nothing listens on {} {} port {}",
            obs.tuple.dst, obs.tuple.proto, obs.tuple.dport
        ),
        IpProto::Icmp => format!(
            "no socket on {} takes this ICMP {}",
            obs.tuple.dst,
            obs.summary()
        ),
        IpProto::Other(_) => format!("nothing on {} takes it", obs.tuple.dst),
    }
}

/// The note a drop that was not the packet's fate adds to the hop before it.
pub(super) fn discard_note(obs: &Observation, discard: Discard, ctx: &Context<'_>) -> String {
    let reason = reason_name(obs, ctx);
    match discard {
        Discard::Copy => format!(
            "a copy of it was discarded by a socket that did not want it ({reason}); another copy lives on"
        ),
        Discard::AfterDelivery => {
            format!("later discarded from a socket's queue after delivery ({reason})")
        }
        Discard::Refused if !obs.reason_unknown && ctx.reasons.is_unspecific(obs.drop_reason) => {
            format!(
                "then freed by the receiving stack without a named reason ({reason}): the path had delivered it"
            )
        }
        Discard::Refused => {
            let why = if reason == "NO_SOCKET" {
                no_listener(obs)
            } else if obs.reason_unknown {
                format!("the receiving stack freed it, {UNKNOWN_REASON}")
            } else {
                "the receiving stack refused it".to_owned()
            };
            format!("then not taken by the receiving side: {why} ({reason})")
        }
    }
}
