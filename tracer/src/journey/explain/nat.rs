//! NAT seen between two observations on one node: the packet's addresses changed, so a
//! rule rewrote them — kube-proxy's Service DNAT (named by Service, endpoint and the rule
//! of whichever mode the node runs: iptables chain, nftables chain, IPVS virtual and real
//! server), conntrack reversing it on a reply, or a masquerade and its reversal. Where the
//! kernel reported the rewrite itself (`nf_nat_manip_pkt`), the same hops are made from
//! the packet before it and what conntrack makes of it, and marked observed ([`observed`]).

use std::net::SocketAddrV4;

use super::{Context, ServiceRef, endpoints};
use crate::{
    journey::{
        memo::NatKey,
        model::{Conntrack, Hop, HopKind, Nat, Text},
        observation::{IpProto, NatRewrite, Observation, Tuple},
    },
    k8s::ObjectName,
    topology::{DnatRule, ProxyMode},
};

/// The NAT hops between `prev` and `obs` (none when the addresses did not change).
pub(super) fn hops(
    prev: &Observation,
    obs: &Observation,
    t: u64,
    node: Option<Text>,
    ctx: &Context<'_>,
) -> Vec<Hop> {
    let (before, after) = (prev.tuple, obs.tuple);
    let mut hops = Vec::new();
    let nat = |service: Option<Text>| Nat {
        before: endpoints(before),
        after: endpoints(after),
        service,
        endpoint_pod: None,
        chain: None,
        service_chain: None,
        endpoint_index: None,
        endpoints_total: None,
        proxy_mode: None,
        nft_chain: None,
        nft_service_chain: None,
        ipvs_virtual_server: None,
        ipvs_real_server: None,
        conntrack: None,
    };
    let dnat_service = ctx.service_at(before.dst, before.dport, before.proto);
    if (before.dst != after.dst || before.dport != after.dport) && dnat_service.is_none() {
        // Not a Service address: conntrack giving a reply its masqueraded client back.
        let mut hop = Hop::inferred(
            HopKind::ReplyUnsnat,
            t,
            node.clone(),
            rewritten_between_hooks(node.as_deref(), ""),
        );
        hop.packet = Some(endpoints(after));
        hop.nat = Some(nat(None));
        hop.note = format!(
            "conntrack reverses the masquerade: destination {}:{} → {}:{}",
            before.dst, before.dport, after.dst, after.dport
        )
        .into();
        hops.push(hop);
    }
    if (before.dst != after.dst || before.dport != after.dport) && dnat_service.is_some() {
        let key = NatKey {
            kind: HopKind::ServiceDnat,
            netns_cookie: prev.netns_cookie,
            proto: before.proto,
            service: (before.dst, before.dport),
            endpoint: (after.dst, after.dport),
        };
        let mut hop = ctx.memo.nat(key, || {
            service_dnat(prev, before, after, dnat_service, node.clone(), ctx)
        });
        hop.t_ns = t;
        // The client is the one thing that differs between packets of a Service.
        hop.packet = Some(endpoints(Tuple {
            src: before.src,
            sport: before.sport,
            ..after
        }));
        if let Some(nat) = &mut hop.nat {
            nat.before = endpoints(before);
            nat.after = endpoints(after);
        }
        hops.push(hop);
    }
    if before.src != after.src || before.sport != after.sport {
        let service = ctx.service_at(after.src, after.sport, after.proto);
        if service.is_some() {
            let key = NatKey {
                kind: HopKind::ReplyUndnat,
                netns_cookie: prev.netns_cookie,
                proto: before.proto,
                service: (after.src, after.sport),
                endpoint: (before.src, before.sport),
            };
            let mut hop = ctx.memo.nat(key, || {
                let name = service.map(|s| Text::from(s.name.to_string()));
                let mut hop = Hop::inferred(
                    HopKind::ReplyUndnat,
                    0,
                    node.clone(),
                    rewritten_between_hooks(
                        node.as_deref(),
                        ", and the Service whose address it restores",
                    ),
                );
                hop.service.clone_from(&name);
                hop.nat = Some(nat(name.clone()));
                hop.note = format!(
                    "conntrack reverses the Service DNAT: source {}:{} → {}:{} ({})",
                    before.src,
                    before.sport,
                    after.src,
                    after.sport,
                    name.as_deref().unwrap_or_default()
                )
                .into();
                hop
            });
            hop.t_ns = t;
            hop.packet = Some(endpoints(after));
            hop.nat = Some(nat(hop.service.clone()));
            hops.push(hop);
        } else {
            let from = rewritten_between_hooks(node.as_deref(), "");
            let mut hop = Hop::inferred(HopKind::Snat, t, node, from);
            hop.packet = Some(endpoints(after));
            hop.nat = Some(nat(None));
            hop.note = format!(
                "masquerade: source {}:{} → {}:{}",
                before.src, before.sport, after.src, after.sport
            )
            .into();
            hops.push(hop);
        }
    }
    hops
}

/// Makes a NAT hop worked out from `rewrite` — the kernel's report of the rewrite, the
/// raw observation at `index` — observed, with the conntrack entry.
pub(super) fn observed(hop: &mut Hop, rewrite: &NatRewrite, index: usize) {
    hop.observed = true;
    hop.inferred_from = None;
    hop.observation = Some(index);
    if let Some(nat) = &mut hop.nat {
        nat.conntrack = Some(Conntrack {
            original: endpoints(rewrite.original),
            reply: endpoints(rewrite.reply),
        });
    }
    hop.note = format!(
        "{}; conntrack {} / reply {}",
        hop.note,
        rewrite.original.describe(),
        rewrite.reply.describe()
    )
    .into();
}

/// A Service DNAT seen between two observations on a node: which Service, which endpoint
/// (and its place among the Service's endpoints), and kube-proxy's chains for it.
fn service_dnat(
    prev: &Observation,
    before: Tuple,
    after: Tuple,
    service: Option<ServiceRef>,
    node: Option<Text>,
    ctx: &Context<'_>,
) -> Hop {
    let host = ctx.topology.host(prev.netns_cookie);
    let rule = host.and_then(|h| {
        h.info.dnat_rules.iter().find(|r| {
            r.to == after.dst && r.to_port == after.dport && serves(r, service.as_ref(), before)
        })
    });
    let position = service.as_ref().and_then(|s| {
        ctx.cluster
            .endpoint_position(&s.name, after.dst, after.dport)
    });
    let endpoint_pod = ctx.cluster.pod_by_ip(after.dst).map(|p| p.name);
    let name = service.as_ref().map(|s| Text::from(s.name.to_string()));
    let rules = format!(
        ", and {}'s kube-proxy rules",
        node.as_deref().unwrap_or("the node")
    );
    let from = rewritten_between_hooks(node.as_deref(), &rules);
    let mut hop = Hop::inferred(HopKind::ServiceDnat, 0, node, from);
    hop.service.clone_from(&name);
    hop.pod = endpoint_pod.as_ref().map(|p| Text::from(p.to_string()));
    hop.nat = Some(Nat {
        before: endpoints(before),
        after: endpoints(after),
        service: name,
        endpoint_pod: hop.pod.clone(),
        chain: rule_of(rule, ProxyMode::Iptables),
        service_chain: chooser_of(rule, ProxyMode::Iptables),
        endpoint_index: position.map(|p| p.0),
        endpoints_total: position.map(|p| p.1),
        proxy_mode: rule.map(|r| r.mode),
        nft_chain: rule_of(rule, ProxyMode::Nftables),
        nft_service_chain: chooser_of(rule, ProxyMode::Nftables),
        ipvs_virtual_server: chooser_of(rule, ProxyMode::Ipvs),
        ipvs_real_server: rule_of(rule, ProxyMode::Ipvs),
        conntrack: None,
    });
    hop.note = format!(
        "{} {}:{} → {} {}:{}{}{}",
        service
            .as_ref()
            .map_or_else(|| "DNAT".to_owned(), |s| s.name.to_string()),
        before.dst,
        before.dport,
        endpoint_pod.as_ref().map_or("", |p| p.name.as_str()),
        after.dst,
        after.dport,
        rule.map(|r| format!(", {}", r.describe()))
            .unwrap_or_default(),
        position
            .map(|(i, n)| format!(", endpoint {i} of {n}"))
            .unwrap_or_default(),
    )
    .into();
    hop
}

/// What a NAT hop is worked out from: netfilter rewrites the packet between two of
/// tracer's hooks, and the NAT hook (`nf_nat_manip_pkt`, which needs fentry or kprobes)
/// did not report the rewrite.
fn rewritten_between_hooks(node: Option<&str>, and: &str) -> String {
    format!(
        "the addresses the hooks before and after it saw on {}{and}; the rewrite itself was not seen (no NAT hook on this kernel, or none matched it)",
        node.unwrap_or("the node")
    )
}

/// Whether `rule` is the Service's: by the name kube-proxy gave it (iptables comments,
/// nftables chain names), or, for IPVS, which names none, by the virtual address the packet
/// was sent to.
fn serves(rule: &DnatRule, service: Option<&ServiceRef>, before: Tuple) -> bool {
    match rule.virtual_address {
        Some(address) => address == SocketAddrV4::new(before.dst, before.dport),
        None => service
            .is_none_or(|s| ObjectName::of_rule_comment(&rule.comment) == Some(s.name.clone())),
    }
}

/// The rule that DNATed, when it is `mode`'s.
fn rule_of(rule: Option<&DnatRule>, mode: ProxyMode) -> Option<Text> {
    rule.filter(|r| r.mode == mode)
        .map(|r| Text::from(r.rule.as_str()))
}

/// What chose the endpoint, when it is `mode`'s.
fn chooser_of(rule: Option<&DnatRule>, mode: ProxyMode) -> Option<Text> {
    rule.filter(|r| r.mode == mode)
        .and_then(|r| r.chooser.as_deref().map(Text::from))
}

/// What refused a new `proto` connection to `dst`, the address of a Service without
/// endpoints, on the node of namespace `cookie`, in the words of the kube-proxy mode it runs
/// there (iptables' when unknown, as in recordings made before proxy modes).
pub(super) fn no_endpoints_refusal(
    ctx: &Context<'_>,
    cookie: u64,
    proto: IpProto,
    dst: SocketAddrV4,
) -> String {
    let modes = ctx
        .topology
        .host(cookie)
        .map(|h| h.info.proxy_modes.as_slice())
        .unwrap_or_default();
    match modes {
        [ProxyMode::Nftables] => "kube-proxy's nftables map no-endpoint-services sent it to reject-chain, which refused it (ICMP port unreachable to the sender)".to_owned(),
        [ProxyMode::Ipvs] => format!(
            "its IPVS virtual server {} {dst} has no real server, so IPVS refused it (ICMP port unreachable to the sender)",
            proto.name().to_uppercase()
        ),
        _ => "kube-proxy's REJECT rule refused it (ICMP port unreachable to the sender)".to_owned(),
    }
}
