//! What an observed hop is: from the interface's role on the path (a Pod's `eth0`, the
//! host side of its veth, an uplink, a tunnel device) and the hook (ingress, egress,
//! drop), its kind, names and one-line note.

use super::{Context, drop, endpoints};
use crate::{
    journey::{
        assemble::RawJourney,
        memo::HopKey,
        model::{Encap, Hop, HopKind, Text},
        observation::{Hook, Observation, Outer},
    },
    topology::roles::InterfaceRole,
};

/// An observed hop, its presentation shared with every packet seen at the same place
/// (the memo), stamped with this packet's time and addresses.
pub(super) fn observed(
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
        describe(obs, role, node, ctx, outer)
    } else {
        let key = HopKey {
            netns_cookie: obs.netns_cookie,
            ifindex: obs.ifindex,
            hook: obs.hook,
            outer,
        };
        ctx.memo.hop(key, || describe(obs, role, node, ctx, outer))
    };
    hop.t_ns = t;
    hop.packet = Some(endpoints(obs.tuple));
    hop
}

/// An observed hop's presentation: everything but its time and packet, which is why it can
/// be shared by every packet seen at the same place.
fn describe(
    obs: &Observation,
    role: &InterfaceRole<'_>,
    node: Option<Text>,
    ctx: &Context<'_>,
    outer: Option<Outer>,
) -> Hop {
    let interface = ctx.interface_name(obs);
    let kind = match (role, obs.hook) {
        (_, Hook::Drop) => HopKind::Drop,
        (_, Hook::Route) => HopKind::RouteDecision,
        // NAT observations become NAT hops in `nat::observed`, not here.
        (_, Hook::Nat) => HopKind::ServiceDnat,
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
            let action = if obs.hook == Hook::Egress {
                "encapsulated"
            } else {
                "decapsulated"
            };
            hop.note = format!(
                "{action} by {} VNI {}{outer_text}, UDP {}, MTU {}",
                link.name, e.vni, e.udp_port, link.mtu
            )
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
                Hook::Drop | Hook::Route | Hook::Nat => String::new(),
            };
            hop.note = match outer {
                Some(o) => format!("{towards} (VXLAN {} → {}, VNI {})", o.src, o.dst, o.vni),
                None => towards,
            }
            .into();
        }
    }
    if obs.hook == Hook::Drop {
        let drop = drop::info(obs, node, interface, ctx);
        hop.note = format!("dropped: {} — {}", drop.reason, drop.hint).into();
        hop.drop = Some(drop);
    }
    hop
}
