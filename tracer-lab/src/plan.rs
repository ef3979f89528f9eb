//! What `lab up` does, as data: the `ip`/`bridge` batches, sysctls and iptables rules that
//! build the topology and apply a scenario. Generating them is pure (and unit-tested);
//! `lab::apply` runs them.
//!
//! Topology (built once):
//! - `tracer-lab-lan`: the LAN switch, bridges `br-lan` (172.30.1.0/24) and `br-remote`
//!   (172.30.2.0/24, used by `cross-subnet`), one port per node/router/client.
//! - `tracer-lab-<node>`: a node's host namespace: uplink `enp2s0`, `vxlan.calico`, one
//!   `cali…` veth per Pod (proxy ARP, `/32` route), cpu1's `wlp3s0` (down).
//! - `tracer-lab-pod-<pod>`: a Pod: `eth0` with a /32, `default via 169.254.1.1`.
//! - `tracer-lab-router`: joins the two subnets; `tracer-lab-client`: a machine on the LAN
//!   outside the cluster (NodePort from outside).
//!
//! A scenario (applied on every `up`, so `up` switches in place) sets the node addresses,
//! Calico's routes (`proto 80`), VXLAN neighbours and FDB entries and MTUs; kube-proxy's
//! rules follow in the proxy mode asked for ([`kube_proxy_rules`]). The scenario's cleanup
//! batch runs with `-force`, since what it removes may not exist yet.
//!
//! A Pod replaced after `up` (`lab replace-pod`) is wired by [`add_pod`] exactly as
//! [`topology`] wires the seed's Pods, unwired by [`remove_pod`], and kube-proxy's rules are
//! rewritten alone ([`kube_proxy_rules`]), without the rest of a scenario switch.

use super::{
    kube_proxy::{self, NodeRules},
    spec::{
        CALICO_ROUTE_PROTO, Cluster, Node, OUTSIDE_CLIENT_IP, POD_GATEWAY, Pod, ProxyMode,
        ROUTER_LAN_IP, ROUTER_REMOTE_IP, SERVICE_NETWORK, UPLINK, VXLAN_DEVICE, VXLAN_MTU,
        VXLAN_PORT, VXLAN_VNI,
    },
};

const LAN_BRIDGE: &str = "br-lan";
const REMOTE_BRIDGE: &str = "br-remote";

/// Prefix of every namespace the lab creates: `tracer-lab-`, or `$TRACER_LAB_PREFIX` so
/// tests can build a lab of their own beside a running one.
pub fn prefix() -> String {
    std::env::var("TRACER_LAB_PREFIX").unwrap_or_else(|_| DEFAULT_PREFIX.to_owned())
}

pub const DEFAULT_PREFIX: &str = "tracer-lab-";

pub fn lan_netns() -> String {
    format!("{}lan", prefix())
}

pub fn router_netns() -> String {
    format!("{}router", prefix())
}

pub fn client_netns() -> String {
    format!("{}client", prefix())
}

pub fn node_netns(node: &str) -> String {
    format!("{}{node}", prefix())
}

pub fn pod_netns(pod: &str) -> String {
    format!("{}pod-{pod}", prefix())
}

/// Every namespace the lab creates, in creation order.
pub fn namespaces(cluster: &Cluster) -> Vec<String> {
    let mut names = vec![lan_netns(), router_netns(), client_netns()];
    names.extend(cluster.nodes.iter().map(|n| node_netns(n.name)));
    names.extend(cluster.pods.iter().map(|p| pod_netns(&p.name)));
    names
}

/// Which tool reads a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ip,
    Bridge,
}

/// Commands for `ip -n NETNS -batch -` (or `bridge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub netns: String,
    pub tool: Tool,
    pub lines: Vec<String>,
    /// Keep going past errors (`-force`): for cleanups of things that may not exist.
    pub force: bool,
}

impl Batch {
    fn new(netns: &str, tool: Tool) -> Self {
        Self {
            netns: netns.to_owned(),
            tool,
            lines: Vec::new(),
            force: false,
        }
    }

    fn line(&mut self, line: impl Into<String>) -> &mut Self {
        self.lines.push(line.into());
        self
    }
}

/// A sysctl to write inside a namespace (`net/ipv4/ip_forward` → `1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub netns: String,
    pub key: String,
    pub value: &'static str,
}

/// Batches that build the topology, in order. Expects the namespaces to exist.
pub fn topology(cluster: &Cluster) -> (Vec<Batch>, Vec<Sysctl>) {
    let mut batches = Vec::new();
    let mut sysctls = Vec::new();

    let mut lan = Batch::new(&lan_netns(), Tool::Ip);
    lan.line("link set lo up");
    for bridge in [LAN_BRIDGE, REMOTE_BRIDGE] {
        lan.line(format!("link add {bridge} type bridge"))
            .line(format!("link set {bridge} up"));
    }
    for node in &cluster.nodes {
        lan.line(format!(
            "link add {port} type veth peer name {UPLINK} netns {ns}",
            port = node.name,
            ns = node_netns(node.name)
        ));
    }
    let (router_ns, client_ns) = (router_netns(), client_netns());
    lan.line(format!(
        "link add router0 type veth peer name lan0 netns {router_ns}"
    ))
    .line(format!(
        "link add router1 type veth peer name lan1 netns {router_ns}"
    ))
    .line(format!(
        "link add client type veth peer name eth0 netns {client_ns}"
    ));
    for (port, bridge) in [
        ("router0", LAN_BRIDGE),
        ("router1", REMOTE_BRIDGE),
        ("client", LAN_BRIDGE),
    ] {
        lan.line(format!("link set {port} master {bridge} up"));
    }

    let mut router = Batch::new(&router_netns(), Tool::Ip);
    router
        .line("link set lo up")
        .line(format!("addr add {ROUTER_LAN_IP}/24 dev lan0"))
        .line("link set lan0 up")
        .line(format!("addr add {ROUTER_REMOTE_IP}/24 dev lan1"))
        .line("link set lan1 up");
    batches.push(router);
    sysctls.push(Sysctl {
        netns: router_netns(),
        key: "net/ipv4/ip_forward".to_owned(),
        value: "1",
    });

    let mut client = Batch::new(&client_netns(), Tool::Ip);
    client
        .line("link set lo up")
        .line(format!("addr add {OUTSIDE_CLIENT_IP}/24 dev eth0"))
        .line("link set eth0 up")
        .line(format!("route add 172.30.2.0/24 via {ROUTER_LAN_IP}"));
    batches.push(client);

    for node in &cluster.nodes {
        let ns = node_netns(node.name);
        let mut host = Batch::new(&ns, Tool::Ip);
        // Proxy ARP answers only for addresses the node can route elsewhere; real nodes
        // have a default route for that, but the lab's nodes must not (in the incident a
        // missing Pod route has to drop on the node, not leak to a gateway). The gateway
        // address on `lo` makes the node answer for it on every `cali…` veth instead.
        host.line("link set lo up")
            .line(format!("addr add {POD_GATEWAY}/32 dev lo"))
            .line(format!("link set {UPLINK} up"));
        if let Some(down) = node.down_interface {
            // Present but down, like the seed's Wi-Fi that Calico tried to use: a veth
            // whose other end (the "access point") sits unplugged in the LAN namespace.
            lan.line(format!(
                "link add {}-wifi type veth peer name {down} netns {ns}",
                node.name
            ));
        }
        sysctls.push(Sysctl {
            netns: ns.clone(),
            key: "net/ipv4/ip_forward".to_owned(),
            value: "1",
        });
        for pod in cluster.pods_on(node.name) {
            let wiring = wire_pod(pod);
            host.lines.extend(wiring.node_lines);
            sysctls.extend(wiring.sysctls);
            batches.push(wiring.inside);
        }
        batches.push(host);
    }
    // The LAN batch creates the nodes' uplinks, and node batches the Pods' eth0: in order.
    batches.insert(0, lan);
    batches.sort_by_key(|b| b.netns.starts_with(&pod_netns("")));
    (batches, sysctls)
}

/// One Pod's wiring, as a CNI plugin (Calico) sets it up: the node's lines (the veth pair,
/// the host side up with Calico's MAC, the `/32` route to the Pod), proxy ARP on the host
/// side, and the Pod's own batch (its address, the `169.254.1.1` gateway).
struct PodWiring {
    node_lines: Vec<String>,
    sysctls: Vec<Sysctl>,
    inside: Batch,
}

fn wire_pod(pod: &Pod) -> PodWiring {
    let veth = pod.host_veth();
    let node_lines = vec![
        format!(
            "link add {veth} type veth peer name eth0 netns {}",
            pod_netns(&pod.name)
        ),
        format!("link set {veth} address ee:ee:ee:ee:ee:ee up"),
        format!("route add {}/32 dev {veth} scope link", pod.ip),
    ];
    let sysctls = [
        (format!("net/ipv4/conf/{veth}/proxy_arp"), "1"),
        (format!("net/ipv4/neigh/{veth}/proxy_delay"), "0"),
    ]
    .into_iter()
    .map(|(key, value)| Sysctl {
        netns: node_netns(pod.node),
        key,
        value,
    })
    .collect();
    let mut inside = Batch::new(&pod_netns(&pod.name), Tool::Ip);
    inside
        .line("link set lo up")
        .line(format!("addr add {}/32 dev eth0", pod.ip))
        .line("link set eth0 up")
        .line(format!("route add {POD_GATEWAY} dev eth0 scope link"))
        .line(format!("route add default via {POD_GATEWAY} dev eth0"));
    PodWiring {
        node_lines,
        sysctls,
        inside,
    }
}

/// What bringing up one new Pod takes once its namespace exists (`lab replace-pod`): the
/// node's batch (veth, route, and the MTU the scenario gives both ends), then the sysctls,
/// then the Pod's batch, in that order. The same wiring as [`topology`] gives the seed's
/// Pods.
pub fn add_pod(pod: &Pod) -> (Batch, Vec<Sysctl>, Batch) {
    let wiring = wire_pod(pod);
    let mut node = Batch::new(&node_netns(pod.node), Tool::Ip);
    node.lines = wiring.node_lines;
    node.line(format!("link set {} mtu {}", pod.host_veth(), pod.mtu));
    let mut inside = wiring.inside;
    inside.line(format!("link set eth0 mtu {}", pod.mtu));
    (node, wiring.sysctls, inside)
}

/// Unwires a Pod that is going away: deleting the host side of its veth pair deletes the
/// pair and the Pod's route with it, even while something still holds the Pod's namespace
/// open; the namespace itself is deleted after.
pub fn remove_pod(pod: &Pod) -> Batch {
    let mut node = Batch::new(&node_netns(pod.node), Tool::Ip);
    node.line(format!("link del {}", pod.host_veth()));
    node
}

/// kube-proxy's rules in `mode` for every node (with each node's own firewall rule), for a
/// scenario switch or alone (a replaced Pod: without the rest of a scenario switch, which
/// briefly flushes the nodes' routes).
pub fn kube_proxy_rules(cluster: &Cluster, mode: ProxyMode) -> Vec<NodeRules> {
    cluster
        .nodes
        .iter()
        .map(|n| kube_proxy::node_rules(cluster, mode, n, &node_netns(n.name)))
        .collect()
}

/// Batches that (re)apply `cluster.scenario`'s addresses, routes and MTUs.
pub fn scenario(cluster: &Cluster) -> Vec<Batch> {
    let mut batches = Vec::new();

    let mut lan = Batch::new(&lan_netns(), Tool::Ip);
    for node in &cluster.nodes {
        let bridge = if node.subnet.addr.octets()[2] == 1 {
            LAN_BRIDGE
        } else {
            REMOTE_BRIDGE
        };
        lan.line(format!("link set {} master {bridge} up", node.name));
    }
    batches.push(lan);

    for node in &cluster.nodes {
        let ns = node_netns(node.name);
        let mut cleanup = Batch::new(&ns, Tool::Ip);
        cleanup.force = true;
        cleanup
            .line(format!("addr flush dev {UPLINK}"))
            .line(format!("route flush proto {CALICO_ROUTE_PROTO}"))
            .line("route flush proto static")
            .line(format!("link del {VXLAN_DEVICE}"));
        batches.push(cleanup);
        batches.push(node_routes(cluster, node));
        let fdb = vxlan_fdb(cluster, node);
        if !fdb.lines.is_empty() {
            batches.push(fdb);
        }
    }
    for pod in &cluster.pods {
        let mut mtu = Batch::new(&pod_netns(&pod.name), Tool::Ip);
        mtu.line(format!("link set eth0 mtu {}", pod.mtu));
        batches.push(mtu);
    }
    batches
}

fn node_routes(cluster: &Cluster, node: &Node) -> Batch {
    let mut b = Batch::new(&node_netns(node.name), Tool::Ip);
    b.line(format!(
        "addr add {}/{} dev {UPLINK}",
        node.ip, node.subnet.prefix
    ))
    .line(format!(
        "link add {VXLAN_DEVICE} type vxlan id {VXLAN_VNI} local {} dev {UPLINK} dstport {VXLAN_PORT} nolearning",
        node.ip
    ))
    .line(format!(
        "link set {VXLAN_DEVICE} address {} mtu {VXLAN_MTU} up",
        node.vtep_mac()
    ))
    .line(format!("addr add {}/32 dev {VXLAN_DEVICE}", node.vtep_ip()))
    .line(format!(
        "route add blackhole {} proto {CALICO_ROUTE_PROTO}",
        node.block
    ));
    // Service traffic must be routed before kube-proxy's filter rules see it (a Service
    // without endpoints is REJECTed in FORWARD). Real nodes do that with their default
    // route; the lab's nodes have none, so that a missing Pod route drops on the node
    // instead of leaking to a gateway, and route only the Service network to the gateway.
    let gateway = if node.subnet.addr.octets()[2] == 1 {
        ROUTER_LAN_IP
    } else {
        ROUTER_REMOTE_IP
    };
    b.line(format!(
        "route add {SERVICE_NETWORK} via {gateway} dev {UPLINK} proto static"
    ));
    if let Some(router) = node.router {
        let other = if node.subnet.addr.octets()[2] == 1 {
            "172.30.2.0/24"
        } else {
            "172.30.1.0/24"
        };
        b.line(format!(
            "route add {other} via {router} dev {UPLINK} proto static"
        ));
    }
    for peer in cluster.nodes.iter().filter(|p| p.name != node.name) {
        if !cluster.has_block_route(node, peer) {
            continue;
        }
        if cluster.scenario.encapsulates(node, peer) {
            b.line(format!(
                "neigh replace {} lladdr {} dev {VXLAN_DEVICE} nud permanent",
                peer.vtep_ip(),
                peer.vtep_mac()
            ))
            .line(format!(
                "route add {} via {} dev {VXLAN_DEVICE} onlink proto {CALICO_ROUTE_PROTO}",
                peer.block,
                peer.vtep_ip()
            ));
        } else {
            b.line(format!(
                "route add {} via {} dev {UPLINK} onlink proto {CALICO_ROUTE_PROTO}",
                peer.block, peer.ip
            ));
        }
    }
    for pod in cluster.pods_on(node.name) {
        b.line(format!("link set {} mtu {}", pod.host_veth(), pod.mtu));
    }
    b
}

fn vxlan_fdb(cluster: &Cluster, node: &Node) -> Batch {
    let mut b = Batch::new(&node_netns(node.name), Tool::Bridge);
    for peer in cluster.nodes.iter().filter(|p| p.name != node.name) {
        if cluster.has_block_route(node, peer) && cluster.scenario.encapsulates(node, peer) {
            b.line(format!(
                "fdb replace {} dev {VXLAN_DEVICE} dst {} self permanent",
                peer.vtep_mac(),
                peer.ip
            ));
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Scenario;

    fn lines_of<'a>(batches: &'a [Batch], netns: &str) -> Vec<&'a str> {
        batches
            .iter()
            .filter(|b| b.netns == netns && !b.force)
            .flat_map(|b| b.lines.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn healthy_routes_are_the_seeds() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let batches = scenario(&cluster);
        let cpu1 = lines_of(&batches, "tracer-lab-cpu1");
        assert!(
            cpu1.contains(&"route add 10.244.5.192/26 via 172.30.1.38 dev enp2s0 onlink proto 80")
        );
        assert!(
            cpu1.contains(
                &"route add 10.244.102.128/26 via 172.30.1.80 dev enp2s0 onlink proto 80"
            )
        );
    }

    #[test]
    fn wrong_interface_leaves_cpu1_without_block_routes() {
        let cluster = Cluster::seed(Scenario::WrongInterface);
        let batches = scenario(&cluster);
        let cpu1 = lines_of(&batches, "tracer-lab-cpu1");
        assert!(!cpu1.iter().any(|l| l.contains("10.244.102.128/26")));
        let cpu2 = lines_of(&batches, "tracer-lab-cpu2");
        assert!(
            cpu2.iter()
                .any(|l| l.contains("10.244.184.64/26 via 172.30.1.43"))
        );
    }

    #[test]
    fn vxlan_and_cross_subnet_route_through_the_tunnel() {
        let cluster = Cluster::seed(Scenario::Vxlan);
        let batches = scenario(&cluster);
        let cpu2 = lines_of(&batches, "tracer-lab-cpu2");
        assert!(cpu2.contains(
            &"route add 10.244.184.64/26 via 10.244.184.64 dev vxlan.calico onlink proto 80"
        ));
        assert!(cpu2.iter().any(|l| {
            l.starts_with("fdb replace 66:4c:61:62:01:2b dev vxlan.calico dst 172.30.1.43")
        }));

        let cluster = Cluster::seed(Scenario::CrossSubnet);
        let batches = scenario(&cluster);
        let cpu1 = lines_of(&batches, "tracer-lab-cpu1");
        assert!(
            cpu1.contains(
                &"route add 10.244.102.128/26 via 172.30.1.80 dev enp2s0 onlink proto 80"
            )
        );
        assert!(cpu1.contains(
            &"route add 10.244.5.192/26 via 10.244.5.192 dev vxlan.calico onlink proto 80"
        ));
        assert!(cpu1.contains(&"route add 172.30.2.0/24 via 172.30.1.1 dev enp2s0 proto static"));
    }

    #[test]
    fn topology_creates_pod_veths_before_configuring_pods() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let (batches, sysctls) = topology(&cluster);
        let node_pos = batches
            .iter()
            .position(|b| b.netns == "tracer-lab-cpu2")
            .unwrap();
        let pod_pos = batches
            .iter()
            .position(|b| b.netns == "tracer-lab-pod-nettest")
            .unwrap();
        assert!(node_pos < pod_pos);
        assert!(sysctls.iter().any(|s| s.key.ends_with("proxy_arp")));
        assert_eq!(namespaces(&cluster).len(), 3 + 3 + 6);
    }
    #[test]
    fn a_replacement_pod_is_wired_like_the_seeds_and_unwired_by_its_veth() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let rollout = cluster
            .rollout("nginx-test-7d9c4b6f5-abcde", false, "plan", 0)
            .unwrap();
        let new = &rollout.new;
        let veth = new.host_veth();
        let (node, sysctls, inside) = add_pod(new);
        assert_eq!(node.netns, "tracer-lab-cpu1");
        assert_eq!(
            node.lines,
            [
                format!(
                    "link add {veth} type veth peer name eth0 netns tracer-lab-pod-{}",
                    new.name
                ),
                format!("link set {veth} address ee:ee:ee:ee:ee:ee up"),
                format!("route add 10.244.184.65/32 dev {veth} scope link"),
                format!("link set {veth} mtu 1450"),
            ]
        );
        assert!(sysctls.iter().all(|s| s.netns == "tracer-lab-cpu1"));
        assert!(
            sysctls
                .iter()
                .any(|s| s.key == format!("net/ipv4/conf/{veth}/proxy_arp"))
        );
        assert_eq!(inside.netns, format!("tracer-lab-pod-{}", new.name));
        assert!(
            inside
                .lines
                .contains(&"addr add 10.244.184.65/32 dev eth0".to_owned())
        );
        assert!(
            inside
                .lines
                .contains(&"route add default via 169.254.1.1 dev eth0".to_owned())
        );
        assert_eq!(inside.lines.last().unwrap(), "link set eth0 mtu 1450");

        // The same wiring as a lab built with the Pod from the start.
        let after = cluster.with_changes(&rollout.changes);
        let (batches, _) = topology(&after);
        let cpu1 = lines_of(&batches, "tracer-lab-cpu1");
        assert!(cpu1.contains(&node.lines[0].as_str()));
        assert!(!cpu1.iter().any(|l| l.contains(&rollout.old.host_veth())));
        let names = namespaces(&after);
        assert!(names.contains(&pod_netns(&new.name)));
        assert!(!names.contains(&pod_netns(&rollout.old.name)));

        let removal = remove_pod(&rollout.old);
        assert_eq!(removal.netns, "tracer-lab-cpu1");
        assert_eq!(
            removal.lines,
            [format!("link del {}", rollout.old.host_veth())]
        );
    }

    #[test]
    fn kube_proxy_rules_follow_the_replacement_in_nftables_and_ipvs_mode() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let rollout = cluster
            .rollout("nginx-test-7d9c4b6f5-abcde", false, "plan", 0)
            .unwrap();
        let after = cluster.with_changes(&rollout.changes);
        let nginx = &after.services[0];
        for node in kube_proxy_rules(&after, ProxyMode::Nftables) {
            let text = node.nftables.unwrap();
            assert!(text.contains(&nginx.nft_endpoint_chain(rollout.new.ip)));
            assert!(!text.contains(&nginx.nft_endpoint_chain(rollout.old.ip)));
        }
        for node in kube_proxy_rules(&after, ProxyMode::Ipvs) {
            let services = node.ipvs.unwrap().services;
            let new = format!("-a -t 10.109.60.89:80 -r {}:80 -m -w 1", rollout.new.ip);
            assert!(services.contains(&new), "{services:?}");
            assert!(!services.iter().any(|l| l.contains("10.244.184.84")));
        }
    }

    #[test]
    fn kube_proxy_rules_follow_the_replacement_on_every_node() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let rollout = cluster
            .rollout("nginx-test-7d9c4b6f5-abcde", false, "plan", 0)
            .unwrap();
        let after = cluster.with_changes(&rollout.changes);
        let rules = kube_proxy_rules(&after, ProxyMode::Iptables);
        assert_eq!(rules.len(), 3);
        let nginx = &after.services[0];
        for node in &rules {
            let text = node.iptables.as_deref().unwrap();
            assert!(text.contains(&format!("-j DNAT --to-destination {}:80", rollout.new.ip)));
            assert!(text.contains(&nginx.sep_chain(rollout.new.ip)));
            assert!(!text.contains("10.244.184.84:80"));
            assert!(!text.contains(&nginx.sep_chain(rollout.old.ip)));
        }
    }
}
