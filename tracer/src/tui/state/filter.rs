//! The list filter: whitespace-separated terms, all of which must occur (ASCII
//! case-insensitively) in one of the journey's names — Pods, Services, nodes, interfaces,
//! kube-proxy chains, drop reasons —, its verdict, direction or protocol, or (for terms made
//! of digits and dots) one of its addresses or, for a number, its original port.

use std::net::Ipv4Addr;

use crate::journey::model::{Journey, Named, Text};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    text: String,
    terms: Vec<String>,
}

impl Filter {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            terms: text.split_whitespace().map(str::to_owned).collect(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, journey: &Journey) -> bool {
        self.terms.iter().all(|term| term_matches(term, journey))
    }
}

fn contains(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn some_contains(haystack: Option<&Text>, needle: &str) -> bool {
    haystack.is_some_and(|h| contains(h, needle))
}

fn is_address_term(term: &str) -> bool {
    term.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn ip_contains(ip: Option<Ipv4Addr>, term: &str) -> bool {
    ip.is_some_and(|ip| contains(&ip.to_string(), term))
}

fn named_matches(named: &Named, term: &str) -> bool {
    some_contains(named.pod.as_ref(), term)
        || some_contains(named.service.as_ref(), term)
        || some_contains(named.node.as_ref(), term)
        || contains(&named.label(), term)
}

fn term_matches(term: &str, j: &Journey) -> bool {
    if is_address_term(term) {
        return address_matches(term, j);
    }
    if contains(j.protocol.name(), term)
        || contains(&j.summary, term)
        || contains(j.verdict.as_str(), term)
        || contains(direction(j), term)
        || named_matches(&j.from, term)
        || named_matches(&j.to, term)
        || j.drop.as_ref().is_some_and(|d| contains(&d.reason, term))
    {
        return true;
    }
    j.hops.iter().any(|h| {
        some_contains(h.pod.as_ref(), term)
            || some_contains(h.service.as_ref(), term)
            || some_contains(h.node.as_ref(), term)
            || some_contains(h.interface.as_ref(), term)
            || h.nat.as_ref().is_some_and(|n| {
                some_contains(n.endpoint_pod.as_ref(), term)
                    || some_contains(n.chain.as_ref(), term)
                    || some_contains(n.service_chain.as_ref(), term)
                    || some_contains(n.nft_chain.as_ref(), term)
                    || some_contains(n.nft_service_chain.as_ref(), term)
                    || some_contains(n.ipvs_virtual_server.as_ref(), term)
                    || some_contains(n.ipvs_real_server.as_ref(), term)
            })
            || h.encap.as_ref().is_some_and(|e| contains(&e.device, term))
    })
}

fn direction(j: &Journey) -> &'static str {
    match j.direction {
        crate::journey::model::Direction::Request => "request",
        crate::journey::model::Direction::Reply => "reply",
        crate::journey::model::Direction::Related => "related",
    }
}

fn address_matches(term: &str, j: &Journey) -> bool {
    if let Ok(port) = term.parse::<u16>()
        && (j.original.sport == port || j.original.dport == port)
    {
        return true;
    }
    ip_contains(Some(j.original.src), term)
        || ip_contains(Some(j.original.dst), term)
        || ip_contains(j.from.ip, term)
        || ip_contains(j.to.ip, term)
        || j.hops.iter().any(|h| {
            h.packet
                .is_some_and(|p| ip_contains(Some(p.src), term) || ip_contains(Some(p.dst), term))
                || h.encap.as_ref().is_some_and(|e| {
                    ip_contains(e.outer_src, term) || ip_contains(e.outer_dst, term)
                })
        })
}
