//! kube-proxy's iptables mode, generated the way kube-proxy lays its rules out: the same
//! chains, jumps, comments, `statistic` probabilities and masquerade marking, so
//! `iptables-save` in the lab reads like a real node's and the chain names are the seed's.
//! The rules are the same on every node.
//!
//! The rule shapes follow kube-proxy's `syncProxyRules` (pkg/proxy/iptables/proxier.go):
//! `KUBE-SERVICES` matches each ClusterIP:port and jumps to `KUBE-SVC-…`, which picks one
//! `KUBE-SEP-…` with `-m statistic --mode random --probability 1/n`, 1/(n-1), …, and the
//! `KUBE-SEP-…` chain DNATs to the endpoint. NodePorts go `KUBE-NODEPORTS` → `KUBE-EXT-…`
//! (mark for masquerade) → `KUBE-SVC-…`. A Service without endpoints gets a REJECT rule in
//! the filter table's `KUBE-SERVICES` / `KUBE-EXTERNAL-SERVICES`.

use super::Tables;
use crate::spec::{Cluster, POD_NETWORK, Service, ServiceType};

const MASQ_MARK: &str = "0x4000/0x4000";

/// kube-proxy's `nat` and `filter` rules in iptables mode.
pub(super) fn rules(cluster: &Cluster, tables: &mut Tables) {
    let Tables { nat, filter } = tables;

    for chain in [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ] {
        nat.chain(chain);
    }
    nat.rule("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    nat.rule("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    nat.rule(
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING",
    );
    nat.rule(&format!(
        "-A KUBE-MARK-MASQ -j MARK --set-xmark {MASQ_MARK}"
    ));
    nat.rule(&format!(
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK} -j RETURN"
    ));
    nat.rule("-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0");
    nat.rule(
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully",
    );

    for chain in [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
    ] {
        filter.chain(chain);
    }
    filter.rule("-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES");
    filter.rule(
        "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS",
    );
    filter.rule("-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    filter.rule("-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES");
    filter.rule("-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD");
    filter.rule("-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES");
    filter.rule("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP");
    filter.rule(&format!(
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK} -j ACCEPT"
    ));
    filter.rule("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");

    for service in &cluster.services {
        service_rules(cluster, service, nat, filter);
    }
    nat.rule(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    );
}

fn service_rules(
    cluster: &Cluster,
    service: &Service,
    nat: &mut super::Rules,
    filter: &mut super::Rules,
) {
    let name = service.port_name();
    let endpoints = cluster.endpoints(service);
    let (ip, port) = (service.cluster_ip, service.port);

    if endpoints.is_empty() {
        filter.rule(&format!(
            "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"{name} has no endpoints\" -m tcp --dport {port} -j REJECT --reject-with icmp-port-unreachable"
        ));
        if let Some(node_port) = service.node_port {
            filter.rule(&format!(
                "-A KUBE-EXTERNAL-SERVICES -p tcp -m comment --comment \"{name} has no endpoints\" -m addrtype --dst-type LOCAL -m tcp --dport {node_port} -j REJECT --reject-with icmp-port-unreachable"
            ));
        }
        return;
    }

    let svc = service.svc_chain();
    nat.chain(&svc);
    nat.rule(&format!(
        "-A KUBE-SERVICES -d {ip}/32 -p tcp -m comment --comment \"{name} cluster IP\" -m tcp --dport {port} -j {svc}"
    ));
    nat.rule(&format!(
        "-A {svc} ! -s {POD_NETWORK} -d {ip}/32 -p tcp -m comment --comment \"{name} cluster IP\" -m tcp --dport {port} -j KUBE-MARK-MASQ"
    ));

    if service.kind == ServiceType::NodePort
        && let Some(node_port) = service.node_port
    {
        let ext = service.ext_chain();
        nat.chain(&ext);
        nat.rule(&format!(
            "-A KUBE-NODEPORTS -p tcp -m comment --comment \"{name}\" -m tcp --dport {node_port} -j {ext}"
        ));
        nat.rule(&format!(
            "-A {ext} -m comment --comment \"masquerade traffic for {name} external destinations\" -j KUBE-MARK-MASQ"
        ));
        nat.rule(&format!("-A {ext} -j {svc}"));
    }

    let count = endpoints.len();
    for (index, pod) in endpoints.iter().enumerate() {
        let sep = service.sep_chain(pod.ip);
        let endpoint = format!("{}:{}", pod.ip, service.target_port);
        let remaining = count - index;
        let pick = if remaining > 1 {
            format!(
                " -m statistic --mode random --probability {}",
                probability(remaining)
            )
        } else {
            String::new()
        };
        nat.rule(&format!(
            "-A {svc} -m comment --comment \"{name} -> {endpoint}\"{pick} -j {sep}"
        ));
        nat.chain(&sep);
        nat.rule(&format!(
            "-A {sep} -s {}/32 -m comment --comment \"{name}\" -j KUBE-MARK-MASQ",
            pod.ip
        ));
        nat.rule(&format!(
            "-A {sep} -p tcp -m comment --comment \"{name}\" -m tcp -j DNAT --to-destination {endpoint}"
        ));
    }
}

/// kube-proxy's `computeProbability`: `1/n` with 10 decimals; iptables-save later prints
/// it as the nearest value it stores (0.33333333349 for 1/3).
fn probability(n: usize) -> String {
    format!("{:.10}", 1.0 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Scenario;

    fn rules_of(cluster: &Cluster) -> String {
        let mut tables = Tables::default();
        rules(cluster, &mut tables);
        tables.render()
    }

    #[test]
    fn nginx_test_rules_match_the_seed() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let text = rules_of(&cluster);
        assert!(text.contains("-A KUBE-SERVICES -d 10.109.60.89/32 -p tcp -m comment --comment \"default/nginx-test cluster IP\" -m tcp --dport 80 -j KUBE-SVC-W67AXLFK7VEUVN6G"));
        assert!(text.contains("--comment \"default/nginx-test -> 10.244.102.138:80\" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-SOT6P6LQ532M4OEI"));
        assert!(text.contains("--comment \"default/nginx-test -> 10.244.184.84:80\" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-3DGSCWRDZYIA2HSW"));
        assert!(text.contains("-A KUBE-SEP-SOT6P6LQ532M4OEI -p tcp -m comment --comment \"default/nginx-test\" -m tcp -j DNAT --to-destination 10.244.102.138:80"));
        // The last endpoint takes whatever is left: no statistic match.
        assert!(text.contains("--comment \"default/nginx-test -> 10.244.5.203:80\" -j KUBE-SEP-"));
        assert!(text.contains("--dport 32065 -j KUBE-EXT-"));
        assert!(!text.contains("has no endpoints"));
    }

    #[test]
    fn no_endpoints_means_reject() {
        let cluster = Cluster::seed(Scenario::NoEndpoints);
        let text = rules_of(&cluster);
        assert!(text.contains("-A KUBE-SERVICES -d 10.109.60.89/32 -p tcp -m comment --comment \"default/nginx-test has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable"));
        assert!(!text.contains("KUBE-SVC-W67AXLFK7VEUVN6G"));
    }
}
