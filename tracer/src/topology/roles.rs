//! Which namespace is which node or Pod, and what each interface is to the path.

use std::{collections::HashMap, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::netinfo::{Link, NetnsInfo};

/// A Kubernetes Node as far as topology needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    pub name: String,
    pub ips: Vec<Ipv4Addr>,
}

/// A Pod as far as topology needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostRole {
    Node { name: String },
    Pod(PodHost),
    Other,
}

/// A Pod's namespace and both ends of its veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodHost {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// The Pod's interface (`eth0`) and its index inside the Pod.
    pub eth: String,
    pub eth_ifindex: u32,
    /// The node it is wired to, and the host-side veth there.
    pub node: Option<String>,
    pub node_cookie: Option<u64>,
    pub host_veth: Option<String>,
    pub host_ifindex: Option<u32>,
}

impl PodHost {
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What an interface is on the packet path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceRole<'a> {
    /// A Pod's own interface, inside the Pod.
    PodInterface(&'a PodHost),
    /// The node-side end of a Pod's veth pair.
    HostVeth(&'a PodHost),
    /// The interface holding the node's address.
    Uplink,
    /// A VXLAN device.
    Tunnel(&'a Link),
    Other,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Topology {
    pub hosts: Vec<Host>,
    #[serde(skip)]
    by_cookie: HashMap<u64, usize>,
    /// Pod hosts by their veth's node-side end (node cookie, ifindex): a node with a
    /// hundred Pods would otherwise scan them all for every hop on a node interface.
    #[serde(skip)]
    by_host_veth: HashMap<(u64, u32), usize>,
    /// Node hosts by each address they hold: asked for every hop on a node interface.
    #[serde(skip)]
    by_node_address: HashMap<Ipv4Addr, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub info: NetnsInfo,
    pub role: HostRole,
}

impl Topology {
    pub fn build(namespaces: Vec<NetnsInfo>, nodes: &[NodeRef], pods: &[PodRef]) -> Self {
        let mut hosts: Vec<Host> = namespaces
            .into_iter()
            .map(|info| {
                let role = if let Some(node) = nodes
                    .iter()
                    .find(|n| n.ips.iter().any(|ip| info.has_address(*ip)))
                {
                    HostRole::Node {
                        name: node.name.clone(),
                    }
                } else if let Some(pod) = pods.iter().find(|p| info.has_address(p.ip)) {
                    let eth = info.link_with_address(pod.ip);
                    HostRole::Pod(PodHost {
                        namespace: pod.namespace.clone(),
                        name: pod.name.clone(),
                        ip: pod.ip,
                        eth: eth.map(|l| l.name.clone()).unwrap_or_default(),
                        eth_ifindex: eth.map_or(0, |l| l.ifindex),
                        node: pod.node.clone(),
                        node_cookie: None,
                        host_veth: None,
                        host_ifindex: None,
                    })
                } else {
                    HostRole::Other
                };
                Host { info, role }
            })
            .collect();

        // Pair each Pod's interface with its peer in a node namespace.
        let node_hosts: Vec<(u64, String, Vec<Link>)> = hosts
            .iter()
            .filter_map(|h| match &h.role {
                HostRole::Node { name } => {
                    Some((h.info.cookie, name.clone(), h.info.links.clone()))
                }
                _ => None,
            })
            .collect();
        for host in &mut hosts {
            let HostRole::Pod(pod) = &mut host.role else {
                continue;
            };
            let Some(peer_index) = host.info.link(pod.eth_ifindex).and_then(|l| l.peer_ifindex)
            else {
                continue;
            };
            let candidates: Vec<_> = node_hosts
                .iter()
                .filter_map(|(cookie, name, links)| {
                    links
                        .iter()
                        .find(|l| {
                            l.ifindex == peer_index && l.peer_ifindex == Some(pod.eth_ifindex)
                        })
                        .map(|l| (*cookie, name, l))
                })
                .collect();
            // Interface indexes repeat across namespaces: prefer the Pod's own node.
            let chosen = candidates
                .iter()
                .find(|(_, name, _)| pod.node.as_deref() == Some(name.as_str()))
                .or_else(|| (candidates.len() == 1).then(|| &candidates[0]));
            if let Some((cookie, name, link)) = chosen {
                pod.node = Some((*name).clone());
                pod.node_cookie = Some(*cookie);
                pod.host_veth = Some(link.name.clone());
                pod.host_ifindex = Some(link.ifindex);
            }
        }
        let mut topology = Self {
            hosts,
            by_cookie: HashMap::new(),
            by_host_veth: HashMap::new(),
            by_node_address: HashMap::new(),
        };
        topology.reindex();
        topology
    }

    /// Keeps only node `name`'s namespace and those of the Pods wired to it: what that
    /// node's agent traces when one machine holds several nodes (the lab). Namespaces that
    /// are no node's (a router between subnets) belong to no agent.
    pub fn keep_node(&mut self, name: &str) {
        self.hosts.retain(|host| match &host.role {
            HostRole::Node { name: node } => node == name,
            HostRole::Pod(pod) => pod.node.as_deref() == Some(name),
            HostRole::Other => false,
        });
        self.reindex();
    }

    /// Rebuilds the indexes (after deserialising, or after changing `hosts`).
    pub fn reindex(&mut self) {
        self.by_cookie = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.info.cookie, i))
            .collect();
        // The first host wins, as the scans these replace found it.
        self.by_host_veth = HashMap::new();
        self.by_node_address = HashMap::new();
        for (i, host) in self.hosts.iter().enumerate() {
            match &host.role {
                HostRole::Pod(PodHost {
                    node_cookie: Some(cookie),
                    host_ifindex: Some(ifindex),
                    ..
                }) => {
                    self.by_host_veth.entry((*cookie, *ifindex)).or_insert(i);
                }
                HostRole::Node { .. } => {
                    for address in &host.info.addresses {
                        self.by_node_address.entry(address.ip).or_insert(i);
                    }
                }
                _ => {}
            }
        }
    }

    pub fn host(&self, cookie: u64) -> Option<&Host> {
        self.by_cookie.get(&cookie).map(|&i| &self.hosts[i])
    }

    /// The node a namespace belongs to: itself for a node, its node for a Pod.
    pub fn node_name(&self, cookie: u64) -> Option<&str> {
        match &self.host(cookie)?.role {
            HostRole::Node { name } => Some(name),
            HostRole::Pod(pod) => pod.node.as_deref(),
            HostRole::Other => None,
        }
    }

    pub fn node_host(&self, name: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| matches!(&h.role, HostRole::Node { name: n } if n == name))
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodHost> {
        self.hosts.iter().find_map(|h| match &h.role {
            HostRole::Pod(p) if p.namespace == namespace && p.name == name => Some(p),
            _ => None,
        })
    }

    pub fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&PodHost> {
        self.hosts.iter().find_map(|h| match &h.role {
            HostRole::Pod(p) if p.ip == ip => Some(p),
            _ => None,
        })
    }

    /// The node whose namespace holds `ip` (a node address).
    pub fn node_with_address(&self, ip: Ipv4Addr) -> Option<&str> {
        match &self.hosts[*self.by_node_address.get(&ip)?].role {
            HostRole::Node { name } => Some(name.as_str()),
            _ => None,
        }
    }

    pub fn interface_role(&self, cookie: u64, ifindex: u32) -> InterfaceRole<'_> {
        let Some(host) = self.host(cookie) else {
            return InterfaceRole::Other;
        };
        match &host.role {
            HostRole::Pod(pod) if pod.eth_ifindex == ifindex => InterfaceRole::PodInterface(pod),
            HostRole::Node { .. } => {
                if let Some(HostRole::Pod(pod)) = self
                    .by_host_veth
                    .get(&(cookie, ifindex))
                    .map(|&i| &self.hosts[i].role)
                {
                    return InterfaceRole::HostVeth(pod);
                }
                match host.info.link(ifindex) {
                    Some(link) if link.kind == "vxlan" => InterfaceRole::Tunnel(link),
                    // A dummy carries nothing off the node (IPVS mode's kube-ipvs0 only holds
                    // the ClusterIPs, on every node).
                    Some(link) if link.kind == "dummy" => InterfaceRole::Other,
                    Some(_)
                        if host
                            .info
                            .addresses
                            .iter()
                            .any(|a| a.ifindex == ifindex && self.is_node_address(a.ip)) =>
                    {
                        InterfaceRole::Uplink
                    }
                    _ => InterfaceRole::Other,
                }
            }
            _ => InterfaceRole::Other,
        }
    }

    fn is_node_address(&self, ip: Ipv4Addr) -> bool {
        self.node_with_address(ip).is_some()
    }

    /// The uplinks of a node: the interfaces holding one of its Node addresses (not the
    /// Pod gateway bridge, the tunnel device or a dummy such as IPVS mode's `kube-ipvs0`,
    /// which have addresses of their own).
    pub fn uplinks(&self, node_cookie: u64) -> Vec<&Link> {
        let Some(host) = self.host(node_cookie) else {
            return Vec::new();
        };
        host.info
            .addresses
            .iter()
            .filter(|a| self.is_node_address(a.ip))
            .filter_map(|a| host.info.link(a.ifindex))
            .filter(|l| !matches!(l.kind.as_str(), "vxlan" | "dummy") && l.name != "lo")
            .collect()
    }

    /// `name@ifN` as `ip link` prints it: the interface and its peer's index.
    pub fn at_if(link: &Link) -> String {
        match link.peer_ifindex {
            Some(peer) => format!("{}@if{peer}", link.name),
            None => link.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::netinfo::Address;

    fn link(ifindex: u32, name: &str, kind: &str) -> Link {
        Link {
            ifindex,
            name: name.into(),
            mtu: 1500,
            kind: kind.into(),
            peer_ifindex: None,
            up: kind != "dummy",
            master: None,
            vxlan: None,
        }
    }

    #[test]
    fn kube_ipvs0_holding_the_cluster_ips_is_no_uplink() {
        // An IPVS-mode node: its uplink, and the dummy holding every ClusterIP.
        let node = NetnsInfo {
            cookie: 7,
            inode: 7,
            path: "/run/netns/cpu2".into(),
            links: vec![link(2, "enp2s0", ""), link(6, "kube-ipvs0", "dummy")],
            addresses: vec![
                Address {
                    ifindex: 2,
                    ip: Ipv4Addr::new(172, 30, 1, 80),
                    prefix: 24,
                },
                Address {
                    ifindex: 6,
                    ip: Ipv4Addr::new(10, 109, 60, 89),
                    prefix: 32,
                },
            ],
            routes: vec![],
            dnat_rules: vec![],
            proxy_modes: vec![],
        };
        let topology = Topology::build(
            vec![node],
            &[NodeRef {
                name: "cpu2".into(),
                ips: vec![Ipv4Addr::new(172, 30, 1, 80)],
            }],
            &[],
        );
        let uplinks: Vec<&str> = topology
            .uplinks(7)
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(uplinks, ["enp2s0"]);
        assert_eq!(topology.interface_role(7, 2), InterfaceRole::Uplink);
        assert_eq!(topology.interface_role(7, 6), InterfaceRole::Other);
    }
}
