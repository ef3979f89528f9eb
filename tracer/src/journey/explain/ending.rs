//! What comes after the last observation when nothing dropped the packet: its delivery
//! into a Pod or to a node itself, its departure from what is traced, or the hop that
//! should have come next and was not observed (never a drop).

use super::Context;
use crate::{
    journey::{
        model::{Hop, HopKind},
        observation::{Hook, Observation},
    },
    topology::roles::InterfaceRole,
};

pub(super) fn after(last: &Observation, ctx: &Context<'_>) -> Option<Hop> {
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
            let from = format!(
                "its last hook, the ingress of {}'s own address; nothing past it is hooked",
                node.as_deref().unwrap_or("the node")
            );
            let mut hop = Hop::inferred(HopKind::NodeIngress, t, node, from);
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
                        hop.inferred_from = Some(
                            format!(
                                "its last hook, leaving {}, and the route there to {next_hop}",
                                node.as_deref().unwrap_or("the node")
                            )
                            .into(),
                        );
                        hop.node = Some(peer.into());
                    }
                    None => {
                        // Leaving the cluster (a client outside it, or the Internet).
                        hop.kind = HopKind::NodeEgress;
                        hop.node.clone_from(&node);
                        hop.note = format!("left the cluster towards {next_hop}").into();
                        hop.inferred_from = Some(
                            format!(
                                "its last hook, leaving {}, and the route there to {next_hop}, outside the cluster",
                                node.as_deref().unwrap_or("the node")
                            )
                            .into(),
                        );
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
