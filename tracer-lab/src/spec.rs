//! The lab's cluster, as data: the seed's three nodes, its Pods and Services, and the
//! scenarios. Everything else in `lab` (namespaces, routes, kube-proxy rules, the
//! Kubernetes API) is derived from this one description, so they cannot disagree. Pods
//! replaced after `up` are [`PodChange`]s applied to the seed ([`Cluster::with_changes`]);
//! [`Cluster::rollout`] plans one replacement.
//!
//! Values come from the seed (`shared/seed/`, summarised in DESIGN §5): node and Pod
//! addresses, per-node /26 blocks, the `nginx-test` ClusterIP 10.109.60.89 and the `webapp`
//! NodePort 32065. Where the seed is silent (the webapp Pods' addresses, Pod name suffixes,
//! gpu1's address behind the router in `cross-subnet`) the values are chosen to look like a
//! kubeadm + Calico cluster would.

use std::{fmt, net::Ipv4Addr};

/// A switchable state of the lab, each reproducing one field report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    Healthy,
    WrongInterface,
    Vxlan,
    CrossSubnet,
    MtuBlackhole,
    NoEndpoints,
}

impl Scenario {
    pub const ALL: [Self; 6] = [
        Self::Healthy,
        Self::WrongInterface,
        Self::Vxlan,
        Self::CrossSubnet,
        Self::MtuBlackhole,
        Self::NoEndpoints,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::WrongInterface => "wrong-interface",
            Self::Vxlan => "vxlan",
            Self::CrossSubnet => "cross-subnet",
            Self::MtuBlackhole => "mtu-blackhole",
            Self::NoEndpoints => "no-endpoints",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Healthy => {
                "same subnet, direct routing between nodes (the seed's final state); everything answers"
            }
            Self::WrongInterface => {
                "the seed's incident: Calico on cpu1 picked wlp3s0, so cpu1 has no routes to the other nodes' Pod blocks; cross-node Pod traffic to cpu1 dies"
            }
            Self::Vxlan => {
                "VXLAN always: cross-node Pod traffic is encapsulated on enp2s0 (VNI 4096, UDP 4789, MTU 1450)"
            }
            Self::CrossSubnet => {
                "gpu1 moved to 172.30.2.0/24 behind a router: direct routing cpu1<->cpu2, VXLAN only towards gpu1"
            }
            Self::MtuBlackhole => {
                "VXLAN with Pod MTU 1500 above the tunnel's 1450 and ICMP frag-needed filtered: small requests work, large ones vanish"
            }
            Self::NoEndpoints => {
                "nginx-test's Pods are not ready, so the Service has no endpoints and kube-proxy REJECTs"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether cross-node Pod traffic between these two nodes is VXLAN-encapsulated.
    pub fn encapsulates(self, from: &Node, to: &Node) -> bool {
        match self {
            Self::Vxlan | Self::MtuBlackhole => true,
            Self::CrossSubnet => from.subnet != to.subnet,
            Self::Healthy | Self::WrongInterface | Self::NoEndpoints => false,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How kube-proxy implements Services on every node: the same Services and endpoints,
/// three dataplanes. Independent of the scenario (`lab up --proxy-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProxyMode {
    /// `KUBE-SERVICES` → `KUBE-SVC-…` → `KUBE-SEP-…` chains in iptables' `nat` table.
    #[default]
    Iptables,
    /// The `kube-proxy` nftables table: verdict maps, per-Service and per-endpoint chains.
    Nftables,
    /// IPVS virtual servers on `kube-ipvs0`'s addresses, with iptables and ipsets for
    /// masquerading and filtering.
    Ipvs,
}

impl ProxyMode {
    pub const ALL: [Self; 3] = [Self::Iptables, Self::Nftables, Self::Ipvs];

    pub fn name(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nftables => "nftables",
            Self::Ipvs => "ipvs",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::Iptables => {
                "iptables nat chains KUBE-SERVICES -> KUBE-SVC-... -> KUBE-SEP-... (statistic --mode random)"
            }
            Self::Nftables => {
                "the kube-proxy nftables table: @service-ips -> service-... chain -> numgen random vmap -> endpoint-... chain (dnat)"
            }
            Self::Ipvs => {
                "IPVS virtual servers (rr) on kube-ipvs0's ClusterIPs, real servers in masquerade mode, ipsets and iptables for SNAT"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Self { addr, prefix }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

pub const POD_NETWORK: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(10, 244, 0, 0), 16);
pub const SERVICE_NETWORK: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12);
/// The gateway every Calico Pod routes to; the host-side veth answers for it by proxy ARP.
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
pub const UPLINK: &str = "enp2s0";
pub const VXLAN_DEVICE: &str = "vxlan.calico";
pub const VXLAN_VNI: u32 = 4096;
pub const VXLAN_PORT: u16 = 4789;
pub const VXLAN_MTU: u32 = 1450;
/// Calico's route protocol number (`proto 80` in `ip route`).
pub const CALICO_ROUTE_PROTO: u8 = 80;
pub const KUBERNETES_VERSION: &str = "v1.31.13";

/// A node of the lab cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: &'static str,
    pub ip: Ipv4Addr,
    /// The subnet of the node's uplink.
    pub subnet: Ipv4Net,
    /// Gateway towards the other subnet, when the lab has a router (`cross-subnet`).
    pub router: Option<Ipv4Addr>,
    /// The node's Calico IPAM block.
    pub block: Ipv4Net,
    pub control_plane: bool,
    /// A second interface that exists but is down (cpu1's Wi-Fi in the seed).
    pub down_interface: Option<&'static str>,
}

impl Node {
    /// Address of `vxlan.calico` on this node: the first address of its block, as Calico
    /// assigns the tunnel address.
    pub fn vtep_ip(&self) -> Ipv4Addr {
        self.block.addr
    }

    /// A stable, locally administered MAC for `vxlan.calico` (Calico derives it too).
    pub fn vtep_mac(&self) -> String {
        let [_, _, c, d] = self.ip.octets();
        format!("66:4c:61:62:{c:02x}:{d:02x}")
    }
}

/// Which HTTP content a Pod serves on port 80.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// nginx's default page.
    Nginx,
    /// The seed's ConfigMap page ("Welcome to Kubernetes!").
    WebApp,
    /// A client Pod with no server.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: &'static str,
    pub name: String,
    /// The `app` label (selector key), when the Pod belongs to a Deployment.
    pub app: Option<&'static str>,
    /// The owning Deployment and its ReplicaSet hash, when there is one.
    pub deployment: Option<(&'static str, &'static str)>,
    pub node: &'static str,
    pub ip: Ipv4Addr,
    pub image: &'static str,
    pub server: Server,
    pub ready: bool,
    pub mtu: u32,
    /// When the Pod was created (Unix seconds); `None` for the seed's Pods, which are as
    /// old as the lab.
    pub created: Option<u64>,
}

impl Pod {
    /// The host-side veth name: `cali` + 11 hex digits of a hash of `namespace.name`, as
    /// Calico names them.
    pub fn host_veth(&self) -> String {
        let digest = sha256(format!("{}.{}", self.namespace, self.name).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("cali{}", &hex[..11])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIp,
    NodePort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub namespace: &'static str,
    pub name: &'static str,
    pub kind: ServiceType,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    pub target_port: u16,
    pub node_port: Option<u16>,
    /// Selects Pods whose `app` label is this.
    pub app: &'static str,
}

impl Service {
    /// kube-proxy's `ServicePortName.String()`: `ns/name`, plus `:port-name` for named ports
    /// (the lab's ports are unnamed, as `kubectl expose` makes them).
    pub fn port_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `KUBE-SVC-…`, computed as kube-proxy's `servicePortChainName`.
    pub fn svc_chain(&self) -> String {
        format!("KUBE-SVC-{}", port_proto_hash(&self.port_name(), "tcp"))
    }

    /// `KUBE-EXT-…` (external traffic: NodePort), as `serviceExternalChainName`.
    pub fn ext_chain(&self) -> String {
        format!("KUBE-EXT-{}", port_proto_hash(&self.port_name(), "tcp"))
    }

    /// `KUBE-SEP-…` for one endpoint (`ip:port`), as `servicePortEndpointChainName`.
    pub fn sep_chain(&self, endpoint: Ipv4Addr) -> String {
        let ep = format!("{endpoint}:{}", self.target_port);
        format!(
            "KUBE-SEP-{}",
            port_proto_hash(&format!("{}tcp", self.port_name()), &ep)
        )
    }
}

impl Service {
    /// kube-proxy's nftables name base for this Service port, `servicePortChainNameBase`:
    /// `ns/name/proto/port-name`, behind a hash of itself.
    fn nft_base(&self) -> String {
        hash_and_truncate(&format!("{}/{}/tcp/", self.namespace, self.name))
    }

    /// The nftables cluster-policy chain, `service-HASH-ns/name/tcp/`: it picks an
    /// endpoint (`numgen random mod n vmap`).
    pub fn nft_service_chain(&self) -> String {
        format!("service-{}", self.nft_base())
    }

    /// The nftables chain for external (NodePort) traffic, `external-HASH-ns/name/tcp/`.
    pub fn nft_external_chain(&self) -> String {
        format!("external-{}", self.nft_base())
    }

    /// The nftables chain that DNATs to one endpoint, as `servicePortEndpointChainNameBase`:
    /// `endpoint-HASH-ns/name/tcp/__ip/port`.
    pub fn nft_endpoint_chain(&self, endpoint: Ipv4Addr) -> String {
        let name = format!(
            "{}/{}/tcp/__{endpoint}/{}",
            self.namespace, self.name, self.target_port
        );
        format!("endpoint-{}", hash_and_truncate(&name))
    }
}

/// kube-proxy's nftables `hashAndTruncate`: the first 8 base32 characters of the name's
/// SHA-256, a dash, the name (the lab's names are far below nftables' length limit, so the
/// truncation never applies).
fn hash_and_truncate(name: &str) -> String {
    let digest = sha256(name.as_bytes());
    format!("{}-{name}", &base32(&digest)[..8])
}

/// kube-proxy's `portProtoHash`: base32(sha256(a + b)), first 16 characters.
fn port_proto_hash(a: &str, b: &str) -> String {
    let digest = sha256(format!("{a}{b}").as_bytes());
    base32(&digest)[..16].to_owned()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// RFC 4648 base32 with padding, as Go's `base32.StdEncoding`.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let symbols = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < symbols {
                let index = (bits >> (35 - i * 5)) & 0x1f;
                out.push(char::from(ALPHABET[usize::try_from(index).unwrap_or(0)]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The whole lab cluster in one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub scenario: Scenario,
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    /// Pods removed by [`PodChange::Remove`], oldest first: their names and addresses are
    /// not handed out again unless asked (`replace-pod --reuse-ip`).
    pub retired: Vec<Pod>,
}

const LAN: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(172, 30, 1, 0), 24);
const REMOTE_LAN: Ipv4Net = Ipv4Net::new(Ipv4Addr::new(172, 30, 2, 0), 24);
/// The router's addresses on the two subnets (`cross-subnet` only).
pub const ROUTER_LAN_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 1, 1);
pub const ROUTER_REMOTE_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 2, 1);
/// A machine on the LAN outside the cluster, for NodePort from outside.
pub const OUTSIDE_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(172, 30, 1, 10);

impl Cluster {
    pub fn seed(scenario: Scenario) -> Self {
        let cross_subnet = scenario == Scenario::CrossSubnet;
        let router = cross_subnet.then_some(ROUTER_LAN_IP);
        let nodes = vec![
            Node {
                name: "cpu1",
                ip: Ipv4Addr::new(172, 30, 1, 43),
                subnet: LAN,
                router,
                block: Ipv4Net::new(Ipv4Addr::new(10, 244, 184, 64), 26),
                control_plane: true,
                down_interface: Some("wlp3s0"),
            },
            Node {
                name: "cpu2",
                ip: Ipv4Addr::new(172, 30, 1, 80),
                subnet: LAN,
                router,
                block: Ipv4Net::new(Ipv4Addr::new(10, 244, 102, 128), 26),
                control_plane: false,
                down_interface: None,
            },
            Node {
                name: "gpu1",
                ip: if cross_subnet {
                    Ipv4Addr::new(172, 30, 2, 38)
                } else {
                    Ipv4Addr::new(172, 30, 1, 38)
                },
                subnet: if cross_subnet { REMOTE_LAN } else { LAN },
                router: cross_subnet.then_some(ROUTER_REMOTE_IP),
                block: Ipv4Net::new(Ipv4Addr::new(10, 244, 5, 192), 26),
                control_plane: false,
                down_interface: None,
            },
        ];
        let mtu = if scenario == Scenario::MtuBlackhole {
            1500
        } else {
            VXLAN_MTU
        };
        let nginx_ready = scenario != Scenario::NoEndpoints;
        let pod = |name: String, app, deployment, node, ip: [u8; 4], image, server, ready| Pod {
            namespace: "default",
            name,
            app,
            deployment,
            node,
            ip: Ipv4Addr::from(ip),
            image,
            server,
            ready,
            mtu,
            created: None,
        };
        let nginx = Some(("nginx-test", "7d9c4b6f5"));
        let webapp = Some(("webapp", "5b8f6d7c9"));
        let pods = vec![
            pod(
                "nettest".into(),
                None,
                None,
                "cpu2",
                [10, 244, 102, 137],
                "nicolaka/netshoot",
                Server::None,
                true,
            ),
            pod(
                "nginx-test-7d9c4b6f5-x2k8p".into(),
                Some("nginx-test"),
                nginx,
                "cpu2",
                [10, 244, 102, 138],
                "nginx:alpine",
                Server::Nginx,
                nginx_ready,
            ),
            pod(
                "nginx-test-7d9c4b6f5-abcde".into(),
                Some("nginx-test"),
                nginx,
                "cpu1",
                [10, 244, 184, 84],
                "nginx:alpine",
                Server::Nginx,
                nginx_ready,
            ),
            pod(
                "nginx-test-7d9c4b6f5-q7w4n".into(),
                Some("nginx-test"),
                nginx,
                "gpu1",
                [10, 244, 5, 203],
                "nginx:alpine",
                Server::Nginx,
                nginx_ready,
            ),
            pod(
                "webapp-5b8f6d7c9-h4t2m".into(),
                Some("webapp"),
                webapp,
                "cpu1",
                [10, 244, 184, 85],
                "nginx:alpine",
                Server::WebApp,
                true,
            ),
            pod(
                "webapp-5b8f6d7c9-m9r3x".into(),
                Some("webapp"),
                webapp,
                "gpu1",
                [10, 244, 5, 204],
                "nginx:alpine",
                Server::WebApp,
                true,
            ),
        ];
        let services = vec![
            Service {
                namespace: "default",
                name: "nginx-test",
                kind: ServiceType::ClusterIp,
                cluster_ip: Ipv4Addr::new(10, 109, 60, 89),
                port: 80,
                target_port: 80,
                node_port: None,
                app: "nginx-test",
            },
            Service {
                namespace: "default",
                name: "webapp",
                kind: ServiceType::NodePort,
                cluster_ip: Ipv4Addr::new(10, 103, 193, 83),
                port: 80,
                target_port: 80,
                node_port: Some(32065),
                app: "webapp",
            },
        ];
        Self {
            scenario,
            nodes,
            pods,
            services,
            retired: Vec::new(),
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.name == name)
    }

    pub fn pods_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |p| p.node == node)
    }

    /// The ready endpoints of a Service, sorted the way kube-proxy sorts them (by
    /// `ip:port` string), which fixes the order of the `KUBE-SEP` rules.
    pub fn endpoints(&self, service: &Service) -> Vec<&Pod> {
        let mut pods: Vec<&Pod> = self
            .pods
            .iter()
            .filter(|p| p.app == Some(service.app) && p.ready)
            .collect();
        pods.sort_by_key(|p| format!("{}:{}", p.ip, service.target_port));
        pods
    }

    /// Whether `from` has routes to `to`'s Pod block (false only in the seed's incident,
    /// where cpu1's Calico never installed them).
    pub fn has_block_route(&self, from: &Node, _to: &Node) -> bool {
        !(self.scenario == Scenario::WrongInterface && from.name == "cpu1")
    }
}

/// A change to the lab's Pods made after `up` (by `tracer lab replace-pod`). The lab's state
/// keeps these in order, and every command and the daemon apply them to the scenario's seed
/// ([`Cluster::with_changes`]), so namespaces, kube-proxy rules and the API cannot disagree,
/// and a scenario switch keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodChange {
    /// A new Pod from the template of `like` (owner, labels, node, image, server,
    /// readiness), with a name and address of its own, created at `created` (Unix seconds).
    Add {
        name: String,
        like: String,
        ip: Ipv4Addr,
        created: u64,
    },
    /// The Pod is gone.
    Remove { name: String },
}

impl PodChange {
    /// One line of the state file: `add NAME like TEMPLATE ip IP created SECS` or
    /// `remove NAME`.
    pub fn to_line(&self) -> String {
        match self {
            Self::Add {
                name,
                like,
                ip,
                created,
            } => format!("add {name} like {like} ip {ip} created {created}"),
            Self::Remove { name } => format!("remove {name}"),
        }
    }

    pub fn parse(line: &str) -> Option<Self> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["add", name, "like", like, "ip", ip, "created", created] => Some(Self::Add {
                name: (*name).to_owned(),
                like: (*like).to_owned(),
                ip: ip.parse().ok()?,
                created: created.parse().ok()?,
            }),
            ["remove", name] => Some(Self::Remove {
                name: (*name).to_owned(),
            }),
            _ => None,
        }
    }
}

/// What replacing one Pod takes, as a Deployment's ReplicaSet does it: the Pod that goes,
/// the one that comes, and the two changes in the order to make them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub old: Pod,
    pub new: Pod,
    /// A new address: the new Pod first, then the old one goes (no endpoint is ever
    /// missing). The old address (`--reuse-ip`): the old Pod goes first, since one address
    /// cannot be in two Pods at once.
    pub changes: [PodChange; 2],
}

/// Why a Pod cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("no Pod `{0}` in the lab")]
    NoPod(String),
    #[error(
        "Pod {0} belongs to no Deployment: deleted, nothing would replace it (replace a Pod of nginx-test or webapp)"
    )]
    Unowned(String),
    #[error("node {node}'s Pod block {block} has no free address left")]
    BlockFull { node: &'static str, block: Ipv4Net },
}

/// The alphabet of Kubernetes' random name suffixes (no vowels, no confusable digits).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Cluster {
    /// This cluster with `changes` made, in order. A change that no longer applies (its Pod
    /// is unknown) is skipped, so a damaged state file cannot stop the lab.
    #[must_use]
    pub fn with_changes(mut self, changes: &[PodChange]) -> Self {
        for change in changes {
            match change {
                PodChange::Add {
                    name,
                    like,
                    ip,
                    created,
                } => {
                    let template = self
                        .pods
                        .iter()
                        .chain(self.retired.iter().rev())
                        .find(|p| p.name == *like)
                        .cloned();
                    let taken = self.pods.iter().any(|p| p.name == *name || p.ip == *ip);
                    if let Some(template) = template
                        && !taken
                    {
                        self.pods.push(Pod {
                            name: name.clone(),
                            ip: *ip,
                            created: Some(*created),
                            ..template
                        });
                    }
                }
                PodChange::Remove { name } => {
                    if let Some(i) = self.pods.iter().position(|p| p.name == *name) {
                        let pod = self.pods.remove(i);
                        self.retired.push(pod);
                    }
                }
            }
        }
        self
    }

    /// Plans replacing Pod `old` on its node, as its ReplicaSet would after the Pod was
    /// deleted: a new Pod named `<deployment>-<hash>-<5 characters>` (the characters derived
    /// from `seed`, which the caller makes unique), with `old`'s address when `reuse_ip`,
    /// otherwise the lowest address of the node's block that no Pod of this lab has held.
    pub fn rollout(
        &self,
        old: &str,
        reuse_ip: bool,
        seed: &str,
        now: u64,
    ) -> Result<Rollout, RolloutError> {
        let old = self
            .pod(old)
            .ok_or_else(|| RolloutError::NoPod(old.to_owned()))?
            .clone();
        let Some((deployment, hash)) = old.deployment else {
            return Err(RolloutError::Unowned(old.name));
        };
        let known = |name: &str| {
            self.pods
                .iter()
                .chain(&self.retired)
                .any(|p| p.name == name)
        };
        let name = (0u32..)
            .map(|attempt| {
                let digest = sha256(format!("{seed}/{attempt}").as_bytes());
                let suffix: String = digest
                    .iter()
                    .take(5)
                    .map(|b| char::from(SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()]))
                    .collect();
                format!("{deployment}-{hash}-{suffix}")
            })
            .find(|name| !known(name))
            .expect("an unused name among endless candidates");
        let ip = match self.node(old.node) {
            Some(_) if reuse_ip => old.ip,
            Some(node) => self.fresh_ip(node)?,
            None => return Err(RolloutError::NoPod(old.name)),
        };
        let new = Pod {
            name: name.clone(),
            ip,
            created: Some(now),
            ..old.clone()
        };
        let add = PodChange::Add {
            name,
            like: old.name.clone(),
            ip,
            created: now,
        };
        let remove = PodChange::Remove {
            name: old.name.clone(),
        };
        let changes = if reuse_ip {
            [remove, add]
        } else {
            [add, remove]
        };
        Ok(Rollout { old, new, changes })
    }

    /// The lowest address of `node`'s block (past the tunnel's, the block's first) that no
    /// Pod holds or held.
    fn fresh_ip(&self, node: &Node) -> Result<Ipv4Addr, RolloutError> {
        let first = u32::from(node.block.addr);
        let size = 1u32 << (32 - u32::from(node.block.prefix));
        let used = |ip: Ipv4Addr| {
            ip == node.vtep_ip() || self.pods.iter().chain(&self.retired).any(|p| p.ip == ip)
        };
        // Not the block's first (the tunnel's) nor its last address.
        (first + 1..first + size - 1)
            .map(Ipv4Addr::from)
            .find(|ip| !used(*ip))
            .ok_or(RolloutError::BlockFull {
                node: node.name,
                block: node.block,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_the_seeds() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let nginx = &cluster.services[0];
        assert_eq!(nginx.svc_chain(), "KUBE-SVC-W67AXLFK7VEUVN6G");
        assert_eq!(
            nginx.sep_chain(Ipv4Addr::new(10, 244, 102, 138)),
            "KUBE-SEP-SOT6P6LQ532M4OEI"
        );
        assert_eq!(
            nginx.sep_chain(Ipv4Addr::new(10, 244, 184, 84)),
            "KUBE-SEP-3DGSCWRDZYIA2HSW"
        );
    }

    #[test]
    fn nftables_chain_names_are_kube_proxys() {
        // kube-proxy's own examples (pkg/proxy/nftables/proxier.go): the hash is of the name.
        assert_eq!(
            hash_and_truncate("ns1/svc1/tcp/p80"),
            "ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            hash_and_truncate("ns1/svc1/tcp/p80__10.180.0.1/80"),
            "5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
        let cluster = Cluster::seed(Scenario::Healthy);
        let nginx = &cluster.services[0];
        assert_eq!(
            nginx.nft_service_chain(),
            "service-E674OMPI-default/nginx-test/tcp/"
        );
        assert_eq!(
            nginx.nft_endpoint_chain(Ipv4Addr::new(10, 244, 102, 138)),
            "endpoint-BN54LRN2-default/nginx-test/tcp/__10.244.102.138/80"
        );
        assert_eq!(
            cluster.services[1].nft_external_chain(),
            "external-PC2HMAMJ-default/webapp/tcp/"
        );
        for mode in ProxyMode::ALL {
            assert_eq!(ProxyMode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(ProxyMode::default(), ProxyMode::Iptables);
    }

    #[test]
    fn endpoints_are_in_kube_proxy_order_and_vanish_when_not_ready() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let ips: Vec<_> = cluster
            .endpoints(&cluster.services[0])
            .iter()
            .map(|p| p.ip.to_string())
            .collect();
        assert_eq!(ips, ["10.244.102.138", "10.244.184.84", "10.244.5.203"]);
        let cluster = Cluster::seed(Scenario::NoEndpoints);
        assert!(cluster.endpoints(&cluster.services[0]).is_empty());
        assert_eq!(cluster.endpoints(&cluster.services[1]).len(), 2);
    }

    #[test]
    fn base32_matches_go() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI======");
        assert_eq!(base32(b""), "");
    }

    #[test]
    fn scenarios_round_trip_and_encapsulate_as_described() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
        let cluster = Cluster::seed(Scenario::CrossSubnet);
        let (cpu1, cpu2, gpu1) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
        assert!(!Scenario::CrossSubnet.encapsulates(cpu1, cpu2));
        assert!(Scenario::CrossSubnet.encapsulates(cpu1, gpu1));
        assert!(POD_NETWORK.contains(cluster.pods[0].ip));
        assert!(SERVICE_NETWORK.contains(cluster.services[0].cluster_ip));
    }

    #[test]
    fn host_veths_are_calico_shaped_and_distinct() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let names: std::collections::HashSet<_> = cluster.pods.iter().map(Pod::host_veth).collect();
        assert_eq!(names.len(), cluster.pods.len());
        assert!(names.iter().all(|n| n.len() == 15 && n.starts_with("cali")));
    }
    fn replace(cluster: Cluster, pod: &str, reuse_ip: bool, seed: &str) -> (Cluster, Rollout) {
        let rollout = cluster.rollout(pod, reuse_ip, seed, 1_800_000_000).unwrap();
        (cluster.with_changes(&rollout.changes), rollout)
    }

    fn nginx_endpoints(cluster: &Cluster) -> Vec<String> {
        cluster
            .endpoints(&cluster.services[0])
            .iter()
            .map(|p| format!("{} {}", p.name, p.ip))
            .collect()
    }

    #[test]
    fn a_rollout_with_a_new_address_adds_first_then_removes() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let (after, rollout) = replace(cluster, "nginx-test-7d9c4b6f5-abcde", false, "s1");
        let new = &rollout.new;
        assert!(
            new.name.starts_with("nginx-test-7d9c4b6f5-"),
            "{}",
            new.name
        );
        let suffix = new.name.rsplit('-').next().unwrap();
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert_ne!(new.name, rollout.old.name);
        assert_eq!((new.node, new.deployment), ("cpu1", rollout.old.deployment));
        // The lowest free address of cpu1's block past the tunnel's .64.
        assert_eq!(new.ip, Ipv4Addr::new(10, 244, 184, 65));
        assert!(matches!(rollout.changes[0], PodChange::Add { .. }));
        assert!(matches!(rollout.changes[1], PodChange::Remove { .. }));
        assert_eq!(new.created, Some(1_800_000_000));

        assert!(after.pod("nginx-test-7d9c4b6f5-abcde").is_none());
        assert_eq!(after.pod(&new.name), Some(new));
        assert_eq!(after.pods.len(), 6);
        assert_eq!(after.retired, std::slice::from_ref(&rollout.old));
        assert_eq!(
            nginx_endpoints(&after),
            [
                "nginx-test-7d9c4b6f5-x2k8p 10.244.102.138".to_owned(),
                format!("{} 10.244.184.65", new.name),
                "nginx-test-7d9c4b6f5-q7w4n 10.244.5.203".to_owned(),
            ]
        );
    }

    #[test]
    fn a_rollout_reusing_the_address_removes_first_and_keeps_the_sep_chain() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let (after, rollout) = replace(cluster, "nginx-test-7d9c4b6f5-abcde", true, "s1");
        assert_eq!(rollout.new.ip, Ipv4Addr::new(10, 244, 184, 84));
        assert!(matches!(rollout.changes[0], PodChange::Remove { .. }));
        assert!(matches!(rollout.changes[1], PodChange::Add { .. }));
        assert_eq!(
            after.pod(&rollout.new.name).map(|p| p.ip),
            Some(rollout.new.ip)
        );
        assert!(after.pod(&rollout.old.name).is_none());
        // kube-proxy names the endpoint chain after ip:port, so it stays.
        assert_eq!(
            after.services[0].sep_chain(rollout.new.ip),
            "KUBE-SEP-3DGSCWRDZYIA2HSW"
        );
    }

    #[test]
    fn successive_rollouts_never_hand_out_a_retired_name_or_address() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let (once, first) = replace(cluster, "nginx-test-7d9c4b6f5-abcde", false, "same");
        let (twice, second) = replace(once, &first.new.name, false, "same");
        assert_ne!(second.new.name, first.new.name);
        assert_ne!(second.new.name, first.old.name);
        assert_eq!(second.new.ip, Ipv4Addr::new(10, 244, 184, 66));
        let (thrice, third) = replace(twice, &second.new.name, true, "same");
        assert_eq!(third.new.ip, second.new.ip);
        assert_eq!(thrice.retired.len(), 3);
        assert_eq!(thrice.pods.len(), 6);
    }

    #[test]
    fn changes_survive_a_scenario_switch_and_their_state_lines() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let rollout = cluster
            .rollout("nginx-test-7d9c4b6f5-q7w4n", false, "x", 7)
            .unwrap();
        let lines: Vec<String> = rollout.changes.iter().map(PodChange::to_line).collect();
        let parsed: Vec<PodChange> = lines.iter().filter_map(|l| PodChange::parse(l)).collect();
        assert_eq!(parsed, rollout.changes);
        assert!(lines[0].starts_with("add nginx-test-7d9c4b6f5-"));
        assert!(lines[0].ends_with("like nginx-test-7d9c4b6f5-q7w4n ip 10.244.5.193 created 7"));
        assert_eq!(PodChange::parse("remove"), None);

        // The same changes on another scenario: the new Pod takes that scenario's state.
        let broken = Cluster::seed(Scenario::NoEndpoints).with_changes(&parsed);
        let new = broken.pod(&rollout.new.name).unwrap();
        assert!(!new.ready);
        assert_eq!(new.node, "gpu1");
        assert!(broken.endpoints(&broken.services[0]).is_empty());
    }

    #[test]
    fn only_deployment_pods_are_replaced_and_stale_changes_are_skipped() {
        let cluster = Cluster::seed(Scenario::Healthy);
        assert_eq!(
            cluster.rollout("nettest", false, "s", 0),
            Err(RolloutError::Unowned("nettest".to_owned()))
        );
        assert_eq!(
            cluster.rollout("nope", false, "s", 0),
            Err(RolloutError::NoPod("nope".to_owned()))
        );
        let stale = [
            PodChange::Remove {
                name: "gone".into(),
            },
            PodChange::Add {
                name: "x".into(),
                like: "gone".into(),
                ip: Ipv4Addr::new(10, 244, 184, 90),
                created: 0,
            },
            // An address already held is never given twice.
            PodChange::Add {
                name: "y".into(),
                like: "nettest".into(),
                ip: Ipv4Addr::new(10, 244, 184, 84),
                created: 0,
            },
        ];
        assert_eq!(cluster.clone().with_changes(&stale), cluster);
    }
}
