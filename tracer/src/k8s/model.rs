//! The lean in-memory view of the cluster that every hop is named from.
//!
//! [`ClusterModel::from_objects`] is the only way in: both the live API watch and the offline
//! cluster file hand it typed `k8s-openapi` objects, and it keeps only what naming needs
//! (names, IPs, nodes, ports, endpoints) plus the indexes that make each lookup O(1) (hash
//! maps by IP and NodePort) or O(log n) (ordered maps by `namespace/name`, which also serve
//! prefix searches).
//!
//! Rules worth knowing:
//! - **IP reuse.** A Pod IP can be held by a finished Pod (Succeeded/Failed, or being deleted)
//!   and a new Running one at once. `pod_by_ip` picks by rank: Running and ready, then
//!   Running, then Pending/unknown, then finished or terminating; ties go to the newest
//!   (creation time), then to `namespace/name` order, so the answer is deterministic.
//! - **hostNetwork Pods** (kube-proxy, CNI agents) carry their node's IP; they are listed by
//!   `pods()` but left out of the IP index so a node address is named as the node.
//! - **Endpoints** come from every EndpointSlice labelled `kubernetes.io/service-name` with
//!   address type IPv4, one [`EndpointInfo`] per address × port; a missing `ready` condition
//!   counts as ready (the API's rule). Not-ready endpoints are kept with `ready = false`.
//!   Duplicates across slices (seen while slices are being rewritten) are merged.
//! - **Endpoint order** is kube-proxy's: ready endpoints of one service port sorted by their
//!   `"ip:port"` string, which is the order of the `KUBE-SEP-…` jumps in `KUBE-SVC-…`.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
};

use k8s_openapi::{
    api::{
        core::v1::{Node, Pod, Service},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service or endpoint port's protocol.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The Service-port protocol a packet of this IP protocol can match, if any.
    pub fn of_packet(proto: crate::journey::observation::IpProto) -> Option<Self> {
        Self::from_number(proto.number())
    }

    /// Parses the API's spelling (`TCP`, `UDP`, `SCTP`); absent means TCP, as in the API.
    pub fn from_api(value: Option<&str>) -> Option<Self> {
        match value.map(str::to_ascii_uppercase).as_deref() {
            None | Some("TCP") => Some(Self::Tcp),
            Some("UDP") => Some(Self::Udp),
            Some("SCTP") => Some(Self::Sctp),
            Some(_) => None,
        }
    }

    /// The IP protocol number (6, 17, 132).
    pub fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Sctp => 132,
        }
    }

    /// The inverse of [`Protocol::number`].
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            132 => Some(Self::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespaced object's namespace and name; shown as `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectName {
    pub namespace: String,
    pub name: String,
}

impl ObjectName {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The Service named in a kube-proxy rule's comment (`namespace/name` or
    /// `namespace/name:port-name`).
    pub fn of_rule_comment(comment: &str) -> Option<Self> {
        let qualified = comment.split(':').next()?;
        let (namespace, name) = qualified.split_once('/')?;
        (!namespace.is_empty() && !name.is_empty()).then(|| Self::new(namespace, name))
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    /// The Pod's IPv4 address (`status.podIP`, or the first IPv4 of `status.podIPs`).
    pub ip: Option<Ipv4Addr>,
    pub node: Option<String>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// The controlling owner as `"Kind name"`; a ReplicaSet created by a Deployment (its
    /// name is the Pod's `pod-template-hash` label appended to the Deployment's) is named as
    /// that Deployment.
    pub owner: Option<String>,
    pub uid: String,
}

impl PodInfo {
    pub fn object_name(&self) -> ObjectName {
        ObjectName::new(&self.namespace, &self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServicePort {
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    /// The numeric target port; `None` when it names a container port (then only the
    /// endpoints know the number).
    pub target_port: Option<u16>,
    pub node_port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointInfo {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
    pub port_name: Option<String>,
    /// `(namespace, name)` of the Pod behind it, from the endpoint's `targetRef`.
    pub pod: Option<(String, String)>,
    pub node: Option<String>,
    pub ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`.
    pub type_: String,
    /// `None` for headless Services and ExternalName.
    pub cluster_ip: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    /// Merged from all the Service's EndpointSlices, sorted by (port name, protocol, "ip:port").
    pub endpoints: Vec<EndpointInfo>,
}

impl ServiceInfo {
    pub fn object_name(&self) -> ObjectName {
        ObjectName::new(&self.namespace, &self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub internal_ips: Vec<Ipv4Addr>,
    pub pod_cidrs: Vec<String>,
}

/// How much a Pod deserves an IP it shares with others; higher wins (see the module doc's
/// IP-reuse rule).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Rank {
    Finished,
    Pending,
    Running,
    RunningReady,
}

/// What the model keeps about a Pod beyond [`PodInfo`].
#[derive(Clone, Debug, Default)]
struct PodExtra {
    phase: Option<String>,
    host_network: bool,
}

/// A Pod as the model keeps it: what naming needs, plus what decides which of several
/// Pods holding one IP names it. Serialisable: recordings carry these.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRow {
    pub info: PodInfo,
    pub phase: Option<String>,
    pub host_network: bool,
    pub rank: Rank,
    /// Creation time, Unix seconds; `None` (unknown) sorts oldest.
    pub created: Option<i64>,
}

/// Everything a [`ClusterModel`] is built from, in a form that serialises compactly:
/// recordings carry these (whole, or only the rows a session's packets need).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelRows {
    pub pods: Vec<PodRow>,
    pub services: Vec<ServiceInfo>,
    pub nodes: Vec<NodeInfo>,
}

impl ModelRows {
    /// Adds `more`; a row for an object already here replaces it ([`ClusterModel::from_rows`]
    /// keeps the last row of each object).
    pub fn merge(&mut self, more: ModelRows) {
        self.pods.extend(more.pods);
        self.services.extend(more.services);
        self.nodes.extend(more.nodes);
    }

    pub fn len(&self) -> usize {
        self.pods.len() + self.services.len() + self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, Default)]
pub struct ClusterModel {
    pods: Vec<PodInfo>,
    pod_extra: Vec<PodExtra>,
    /// Rank and creation time of each Pod (what [`Self::rows`] gives back).
    pod_claim: Vec<(Rank, Option<i64>)>,
    services: Vec<ServiceInfo>,
    nodes: Vec<NodeInfo>,
    pod_by_key: BTreeMap<(String, String), usize>,
    pod_by_ip: HashMap<Ipv4Addr, usize>,
    service_by_key: BTreeMap<(String, String), usize>,
    service_by_ip: HashMap<Ipv4Addr, usize>,
    service_by_node_port: HashMap<(u16, Protocol), usize>,
    node_by_name: BTreeMap<String, usize>,
    node_by_ip: HashMap<Ipv4Addr, usize>,
}

impl ClusterModel {
    /// Pods in `namespace/name` order.
    pub fn pods(&self) -> impl Iterator<Item = &PodInfo> {
        self.pods.iter()
    }

    /// Services in `namespace/name` order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceInfo> {
        self.services.iter()
    }

    /// Nodes in name order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.services.is_empty() && self.nodes.is_empty()
    }

    /// The Pod holding `ip` (see the module doc for reused IPs and hostNetwork Pods).
    pub fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<&PodInfo> {
        self.pod_by_ip.get(&ip).map(|&i| &self.pods[i])
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodInfo> {
        self.pod_by_key
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|&i| &self.pods[i])
    }

    /// The Pod's `status.phase` (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`).
    pub fn pod_phase(&self, namespace: &str, name: &str) -> Option<&str> {
        let &i = self
            .pod_by_key
            .get(&(namespace.to_owned(), name.to_owned()))?;
        self.pod_extra[i].phase.as_deref()
    }

    /// Whether the Pod shares its node's network namespace (`spec.hostNetwork`).
    pub fn pod_host_network(&self, namespace: &str, name: &str) -> bool {
        self.pod_by_key
            .get(&(namespace.to_owned(), name.to_owned()))
            .is_some_and(|&i| self.pod_extra[i].host_network)
    }

    /// Pods of `namespace` whose name starts with `prefix`, in name order (O(log n + k)).
    pub fn pods_with_prefix<'a>(
        &'a self,
        namespace: &str,
        prefix: &str,
    ) -> impl Iterator<Item = &'a PodInfo> + use<'a> {
        prefix_range(&self.pod_by_key, namespace, prefix).map(|i| &self.pods[i])
    }

    /// Pods of `namespace`, in name order.
    pub fn pods_in<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a PodInfo> + use<'a> {
        self.pods_with_prefix(namespace, "")
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceInfo> {
        self.service_by_key
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|&i| &self.services[i])
    }

    /// Services of `namespace` whose name starts with `prefix`, in name order.
    pub fn services_with_prefix<'a>(
        &'a self,
        namespace: &str,
        prefix: &str,
    ) -> impl Iterator<Item = &'a ServiceInfo> + use<'a> {
        prefix_range(&self.service_by_key, namespace, prefix).map(|i| &self.services[i])
    }

    pub fn service_by_cluster_ip(&self, ip: Ipv4Addr) -> Option<&ServiceInfo> {
        self.service_by_ip.get(&ip).map(|&i| &self.services[i])
    }

    pub fn service_by_node_port(&self, port: u16, protocol: Protocol) -> Option<&ServiceInfo> {
        self.service_by_node_port
            .get(&(port, protocol))
            .map(|&i| &self.services[i])
    }

    pub fn node_by_ip(&self, ip: Ipv4Addr) -> Option<&NodeInfo> {
        self.node_by_ip.get(&ip).map(|&i| &self.nodes[i])
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.node_by_name.get(name).map(|&i| &self.nodes[i])
    }

    /// The Node whose Pod CIDR contains `ip`.
    pub fn node_by_pod_ip(&self, ip: Ipv4Addr) -> Option<&NodeInfo> {
        self.nodes
            .iter()
            .find(|n| n.pod_cidrs.iter().any(|c| cidr_contains(c, ip)))
    }

    /// The endpoint (ip:port) of `service` → its index (1-based) and the number of ready
    /// endpoints for that service port, in kube-proxy's order (sorted by "ip:port" string),
    /// e.g. "endpoint 2 of 3". `None` when it is not a ready endpoint of `service`.
    pub fn endpoint_position(
        &self,
        service: &ServiceInfo,
        ip: Ipv4Addr,
        port: u16,
    ) -> Option<(usize, usize)> {
        let found = service
            .endpoints
            .iter()
            .find(|e| e.ip == ip && e.port == port && e.ready)?;
        let mut keys: Vec<String> = service
            .endpoints
            .iter()
            .filter(|e| e.ready && e.port_name == found.port_name && e.protocol == found.protocol)
            .map(|e| format!("{}:{}", e.ip, e.port))
            .collect();
        keys.sort();
        keys.dedup();
        let key = format!("{ip}:{port}");
        let index = keys.iter().position(|k| *k == key)?;
        Some((index + 1, keys.len()))
    }

    /// Builds the model from typed API objects (both sources go through this one function).
    /// Objects without a name, and addresses that are not IPv4, are skipped.
    pub fn from_objects(
        pods: &[Pod],
        services: &[Service],
        slices: &[EndpointSlice],
        nodes: &[Node],
    ) -> Self {
        Self::from_rows(rows_of_objects(pods, services, slices, nodes))
    }

    /// The model of these rows. Rows for the same object (namespace/name, node name) keep
    /// the last one.
    pub fn from_rows(rows: ModelRows) -> Self {
        let mut model = Self::default();

        let mut pod_rows = rows.pods;
        // Stable: of two rows for one Pod, the later (a newer version) is kept.
        pod_rows.reverse();
        pod_rows.sort_by(|a, b| {
            (&a.info.namespace, &a.info.name).cmp(&(&b.info.namespace, &b.info.name))
        });
        pod_rows
            .dedup_by(|a, b| a.info.namespace == b.info.namespace && a.info.name == b.info.name);
        let mut claims: HashMap<Ipv4Addr, (Rank, Option<i64>, usize)> = HashMap::new();
        for (i, row) in pod_rows.iter().enumerate() {
            model
                .pod_by_key
                .insert((row.info.namespace.clone(), row.info.name.clone()), i);
            let Some(ip) = row.info.ip else { continue };
            if row.host_network {
                continue;
            }
            let better = match claims.get(&ip) {
                None => true,
                Some((r, c, _)) => (row.rank, row.created) > (*r, *c),
            };
            if better {
                claims.insert(ip, (row.rank, row.created, i));
            }
        }
        model.pod_by_ip = claims.into_iter().map(|(ip, (_, _, i))| (ip, i)).collect();
        for row in pod_rows {
            model.pods.push(row.info);
            model.pod_extra.push(PodExtra {
                phase: row.phase,
                host_network: row.host_network,
            });
            model.pod_claim.push((row.rank, row.created));
        }

        let mut service_rows = rows.services;
        service_rows.reverse();
        service_rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        service_rows.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        for (i, svc) in service_rows.iter().enumerate() {
            model
                .service_by_key
                .insert((svc.namespace.clone(), svc.name.clone()), i);
            if let Some(ip) = svc.cluster_ip {
                model.service_by_ip.entry(ip).or_insert(i);
            }
            for port in &svc.ports {
                if let Some(node_port) = port.node_port {
                    model
                        .service_by_node_port
                        .entry((node_port, port.protocol))
                        .or_insert(i);
                }
            }
        }
        model.services = service_rows;

        let mut node_rows = rows.nodes;
        node_rows.reverse();
        node_rows.sort_by(|a, b| a.name.cmp(&b.name));
        node_rows.dedup_by(|a, b| a.name == b.name);
        for (i, node) in node_rows.iter().enumerate() {
            model.node_by_name.insert(node.name.clone(), i);
            for ip in &node.internal_ips {
                model.node_by_ip.entry(*ip).or_insert(i);
            }
        }
        model.nodes = node_rows;
        model
    }

    /// Every row of the model (it rebuilds from them exactly).
    pub fn rows(&self) -> ModelRows {
        ModelRows {
            pods: (0..self.pods.len()).map(|i| self.pod_row(i)).collect(),
            services: self.services.clone(),
            nodes: self.nodes.clone(),
        }
    }

    /// The rows that name `ip` as this model does: every Pod holding it (so the same one
    /// wins), the Service whose ClusterIP it is, with the Pods behind its endpoints, and
    /// the node that has it.
    pub fn rows_naming(&self, ip: Ipv4Addr, out: &mut ModelRows) {
        for (i, pod) in self.pods.iter().enumerate() {
            if pod.ip == Some(ip) {
                out.pods.push(self.pod_row(i));
            }
        }
        if let Some(service) = self.service_by_cluster_ip(ip) {
            self.service_rows(service, out);
        }
        if let Some(node) = self.node_by_ip(ip) {
            out.nodes.push(node.clone());
        }
    }

    /// `service` and the Pods behind its endpoints.
    pub fn service_rows(&self, service: &ServiceInfo, out: &mut ModelRows) {
        out.services.push(service.clone());
        for endpoint in &service.endpoints {
            if let Some(&i) = self.pod_by_ip.get(&endpoint.ip) {
                out.pods.push(self.pod_row(i));
            }
        }
    }

    fn pod_row(&self, i: usize) -> PodRow {
        let (rank, created) = self.pod_claim[i];
        PodRow {
            info: self.pods[i].clone(),
            phase: self.pod_extra[i].phase.clone(),
            host_network: self.pod_extra[i].host_network,
            rank,
            created,
        }
    }
}

/// The rows of typed API objects: Pods, Services with their endpoints merged from
/// EndpointSlices, Nodes.
pub fn rows_of_objects(
    pods: &[Pod],
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
) -> ModelRows {
    let mut rows = RowsBuilder::default();
    pods.iter().for_each(|p| rows.pod(p));
    services.iter().for_each(|s| rows.service(s));
    slices.iter().for_each(|s| rows.slice(s));
    nodes.iter().for_each(|n| rows.node(n));
    rows.finish()
}

/// Rows built from API objects one at a time, so a large cluster file or watch never holds
/// the objects themselves: only what naming needs.
#[derive(Debug, Default)]
pub struct RowsBuilder {
    pods: Vec<PodRow>,
    services: Vec<ServiceInfo>,
    endpoints: HashMap<(String, String), Vec<EndpointInfo>>,
    nodes: Vec<NodeInfo>,
}

impl RowsBuilder {
    pub fn pod(&mut self, pod: &Pod) {
        self.pods.extend(pod_row(pod));
    }

    pub fn service(&mut self, service: &Service) {
        self.services.extend(service_row(service));
    }

    pub fn slice(&mut self, slice: &EndpointSlice) {
        slice_endpoints_into(slice, &mut self.endpoints);
    }

    pub fn node(&mut self, node: &Node) {
        self.nodes.extend(node_row(node));
    }

    /// Adds what another builder collected.
    pub fn merge(&mut self, other: RowsBuilder) {
        self.pods.extend(other.pods);
        self.services.extend(other.services);
        for (service, endpoints) in other.endpoints {
            self.endpoints.entry(service).or_default().extend(endpoints);
        }
        self.nodes.extend(other.nodes);
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && self.services.is_empty()
            && self.endpoints.is_empty()
            && self.nodes.is_empty()
    }

    /// The rows, each Service with its endpoints (duplicates across slices merged).
    pub fn finish(mut self) -> ModelRows {
        for endpoints in self.endpoints.values_mut() {
            // Ready first within equal keys, so dedup keeps the ready copy.
            endpoints.sort_by(|a, b| {
                endpoint_key(a)
                    .cmp(&endpoint_key(b))
                    .then(b.ready.cmp(&a.ready))
            });
            endpoints.dedup_by(|later, first| endpoint_key(later) == endpoint_key(first));
        }
        for service in &mut self.services {
            if let Some(endpoints) = self
                .endpoints
                .remove(&(service.namespace.clone(), service.name.clone()))
            {
                service.endpoints = endpoints;
            }
        }
        ModelRows {
            pods: self.pods,
            services: self.services,
            nodes: self.nodes,
        }
    }
}

/// Indexes of the entries of `map` in `namespace` whose name starts with `prefix`.
fn prefix_range<'a>(
    map: &'a BTreeMap<(String, String), usize>,
    namespace: &str,
    prefix: &str,
) -> impl Iterator<Item = usize> + use<'a> {
    let (namespace, prefix) = (namespace.to_owned(), prefix.to_owned());
    map.range((namespace.clone(), prefix.clone())..)
        .take_while(move |((ns, name), _)| *ns == namespace && name.starts_with(prefix.as_str()))
        .map(|(_, &i)| i)
}

/// Whether `ip` lies in `cidr` ("10.42.0.0/24"); false for anything that is not IPv4 CIDR.
pub fn cidr_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    if len > 32 {
        return false;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(net) & mask == u32::from(ip) & mask
}

fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

fn port_u16(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|&p| p != 0)
}

fn pod_row(pod: &Pod) -> Option<PodRow> {
    let meta = &pod.metadata;
    let name = meta.name.clone().filter(|n| !n.is_empty())?;
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let status = pod.status.as_ref();
    let ip = status.and_then(|s| {
        s.pod_ip
            .as_deref()
            .and_then(parse_v4)
            .or_else(|| s.pod_ips.iter().flatten().find_map(|p| parse_v4(&p.ip)))
    });
    let phase = status.and_then(|s| s.phase.clone());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let terminating = meta.deletion_timestamp.is_some();
    let rank = match phase.as_deref() {
        _ if terminating => Rank::Finished,
        Some("Succeeded" | "Failed") => Rank::Finished,
        Some("Running") if ready => Rank::RunningReady,
        Some("Running") => Rank::Running,
        _ => Rank::Pending,
    };
    // The API's creation times have whole seconds.
    let created = meta.creation_timestamp.as_ref().map(|t| t.0.as_second());
    let spec = pod.spec.as_ref();
    let info = PodInfo {
        namespace,
        name,
        ip,
        node: spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        ready,
        owner: owner_of(pod),
        uid: meta.uid.clone().unwrap_or_default(),
    };
    Some(PodRow {
        info,
        phase,
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        rank,
        created,
    })
}

/// `"Kind name"` of the controlling owner, naming a Deployment's ReplicaSet as the Deployment.
fn owner_of(pod: &Pod) -> Option<String> {
    let owners = pod.metadata.owner_references.as_ref()?;
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())?;
    if owner.kind == "ReplicaSet" {
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        let deployment = hash
            .and_then(|h| owner.name.strip_suffix(h.as_str())?.strip_suffix('-'))
            .filter(|d| !d.is_empty());
        if let Some(deployment) = deployment {
            return Some(format!("Deployment {deployment}"));
        }
    }
    Some(format!("{} {}", owner.kind, owner.name))
}

fn service_row(svc: &Service) -> Option<ServiceInfo> {
    let meta = &svc.metadata;
    let name = meta.name.clone().filter(|n| !n.is_empty())?;
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let spec = svc.spec.as_ref();
    let cluster_ip = spec.and_then(|s| {
        s.cluster_ip
            .as_deref()
            .and_then(parse_v4)
            .or_else(|| s.cluster_ips.iter().flatten().find_map(|ip| parse_v4(ip)))
    });
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = port_u16(p.port)?;
            let target_port = match &p.target_port {
                None => Some(port),
                Some(IntOrString::Int(n)) => port_u16(*n),
                Some(IntOrString::String(s)) => s.parse::<u16>().ok(),
            };
            Some(ServicePort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: Protocol::from_api(p.protocol.as_deref())?,
                port,
                target_port,
                node_port: p.node_port.and_then(port_u16),
            })
        })
        .collect();
    Some(ServiceInfo {
        namespace,
        name,
        type_: spec
            .and_then(|s| s.type_.clone())
            .unwrap_or_else(|| "ClusterIP".to_owned()),
        cluster_ip,
        ports,
        endpoints: Vec::new(),
    })
}

/// The endpoints of one EndpointSlice, added to its Service's.
fn slice_endpoints_into(
    slice: &EndpointSlice,
    by_service: &mut HashMap<(String, String), Vec<EndpointInfo>>,
) {
    if slice.address_type != "IPv4" {
        return;
    }
    let Some(service) = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
    else {
        return;
    };
    let namespace = slice
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let out = by_service.entry((namespace, service.clone())).or_default();
    let ports = slice.ports.as_deref().unwrap_or_default();
    for endpoint in &slice.endpoints {
        let conditions = endpoint.conditions.as_ref();
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let pod = endpoint
            .target_ref
            .as_ref()
            .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
            .and_then(|r| {
                let name = r.name.clone()?;
                let ns = r
                    .namespace
                    .clone()
                    .or_else(|| slice.metadata.namespace.clone())
                    .unwrap_or_else(|| "default".to_owned());
                Some((ns, name))
            });
        for ip in endpoint.addresses.iter().filter_map(|a| parse_v4(a)) {
            for p in ports {
                let (Some(port), Some(protocol)) = (
                    p.port.and_then(port_u16),
                    Protocol::from_api(p.protocol.as_deref()),
                ) else {
                    continue;
                };
                out.push(EndpointInfo {
                    ip,
                    port,
                    protocol,
                    port_name: p.name.clone().filter(|n| !n.is_empty()),
                    pod: pod.clone(),
                    node: endpoint.node_name.clone(),
                    ready,
                });
            }
        }
    }
}

fn endpoint_key(e: &EndpointInfo) -> (Option<&str>, Protocol, String) {
    (
        e.port_name.as_deref(),
        e.protocol,
        format!("{}:{}", e.ip, e.port),
    )
}

fn node_row(node: &Node) -> Option<NodeInfo> {
    let name = node.metadata.name.clone().filter(|n| !n.is_empty())?;
    let internal_ips = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| parse_v4(&a.address))
        .collect();
    let spec = node.spec.as_ref();
    let mut pod_cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    if let Some(cidr) = spec.and_then(|s| s.pod_cidr.clone())
        && !pod_cidrs.contains(&cidr)
    {
        pod_cidrs.insert(0, cidr);
    }
    Some(NodeInfo {
        name,
        internal_ips,
        pod_cidrs,
    })
}
