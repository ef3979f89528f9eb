//! kube-proxy's nftables mode, from `nft -j` (the `ip kube-proxy` table): each chain whose
//! rule DNATs (`meta l4proto tcp dnat to 10.244.5.203:80`, in an `endpoint-…` chain), with
//! the chain whose `numgen random mod n vmap { 0 : goto endpoint-…, … }` chose it (a
//! `service-…` chain, or `local-…` for a Local traffic policy).
//!
//! The Service comes from the chain names, which kube-proxy builds as
//! `<kind>-<8-character hash>-<namespace>/<name>/<protocol>/<port name>` (endpoint chains
//! add `__<ip>/<port>`), so that `ns/name` (`:port-name` for a named port) compares with the
//! names iptables mode writes in its comments.

use std::{collections::HashMap, net::Ipv4Addr};

use serde_json::Value;

use crate::topology::netinfo::{DnatRule, ProxyMode};

const TABLE: &str = "kube-proxy";

/// kube-proxy's DNAT chains in `nft -j` output; `None` when the output has no `ip
/// kube-proxy` table.
pub fn parse(json: &Value) -> Option<Vec<DnatRule>> {
    let items = json.get("nftables")?.as_array()?;
    let ours = |object: &Value| object["family"] == "ip" && object["table"] == TABLE;
    if !items
        .iter()
        .filter_map(|i| i.get("table"))
        .any(|t| t["family"] == "ip" && t["name"] == TABLE)
    {
        return None;
    }
    let rules: Vec<&Value> = items
        .iter()
        .filter_map(|i| i.get("rule"))
        .filter(|r| ours(r))
        .collect();

    // Which chain chose each endpoint chain, from the numgen verdict maps.
    let mut chosen_by: HashMap<&str, &str> = HashMap::new();
    for rule in &rules {
        let Some(chain) = rule["chain"].as_str() else {
            continue;
        };
        for expr in expressions(rule) {
            let Some(vmap) = expr.get("vmap") else {
                continue;
            };
            if vmap["key"].get("numgen").is_none() {
                continue;
            }
            for pair in vmap["data"]["set"].as_array().into_iter().flatten() {
                if let Some(target) = pair.get(1).and_then(verdict_target) {
                    chosen_by.insert(target, chain);
                }
            }
        }
    }

    let mut out = Vec::new();
    for rule in &rules {
        let Some(chain) = rule["chain"].as_str() else {
            continue;
        };
        let Some((to, to_port)) = expressions(rule).find_map(dnat_target) else {
            continue;
        };
        let chooser = chosen_by.get(chain).copied();
        out.push(DnatRule {
            rule: chain.to_owned(),
            chooser: chooser.map(str::to_owned),
            to,
            to_port,
            comment: chooser
                .and_then(service_port_name)
                .or_else(|| service_port_name(chain))
                .unwrap_or_default(),
            mode: ProxyMode::Nftables,
            virtual_address: None,
        });
    }
    Some(out)
}

fn expressions(rule: &Value) -> impl Iterator<Item = &Value> {
    rule["expr"].as_array().into_iter().flatten()
}

/// `{"goto": {"target": X}}` or `{"jump": {"target": X}}` → X.
fn verdict_target(verdict: &Value) -> Option<&str> {
    verdict
        .get("goto")
        .or_else(|| verdict.get("jump"))?
        .get("target")?
        .as_str()
}

/// `{"dnat": {"addr": "10.244.5.203", "port": 80}}` → the address and port.
fn dnat_target(expr: &Value) -> Option<(Ipv4Addr, u16)> {
    let dnat = expr.get("dnat")?;
    let addr = dnat.get("addr")?.as_str()?.parse().ok()?;
    let port = dnat
        .get("port")?
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())?;
    Some((addr, port))
}

/// `ns/name` (or `ns/name:port-name`) from a kube-proxy chain name
/// (`service-E674OMPI-default/nginx-test/tcp/`, `endpoint-…/tcp/__10.244.5.203/80`).
fn service_port_name(chain: &str) -> Option<String> {
    let (_kind, rest) = chain.split_once('-')?;
    let (hash, path) = rest.split_once('-')?;
    if hash.len() != 8 {
        return None;
    }
    let path = path.split("__").next()?;
    let mut parts = path.split('/');
    let (namespace, name, _protocol, port) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if namespace.is_empty() || name.is_empty() {
        return None;
    }
    Some(if port.is_empty() {
        format!("{namespace}/{name}")
    } else {
        format!("{namespace}/{name}:{port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(text: &str) -> Vec<DnatRule> {
        parse(&serde_json::from_str(text).unwrap()).unwrap()
    }

    /// `nft -j list ruleset` on cpu2 of `tracer lab up --proxy-mode nftables`.
    const HEALTHY: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/nftables-healthy-cpu2.json");
    const NO_ENDPOINTS: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/nftables-no-endpoints-cpu2.json");

    #[test]
    fn endpoint_chains_are_found_with_the_service_chain_that_chose_them() {
        let rules = fixture(HEALTHY);
        let nginx: Vec<&DnatRule> = rules
            .iter()
            .filter(|r| r.comment == "default/nginx-test")
            .collect();
        assert_eq!(nginx.len(), 3);
        let first = nginx
            .iter()
            .find(|r| r.to == Ipv4Addr::new(10, 244, 102, 138))
            .unwrap();
        assert_eq!(
            first.rule,
            "endpoint-BN54LRN2-default/nginx-test/tcp/__10.244.102.138/80"
        );
        assert_eq!(
            first.chooser.as_deref(),
            Some("service-E674OMPI-default/nginx-test/tcp/")
        );
        assert_eq!((first.to_port, first.mode), (80, ProxyMode::Nftables));
        assert_eq!(
            first.describe(),
            "nftables chain endpoint-BN54LRN2-default/nginx-test/tcp/__10.244.102.138/80"
        );
        let webapp: Vec<Ipv4Addr> = rules
            .iter()
            .filter(|r| r.comment == "default/webapp")
            .map(|r| r.to)
            .collect();
        assert_eq!(
            webapp,
            [
                Ipv4Addr::new(10, 244, 184, 85),
                Ipv4Addr::new(10, 244, 5, 204)
            ]
        );
    }

    #[test]
    fn a_service_without_endpoints_has_no_dnat_chain() {
        let rules = fixture(NO_ENDPOINTS);
        assert!(
            rules.iter().all(|r| r.comment == "default/webapp"),
            "{rules:?}"
        );
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn output_without_kube_proxys_table_is_not_nftables_mode() {
        let other: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{"version":"1.0.6"}},{"table":{"family":"ip","name":"nat","handle":1}}]}"#,
        )
        .unwrap();
        assert_eq!(parse(&other), None);
        assert_eq!(parse(&Value::Null), None);
    }

    #[test]
    fn service_port_names_come_from_chain_names() {
        assert_eq!(
            service_port_name("service-ULMVA6XW-ns1/svc1/tcp/p80").as_deref(),
            Some("ns1/svc1:p80")
        );
        assert_eq!(
            service_port_name("endpoint-5OJB2KTY-ns1/svc1/tcp/__10.180.0.1/80").as_deref(),
            Some("ns1/svc1")
        );
        assert_eq!(service_port_name("mark-for-masquerade"), None);
    }
}
