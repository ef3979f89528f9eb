//! kube-proxy's nftables mode: the `ip kube-proxy` table, written as the transaction
//! kube-proxy hands `nft -f` (pkg/proxy/nftables/proxier.go, `setupNFTables` and
//! `syncProxyRules`): base chains named `<type>-<hook>`, the `services` chain dispatching
//! through the `service-ips` and `service-nodeports` verdict maps to a `service-HASH-…`
//! chain per Service port, which picks an endpoint with `numgen random mod n vmap` and
//! jumps to an `endpoint-HASH-…` chain that DNATs; a Service without endpoints is an
//! element of `no-endpoint-services` sending new connections to `reject-chain`.
//!
//! Choices kube-proxy makes from its configuration, made here as a kubeadm cluster's
//! defaults would: the Pod network as the "local traffic" detector (`ip saddr !=
//! 10.244.0.0/16`), `--nodeport-addresses primary` (nftables mode's default: the node's own
//! address in `nodeport-ips`), masquerade bit 14, and the Service CIDR known (unallocated
//! ClusterIPs dropped). Base chain priorities are written as numbers (`dstnat - 10` is
//! -110): nft accepts the names only on some hooks, and lists them back either way.
//!
//! The script starts by deleting the table (`add` then `delete`, so it works whether or not
//! it exists) and rebuilds it in the same transaction: `nft` applies it atomically.

use std::fmt::Write as _;

use crate::spec::{Cluster, Node, POD_NETWORK, SERVICE_NETWORK, Service, ServiceType};

const TABLE: &str = "ip kube-proxy";
const MASQ_MARK: &str = "0x4000";

/// `nft -f` input: kube-proxy's whole table on `node`.
pub(super) fn table(cluster: &Cluster, node: &Node) -> String {
    let mut nft = Script::default();
    nft.line(format!("add table {TABLE}"));
    nft.line(format!("delete table {TABLE}"));
    setup(&mut nft, node);
    for service in &cluster.services {
        service_rules(&mut nft, cluster, service);
    }
    nft.text
}

#[derive(Default)]
struct Script {
    text: String,
}

impl Script {
    fn line(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.text, "{}", line.as_ref());
    }

    fn chain(&mut self, name: &str) {
        self.line(format!("add chain {TABLE} {name}"));
    }

    fn rule(&mut self, chain: &str, rule: &str) {
        self.line(format!("add rule {TABLE} {chain} {rule}"));
    }

    fn element(&mut self, set: &str, element: &str) {
        self.line(format!("add element {TABLE} {set} {{ {element} }}"));
    }
}

/// The table's fixed part, in `setupNFTables`' order.
fn setup(nft: &mut Script, node: &Node) {
    nft.line(format!(
        "add table {TABLE} {{ comment \"rules for kube-proxy\" ; }}"
    ));
    // (name, type, hook, priority): filtering before DNAT, so on pre-DNAT addresses.
    let base_chains = [
        ("filter-prerouting", "filter", "prerouting", -110),
        ("filter-input", "filter", "input", -110),
        ("filter-forward", "filter", "forward", -110),
        ("filter-output", "filter", "output", -110),
        ("filter-output-post-dnat", "filter", "output", -90),
        ("nat-prerouting", "nat", "prerouting", -100),
        ("nat-output", "nat", "output", -100),
        ("nat-postrouting", "nat", "postrouting", 100),
    ];
    for (name, kind, hook, priority) in base_chains {
        nft.line(format!(
            "add chain {TABLE} {name} {{ type {kind} hook {hook} priority {priority} ; }}"
        ));
    }
    // (chain, from, match): the jumps from the base chains, in kube-proxy's order.
    let jumps = [
        ("nodeport-endpoints-check", "filter-input", "ct state new "),
        ("service-endpoints-check", "filter-input", "ct state new "),
        ("service-endpoints-check", "filter-forward", "ct state new "),
        ("service-endpoints-check", "filter-output", "ct state new "),
        ("firewall-check", "filter-prerouting", "ct state new "),
        ("firewall-check", "filter-output", "ct state new "),
        ("services", "nat-output", ""),
        ("services", "nat-prerouting", ""),
        ("masquerading", "nat-postrouting", ""),
        ("cluster-ips-check", "filter-forward", "ct state new "),
        (
            "cluster-ips-check",
            "filter-output-post-dnat",
            "ct state new ",
        ),
    ];
    let mut created: Vec<&str> = Vec::new();
    for (chain, from, matches) in jumps {
        if !created.contains(&chain) {
            nft.chain(chain);
            created.push(chain);
        }
        nft.rule(from, &format!("{matches}jump {chain}"));
    }
    nft.chain("mark-for-masquerade");
    nft.rule(
        "mark-for-masquerade",
        &format!("mark set mark or {MASQ_MARK}"),
    );
    nft.rule("masquerading", &format!("mark and {MASQ_MARK} == 0 return"));
    nft.rule("masquerading", &format!("mark set mark xor {MASQ_MARK}"));
    nft.rule("masquerading", "masquerade fully-random");

    nft.line(format!(
        "add set {TABLE} cluster-ips {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"
    ));
    nft.rule(
        "cluster-ips-check",
        "ip daddr @cluster-ips reject comment \"Reject traffic to invalid ports of ClusterIPs\"",
    );
    nft.rule(
        "cluster-ips-check",
        &format!(
            "ip daddr {{ {SERVICE_NETWORK} }} drop comment \"Drop traffic to unallocated ClusterIPs\""
        ),
    );

    nft.line(format!(
        "add set {TABLE} nodeport-ips {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }}"
    ));
    nft.element("nodeport-ips", &node.ip.to_string());

    nft.line(format!(
        "add map {TABLE} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to services with no endpoints\" ; }}"
    ));
    nft.line(format!(
        "add map {TABLE} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; comment \"vmap to drop or reject packets to service nodeports with no endpoints\" ; }}"
    ));
    nft.line(format!(
        "add chain {TABLE} reject-chain {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"
    ));
    nft.rule("reject-chain", "reject");
    nft.rule(
        "service-endpoints-check",
        "ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
    );
    nft.rule(
        "nodeport-endpoints-check",
        "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
    );

    nft.line(format!(
        "add map {TABLE} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }}"
    ));
    nft.rule(
        "firewall-check",
        "ip daddr . meta l4proto . th dport vmap @firewall-ips",
    );

    nft.line(format!(
        "add map {TABLE} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}"
    ));
    nft.line(format!(
        "add map {TABLE} service-nodeports {{ type inet_proto . inet_service : verdict ; comment \"NodePort traffic\" ; }}"
    ));
    nft.rule(
        "services",
        "ip daddr . meta l4proto . th dport vmap @service-ips",
    );
    nft.rule(
        "services",
        "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
    );
}

/// One Service port's elements and chains, in `syncProxyRules`' order.
fn service_rules(nft: &mut Script, cluster: &Cluster, service: &Service) {
    let endpoints = cluster.endpoints(service);
    let name = service.port_name();
    let (ip, port) = (service.cluster_ip, service.port);
    let service_chain = service.nft_service_chain();
    let external_chain = service.nft_external_chain();
    let external = service.kind == ServiceType::NodePort && service.node_port.is_some();

    for pod in &endpoints {
        nft.chain(&service.nft_endpoint_chain(pod.ip));
    }
    if !endpoints.is_empty() {
        nft.chain(&service_chain);
        if external {
            nft.chain(&external_chain);
        }
    }

    nft.element("cluster-ips", &ip.to_string());
    if endpoints.is_empty() {
        // No endpoints anywhere: new connections are rejected, in the filter chains.
        nft.element(
            "no-endpoint-services",
            &format!("{ip} . tcp . {port} comment \"{name}\" : goto reject-chain"),
        );
        if let Some(node_port) = service.node_port {
            nft.element(
                "no-endpoint-nodeports",
                &format!("tcp . {node_port} comment \"{name}\" : goto reject-chain"),
            );
        }
        return;
    }
    nft.element(
        "service-ips",
        &format!("{ip} . tcp . {port} : goto {service_chain}"),
    );
    if external && let Some(node_port) = service.node_port {
        nft.element(
            "service-nodeports",
            &format!("tcp . {node_port} : goto {external_chain}"),
        );
    }

    // Traffic to the ClusterIP from outside the Pod network is masqueraded.
    nft.rule(
        &service_chain,
        &format!(
            "ip daddr {ip} tcp dport {port} ip saddr != {POD_NETWORK} jump mark-for-masquerade"
        ),
    );
    if external {
        // External traffic may cross nodes: masquerade, then the cluster-policy chain.
        nft.rule(&external_chain, "jump mark-for-masquerade");
        nft.rule(&external_chain, &format!("goto {service_chain}"));
    }

    let choices: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, pod)| format!("{i} : goto {}", service.nft_endpoint_chain(pod.ip)))
        .collect();
    nft.rule(
        &service_chain,
        &format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            choices.join(" , ")
        ),
    );

    for pod in &endpoints {
        let chain = service.nft_endpoint_chain(pod.ip);
        // Hairpin: a Pod reaching itself through its Service is masqueraded.
        nft.rule(
            &chain,
            &format!("ip saddr {} jump mark-for-masquerade", pod.ip),
        );
        nft.rule(
            &chain,
            &format!(
                "meta l4proto tcp dnat to {}:{}",
                pod.ip, service.target_port
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Scenario;

    #[test]
    fn nginx_test_is_dispatched_by_the_service_ips_map_to_three_endpoint_chains() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let text = table(&cluster, &cluster.nodes[1]);
        assert!(text.starts_with(
            "add table ip kube-proxy\ndelete table ip kube-proxy\nadd table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n"
        ));
        let svc = "service-E674OMPI-default/nginx-test/tcp/";
        assert!(text.contains(&format!(
            "add element ip kube-proxy service-ips {{ 10.109.60.89 . tcp . 80 : goto {svc} }}"
        )));
        assert!(text.contains(&format!(
            "add rule ip kube-proxy {svc} numgen random mod 3 vmap {{ 0 : goto endpoint-BN54LRN2-default/nginx-test/tcp/__10.244.102.138/80 , 1 : goto endpoint-"
        )));
        assert!(text.contains(
            "add rule ip kube-proxy endpoint-BN54LRN2-default/nginx-test/tcp/__10.244.102.138/80 meta l4proto tcp dnat to 10.244.102.138:80"
        ));
        // NodePort traffic for webapp goes through its external chain, on cpu2's address.
        assert!(text.contains("add element ip kube-proxy nodeport-ips { 172.30.1.80 }"));
        assert!(text.contains(
            "add element ip kube-proxy service-nodeports { tcp . 32065 : goto external-PC2HMAMJ-default/webapp/tcp/ }"
        ));
        assert!(!text.contains("no-endpoint-services {  10"));
    }

    #[test]
    fn a_service_without_endpoints_is_rejected_by_the_no_endpoint_map() {
        let cluster = Cluster::seed(Scenario::NoEndpoints);
        let text = table(&cluster, &cluster.nodes[0]);
        assert!(text.contains(
            "add element ip kube-proxy no-endpoint-services { 10.109.60.89 . tcp . 80 comment \"default/nginx-test\" : goto reject-chain }"
        ));
        assert!(!text.contains("service-E674OMPI"));
        assert!(text.contains("add element ip kube-proxy cluster-ips { 10.109.60.89 }"));
    }
}
