//! What a run looks at: the namespaces (from the kernel, named with the cluster model),
//! the interfaces to hook on them (the followed Pods' both veth ends, every traced node's
//! uplinks and tunnel devices), and what the user should know is not visible from here.

use std::collections::BTreeSet;

use super::plan;
use crate::{
    k8s::model::ClusterModel,
    topology::{
        NamespaceScope, Topology, discover,
        roles::{HostRole, NodeRef, PodRef},
    },
};

/// Builds the topology from the namespaces in `scope`, named with the cluster model; with
/// `node`, only that node's namespace and its Pods' (`tracer agent --node` on a machine that
/// holds several nodes, as the lab does).
pub fn discover_topology(
    model: &ClusterModel,
    scope: &NamespaceScope,
    node: Option<&str>,
) -> Topology {
    let nodes: Vec<NodeRef> = model
        .nodes()
        .map(|n| NodeRef {
            name: n.name.clone(),
            ips: n.internal_ips.clone(),
        })
        .collect();
    let pods: Vec<PodRef> = model
        .pods()
        .filter_map(|p| {
            let ip = p.ip?;
            // Host-network Pods share their node's namespace; they are not Pod hosts.
            let is_node_ip = nodes.iter().any(|n| n.ips.contains(&ip));
            (!is_node_ip).then(|| PodRef {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                ip,
                node: p.node.clone(),
            })
        })
        .collect();
    let namespaces = discover::namespace_paths(scope)
        .iter()
        .filter_map(|path| discover::read(path))
        .collect();
    let mut topology = Topology::build(namespaces, &nodes, &pods);
    if let Some(node) = node {
        topology.keep_node(node);
    }
    topology
}

/// One interface to attach both classifiers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    pub netns_path: String,
    pub interface: String,
    pub why: String,
}

/// Where to hook: the followed Pods' interfaces on both sides of their veth, and every
/// traced node's uplinks and tunnel devices.
pub fn attachments(topology: &Topology, filter: &[std::net::Ipv4Addr]) -> Vec<Attachment> {
    let mut out = BTreeSet::new();
    for host in &topology.hosts {
        match &host.role {
            HostRole::Node { name } => {
                for link in topology.uplinks(host.info.cookie) {
                    out.insert(Attachment {
                        netns_path: host.info.path.clone(),
                        interface: link.name.clone(),
                        why: format!("uplink of {name}"),
                    });
                }
                for link in host.info.links.iter().filter(|l| l.kind == "vxlan") {
                    out.insert(Attachment {
                        netns_path: host.info.path.clone(),
                        interface: link.name.clone(),
                        why: format!("tunnel device of {name}"),
                    });
                }
            }
            HostRole::Pod(pod) if filter.contains(&pod.ip) => {
                out.insert(Attachment {
                    netns_path: host.info.path.clone(),
                    interface: pod.eth.clone(),
                    why: format!("{} inside Pod {}", pod.eth, pod.qualified()),
                });
                if let (Some(cookie), Some(veth)) = (pod.node_cookie, &pod.host_veth)
                    && let Some(node) = topology.host(cookie)
                {
                    out.insert(Attachment {
                        netns_path: node.info.path.clone(),
                        interface: veth.clone(),
                        why: format!("host side of Pod {}", pod.qualified()),
                    });
                }
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

/// What the user should know about visibility before the first packet: a followed Pod on a
/// node that is not traced from here, or not found in any namespace.
pub fn visibility_warnings(topology: &Topology, plan: &plan::FollowPlan) -> Vec<String> {
    let mut notes = Vec::new();
    for target in [&plan.from, &plan.to] {
        if let crate::k8s::resolve::Target::Pod(pod) = target
            && let Some(ip) = pod.ip
            && topology.pod_by_ip(ip).is_none()
        {
            notes.push(format!(
                "Pod {}/{} runs on node {}, which is not traced from here: only its packets that pass through this node are visible",
                pod.namespace,
                pod.name,
                pod.node.as_deref().unwrap_or("?")
            ));
        }
    }
    notes
}
