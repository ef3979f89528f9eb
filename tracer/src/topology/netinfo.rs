//! One network namespace as `ip -j`, and kube-proxy's rules in it (`iptables-save`, `nft`,
//! the IPVS table), describe it.

use std::net::{Ipv4Addr, SocketAddrV4};

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

/// How kube-proxy implements Services in a namespace (a node's): which of its dataplanes
/// wrote the rules found there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    /// `KUBE-SERVICES` → `KUBE-SVC-…` → `KUBE-SEP-…` in iptables' `nat` table.
    #[default]
    Iptables,
    /// The `ip kube-proxy` nftables table.
    Nftables,
    /// IPVS virtual servers (with ipsets and a few iptables rules beside them).
    Ipvs,
}

impl ProxyMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
            Self::Ipvs => "ipvs",
        }
    }
}

impl std::fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One way kube-proxy sends a Service's traffic to one endpoint, in whichever mode wrote
/// it: the endpoint, the Service as kube-proxy names it, the rule that rewrites the
/// destination and the one that chose it among the Service's endpoints.
///
/// Recordings made before proxy modes existed hold iptables rules under the same field
/// names (`sep_chain`, `svc_chain`), and read back as iptables rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnatRule {
    /// What rewrites the destination: iptables' `KUBE-SEP-…` chain, nftables'
    /// `endpoint-HASH-ns/name/tcp/__ip/port` chain, or IPVS's real server as `ipvsadm -Ln`
    /// shows it (`10.244.5.203:80 Masq`).
    #[serde(rename = "sep_chain")]
    pub rule: String,
    /// What chose it: iptables' `KUBE-SVC-…` chain (`statistic --mode random`), nftables'
    /// `service-HASH-ns/name/tcp/` chain (`numgen random mod n vmap`), or the IPVS virtual
    /// server (`TCP 10.109.60.89:80 rr`).
    #[serde(rename = "svc_chain")]
    pub chooser: Option<String>,
    pub to: Ipv4Addr,
    pub to_port: u16,
    /// The Service port as kube-proxy names it (`ns/name`, `ns/name:port`): iptables writes
    /// it as the rules' comment, nftables into its chain names. Empty for IPVS, which knows
    /// addresses only.
    pub comment: String,
    #[serde(default)]
    pub mode: ProxyMode,
    /// IPVS: the virtual server's address, which is how its rules are told apart (they
    /// name no Service).
    #[serde(default)]
    pub virtual_address: Option<SocketAddrV4>,
}

impl DnatRule {
    /// The rule as `follow` names it on the DNAT hop: `KUBE-SEP-…` (as always in iptables
    /// mode), `nftables chain endpoint-…`, `IPVS TCP 10.109.60.89:80 rr → 10.244.5.203:80 Masq`.
    pub fn describe(&self) -> String {
        match self.mode {
            ProxyMode::Iptables => self.rule.clone(),
            ProxyMode::Nftables => format!("nftables chain {}", self.rule),
            ProxyMode::Ipvs => match &self.chooser {
                Some(virtual_server) => format!("IPVS {virtual_server} → {}", self.rule),
                None => format!("IPVS real server {}", self.rule),
            },
        }
    }
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
    /// kube-proxy's rules to its endpoints, from whichever modes run here (the rule text
    /// itself is not kept: on a large cluster it runs to megabytes per node).
    pub dnat_rules: Vec<DnatRule>,
    /// The kube-proxy modes whose rules were found here (none in a Pod's namespace).
    #[serde(default)]
    pub proxy_modes: Vec<ProxyMode>,
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
            proxy_modes: vec![],
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

    #[test]
    fn rules_recorded_before_proxy_modes_read_back_as_iptables_rules() {
        // A namespace as a recording from before proxy modes holds it.
        let old = r#"{"cookie":4,"inode":4026532,"path":"/run/netns/tracer-lab-cpu2","links":[],"addresses":[],"routes":[],
            "dnat_rules":[{"sep_chain":"KUBE-SEP-SOT6P6LQ532M4OEI","svc_chain":"KUBE-SVC-W67AXLFK7VEUVN6G","to":"10.244.102.138","to_port":80,"comment":"default/nginx-test"}]}"#;
        let ns: NetnsInfo = serde_json::from_str(old).unwrap();
        let rule = &ns.dnat_rules[0];
        assert_eq!(rule.mode, ProxyMode::Iptables);
        assert_eq!(rule.rule, "KUBE-SEP-SOT6P6LQ532M4OEI");
        assert_eq!(rule.chooser.as_deref(), Some("KUBE-SVC-W67AXLFK7VEUVN6G"));
        assert_eq!(rule.virtual_address, None);
        assert!(ns.proxy_modes.is_empty());
        assert_eq!(rule.describe(), "KUBE-SEP-SOT6P6LQ532M4OEI");
        // And what is written now keeps those names.
        let json = serde_json::to_value(rule).unwrap();
        assert_eq!(json["sep_chain"], "KUBE-SEP-SOT6P6LQ532M4OEI");
        assert_eq!(json["svc_chain"], "KUBE-SVC-W67AXLFK7VEUVN6G");
        assert_eq!(json["mode"], "iptables");
    }
}
