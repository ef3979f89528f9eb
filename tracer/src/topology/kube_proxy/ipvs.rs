//! kube-proxy's IPVS mode, from a namespace's IPVS table: each virtual server
//! (`TCP  10.109.60.89:80 rr`) and its real servers (`  -> 10.244.5.203:80  Masq  1  0  0`).
//! The kernel's `/proc/net/ip_vs` and `ipvsadm -Ln` print the same lines, the kernel with
//! hexadecimal addresses (`0A6D3C59:0050`); both are read.
//!
//! Only masquerading real servers are kept: that is the forwarding method that rewrites the
//! destination (kube-proxy uses no other). IPVS names no Service, so each rule carries the
//! virtual address a packet must have been sent to.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::topology::netinfo::{DnatRule, ProxyMode};

/// The masquerading real servers of every IPv4 virtual server in `table`.
pub fn parse(table: &str) -> Vec<DnatRule> {
    let mut rules = Vec::new();
    // The virtual server the following real servers belong to: address and description.
    let mut current: Option<(SocketAddrV4, String)> = None;
    for line in table.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["->", "RemoteAddress:Port", ..] => {}
            ["->", address, forward, ..] => {
                let (Some((vip, virtual_server)), Some(real)) = (&current, socket(address)) else {
                    continue;
                };
                if *forward != "Masq" {
                    continue;
                }
                rules.push(DnatRule {
                    rule: format!("{real} {forward}"),
                    chooser: Some(virtual_server.clone()),
                    to: *real.ip(),
                    to_port: real.port(),
                    comment: String::new(),
                    mode: ProxyMode::Ipvs,
                    virtual_address: Some(*vip),
                });
            }
            [protocol @ ("TCP" | "UDP" | "SCTP"), address, scheduler, ..] => {
                current = socket(address).map(|vip| (vip, format!("{protocol} {vip} {scheduler}")));
            }
            // Firewall-mark services, IPv6, headers.
            _ => current = current.filter(|_| line.starts_with(' ')),
        }
    }
    rules
}

/// `10.109.60.89:80` or, as the kernel prints it, `0A6D3C59:0050`.
fn socket(text: &str) -> Option<SocketAddrV4> {
    if let Ok(socket) = text.parse() {
        return Some(socket);
    }
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 8 || port.len() != 4 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From cpu2 of `tracer lab up --proxy-mode ipvs` (Debian's 6.12 kernel in a VM).
    const IPVSADM: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/ipvsadm-Ln-healthy-cpu2.txt");
    const PROC: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/proc-net-ip_vs-healthy-cpu2.txt");
    const NO_ENDPOINTS: &str =
        include_str!("../../../../tests/fixtures/kube-proxy/ipvsadm-Ln-no-endpoints-cpu2.txt");

    fn to(rules: &[DnatRule], vip: &str) -> Vec<String> {
        let vip: SocketAddrV4 = vip.parse().unwrap();
        let mut real: Vec<String> = rules
            .iter()
            .filter(|r| r.virtual_address == Some(vip))
            .map(|r| r.rule.clone())
            .collect();
        real.sort();
        real
    }

    #[test]
    fn virtual_servers_and_their_real_servers_are_read_from_ipvsadm() {
        let rules = parse(IPVSADM);
        assert_eq!(
            to(&rules, "10.109.60.89:80"),
            [
                "10.244.102.138:80 Masq",
                "10.244.184.84:80 Masq",
                "10.244.5.203:80 Masq"
            ]
        );
        let first = rules
            .iter()
            .find(|r| r.to == Ipv4Addr::new(10, 244, 102, 138))
            .unwrap();
        assert_eq!(first.chooser.as_deref(), Some("TCP 10.109.60.89:80 rr"));
        assert_eq!((first.to_port, first.mode), (80, ProxyMode::Ipvs));
        assert!(first.comment.is_empty());
        assert_eq!(
            first.describe(),
            "IPVS TCP 10.109.60.89:80 rr → 10.244.102.138:80 Masq"
        );
        // webapp's NodePort on each of cpu2's addresses, and its ClusterIP.
        for vip in [
            "172.30.1.80:32065",
            "169.254.1.1:32065",
            "10.244.102.128:32065",
            "10.103.193.83:80",
        ] {
            assert_eq!(
                to(&rules, vip),
                ["10.244.184.85:80 Masq", "10.244.5.204:80 Masq"],
                "{vip}"
            );
        }
        assert_eq!(rules.len(), 3 + 4 * 2);
    }

    #[test]
    fn the_kernels_own_table_reads_the_same() {
        let mut from_ipvsadm = parse(IPVSADM);
        let mut from_proc = parse(PROC);
        let key = |r: &DnatRule| (r.virtual_address, r.to);
        from_ipvsadm.sort_by_key(key);
        from_proc.sort_by_key(key);
        assert_eq!(from_proc, from_ipvsadm);
    }

    #[test]
    fn a_virtual_server_without_real_servers_yields_no_rule() {
        let rules = parse(NO_ENDPOINTS);
        assert!(to(&rules, "10.109.60.89:80").is_empty());
        assert_eq!(rules.len(), 4 * 2);
    }

    #[test]
    fn kernel_hex_addresses_read_as_ipvsadm_prints_them() {
        assert_eq!(
            socket("0A6D3C59:0050"),
            Some(SocketAddrV4::new(Ipv4Addr::new(10, 109, 60, 89), 80))
        );
        assert_eq!(
            socket("10.109.60.89:80"),
            Some(SocketAddrV4::new(Ipv4Addr::new(10, 109, 60, 89), 80))
        );
        assert_eq!(socket("[fd00::1]:80"), None);
        assert_eq!(socket("0A6D3C59"), None);
    }
}
