//! kube-proxy's IPVS mode (pkg/proxy/ipvs/proxier.go, `syncProxyRules`): every ClusterIP is
//! bound (/32) to the dummy interface `kube-ipvs0`, so the node accepts it as its own, and
//! IPVS (at netfilter's LOCAL_IN) hands each new connection to one real server of the
//! matching virtual server, round robin, in masquerade (NAT) mode. A NodePort is a virtual
//! server on every address of the node (not kube-ipvs0's, not loopback). A Service without
//! endpoints keeps its virtual server with no real server: IPVS then answers ICMP port
//! unreachable and drops the packet.
//!
//! IPVS mode still writes iptables rules, matching ipsets rather than one rule per Service:
//! `KUBE-SERVICES` marks traffic for masquerading (from outside the Pod network to a
//! ClusterIP, and to NodePorts) and accepts ClusterIP traffic; `KUBE-POSTROUTING`
//! masquerades marked packets and hairpin traffic (`KUBE-LOOP-BACK`); `KUBE-IPVS-FILTER`
//! refuses connections to kube-ipvs0's addresses on ports no Service uses. The sysctls it
//! needs are set in the node's namespace (`net/ipv4/vs/conntrack` lets iptables see the
//! IPVS connection, so the masquerade works).
//!
//! Virtual and real servers are described as `ipvsadm -Sn` prints them, so the lab can
//! compare them with what a node has and change only the difference (see
//! `apply::kube_proxy`).

use std::net::Ipv4Addr;

use super::Tables;
use crate::spec::{Cluster, Node, POD_GATEWAY, POD_NETWORK};

const MASQ_MARK: &str = "0x004000";

/// One ipset kube-proxy's IPVS mode creates: name, `ipset create` type and options, and
/// the comment its iptables rules carry.
pub struct IpsetKind {
    pub name: &'static str,
    create: &'static str,
    comment: &'static str,
}

const HASH: &str = "family inet hashsize 1024 maxelem 65536";

/// Every ipset kube-proxy creates in IPVS mode (`ipsetInfo`), used or not.
pub const IPSETS: [IpsetKind; 17] = [
    set(
        "KUBE-LOOP-BACK",
        "hash:ip,port,ip",
        "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose",
    ),
    set(
        "KUBE-CLUSTER-IP",
        "hash:ip,port",
        "Kubernetes service cluster ip + port for masquerade purpose",
    ),
    set(
        "KUBE-EXTERNAL-IP",
        "hash:ip,port",
        "Kubernetes service external ip + port for masquerade and filter purpose",
    ),
    set(
        "KUBE-EXTERNAL-IP-LOCAL",
        "hash:ip,port",
        "Kubernetes service external ip + port with externalTrafficPolicy=local",
    ),
    set(
        "KUBE-LOAD-BALANCER",
        "hash:ip,port",
        "Kubernetes service lb portal",
    ),
    set(
        "KUBE-LOAD-BALANCER-FW",
        "hash:ip,port",
        "Kubernetes service load balancer ip + port for load balancer with sourceRange",
    ),
    set(
        "KUBE-LOAD-BALANCER-LOCAL",
        "hash:ip,port",
        "Kubernetes service load balancer ip + port with externalTrafficPolicy=local",
    ),
    set(
        "KUBE-LOAD-BALANCER-SOURCE-IP",
        "hash:ip,port,ip",
        "Kubernetes service load balancer ip + port + source IP for packet filter purpose",
    ),
    set(
        "KUBE-LOAD-BALANCER-SOURCE-CIDR",
        "hash:ip,port,net",
        "Kubernetes service load balancer ip + port + source cidr for packet filter purpose",
    ),
    set(
        "KUBE-NODE-PORT-TCP",
        "bitmap:port",
        "Kubernetes nodeport TCP port for masquerade purpose",
    ),
    set(
        "KUBE-NODE-PORT-LOCAL-TCP",
        "bitmap:port",
        "Kubernetes nodeport TCP port with externalTrafficPolicy=local",
    ),
    set(
        "KUBE-NODE-PORT-UDP",
        "bitmap:port",
        "Kubernetes nodeport UDP port for masquerade purpose",
    ),
    set(
        "KUBE-NODE-PORT-LOCAL-UDP",
        "bitmap:port",
        "Kubernetes nodeport UDP port with externalTrafficPolicy=local",
    ),
    set(
        "KUBE-NODE-PORT-SCTP-HASH",
        "hash:ip,port",
        "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'",
    ),
    set(
        "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
        "hash:ip,port",
        "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'",
    ),
    set(
        "KUBE-HEALTH-CHECK-NODE-PORT",
        "bitmap:port",
        "Kubernetes health check node port",
    ),
    set(
        "KUBE-IPVS-IPS",
        "hash:ip",
        "Addresses on the ipvs interface",
    ),
];

const fn set(name: &'static str, create: &'static str, comment: &'static str) -> IpsetKind {
    IpsetKind {
        name,
        create,
        comment,
    }
}

fn comment_of(name: &str) -> &'static str {
    IPSETS
        .iter()
        .find(|s| s.name == name)
        .map_or("", |s| s.comment)
}

/// What IPVS mode wants on one node, besides its iptables rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipvs {
    /// Virtual servers, each followed by its real servers, as `ipvsadm -Sn` prints them
    /// (`-A -t 10.109.60.89:80 -s rr`, `-a -t 10.109.60.89:80 -r 10.244.5.203:80 -m -w 1`).
    pub services: Vec<String>,
    /// `kube-ipvs0`'s addresses (each a /32): the ClusterIPs.
    pub dummy_addresses: Vec<Ipv4Addr>,
    /// `ipset restore` input: every set created (if missing), emptied and filled.
    pub ipsets: String,
    /// Sysctls kube-proxy sets in IPVS mode, relative to `/proc/sys`.
    pub sysctls: Vec<(&'static str, &'static str)>,
    /// Whether `KUBE-LOOP-BACK` and `KUBE-NODE-PORT-TCP` hold anything (their iptables
    /// rules are written only then, as kube-proxy does).
    has_local_endpoints: bool,
    has_node_ports: bool,
}

/// The name of the dummy interface holding the ClusterIPs.
pub const DUMMY: &str = "kube-ipvs0";

pub(super) fn wanted(cluster: &Cluster, node: &Node) -> Ipvs {
    // NodePorts listen on every address of the node but kube-ipvs0's and loopback.
    let node_addresses = [node.ip, POD_GATEWAY, node.vtep_ip()];
    let mut services = Vec::new();
    let mut entries: Vec<(&str, String)> = Vec::new();
    let mut dummy_addresses = Vec::new();
    for service in &cluster.services {
        let endpoints = cluster.endpoints(service);
        let mut virtual_server = |vip: Ipv4Addr, port: u16| {
            services.push(format!("-A -t {vip}:{port} -s rr"));
            for pod in &endpoints {
                services.push(format!(
                    "-a -t {vip}:{port} -r {}:{} -m -w 1",
                    pod.ip, service.target_port
                ));
            }
        };
        virtual_server(service.cluster_ip, service.port);
        if let Some(node_port) = service.node_port {
            for address in node_addresses {
                virtual_server(address, node_port);
            }
            entries.push(("KUBE-NODE-PORT-TCP", node_port.to_string()));
        }
        dummy_addresses.push(service.cluster_ip);
        entries.push((
            "KUBE-CLUSTER-IP",
            format!("{},tcp:{}", service.cluster_ip, service.port),
        ));
        for pod in endpoints.iter().filter(|p| p.node == node.name) {
            entries.push((
                "KUBE-LOOP-BACK",
                format!("{0},tcp:{1},{0}", pod.ip, service.target_port),
            ));
        }
    }
    for address in &dummy_addresses {
        entries.push(("KUBE-IPVS-IPS", address.to_string()));
    }

    let mut ipsets = String::new();
    for set in &IPSETS {
        let options = if set.create == "bitmap:port" {
            "range 0-65535"
        } else {
            HASH
        };
        ipsets.push_str(&format!(
            "create {} {} {options} -exist\nflush {}\n",
            set.name, set.create, set.name
        ));
    }
    for (set, entry) in &entries {
        ipsets.push_str(&format!("add {set} {entry} -exist\n"));
    }
    Ipvs {
        services,
        dummy_addresses,
        ipsets,
        sysctls: vec![
            ("net/ipv4/vs/conntrack", "1"),
            ("net/ipv4/vs/expire_nodest_conn", "1"),
            ("net/ipv4/vs/expire_quiescent_template", "1"),
        ],
        has_local_endpoints: entries.iter().any(|(s, _)| *s == "KUBE-LOOP-BACK"),
        has_node_ports: entries.iter().any(|(s, _)| *s == "KUBE-NODE-PORT-TCP"),
    }
}

/// The iptables rules IPVS mode writes (`createAndLinkKubeChain`, `writeIptablesRules`),
/// in its order. Its jumps from the built-in chains are prepended one by one, so they end
/// up in reverse order.
pub(super) fn iptables_rules(ipvs: &Ipvs, tables: &mut Tables) {
    let Tables { nat, filter } = tables;
    for chain in [
        "KUBE-SERVICES",
        "KUBE-POSTROUTING",
        "KUBE-NODE-PORT",
        "KUBE-LOAD-BALANCER",
        "KUBE-MARK-MASQ",
    ] {
        nat.chain(chain);
    }
    for chain in [
        "KUBE-FORWARD",
        "KUBE-NODE-PORT",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "KUBE-IPVS-FILTER",
        "KUBE-IPVS-OUT-FILTER",
    ] {
        filter.chain(chain);
    }
    nat.rule("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    nat.rule("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    nat.rule(
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    );
    filter.rule(
        "-A INPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-FILTER",
    );
    filter
        .rule("-A INPUT -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL");
    filter
        .rule("-A INPUT -m comment --comment \"kubernetes health check rules\" -j KUBE-NODE-PORT");
    filter.rule(
        "-A FORWARD -m comment --comment \"kube-proxy firewall rules\" -j KUBE-PROXY-FIREWALL",
    );
    filter.rule("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD");
    filter.rule(
        "-A OUTPUT -m comment --comment \"kubernetes ipvs access filter\" -j KUBE-IPVS-OUT-FILTER",
    );

    nat.rule("-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN");
    if ipvs.has_local_endpoints {
        nat.rule(&format!(
            "-A KUBE-POSTROUTING -m comment --comment \"{}\" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE",
            comment_of("KUBE-LOOP-BACK")
        ));
    }
    if ipvs.has_node_ports {
        nat.rule(&format!(
            "-A KUBE-NODE-PORT -p tcp -m comment --comment \"{}\" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ",
            comment_of("KUBE-NODE-PORT-TCP")
        ));
    }
    nat.rule(&format!(
        "-A KUBE-SERVICES -m comment --comment \"{}\" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s {POD_NETWORK} -j KUBE-MARK-MASQ",
        comment_of("KUBE-CLUSTER-IP")
    ));
    nat.rule("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT");
    nat.rule("-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ");
    filter.rule("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP");
    nat.rule("-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT");
    filter.rule(&format!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT"
    ));
    filter.rule("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
    filter.rule(&format!(
        "-A KUBE-NODE-PORT -m comment --comment \"{}\" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT",
        comment_of("KUBE-HEALTH-CHECK-NODE-PORT")
    ));
    for (set, kind) in [
        ("KUBE-LOAD-BALANCER", "dst,dst"),
        ("KUBE-CLUSTER-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP", "dst,dst"),
        ("KUBE-EXTERNAL-IP-LOCAL", "dst,dst"),
        ("KUBE-HEALTH-CHECK-NODE-PORT", "dst"),
    ] {
        filter.rule(&format!(
            "-A KUBE-IPVS-FILTER -m set --match-set {set} {kind} -j RETURN"
        ));
    }
    filter.rule("-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT");
    nat.rule(&format!(
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    ));
    nat.rule(&format!(
        "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}"
    ));
    nat.rule("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully");
    nat.rule(&format!("-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Scenario;

    #[test]
    fn every_service_is_a_round_robin_virtual_server_with_its_endpoints_as_real_servers() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let cpu1 = wanted(&cluster, &cluster.nodes[0]);
        let nginx: Vec<_> = cpu1
            .services
            .iter()
            .filter(|l| l.contains("-t 10.109.60.89:80"))
            .map(String::as_str)
            .collect();
        assert_eq!(
            nginx,
            [
                "-A -t 10.109.60.89:80 -s rr",
                "-a -t 10.109.60.89:80 -r 10.244.102.138:80 -m -w 1",
                "-a -t 10.109.60.89:80 -r 10.244.184.84:80 -m -w 1",
                "-a -t 10.109.60.89:80 -r 10.244.5.203:80 -m -w 1",
            ]
        );
        // webapp's NodePort on each of cpu1's addresses.
        for address in ["172.30.1.43", "169.254.1.1", "10.244.184.64"] {
            assert!(
                cpu1.services
                    .contains(&format!("-A -t {address}:32065 -s rr")),
                "{address}"
            );
        }
        assert_eq!(
            cpu1.dummy_addresses,
            [
                Ipv4Addr::new(10, 109, 60, 89),
                Ipv4Addr::new(10, 103, 193, 83)
            ]
        );
        // Hairpin entries only for the endpoints on this node.
        assert!(
            cpu1.ipsets
                .contains("add KUBE-LOOP-BACK 10.244.184.84,tcp:80,10.244.184.84 -exist")
        );
        assert!(!cpu1.ipsets.contains("10.244.102.138,tcp:80,10.244.102.138"));
        assert!(
            cpu1.ipsets
                .contains("add KUBE-CLUSTER-IP 10.109.60.89,tcp:80 -exist")
        );
        assert!(
            cpu1.ipsets
                .contains("create KUBE-NODE-PORT-TCP bitmap:port range 0-65535 -exist")
        );

        let mut tables = Tables::default();
        iptables_rules(&cpu1, &mut tables);
        let text = tables.render();
        assert!(text.contains("-A KUBE-SERVICES -m comment --comment \"Kubernetes service cluster ip + port for masquerade purpose\" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"));
        assert!(text.contains("--match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE"));
    }

    #[test]
    fn a_service_without_endpoints_keeps_a_virtual_server_without_real_servers() {
        let cluster = Cluster::seed(Scenario::NoEndpoints);
        let gpu1 = wanted(&cluster, &cluster.nodes[2]);
        assert!(
            gpu1.services
                .contains(&"-A -t 10.109.60.89:80 -s rr".to_owned())
        );
        assert!(
            !gpu1
                .services
                .iter()
                .any(|l| l.starts_with("-a -t 10.109.60.89:80"))
        );
        assert!(
            gpu1.dummy_addresses
                .contains(&Ipv4Addr::new(10, 109, 60, 89))
        );
    }
}
