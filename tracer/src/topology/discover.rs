//! Finds every network namespace on the machine and reads each one with `ip -j` and
//! kube-proxy's tools (`iptables-save`, `nft`, the IPVS table: [`super::kube_proxy`]), run
//! from a thread that has entered it (children inherit the thread's namespace), so unnamed
//! namespaces (`/proc/PID/ns/net`, as container runtimes leave them) are read the same way
//! as named ones.

use std::{
    collections::HashSet,
    fs,
    net::Ipv4Addr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use super::{
    kube_proxy,
    netinfo::{Address, Link, NetnsInfo, Route, Vxlan},
};
use crate::netns;

/// Which network namespaces discovery reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceScope {
    /// Every one on the machine: the host's, the named ones (`/run/netns`), and those of
    /// running processes (`/proc/PID/ns/net`, as container runtimes leave them).
    #[default]
    All,
    /// The host's and the named ones whose name starts with this prefix
    /// (`tracer follow --netns-prefix`): on a host that runs several isolated environments
    /// with overlapping addresses, only the one being followed.
    Named { prefix: String },
}

impl NamespaceScope {
    /// The scope `--netns-prefix` asks for: all namespaces without one.
    pub fn from_prefix(prefix: Option<String>) -> Self {
        prefix.map_or(Self::All, |prefix| Self::Named { prefix })
    }

    fn admits_named(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Named { prefix } => name.starts_with(prefix.as_str()),
        }
    }
}

/// Candidate namespace paths in `scope`, one per distinct namespace: the host's, the named
/// ones (`/run/netns`), then those of running processes.
pub fn namespace_paths(scope: &NamespaceScope) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    let mut paths = Vec::new();
    let mut consider = |path: PathBuf| {
        if let Ok(meta) = fs::metadata(&path)
            && seen.insert((meta.dev(), meta.ino()))
        {
            paths.push(path);
        }
    };
    consider(PathBuf::from("/proc/1/ns/net"));
    if let Ok(dir) = fs::read_dir("/run/netns") {
        let mut named: Vec<_> = dir
            .filter_map(Result::ok)
            .filter(|e| scope.admits_named(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        named.sort();
        named.into_iter().for_each(&mut consider);
    }
    if *scope == NamespaceScope::All
        && let Ok(dir) = fs::read_dir("/proc")
    {
        for entry in dir.filter_map(Result::ok) {
            if entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                consider(entry.path().join("ns/net"));
            }
        }
    }
    paths
}

/// Reads one namespace. `None` if it vanished or cannot be entered.
pub fn read(path: &Path) -> Option<NetnsInfo> {
    let inode = fs::metadata(path).ok()?.ino();
    let owned = path.to_path_buf();
    netns::run_in(path, move || {
        let cookie = netns::current_cookie().ok()?;
        let links = parse_links(&ip_json(&["-d", "link", "show"])?);
        let addresses = parse_addresses(&ip_json(&["addr", "show"])?);
        let routes = parse_routes(&ip_json(&["route", "show", "table", "main"])?);
        let (dnat_rules, proxy_modes) = kube_proxy::read();
        Some(NetnsInfo {
            cookie,
            inode,
            path: owned.display().to_string(),
            links,
            addresses,
            routes,
            dnat_rules,
            proxy_modes,
        })
    })
    .ok()
    .flatten()
}

fn ip_json(args: &[&str]) -> Option<Value> {
    let out = Command::new("ip").arg("-j").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn u32_of(value: &Value, key: &str) -> Option<u32> {
    value.get(key)?.as_u64().and_then(|v| u32::try_from(v).ok())
}

fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key)?.as_str()
}

pub fn parse_links(json: &Value) -> Vec<Link> {
    let Some(items) = json.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|l| {
            let info = l.get("linkinfo");
            let kind = info
                .and_then(|i| str_of(i, "info_kind"))
                .unwrap_or_default()
                .to_owned();
            let vxlan = (kind == "vxlan").then(|| {
                let data = info.and_then(|i| i.get("info_data"));
                Vxlan {
                    vni: data.and_then(|d| u32_of(d, "id")).unwrap_or(0),
                    local: data
                        .and_then(|d| str_of(d, "local"))
                        .and_then(|s| s.parse().ok()),
                    port: data
                        .and_then(|d| u32_of(d, "port"))
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or(4789),
                    underlay: data.and_then(|d| str_of(d, "link")).map(str::to_owned),
                }
            });
            Some(Link {
                ifindex: u32_of(l, "ifindex")?,
                name: str_of(l, "ifname")?.to_owned(),
                mtu: u32_of(l, "mtu").unwrap_or(0),
                kind,
                peer_ifindex: u32_of(l, "link_index"),
                up: l
                    .get("flags")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().any(|x| x == "UP")),
                master: str_of(l, "master").map(str::to_owned),
                vxlan,
            })
        })
        .collect()
}

pub fn parse_addresses(json: &Value) -> Vec<Address> {
    let Some(items) = json.as_array() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for link in items {
        let Some(ifindex) = u32_of(link, "ifindex") else {
            continue;
        };
        for info in link
            .get("addr_info")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if str_of(info, "family") != Some("inet") {
                continue;
            }
            if let (Some(ip), Some(prefix)) = (
                str_of(info, "local").and_then(|s| s.parse::<Ipv4Addr>().ok()),
                u32_of(info, "prefixlen").and_then(|p| u8::try_from(p).ok()),
            ) {
                out.push(Address {
                    ifindex,
                    ip,
                    prefix,
                });
            }
        }
    }
    out
}

pub fn parse_routes(json: &Value) -> Vec<Route> {
    let Some(items) = json.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|r| {
            let dst = str_of(r, "dst")?;
            let (addr, prefix) = if dst == "default" {
                (Ipv4Addr::UNSPECIFIED, 0)
            } else if let Some((a, p)) = dst.split_once('/') {
                (a.parse().ok()?, p.parse().ok()?)
            } else {
                (dst.parse().ok()?, 32)
            };
            Some(Route {
                kind: str_of(r, "type").unwrap_or("unicast").to_owned(),
                dst: addr,
                prefix,
                gateway: str_of(r, "gateway").and_then(|g| g.parse().ok()),
                dev: str_of(r, "dev").map(str::to_owned),
                protocol: str_of(r, "protocol").unwrap_or("boot").to_owned(),
                table: str_of(r, "table").unwrap_or("main").to_owned(),
                onlink: r
                    .get("flags")
                    .and_then(Value::as_array)
                    .is_some_and(|f| f.iter().any(|x| x == "onlink")),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_scope_reads_the_host_and_its_named_namespaces_only() {
        let scope = NamespaceScope::from_prefix(Some("tracer-test-none-".to_owned()));
        assert!(scope.admits_named("tracer-test-none-cpu1"));
        assert!(!scope.admits_named("other-env-cpu1"));
        // No named namespace matches, and processes' namespaces are out of scope.
        let paths = namespace_paths(&scope);
        assert!(
            paths.iter().all(|p| p == Path::new("/proc/1/ns/net")),
            "{paths:?}"
        );
        // Without a prefix, this process's own namespace is among them (any user may
        // read its own).
        assert_eq!(NamespaceScope::from_prefix(None), NamespaceScope::All);
        let own = fs::metadata("/proc/self/ns/net").unwrap();
        let all = namespace_paths(&NamespaceScope::All);
        assert!(
            all.iter().any(
                |p| fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == (own.dev(), own.ino()))
            ),
            "{all:?}"
        );
    }

    #[test]
    fn parses_ip_json() {
        let links: Value = serde_json::from_str(r#"[
            {"ifindex":3,"ifname":"cali37b956d7204","flags":["BROADCAST","UP"],"mtu":1450,"link_index":2,"link_netnsid":1,"linkinfo":{"info_kind":"veth"}},
            {"ifindex":5,"ifname":"vxlan.calico","flags":["UP"],"mtu":1450,"linkinfo":{"info_kind":"vxlan","info_data":{"id":4096,"local":"172.30.1.80","link":"enp2s0","port":4789}}}
        ]"#).unwrap();
        let links = parse_links(&links);
        assert_eq!(links[0].peer_ifindex, Some(2));
        assert!(links[0].up);
        assert_eq!(links[1].vxlan.as_ref().unwrap().vni, 4096);
        assert_eq!(
            links[1].vxlan.as_ref().unwrap().local,
            Some(Ipv4Addr::new(172, 30, 1, 80))
        );

        let routes: Value = serde_json::from_str(r#"[
            {"dst":"10.244.5.192/26","gateway":"172.30.1.38","dev":"enp2s0","protocol":"80","flags":["onlink"]},
            {"type":"blackhole","dst":"10.244.102.128/26","protocol":"80","flags":[]},
            {"dst":"10.244.102.137","dev":"cali37b956d7204","scope":"link","flags":[]},
            {"dst":"default","gateway":"172.30.1.1","dev":"enp2s0","flags":[]}
        ]"#).unwrap();
        let routes = parse_routes(&routes);
        assert_eq!(
            routes[0].describe(),
            "10.244.5.192/26 via 172.30.1.38 dev enp2s0 proto 80 onlink"
        );
        assert_eq!(routes[1].describe(), "blackhole 10.244.102.128/26 proto 80");
        assert_eq!(routes[2].prefix, 32);
        assert_eq!(routes[3].describe(), "default via 172.30.1.1 dev enp2s0");
    }
}
