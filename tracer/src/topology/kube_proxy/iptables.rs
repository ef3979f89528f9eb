//! kube-proxy's iptables mode, from `iptables-save`: each `KUBE-SEP-…` chain's DNAT rule,
//! with the `KUBE-SVC-…` chain that jumps to it and the Service named in its comment.

use crate::topology::netinfo::{DnatRule, ProxyMode};

/// kube-proxy's DNAT rules, each with the `KUBE-SVC-…` chain that jumps to it.
pub fn parse_dnat_rules(iptables_save: &str) -> Vec<DnatRule> {
    let mut jumps: Vec<(String, String)> = Vec::new(); // (svc chain, sep chain), in rule order
    let mut rules = Vec::new();
    for line in iptables_save.lines() {
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(chain) = words.next() else { continue };
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        let target = tokens
            .iter()
            .position(|t| *t == "-j")
            .and_then(|i| tokens.get(i + 1));
        if chain.starts_with("KUBE-SVC-")
            && let Some(sep) = target.filter(|t| t.starts_with("KUBE-SEP-"))
        {
            jumps.push((chain.to_owned(), (*sep).to_owned()));
        }
        if target == Some(&"DNAT")
            && let Some(to) = tokens
                .iter()
                .position(|t| *t == "--to-destination")
                .and_then(|i| tokens.get(i + 1))
            && let Some((ip, port)) = to.split_once(':')
            && let (Ok(ip), Ok(port)) = (ip.parse(), port.parse())
        {
            rules.push(DnatRule {
                rule: chain.to_owned(),
                chooser: None,
                to: ip,
                to_port: port,
                comment: comment_of(rest),
                mode: ProxyMode::Iptables,
                virtual_address: None,
            });
        }
    }
    for rule in &mut rules {
        rule.chooser = jumps
            .iter()
            .find(|(_, sep)| *sep == rule.rule)
            .map(|(svc, _)| svc.clone());
    }
    rules
}

fn comment_of(rule: &str) -> String {
    rule.split("--comment ")
        .nth(1)
        .map(|rest| {
            if let Some(quoted) = rest.strip_prefix('"') {
                quoted.split('"').next().unwrap_or_default().to_owned()
            } else {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }
        })
        .unwrap_or_default()
}

/// Whether kube-proxy's `KUBE-SERVICES` chain exists (iptables and IPVS modes both have it).
pub fn has_services_chain(iptables_save: &str) -> bool {
    iptables_save
        .lines()
        .any(|l| l.starts_with(":KUBE-SERVICES "))
}

/// Whether IPVS mode's iptables rules are here: it matches Services by ipset
/// (`--match-set KUBE-CLUSTER-IP`) instead of writing a chain per Service.
pub fn has_ipvs_mode_rules(iptables_save: &str) -> bool {
    iptables_save
        .lines()
        .any(|l| l.starts_with("-A KUBE-SERVICES ") && l.contains("--match-set KUBE-CLUSTER-IP "))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn finds_kube_proxy_dnat_rules_and_their_service_chain() {
        let save = "*nat\n\
            -A KUBE-SVC-W67AXLFK7VEUVN6G -m comment --comment \"default/nginx-test -> 10.244.102.138:80\" -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-SOT6P6LQ532M4OEI\n\
            -A KUBE-SEP-SOT6P6LQ532M4OEI -p tcp -m comment --comment \"default/nginx-test\" -m tcp -j DNAT --to-destination 10.244.102.138:80\n\
            COMMIT\n";
        let rules = parse_dnat_rules(save);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].rule, "KUBE-SEP-SOT6P6LQ532M4OEI");
        assert_eq!(
            rules[0].chooser.as_deref(),
            Some("KUBE-SVC-W67AXLFK7VEUVN6G")
        );
        assert_eq!(rules[0].to, Ipv4Addr::new(10, 244, 102, 138));
        assert_eq!(rules[0].comment, "default/nginx-test");
    }
}
