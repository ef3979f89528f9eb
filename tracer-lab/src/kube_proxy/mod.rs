//! kube-proxy on one lab node, in the mode the lab runs (`lab up --proxy-mode`), laid out as
//! kube-proxy itself writes it in that mode, so that the tools a person would use on a real
//! node (`iptables-save`, `nft list ruleset`, `ipvsadm -Ln`) show what they would show there:
//!
//! - `iptables`: the `KUBE-SERVICES` → `KUBE-SVC-…` → `KUBE-SEP-…` chains ([`iptables`]);
//! - `nftables`: the `ip kube-proxy` table with its verdict maps, `service-…` and
//!   `endpoint-…` chains ([`nftables`]);
//! - `ipvs`: virtual servers on `kube-ipvs0`'s addresses, the ipsets, and the iptables rules
//!   IPVS mode still writes for masquerading and filtering ([`ipvs`]).
//!
//! A node also carries its own firewall rule when a scenario has one (`mtu-blackhole` drops
//! the node's ICMP "fragmentation needed"): that is the node's, not kube-proxy's, and stays
//! in iptables' `filter` table in every mode.
//!
//! This module only describes; `apply::kube_proxy` makes a node so, and removes whatever
//! another mode left there (see its doc for the order).

mod iptables;
mod ipvs;
mod nftables;

use std::fmt::Write as _;

pub use ipvs::{DUMMY, IPSETS, Ipvs};

use crate::spec::{Cluster, Node, ProxyMode, Scenario};

/// Everything kube-proxy (and the node's own firewall) wants on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRules {
    /// The node's namespace.
    pub netns: String,
    pub mode: ProxyMode,
    /// `iptables-restore` input replacing the `nat` and `filter` tables; `None` when the
    /// node needs no iptables rule at all (nftables mode without a firewall rule): the
    /// tables are emptied and removed.
    pub iptables: Option<String>,
    /// `nft -f` input replacing the `ip kube-proxy` table (nftables mode).
    pub nftables: Option<String>,
    /// Virtual servers, `kube-ipvs0`'s addresses, ipsets and sysctls (IPVS mode).
    pub ipvs: Option<Ipvs>,
}

/// What `mode` wants on `node` of `cluster`.
pub fn node_rules(cluster: &Cluster, mode: ProxyMode, node: &Node, netns: &str) -> NodeRules {
    let mut tables = Tables::default();
    let (mut nftables, mut ipvs) = (None, None);
    match mode {
        ProxyMode::Iptables => iptables::rules(cluster, &mut tables),
        ProxyMode::Nftables => nftables = Some(nftables::table(cluster, node)),
        ProxyMode::Ipvs => {
            let wanted = ipvs::wanted(cluster, node);
            ipvs::iptables_rules(&wanted, &mut tables);
            ipvs = Some(wanted);
        }
    }
    firewall(cluster, &mut tables);
    let iptables = (mode != ProxyMode::Nftables || !tables.is_empty()).then(|| tables.render());
    NodeRules {
        netns: netns.to_owned(),
        mode,
        iptables,
        nftables,
        ipvs,
    }
}

/// The node's own firewall rule a scenario adds (not kube-proxy's).
fn firewall(cluster: &Cluster, tables: &mut Tables) {
    if cluster.scenario == Scenario::MtuBlackhole {
        // The black hole: the node's own "fragmentation needed" answers never leave it, so
        // the sending Pod never learns the tunnel's smaller MTU.
        tables.filter.rule("-A OUTPUT -p icmp -m icmp --icmp-type 3/4 -m comment --comment \"lab mtu-blackhole: ICMP frag-needed filtered\" -j DROP");
    }
}

/// iptables' `nat` and `filter` tables as `iptables-restore` reads them.
#[derive(Default)]
struct Tables {
    nat: Rules,
    filter: Rules,
}

impl Tables {
    fn is_empty(&self) -> bool {
        self.nat.is_empty() && self.filter.is_empty()
    }

    fn render(&self) -> String {
        format!(
            "*nat\n{}COMMIT\n*filter\n{}COMMIT\n",
            self.nat.render(),
            self.filter.render()
        )
    }
}

/// Chain declarations and rules of one table, in order.
#[derive(Default)]
struct Rules {
    chains: Vec<String>,
    rules: Vec<String>,
}

impl Rules {
    fn chain(&mut self, name: &str) {
        if !self.chains.iter().any(|c| c == name) {
            self.chains.push(name.to_owned());
        }
    }

    fn rule(&mut self, rule: &str) {
        self.rules.push(rule.to_owned());
    }

    fn is_empty(&self) -> bool {
        self.chains.is_empty() && self.rules.is_empty()
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for chain in &self.chains {
            let _ = writeln!(out, ":{chain} - [0:0]");
        }
        for rule in &self.rules {
            let _ = writeln!(out, "{rule}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu1(cluster: &Cluster, mode: ProxyMode) -> NodeRules {
        node_rules(cluster, mode, &cluster.nodes[0], "tracer-lab-cpu1")
    }

    #[test]
    fn the_mtu_black_hole_filters_frag_needed_in_every_mode() {
        let healthy = Cluster::seed(Scenario::Healthy);
        let blackhole = Cluster::seed(Scenario::MtuBlackhole);
        for mode in ProxyMode::ALL {
            let text = cpu1(&blackhole, mode).iptables.unwrap();
            assert!(
                text.contains("-A OUTPUT -p icmp -m icmp --icmp-type 3/4"),
                "{mode}"
            );
            assert!(
                !cpu1(&healthy, mode)
                    .iptables
                    .is_some_and(|t| t.contains("3/4")),
                "{mode}"
            );
        }
    }

    #[test]
    fn each_mode_writes_only_its_own_rules() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let iptables = cpu1(&cluster, ProxyMode::Iptables);
        assert!(
            iptables
                .iptables
                .unwrap()
                .contains("KUBE-SVC-W67AXLFK7VEUVN6G")
        );
        assert!(iptables.nftables.is_none() && iptables.ipvs.is_none());

        let nftables = cpu1(&cluster, ProxyMode::Nftables);
        assert_eq!(nftables.iptables, None, "nothing of kube-proxy in iptables");
        assert!(nftables.nftables.unwrap().contains("table ip kube-proxy"));
        assert!(nftables.ipvs.is_none());

        let ipvs = cpu1(&cluster, ProxyMode::Ipvs);
        let text = ipvs.iptables.unwrap();
        assert!(text.contains("KUBE-CLUSTER-IP") && !text.contains("KUBE-SVC-"));
        assert!(ipvs.nftables.is_none() && ipvs.ipvs.is_some());
    }
}
