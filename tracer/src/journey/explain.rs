//! Turns one packet's observations into a named journey: what each hop was, what changed
//! between hops (Service DNAT, reply un-DNAT, masquerade, the route taken, VXLAN), the
//! verdict, and one line of diagnosis.
//!
//! Observed hops come from the hooks; the others are inferred and marked `observed:
//! false`: a NAT hop where the addresses changed between two observations on one node, a
//! route hop where a packet arrived on a node and left it (or died there), looked up in
//! that node's routing table, and a `not_observed` hop for the next hop a packet that
//! vanished without a drop event should have reached.

use std::net::Ipv4Addr;

use super::{
    assemble::RawJourney,
    memo::{HopKey, Memo, NatKey},
    model::{
        Direction, DropInfo, Encap, Endpoints, Hop, HopKind, Journey, Named, Nat, RouteInfo,
        SCHEMA_VERSION, Text, Verdict,
    },
    observation::{Hook, Observation, Outer, Tuple},
};
use crate::{
    drop_reason::DropReasons,
    topology::{Topology, roles::InterfaceRole},
};

/// A Service as naming needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    /// `namespace/name`.
    pub name: String,
    pub ready_endpoints: usize,
}

/// What explanation needs to know about the cluster; implemented by the live Kubernetes
/// model and, in tests, by small fakes.
pub trait ClusterNames {
    /// `namespace/name` and node of the Pod with this IP.
    fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<(String, Option<String>)>;
    /// The Service whose ClusterIP:port this is.
    fn service_by_cluster_ip(&self, ip: Ipv4Addr, port: u16, proto: u8) -> Option<ServiceRef>;
    /// The Service exposing this NodePort.
    fn service_by_node_port(&self, port: u16, proto: u8) -> Option<ServiceRef>;
    /// "endpoint 2 of 3": 1-based position of ip:port among the Service's ready endpoints.
    fn endpoint_position(&self, service: &str, ip: Ipv4Addr, port: u16) -> Option<(usize, usize)>;
    fn node_by_ip(&self, ip: Ipv4Addr) -> Option<String>;
}

/// Which addresses the user asked to follow, to tell requests from replies.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    pub from: Vec<Ipv4Addr>,
    pub to: Vec<Ipv4Addr>,
}

pub struct Context<'a> {
    pub topology: &'a Topology,
    pub cluster: &'a dyn ClusterNames,
    pub reasons: &'a DropReasons,
    pub followed: &'a Followed,
    /// Names, routes and hops already explained, shared across journeys.
    pub memo: &'a Memo,
    /// Wall-clock nanoseconds minus CLOCK_MONOTONIC nanoseconds.
    pub wall_offset_ns: i128,
}

fn endpoints(t: Tuple) -> Endpoints {
    Endpoints {
        src: t.src,
        sport: t.sport,
        dst: t.dst,
        dport: t.dport,
    }
}

impl Context<'_> {
    /// The Service whose address this is: a ClusterIP:port, or a NodePort on a node's
    /// address.
    fn service_at(&self, ip: Ipv4Addr, port: u16, proto: u8) -> Option<ServiceRef> {
        self.cluster
            .service_by_cluster_ip(ip, port, proto)
            .or_else(|| {
                self.cluster
                    .node_by_ip(ip)
                    .and_then(|_| self.cluster.service_by_node_port(port, proto))
            })
    }

    fn name(&self, ip: Ipv4Addr, port: u16, proto: u8) -> Named {
        self.memo.name((ip, port, proto), || {
            let (pod, pod_node) = self
                .cluster
                .pod_by_ip(ip)
                .map_or((None, None), |(p, n)| (Some(p), n));
            let node = pod_node.or_else(|| self.cluster.node_by_ip(ip));
            let service = self.service_at(ip, port, proto).map(|s| s.name);
            Named {
                ip: Some(ip),
                pod: pod.map(Text::from),
                service: service.map(Text::from),
                node: node.map(Text::from),
            }
        })
    }

    fn node_of(&self, obs: &Observation) -> Option<Text> {
        self.node_in(obs.netns_cookie)
    }

    fn node_in(&self, cookie: u64) -> Option<Text> {
        self.memo
            .node(cookie, || self.topology.node_name(cookie).map(Text::from))
    }

    fn interface_name(&self, obs: &Observation) -> Option<Text> {
        self.topology
            .host(obs.netns_cookie)?
            .info
            .link(obs.ifindex)
            .map(|l| Text::from(l.name.as_str()))
    }

    fn route_on(&self, node_cookie: u64, dst: Ipv4Addr) -> RouteInfo {
        self.memo
            .route((node_cookie, dst), || self.look_up_route(node_cookie, dst))
    }

    fn look_up_route(&self, node_cookie: u64, dst: Ipv4Addr) -> RouteInfo {
        let Some(host) = self.topology.host(node_cookie) else {
            return RouteInfo {
                prefix: None,
                gateway: None,
                dev: None,
                table: "main".into(),
                protocol: None,
                kind: "unknown".into(),
                text: "routing table not known".into(),
                mtu: None,
            };
        };
        match host.info.route_to(dst) {
            Some(r) => RouteInfo {
                prefix: Some(format!("{}/{}", r.dst, r.prefix).into()),
                gateway: r.gateway,
                dev: r.dev.as_deref().map(Text::from),
                table: r.table.as_str().into(),
                protocol: Some(r.protocol.as_str().into()),
                kind: r.kind.as_str().into(),
                text: r.describe().into(),
                mtu: r
                    .dev
                    .as_deref()
                    .and_then(|d| host.info.link_named(d))
                    .map(|l| l.mtu),
            },
            None => RouteInfo {
                prefix: None,
                gateway: None,
                dev: None,
                table: "main".into(),
                protocol: None,
                kind: "none".into(),
                text: format!("no route to {dst}").into(),
                mtu: None,
            },
        }
    }
}

/// Whether an observation is a packet arriving on a node (so a routing decision follows).
fn arrives_on_node(role: &InterfaceRole<'_>, hook: Hook) -> bool {
    hook == Hook::Ingress
        && matches!(
            role,
            InterfaceRole::HostVeth(_)
                | InterfaceRole::Uplink
                | InterfaceRole::Tunnel(_)
                | InterfaceRole::Other
        )
}

pub fn explain(raw: &RawJourney, ctx: &Context<'_>) -> Journey {
    let first = raw.observations[0];
    let t0 = first.ts_ns;
    let mut hops: Vec<Hop> = Vec::new();
    let mut previous: Option<&Observation> = None;
    // Where the packet last arrived on a node, awaiting its routing decision.
    let mut arrived: Option<u64> = None;

    // An ICMP error that starts on a node (not in a Pod) was generated by that node's
    // kernel about another packet: say so first.
    let first_role = ctx
        .topology
        .interface_role(first.netns_cookie, first.ifindex);
    let generated_error = first.tuple.proto == 1
        && matches!(first.icmp_type, 3 | 11 | 12)
        && !matches!(first_role, InterfaceRole::PodInterface(_));
    if generated_error {
        let mut hop = Hop::new(HopKind::IcmpError, 0, ctx.node_of(&first));
        hop.observed = false;
        hop.packet = Some(endpoints(first.tuple));
        hop.note = format!(
            "{} generated ICMP {} from {} to {}",
            ctx.node_of(&first).as_deref().unwrap_or("the kernel"),
            first.summary(),
            first.tuple.src,
            first.tuple.dst
        )
        .into();
        hops.push(hop);
    }

    for (index, obs) in raw.observations.iter().enumerate() {
        let t = obs.ts_ns - t0;
        // Freed after it was handed to the Pod: the receiving socket discarded it (closed
        // with data queued, …). That is the application's business, not a path drop.
        if obs.hook == Hook::Drop
            && let Some(delivery) = hops
                .iter_mut()
                .rev()
                .find(|h| h.kind == HopKind::PodDelivery && h.observed)
        {
            delivery.note = format!(
                "{}; later discarded by the receiving socket ({})",
                delivery.note,
                ctx.reasons.name(obs.drop_reason)
            )
            .into();
            continue;
        }
        let node = ctx.node_of(obs);
        let role = ctx.topology.interface_role(obs.netns_cookie, obs.ifindex);

        if let Some(prev) = previous
            && prev.tuple != obs.tuple
        {
            let where_ = ctx.node_in(prev.netns_cookie);
            hops.extend(nat_hops(prev, obs, t, where_, ctx));
        }

        let departs = obs.hook == Hook::Drop
            || (obs.hook == Hook::Egress && obs.netns_cookie == arrived.unwrap_or(u64::MAX));
        if let Some(cookie) = arrived
            && departs
            && cookie == obs.netns_cookie
        {
            let route = ctx.route_on(cookie, obs.tuple.dst);
            let mut hop = Hop::new(HopKind::RouteDecision, t, node.clone());
            hop.observed = false;
            hop.note = route.text.clone();
            hop.packet = Some(endpoints(obs.tuple));
            hop.route = Some(route);
            hops.push(hop);
            arrived = None;
        }

        let mut hop = observed_hop(obs, &role, t, node, ctx, raw);
        hop.observation = Some(index);
        hops.push(hop);
        if arrives_on_node(&role, obs.hook) && ctx.topology.node_name(obs.netns_cookie).is_some() {
            arrived = Some(obs.netns_cookie);
        }
        previous = Some(obs);
    }

    let last = *raw
        .observations
        .iter()
        .rev()
        .find(|o| {
            o.hook != Hook::Drop
                || !hops
                    .iter()
                    .any(|h| h.kind == HopKind::PodDelivery && h.observed)
        })
        .expect("journeys are never empty");
    let (verdict, drop) = if let Some(drop_hop) = hops.iter().find(|h| h.kind == HopKind::Drop) {
        (Verdict::Dropped, drop_hop.drop.clone())
    } else if let Some(mut extra) = ending(&last, ctx) {
        extra.t_ns = last.ts_ns - t0;
        let verdict =
            if extra.kind == HopKind::LeftTracedScope || extra.kind == HopKind::NotObserved {
                Verdict::Incomplete
            } else {
                Verdict::Delivered
            };
        if extra.kind != HopKind::PodDelivery {
            hops.push(extra);
        }
        (verdict, None)
    } else {
        (Verdict::Delivered, None)
    };

    let original = endpoints(first.tuple);
    let from = ctx.name(first.tuple.src, first.tuple.sport, first.tuple.proto);
    let to = ctx.name(first.tuple.dst, first.tuple.dport, first.tuple.proto);
    let direction = if generated_error {
        Direction::Related
    } else {
        direction(ctx.followed, first.tuple, last.tuple)
    };
    let duration_ns = last.ts_ns - t0;
    let mut journey = Journey {
        schema: SCHEMA_VERSION,
        id: raw.id,
        direction,
        protocol: first.tuple.protocol_name().to_owned(),
        summary: first.summary(),
        original,
        length: first.ip_len,
        from,
        to,
        start_ns: t0,
        started_at: rfc3339(i128::from(t0) + ctx.wall_offset_ns),
        duration_ns,
        verdict,
        diagnosis: String::new(),
        drop,
        hops,
    };
    journey.diagnosis = diagnose(&journey);
    journey
}

/// Request or reply, judged by where the packet came from or ended up (NAT may hide one
/// end at either the first or the last hop: a NodePort reply starts at the endpoint and
/// only gets the client's address back on the last node).
fn direction(followed: &Followed, first: Tuple, last: Tuple) -> Direction {
    let from = |ip: &Ipv4Addr| followed.from.contains(ip);
    let to = |ip: &Ipv4Addr| followed.to.contains(ip);
    if from(&first.src) || from(&last.src) {
        Direction::Request
    } else if from(&first.dst) || from(&last.dst) {
        Direction::Reply
    } else if to(&first.dst) || to(&last.dst) {
        Direction::Request
    } else if to(&first.src) || to(&last.src) {
        Direction::Reply
    } else {
        Direction::Related
    }
}

fn observed_hop(
    obs: &Observation,
    role: &InterfaceRole<'_>,
    t: u64,
    node: Option<Text>,
    ctx: &Context<'_>,
    raw: &RawJourney,
) -> Hop {
    // A tunnel device sees the inner packet; its outer header is seen on the uplink right
    // after (or before) this hop.
    let outer = match role {
        InterfaceRole::Tunnel(_) => raw
            .observations
            .iter()
            .filter(|o| o.netns_cookie == obs.netns_cookie && o.outer.is_some())
            .min_by_key(|o| o.ts_ns.abs_diff(obs.ts_ns))
            .and_then(|o| o.outer),
        _ => obs.outer,
    };
    let mut hop = if obs.hook == Hook::Drop {
        describe_hop(obs, role, node, ctx, outer)
    } else {
        let key = HopKey {
            netns_cookie: obs.netns_cookie,
            ifindex: obs.ifindex,
            hook: obs.hook,
            outer,
        };
        ctx.memo
            .hop(key, || describe_hop(obs, role, node, ctx, outer))
    };
    hop.t_ns = t;
    hop.packet = Some(endpoints(obs.tuple));
    hop
}

/// An observed hop's presentation: everything but its time and packet, which is why it can
/// be shared by every packet seen at the same place.
fn describe_hop(
    obs: &Observation,
    role: &InterfaceRole<'_>,
    node: Option<Text>,
    ctx: &Context<'_>,
    outer: Option<Outer>,
) -> Hop {
    let interface = ctx.interface_name(obs);
    let kind = match (role, obs.hook) {
        (_, Hook::Drop) => HopKind::Drop,
        (InterfaceRole::PodInterface(_), Hook::Egress) => HopKind::PodEgress,
        (InterfaceRole::PodInterface(_), Hook::Ingress) => HopKind::PodDelivery,
        (InterfaceRole::HostVeth(_), _) => HopKind::VethCrossing,
        (InterfaceRole::Tunnel(_), Hook::Egress) => HopKind::Encapsulation,
        (InterfaceRole::Tunnel(_), Hook::Ingress) => HopKind::Decapsulation,
        (_, Hook::Egress) => HopKind::NodeEgress,
        (_, Hook::Ingress) => HopKind::NodeIngress,
    };
    let mut hop = Hop::new(kind, 0, node.clone());
    hop.interface.clone_from(&interface);
    hop.ifindex = Some(obs.ifindex);
    let iface = interface
        .as_deref()
        .map_or_else(|| format!("if{}", obs.ifindex), str::to_owned);
    match role {
        InterfaceRole::PodInterface(pod) => {
            hop.pod = Some(pod.qualified().into());
            hop.peer = pod.host_veth.as_ref().map(|v| {
                format!(
                    "{}@if{} on {}",
                    v,
                    pod.eth_ifindex,
                    pod.node.as_deref().unwrap_or("?")
                )
                .into()
            });
            hop.note = if obs.hook == Hook::Egress {
                format!("{} sends via {iface}", pod.name)
            } else {
                format!("delivered into {} ({iface})", pod.name)
            }
            .into();
        }
        InterfaceRole::HostVeth(pod) => {
            hop.pod = Some(pod.qualified().into());
            hop.peer = Some(
                format!(
                    "{}@if{} in {}",
                    pod.eth,
                    pod.host_ifindex.unwrap_or(0),
                    pod.name
                )
                .into(),
            );
            let at_if = pod
                .host_ifindex
                .map_or(iface.clone(), |_| format!("{iface}@if{}", pod.eth_ifindex));
            hop.note = if obs.hook == Hook::Ingress {
                format!(
                    "{}@if{} → {at_if}: from Pod {} into {}",
                    pod.eth,
                    pod.host_ifindex.unwrap_or(0),
                    pod.name,
                    node.as_deref().unwrap_or("the node")
                )
            } else {
                format!(
                    "{at_if} → {}@if{}: from {} into Pod {}",
                    pod.eth,
                    pod.host_ifindex.unwrap_or(0),
                    node.as_deref().unwrap_or("the node"),
                    pod.name
                )
            }
            .into();
        }
        InterfaceRole::Tunnel(link) => {
            let vxlan = link.vxlan.clone();
            hop.encap = Some(Encap {
                vni: outer.map_or_else(|| vxlan.as_ref().map_or(0, |v| v.vni), |o| o.vni),
                outer_src: outer
                    .map(|o| o.src)
                    .or_else(|| vxlan.as_ref().and_then(|v| v.local)),
                outer_dst: outer.map(|o| o.dst),
                udp_port: outer
                    .map_or_else(|| vxlan.as_ref().map_or(4789, |v| v.port), |o| o.dport),
                device: link.name.as_str().into(),
                mtu: Some(link.mtu),
            });
            let e = hop.encap.as_ref().expect("just set");
            let outer_text = match (e.outer_src, e.outer_dst) {
                (Some(s), Some(d)) => format!(", outer {s} → {d}"),
                _ => String::new(),
            };
            hop.note = format!(
                "{} VNI {}{outer_text}, UDP {}, MTU {}",
                if obs.hook == Hook::Egress {
                    "encapsulated by"
                } else {
                    "decapsulated by"
                },
                e.vni,
                e.udp_port,
                link.mtu
            )
            .replacen("by VNI", &format!("by {} VNI", link.name), 1)
            .into();
        }
        _ => {
            if let Some(outer) = outer {
                hop.encap = Some(Encap {
                    vni: outer.vni,
                    outer_src: Some(outer.src),
                    outer_dst: Some(outer.dst),
                    udp_port: outer.dport,
                    device: iface.as_str().into(),
                    mtu: None,
                });
            }
            let towards = match obs.hook {
                Hook::Egress => format!(
                    "leaves {} via {iface}",
                    node.as_deref().unwrap_or("the host")
                ),
                Hook::Ingress => format!(
                    "arrives on {} via {iface}",
                    node.as_deref().unwrap_or("the host")
                ),
                Hook::Drop => String::new(),
            };
            hop.note = match outer {
                Some(o) => format!("{towards} (VXLAN {} → {}, VNI {})", o.src, o.dst, o.vni),
                None => towards,
            }
            .into();
        }
    }
    if obs.hook == Hook::Drop {
        let drop = drop_info(obs, node, interface, ctx);
        hop.note = format!("dropped: {} — {}", drop.reason, drop.hint).into();
        hop.drop = Some(drop);
    }
    hop
}

fn drop_info(
    obs: &Observation,
    node: Option<Text>,
    interface: Option<Text>,
    ctx: &Context<'_>,
) -> DropInfo {
    let reason = ctx.reasons.name(obs.drop_reason);
    let where_ = node.as_deref().unwrap_or("this host").to_owned();
    let dst = obs.tuple.dst;
    let route = ctx.route_on(obs.netns_cookie, dst);
    let hint = match reason.as_str() {
        "IP_INNOROUTES" | "IP_OUTNOROUTES" | "NO_ROUTE" | "IP_INADDRERRORS" => {
            let owner = ctx
                .cluster
                .pod_by_ip(dst)
                .map(|(p, n)| match n {
                    Some(n) => format!(" ({p}, on {n})"),
                    None => format!(" ({p})"),
                })
                .unwrap_or_default();
            let block = block_of(ctx, dst)
                .map(|(node, prefix)| {
                    format!("; the route to {node}'s Pod block {prefix} is missing on {where_}")
                })
                .unwrap_or_default();
            format!("no route to {dst}{owner} on {where_}{block}")
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
            if obs.tuple.proto == 1 && obs.icmp_type == 3 && obs.icmp_code == 4 {
                format!(
                    "a netfilter rule on {where_} dropped the ICMP 'fragmentation needed' meant for {dst}: path MTU discovery cannot work (MTU black hole)"
                )
            } else if let Some(service) = ctx
                .cluster
                .service_by_cluster_ip(dst, obs.tuple.dport, obs.tuple.proto)
                .filter(|s| s.ready_endpoints == 0)
            {
                format!(
                    "Service {} has no endpoints: kube-proxy's REJECT rule refused it (ICMP port unreachable to the sender)",
                    service.name
                )
            } else {
                format!("an iptables/nftables rule on {where_} dropped it")
            }
        }
        "NO_SOCKET" => format!("nothing listens on {dst} port {}", obs.tuple.dport),
        "NOT_SPECIFIED" => "the kernel freed it without saying why".to_owned(),
        _ => format!("the kernel dropped it ({reason})"),
    };
    DropInfo {
        reason: reason.into(),
        reason_code: obs.drop_reason,
        hint: hint.into(),
        node,
        interface,
    }
}

/// The node whose Pod block holds `ip`, judged from the other nodes' routing tables (a
/// node routes its own block as a local blackhole, as Calico does, or via its bridge).
fn block_of(ctx: &Context<'_>, ip: Ipv4Addr) -> Option<(String, String)> {
    let (_, node) = ctx.cluster.pod_by_ip(ip)?;
    let node = node?;
    let host = ctx.topology.node_host(&node)?;
    let route = host
        .info
        .routes
        .iter()
        .filter(|r| r.contains(ip) && r.prefix < 32 && r.prefix >= 16)
        .max_by_key(|r| r.prefix)?;
    Some((node, format!("{}/{}", route.dst, route.prefix)))
}

fn nat_hops(
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
    };
    let dnat_service = ctx.service_at(before.dst, before.dport, before.proto);
    if (before.dst != after.dst || before.dport != after.dport) && dnat_service.is_none() {
        // Not a Service address: conntrack giving a reply its masqueraded client back.
        let mut hop = Hop::new(HopKind::ReplyUnsnat, t, node.clone());
        hop.observed = false;
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
                let name = service.map(|s| Text::from(s.name));
                let mut hop = Hop::new(HopKind::ReplyUndnat, 0, node.clone());
                hop.observed = false;
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
            let mut hop = Hop::new(HopKind::Snat, t, node);
            hop.observed = false;
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
            r.to == after.dst
                && r.to_port == after.dport
                && service
                    .as_ref()
                    .is_none_or(|s| r.comment.starts_with(&s.name))
        })
    });
    let position = service.as_ref().and_then(|s| {
        ctx.cluster
            .endpoint_position(&s.name, after.dst, after.dport)
    });
    let endpoint_pod = ctx.cluster.pod_by_ip(after.dst).map(|(p, _)| p);
    let name = service.as_ref().map(|s| Text::from(s.name.as_str()));
    let mut hop = Hop::new(HopKind::ServiceDnat, 0, node);
    hop.observed = false;
    hop.service.clone_from(&name);
    hop.pod = endpoint_pod.as_deref().map(Text::from);
    hop.nat = Some(Nat {
        before: endpoints(before),
        after: endpoints(after),
        service: name,
        endpoint_pod: hop.pod.clone(),
        chain: rule.map(|r| Text::from(r.sep_chain.as_str())),
        service_chain: rule.and_then(|r| r.svc_chain.as_deref().map(Text::from)),
        endpoint_index: position.map(|p| p.0),
        endpoints_total: position.map(|p| p.1),
    });
    hop.note = format!(
        "{} {}:{} → {} {}:{}{}{}",
        service.as_ref().map_or("DNAT", |s| s.name.as_str()),
        before.dst,
        before.dport,
        endpoint_pod
            .as_deref()
            .map_or("", |p| p.rsplit('/').next().unwrap_or(p)),
        after.dst,
        after.dport,
        rule.map(|r| format!(", {}", r.sep_chain))
            .unwrap_or_default(),
        position
            .map(|(i, n)| format!(", endpoint {i} of {n}"))
            .unwrap_or_default(),
    )
    .into();
    hop
}

/// What comes after the last observation when nothing dropped the packet: its delivery, a
/// departure from what is traced, or the hop that should have come next.
fn ending(last: &Observation, ctx: &Context<'_>) -> Option<Hop> {
    let role = ctx.topology.interface_role(last.netns_cookie, last.ifindex);
    let node = ctx.node_of(last);
    let t = 0; // the caller stamps the time of the last observation
    let dst = last.tuple.dst;
    match (&role, last.hook) {
        (InterfaceRole::PodInterface(_), Hook::Ingress) => {
            Some(Hop::new(HopKind::PodDelivery, t, node))
        }
        (InterfaceRole::Uplink | InterfaceRole::Other, Hook::Ingress)
            if ctx
                .topology
                .host(last.netns_cookie)
                .is_some_and(|h| h.info.has_address(dst)) =>
        {
            // Addressed to the node itself: delivered locally.
            let mut hop = Hop::new(HopKind::NodeIngress, t, node);
            hop.observed = false;
            hop.note = format!(
                "delivered locally to {}",
                hop.node.as_deref().unwrap_or_default()
            )
            .into();
            Some(hop)
        }
        (InterfaceRole::Uplink | InterfaceRole::Other, Hook::Egress) => {
            let next = last.outer.map_or(dst, |o| o.dst);
            let route = ctx.route_on(last.netns_cookie, next);
            let next_hop = route.gateway.unwrap_or(next);
            let mut hop = Hop::new(HopKind::NotObserved, t, None);
            hop.observed = false;
            match ctx.topology.node_with_address(next_hop) {
                Some(peer) => {
                    hop.node = Some(peer.into());
                    hop.note =
                        format!("expected to arrive on {peer} ({next_hop}); not observed there")
                            .into();
                }
                None => match ctx.cluster.node_by_ip(next_hop) {
                    Some(peer) => {
                        hop.kind = HopKind::LeftTracedScope;
                        hop.note = format!(
                            "left for node {peer} ({next_hop}); {peer} is not traced from here"
                        )
                        .into();
                        hop.node = Some(peer.into());
                    }
                    None => {
                        // Leaving the cluster (a client outside it, or the Internet).
                        hop.kind = HopKind::NodeEgress;
                        hop.node.clone_from(&node);
                        hop.note = format!("left the cluster towards {next_hop}").into();
                    }
                },
            }
            Some(hop)
        }
        (InterfaceRole::HostVeth(pod), Hook::Egress) => {
            let mut hop = Hop::new(HopKind::NotObserved, t, node);
            hop.observed = false;
            hop.pod = Some(pod.qualified().into());
            hop.note = format!(
                "expected delivery into {} ({}); not observed",
                pod.name, pod.eth
            )
            .into();
            Some(hop)
        }
        _ => {
            let mut hop = Hop::new(HopKind::NotObserved, t, node.clone());
            hop.observed = false;
            let route = ctx.route_on(last.netns_cookie, dst);
            hop.note = match (&role, last.hook) {
                (InterfaceRole::PodInterface(pod), Hook::Egress) => format!(
                    "expected to cross {} into {}; not observed",
                    pod.host_veth.as_deref().unwrap_or("the veth"),
                    pod.node.as_deref().unwrap_or("the node")
                ),
                _ => format!("next hop after `{}` not observed", route.text),
            }
            .into();
            hop.route = Some(route);
            Some(hop)
        }
    }
}

fn diagnose(journey: &Journey) -> String {
    let observed = journey.hops.iter().filter(|h| h.observed).count();
    let took = format_duration(journey.duration_ns);
    let dnat = journey
        .hops
        .iter()
        .find(|h| h.kind == HopKind::ServiceDnat)
        .and_then(|h| h.nat.as_ref());
    let via = dnat
        .map(|n| {
            let endpoint = n.endpoint_pod.as_deref().map_or_else(
                || n.after.dst.to_string(),
                |p| p.rsplit('/').next().unwrap_or(p).to_owned(),
            );
            let position = match (n.endpoint_index, n.endpoints_total) {
                (Some(i), Some(t)) => format!(", endpoint {i} of {t}"),
                _ => String::new(),
            };
            format!(
                " via {} → {endpoint}{position}",
                n.service.as_deref().unwrap_or("DNAT")
            )
        })
        .unwrap_or_default();
    let tunnel = journey
        .hops
        .iter()
        .find_map(|h| h.encap.as_ref())
        .map(|e| format!(", VXLAN VNI {}", e.vni))
        .unwrap_or_default();
    match journey.verdict {
        Verdict::Delivered => {
            let last = journey.hops.last();
            let target = match last.map(|h| h.kind) {
                Some(HopKind::PodDelivery) => last.and_then(|h| h.pod.clone()).map_or_else(
                    || journey.to.label(),
                    |p| p.rsplit('/').next().unwrap_or(&p).to_owned(),
                ),
                _ => last.map(|h| h.note.to_string()).unwrap_or_default(),
            };
            format!("delivered to {target}{via}{tunnel} in {observed} observed hops, {took}")
        }
        Verdict::Dropped => {
            let drop = journey.drop.as_ref();
            format!(
                "dropped on {} at {}: {} ({})",
                drop.and_then(|d| d.node.clone())
                    .unwrap_or_else(|| "this host".into()),
                drop.and_then(|d| d.interface.clone())
                    .unwrap_or_else(|| "?".into()),
                drop.map(|d| d.hint.clone()).unwrap_or_default(),
                drop.map(|d| d.reason.clone()).unwrap_or_default()
            )
        }
        Verdict::Incomplete => {
            let missing = journey
                .hops
                .iter()
                .rev()
                .find(|h| matches!(h.kind, HopKind::NotObserved | HopKind::LeftTracedScope));
            format!(
                "incomplete: {}{via}",
                missing.map_or_else(
                    || "the path ends without a delivery or a drop".to_owned(),
                    |h| h.note.to_string()
                )
            )
        }
    }
}

pub fn format_duration(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// RFC 3339 UTC with microseconds, from Unix-epoch nanoseconds.
pub fn rfc3339(unix_ns: i128) -> String {
    let secs = i64::try_from(unix_ns.div_euclid(1_000_000_000)).unwrap_or(0);
    let micros = (unix_ns.rem_euclid(1_000_000_000) / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339(1_795_678_245_123_456_000),
            "2026-11-26T07:30:45.123456Z"
        );
        assert_eq!(format_duration(1_500), "1.5 µs");
    }
}
