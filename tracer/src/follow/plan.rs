//! `tracer follow` settles its arguments into a plan before anything is loaded: the two
//! endpoints resolved to Kubernetes objects, the addresses the kernel filter lets through,
//! which side is which (request vs reply), and the user-side filters.

use std::net::Ipv4Addr;

use crate::{
    journey::explain::Followed,
    k8s::{
        model::ClusterModel,
        resolve::{ResolveError, Target, resolve, same_target},
    },
    pipeline::JourneyFilter,
    topology::NamespaceScope,
};

#[derive(Debug, Clone)]
pub struct FollowPlan {
    pub from: Target,
    pub to: Target,
    pub followed: Followed,
    /// Every address the kernel programs emit events for.
    pub filter: Vec<Ipv4Addr>,
    /// The user's `--port`/`--proto`: which journeys are shown.
    pub journeys: JourneyFilter,
    /// Which network namespaces discovery reads (`--netns-prefix`).
    pub namespaces: NamespaceScope,
    /// Only this node's namespaces (`tracer agent --node`): on a machine that holds several
    /// nodes, each node's agent traces its own.
    pub node: Option<String>,
}

/// The addresses that stand for a target: a Pod's IP; a Service's ClusterIP and endpoints,
/// and the nodes' addresses when it has NodePorts; a node's addresses; an IP itself.
pub fn addresses(model: &ClusterModel, target: &Target) -> Vec<Ipv4Addr> {
    match target {
        Target::Pod(pod) => pod.ip.into_iter().collect(),
        Target::Ip(ip) => vec![*ip],
        Target::Node(node) => node.internal_ips.clone(),
        Target::Service(service) => {
            let mut ips: Vec<Ipv4Addr> = service.cluster_ip.into_iter().collect();
            ips.extend(service.endpoints.iter().map(|e| e.ip));
            if service.ports.iter().any(|p| p.node_port.is_some()) {
                ips.extend(model.nodes().flat_map(|n| n.internal_ips.iter().copied()));
            }
            ips
        }
    }
}

/// What the user asked `follow` for, as typed.
#[derive(Debug, Clone, Default)]
pub struct Asked<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// For names given without one.
    pub namespace: &'a str,
    pub filter: JourneyFilter,
    pub namespaces: NamespaceScope,
    pub node: Option<String>,
}

pub fn plan(model: &ClusterModel, asked: Asked<'_>) -> Result<FollowPlan, ResolveError> {
    let Asked {
        from: from_spec,
        to: to_spec,
        namespace,
        filter: journeys,
        namespaces,
        node,
    } = asked;
    let from = resolve(model, from_spec, namespace)?;
    let to = resolve(model, to_spec, namespace)?;
    if same_target(&from, &to) {
        return Err(ResolveError::SameEndpoint {
            from: from_spec.to_owned(),
            to: to_spec.to_owned(),
            target: from.to_string(),
        });
    }
    let from_ips = addresses(model, &from);
    let to_ips = addresses(model, &to);
    let mut filter: Vec<Ipv4Addr> = from_ips.iter().chain(&to_ips).copied().collect();
    filter.sort_unstable();
    filter.dedup();
    Ok(FollowPlan {
        from,
        to,
        followed: Followed {
            from: from_ips,
            to: to_ips,
            sample_shift: 0,
        },
        filter,
        journeys,
        namespaces,
        node,
    })
}

pub fn describe(target: &Target) -> String {
    match target {
        Target::Pod(p) => format!(
            "Pod {}/{} ({}, node {})",
            p.namespace,
            p.name,
            p.ip.map_or_else(|| "no IP".to_owned(), |i| i.to_string()),
            p.node.as_deref().unwrap_or("?")
        ),
        Target::Service(s) => format!(
            "Service {}/{} ({}, {} endpoints)",
            s.namespace,
            s.name,
            s.cluster_ip
                .map_or_else(|| "headless".to_owned(), |i| i.to_string()),
            s.endpoints.iter().filter(|e| e.ready).count()
        ),
        Target::Node(n) => format!("node {}", n.name),
        Target::Ip(ip) => format!("{ip}"),
    }
}
