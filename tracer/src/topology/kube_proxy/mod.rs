//! kube-proxy's rules in one namespace, whichever mode wrote them, read into one
//! mode-neutral form ([`DnatRule`]: Service → endpoint, with the rule that rewrote the
//! destination and the one that chose it), and the modes found ([`ProxyMode`]). `follow`
//! names the Service DNAT hop from these, so it names it on whatever a node runs, detected
//! from the node itself:
//!
//! - iptables: `iptables-save` (the `nat` and `filter` tables) has `KUBE-SEP-…` chains
//!   that DNAT, jumped to from `KUBE-SVC-…` ([`iptables`]);
//! - nftables: the `ip kube-proxy` table, read as `nft -j list table ip kube-proxy`, has
//!   `endpoint-…` chains that DNAT, chosen by a `service-…` chain's `numgen` verdict map
//!   ([`nftables`]);
//! - IPVS: the namespace's IPVS table, `/proc/thread-self/net/ip_vs` (what `ipvsadm -Ln`
//!   prints, with hexadecimal addresses), has virtual servers and their masquerading real
//!   servers ([`ipvs`]). Read from `/proc` so neither `ipvsadm` is needed nor the `ip_vs`
//!   module loaded where it was not. IPVS mode's own iptables rules (`KUBE-CLUSTER-IP`
//!   ipset matches) say it runs even before any virtual server exists.
//!
//! Each reader runs in the namespace's own thread (see `discover`), and a tool that is
//! missing or a table that does not exist simply yields nothing.

pub mod iptables;
pub mod ipvs;
pub mod nftables;

use std::process::Command;

use super::netinfo::{DnatRule, ProxyMode};

/// kube-proxy's rules in the calling thread's namespace, and the modes they came from.
pub fn read() -> (Vec<DnatRule>, Vec<ProxyMode>) {
    let save = iptables_save();
    let nft = nft_table();
    let ipvs_table = std::fs::read_to_string("/proc/thread-self/net/ip_vs").unwrap_or_default();
    assemble(&save, nft.as_ref(), &ipvs_table)
}

/// The rules and modes of one namespace from its tools' output: `iptables-save`, `nft -j`
/// (`None`: no `kube-proxy` table) and the IPVS table (empty: none).
pub fn assemble(
    iptables_save: &str,
    nft: Option<&serde_json::Value>,
    ipvs_table: &str,
) -> (Vec<DnatRule>, Vec<ProxyMode>) {
    let mut rules = iptables::parse_dnat_rules(iptables_save);
    let mut modes = Vec::new();
    let ipvs_rules = ipvs::parse(ipvs_table);
    let ipvs_runs = !ipvs_rules.is_empty() || iptables::has_ipvs_mode_rules(iptables_save);
    if !rules.is_empty() || (iptables::has_services_chain(iptables_save) && !ipvs_runs) {
        modes.push(ProxyMode::Iptables);
    }
    if let Some(nft_rules) = nft.and_then(nftables::parse) {
        modes.push(ProxyMode::Nftables);
        rules.extend(nft_rules);
    }
    if ipvs_runs {
        modes.push(ProxyMode::Ipvs);
        rules.extend(ipvs_rules);
    }
    (rules, modes)
}

fn iptables_save() -> String {
    let mut text = String::new();
    for table in ["nat", "filter"] {
        if let Ok(out) = Command::new("iptables-save").args(["-t", table]).output()
            && out.status.success()
        {
            text.push_str(&String::from_utf8_lossy(&out.stdout));
        }
    }
    text
}

/// `nft -j list table ip kube-proxy`; `None` when there is no such table (or no `nft`).
fn nft_table() -> Option<serde_json::Value> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "ip", "kube-proxy"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFT_HEALTHY: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/nftables-healthy-cpu2.json");
    const IPVS_IPTABLES: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/iptables-save-ipvs-healthy-cpu2.txt");
    const IPVS_TABLE: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/proc-net-ip_vs-healthy-cpu2.txt");

    #[test]
    fn modes_are_told_apart_by_what_each_writes() {
        let iptables_mode = "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SEP-SOT6P6LQ532M4OEI -p tcp -m comment --comment \"default/nginx-test\" -m tcp -j DNAT --to-destination 10.244.102.138:80\nCOMMIT\n";
        let (rules, modes) = assemble(iptables_mode, None, "");
        assert_eq!(
            (rules.len(), modes.as_slice()),
            (1, &[ProxyMode::Iptables][..])
        );

        // No Service yet: the chain alone says iptables mode.
        let (rules, modes) = assemble("*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n", None, "");
        assert_eq!(
            (rules.len(), modes.as_slice()),
            (0, &[ProxyMode::Iptables][..])
        );

        let nft: serde_json::Value = serde_json::from_str(NFT_HEALTHY).unwrap();
        let (rules, modes) = assemble("", Some(&nft), "");
        assert_eq!(modes, [ProxyMode::Nftables]);
        assert_eq!(rules.len(), 5, "3 nginx-test + 2 webapp endpoints");

        // IPVS mode keeps a KUBE-SERVICES chain of its own: not iptables mode.
        let (rules, modes) = assemble(IPVS_IPTABLES, None, IPVS_TABLE);
        assert_eq!(modes, [ProxyMode::Ipvs]);
        assert_eq!(rules.len(), 11, "3 nginx-test + 2 webapp on 4 addresses");
        // Even before any virtual server exists.
        assert_eq!(assemble(IPVS_IPTABLES, None, "").1, [ProxyMode::Ipvs]);

        // A Pod's namespace: nothing.
        assert_eq!(assemble("", None, ""), (vec![], vec![]));
    }
}
