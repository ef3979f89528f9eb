//! One network namespace as `ip -j` and `iptables-save` describe it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
    /// `veth`, `vxlan`, `bridge`, … (empty for physical or unknown).
    pub kind: String,
    /// The peer's index for a veth (in the namespace `peer_netnsid` names).
    pub peer_ifindex: Option<u32>,
    pub up: bool,
    /// The bridge this interface is a port of.
    pub master: Option<String>,
    /// VXLAN parameters when `kind == "vxlan"`.
    pub vxlan: Option<Vxlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxlan {
    pub vni: u32,
    pub local: Option<Ipv4Addr>,
    pub port: u16,
    pub underlay: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub ifindex: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `unicast`, `blackhole`, `unreachable`, `local`, …
    pub kind: String,
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dev: Option<String>,
    /// `kernel`, `boot`, `static`, `80` (Calico), `bird`, …
    pub protocol: String,
    pub table: String,
    pub onlink: bool,
}

impl Route {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.dst) & mask
    }

    /// `10.244.5.192/26 via 172.30.1.38 dev enp2s0 proto 80 onlink`, as `ip route` prints it.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        if self.kind != "unicast" {
            text.push_str(&self.kind);
            text.push(' ');
        }
        if self.prefix == 0 {
            text.push_str("default");
        } else if self.prefix == 32 {
            text.push_str(&self.dst.to_string());
        } else {
            text.push_str(&format!("{}/{}", self.dst, self.prefix));
        }
        if let Some(gw) = self.gateway {
            text.push_str(&format!(" via {gw}"));
        }
        if let Some(dev) = &self.dev {
            text.push_str(&format!(" dev {dev}"));
        }
        if !matches!(self.protocol.as_str(), "boot" | "") {
            text.push_str(&format!(" proto {}", self.protocol));
        }
        if self.onlink {
            text.push_str(" onlink");
        }
        text
    }
}

/// A DNAT rule of kube-proxy: `-A KUBE-SEP-… -p tcp … -j DNAT --to-destination ip:port`,
/// and the Service chain that jumps to it, in the order of its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnatRule {
    pub sep_chain: String,
    pub svc_chain: Option<String>,
    pub to: Ipv4Addr,
    pub to_port: u16,
    /// The rule's comment: kube-proxy writes `ns/name` of the Service there.
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsInfo {
    /// `bpf_get_netns_cookie` of this namespace: how kernel events name it.
    pub cookie: u64,
    /// Inode of the namespace (what `ls -l /proc/PID/ns/net` shows).
    pub inode: u64,
    /// Where it was opened: `/run/netns/NAME` or `/proc/PID/ns/net`.
    pub path: String,
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    /// kube-proxy's DNAT rules, parsed from `iptables-save` (the rule text itself is not
    /// kept: on a large cluster it runs to megabytes per node).
    pub dnat_rules: Vec<DnatRule>,
}

impl NetnsInfo {
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.ifindex == ifindex)
    }

    pub fn link_named(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn has_address(&self, ip: Ipv4Addr) -> bool {
        self.addresses.iter().any(|a| a.ip == ip)
    }

    /// The interface holding `ip`.
    pub fn link_with_address(&self, ip: Ipv4Addr) -> Option<&Link> {
        let address = self.addresses.iter().find(|a| a.ip == ip)?;
        self.link(address.ifindex)
    }

    /// Longest-prefix match in the main table, as the kernel's FIB would choose.
    pub fn route_to(&self, ip: Ipv4Addr) -> Option<&Route> {
        self.routes
            .iter()
            .filter(|r| r.table == "main" && r.contains(ip))
            .max_by_key(|r| r.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: [u8; 4], prefix: u8, dev: &str) -> Route {
        Route {
            kind: "unicast".into(),
            dst: Ipv4Addr::from(dst),
            prefix,
            gateway: None,
            dev: Some(dev.into()),
            protocol: "80".into(),
            table: "main".into(),
            onlink: false,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let ns = NetnsInfo {
            cookie: 1,
            inode: 1,
            path: String::new(),
            links: vec![],
            addresses: vec![],
            routes: vec![
                route([10, 244, 0, 0], 16, "a"),
                route([10, 244, 5, 192], 26, "b"),
            ],
            dnat_rules: vec![],
        };
        assert_eq!(
            ns.route_to(Ipv4Addr::new(10, 244, 5, 203))
                .unwrap()
                .dev
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            ns.route_to(Ipv4Addr::new(10, 244, 1, 1))
                .unwrap()
                .dev
                .as_deref(),
            Some("a")
        );
        assert!(ns.route_to(Ipv4Addr::new(8, 8, 8, 8)).is_none());
        assert_eq!(
            route([10, 244, 5, 192], 26, "enp2s0").describe(),
            "10.244.5.192/26 dev enp2s0 proto 80"
        );
    }
}
