//! Turns the user's FROM/TO arguments into cluster objects.
//!
//! Accepted forms (kubectl's spellings):
//!
//! | argument                                   | meaning                                   |
//! |--------------------------------------------|-------------------------------------------|
//! | `name`, `pod/name`, `po/name`              | Pod in the default namespace (`-n`)       |
//! | `ns/name`, `pod/ns/name`                   | Pod in `ns`                               |
//! | `svc/name`, `service/name`, `svc/ns/name`  | Service                                   |
//! | `node/name`, `no/name`                     | Node                                      |
//! | `10.244.102.137`                           | an address, named when the cluster knows it |
//!
//! Names match exactly first, then as a unique prefix within the namespace, so
//! `nginx-test-7d9c` finds `nginx-test-7d9c4b6f5-abcde` when no other Pod starts that way. A
//! leading `svc`/`service`/`pod`/`node` word is always read as the kind, never as a namespace.
//!
//! Something that looks like an address but is not an IPv4 one (`999.1.1.1`, `10.0.0`, a
//! network `10.0.0.0/24`, an IPv6 address) is a malformed argument, not an unknown Pod.
//!
//! An address is returned as the thing that owns it when there is one, because that names
//! every hop better: a Pod's IP gives [`Target::Pod`] (the Running one when the IP was
//! reused, see [`ClusterModel::pod_by_ip`]), a ClusterIP gives [`Target::Service`], a Node's
//! InternalIP gives [`Target::Node`]; any other address is [`Target::Ip`].
//!
//! Errors are written for people: an unknown name says which namespace was searched, up to
//! three close names (see [`super::suggest`]) and where a Pod or Service of that name lives
//! in other namespaces.

use std::net::Ipv4Addr;

use super::{
    model::{ClusterModel, NodeInfo, PodInfo, ServiceInfo},
    suggest::close_names,
};

/// What a FROM/TO argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Pod(PodInfo),
    Service(ServiceInfo),
    Node(NodeInfo),
    Ip(Ipv4Addr),
}

impl Target {
    /// The address traffic to or from this target uses: the Pod IP, the ClusterIP, the
    /// Node's first InternalIP, or the address itself.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        match self {
            Self::Pod(p) => p.ip,
            Self::Service(s) => s.cluster_ip,
            Self::Node(n) => n.internal_ips.first().copied(),
            Self::Ip(ip) => Some(*ip),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pod(p) => {
                write!(f, "pod {}/{}", p.namespace, p.name)?;
                match (p.ip, &p.node) {
                    (Some(ip), Some(node)) => write!(f, " ({ip} on {node})"),
                    (Some(ip), None) => write!(f, " ({ip})"),
                    _ => Ok(()),
                }
            }
            Self::Service(s) => {
                write!(f, "service {}/{}", s.namespace, s.name)?;
                match s.cluster_ip {
                    Some(ip) => write!(f, " ({ip})"),
                    None => Ok(()),
                }
            }
            Self::Node(n) => {
                write!(f, "node {}", n.name)?;
                match n.internal_ips.first() {
                    Some(ip) => write!(f, " ({ip})"),
                    None => Ok(()),
                }
            }
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// How many matches an ambiguous prefix lists.
const SHOW_MATCHES: usize = 8;
/// How many close names an unknown name suggests.
const SUGGESTIONS: usize = 3;
/// How many same-named objects in other namespaces are listed.
const ELSEWHERE: usize = 5;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error(
        "empty name: give a Pod (`name`, `ns/name`), a Service (`svc/name`), a Node (`node/name`) or an IPv4 address"
    )]
    Empty,
    #[error("cannot read {spec:?}: {reason}")]
    BadSpec { spec: String, reason: String },
    #[error("{}", missing("Pod", .namespace, .name, .namespace_empty, .suggestions, .elsewhere))]
    NoPod {
        namespace: String,
        name: String,
        /// The namespace has no Pods at all.
        namespace_empty: bool,
        /// Close names in the namespace searched.
        suggestions: Vec<String>,
        /// `ns/name` of Pods with this name (or prefix) in other namespaces.
        elsewhere: Vec<String>,
    },
    #[error("{}", missing("Service", .namespace, .name, .namespace_empty, .suggestions, .elsewhere))]
    NoService {
        namespace: String,
        name: String,
        namespace_empty: bool,
        suggestions: Vec<String>,
        elsewhere: Vec<String>,
    },
    #[error("{}", missing_node(.name, .suggestions, .nodes))]
    NoNode {
        name: String,
        suggestions: Vec<String>,
        /// All Node names (when there are few).
        nodes: Vec<String>,
    },
    #[error("{}", ambiguous(.kind, .namespace.as_deref(), .prefix, .matches, .total))]
    Ambiguous {
        /// `Pod`, `Service` or `Node`.
        kind: &'static str,
        namespace: Option<String>,
        prefix: String,
        /// The first few matching names.
        matches: Vec<String>,
        total: usize,
    },
    #[error("Pod {namespace}/{name} has no IP yet ({}); wait until it is running", phase_text(.phase.as_deref()))]
    PodWithoutIp {
        namespace: String,
        name: String,
        phase: Option<String>,
    },
    #[error("{}: follow needs two different endpoints", same_endpoint(.from, .to, .target))]
    SameEndpoint {
        /// The arguments as given.
        from: String,
        to: String,
        /// What both resolved to.
        target: String,
    },
}

impl ResolveError {
    /// True when the argument itself is wrong (malformed, or meaningless with the other):
    /// a usage error. An unknown or ambiguous name is not: it depends on the cluster.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Empty | Self::BadSpec { .. } | Self::SameEndpoint { .. }
        )
    }
}

fn same_endpoint(from: &str, to: &str, target: &str) -> String {
    if from == to {
        format!("FROM and TO are both `{from}` ({target})")
    } else {
        format!("FROM `{from}` and TO `{to}` are the same endpoint ({target})")
    }
}

/// Whether two resolved arguments are one endpoint (also when spelled differently:
/// `nettest`, `default/nettest`, its IP).
pub fn same_target(a: &Target, b: &Target) -> bool {
    match (a, b) {
        (Target::Pod(a), Target::Pod(b)) => (&a.namespace, &a.name) == (&b.namespace, &b.name),
        (Target::Service(a), Target::Service(b)) => {
            (&a.namespace, &a.name) == (&b.namespace, &b.name)
        }
        (Target::Node(a), Target::Node(b)) => a.name == b.name,
        (Target::Ip(a), Target::Ip(b)) => a == b,
        _ => false,
    }
}

/// Why `spec`, which looks like an address, is not an IPv4 address tracer can follow; `None`
/// when it does not look like one (then it is a name).
fn not_an_address(spec: &str) -> Option<String> {
    if spec.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some("an IPv6 address; tracer follows IPv4 only".to_owned());
    }
    if let Some((address, _)) = spec.split_once('/')
        && address.parse::<Ipv4Addr>().is_ok()
    {
        return Some("a network, not an address: give one IPv4 address".to_owned());
    }
    let numeric = spec.contains('.') && spec.chars().all(|c| c.is_ascii_digit() || c == '.');
    numeric
        .then(|| "not an IPv4 address (four numbers from 0 to 255, e.g. 10.244.102.137)".to_owned())
}

fn missing(
    kind: &str,
    namespace: &str,
    name: &str,
    namespace_empty: &bool,
    suggestions: &[String],
    elsewhere: &[String],
) -> String {
    let mut text = format!("no {kind} {name:?} in namespace {namespace:?}");
    if *namespace_empty {
        text.push_str(&format!(" (namespace {namespace:?} has no {kind}s)"));
    }
    if !suggestions.is_empty() {
        text.push_str(&format!("; did you mean: {}?", suggestions.join(", ")));
    }
    if !elsewhere.is_empty() {
        let first_ns = elsewhere[0].split('/').next().unwrap_or_default();
        text.push_str(&format!(
            "; in other namespaces: {} (name the namespace, e.g. `{}` or `-n {first_ns}`)",
            elsewhere.join(", "),
            if kind == "Service" {
                format!("svc/{}", elsewhere[0])
            } else {
                elsewhere[0].clone()
            },
        ));
    }
    text
}

fn missing_node(name: &str, suggestions: &[String], nodes: &[String]) -> String {
    let mut text = format!("no Node {name:?}");
    if !suggestions.is_empty() {
        text.push_str(&format!("; did you mean: {}?", suggestions.join(", ")));
    } else if nodes.is_empty() {
        text.push_str(" (the cluster has no Nodes)");
    } else {
        text.push_str(&format!("; Nodes: {}", nodes.join(", ")));
    }
    text
}

fn ambiguous(
    kind: &str,
    namespace: Option<&str>,
    prefix: &str,
    matches: &[String],
    total: &usize,
) -> String {
    let place = namespace
        .map(|ns| format!(" in namespace {ns:?}"))
        .unwrap_or_default();
    let more = total.saturating_sub(matches.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{prefix:?} matches {total} {kind}s{place}: {}{more}; give more of the name",
        matches.join(", ")
    )
}

fn phase_text(phase: Option<&str>) -> String {
    match phase {
        Some(phase) => format!("phase {phase}"),
        None => "no status yet".to_owned(),
    }
}

enum Kind {
    Pod,
    Service,
    Node,
}

/// Resolves a FROM/TO argument; bare names are looked up in `default_namespace`.
pub fn resolve(
    model: &ClusterModel,
    spec: &str,
    default_namespace: &str,
) -> Result<Target, ResolveError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(ResolveError::Empty);
    }
    if let Ok(ip) = spec.parse::<Ipv4Addr>() {
        return Ok(resolve_ip(model, ip));
    }
    // Pod names may be all digits and dots; one that exists wins over the address reading.
    if let Some(reason) = not_an_address(spec)
        && model.pod(default_namespace, spec).is_none()
    {
        return Err(ResolveError::BadSpec {
            spec: spec.to_owned(),
            reason,
        });
    }
    let (kind, rest) = match spec.split_once('/') {
        Some(("pod" | "pods" | "po", rest)) => (Kind::Pod, rest),
        Some(("svc" | "service" | "services", rest)) => (Kind::Service, rest),
        Some(("node" | "nodes" | "no", rest)) => (Kind::Node, rest),
        _ => (Kind::Pod, spec),
    };
    let bad = |reason: &str| ResolveError::BadSpec {
        spec: spec.to_owned(),
        reason: reason.to_owned(),
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("a namespace or name is empty"));
    }
    match kind {
        Kind::Node => match parts.as_slice() {
            [name] => find_node(model, name).map(|n| Target::Node(n.clone())),
            _ => Err(bad("Nodes have no namespace: use `node/NAME`")),
        },
        Kind::Pod | Kind::Service => {
            let (namespace, name) = match parts.as_slice() {
                [name] => (default_namespace, *name),
                [namespace, name] => (*namespace, *name),
                _ => {
                    return Err(bad(
                        "too many `/`: use `name`, `namespace/name`, `svc/name` or `svc/namespace/name`",
                    ));
                }
            };
            if matches!(kind, Kind::Pod) {
                find_pod(model, namespace, name).map(|p| Target::Pod(p.clone()))
            } else {
                find_service(model, namespace, name).map(|s| Target::Service(s.clone()))
            }
        }
    }
}

fn resolve_ip(model: &ClusterModel, ip: Ipv4Addr) -> Target {
    if let Some(pod) = model.pod_by_ip(ip) {
        Target::Pod(pod.clone())
    } else if let Some(svc) = model.service_by_cluster_ip(ip) {
        Target::Service(svc.clone())
    } else if let Some(node) = model.node_by_ip(ip) {
        Target::Node(node.clone())
    } else {
        Target::Ip(ip)
    }
}

fn find_pod<'m>(
    model: &'m ClusterModel,
    namespace: &str,
    name: &str,
) -> Result<&'m PodInfo, ResolveError> {
    let pod = match model.pod(namespace, name) {
        Some(pod) => pod,
        None => {
            let matches: Vec<&PodInfo> = model.pods_with_prefix(namespace, name).collect();
            match matches.as_slice() {
                [pod] => *pod,
                [] => {
                    let in_namespace: Vec<&str> =
                        model.pods_in(namespace).map(|p| p.name.as_str()).collect();
                    let elsewhere = model
                        .pods()
                        .filter(|p| p.namespace != namespace && p.name.starts_with(name))
                        .take(ELSEWHERE)
                        .map(|p| format!("{}/{}", p.namespace, p.name))
                        .collect();
                    return Err(ResolveError::NoPod {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                        namespace_empty: in_namespace.is_empty(),
                        suggestions: close_names(name, in_namespace, SUGGESTIONS),
                        elsewhere,
                    });
                }
                many => {
                    return Err(ResolveError::Ambiguous {
                        kind: "Pod",
                        namespace: Some(namespace.to_owned()),
                        prefix: name.to_owned(),
                        matches: many
                            .iter()
                            .take(SHOW_MATCHES)
                            .map(|p| p.name.clone())
                            .collect(),
                        total: many.len(),
                    });
                }
            }
        }
    };
    if pod.ip.is_none() {
        return Err(ResolveError::PodWithoutIp {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            phase: model
                .pod_phase(&pod.namespace, &pod.name)
                .map(str::to_owned),
        });
    }
    Ok(pod)
}

fn find_service<'m>(
    model: &'m ClusterModel,
    namespace: &str,
    name: &str,
) -> Result<&'m ServiceInfo, ResolveError> {
    if let Some(svc) = model.service(namespace, name) {
        return Ok(svc);
    }
    let matches: Vec<&ServiceInfo> = model.services_with_prefix(namespace, name).collect();
    match matches.as_slice() {
        [svc] => Ok(*svc),
        [] => {
            let in_namespace: Vec<&str> = model
                .services()
                .filter(|s| s.namespace == namespace)
                .map(|s| s.name.as_str())
                .collect();
            let elsewhere = model
                .services()
                .filter(|s| s.namespace != namespace && s.name.starts_with(name))
                .take(ELSEWHERE)
                .map(|s| format!("{}/{}", s.namespace, s.name))
                .collect();
            Err(ResolveError::NoService {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                namespace_empty: in_namespace.is_empty(),
                suggestions: close_names(name, in_namespace, SUGGESTIONS),
                elsewhere,
            })
        }
        many => Err(ResolveError::Ambiguous {
            kind: "Service",
            namespace: Some(namespace.to_owned()),
            prefix: name.to_owned(),
            matches: many
                .iter()
                .take(SHOW_MATCHES)
                .map(|s| s.name.clone())
                .collect(),
            total: many.len(),
        }),
    }
}

fn find_node<'m>(model: &'m ClusterModel, name: &str) -> Result<&'m NodeInfo, ResolveError> {
    if let Some(node) = model.node(name) {
        return Ok(node);
    }
    let matches: Vec<&NodeInfo> = model.nodes().filter(|n| n.name.starts_with(name)).collect();
    match matches.as_slice() {
        [node] => Ok(*node),
        [] => {
            let names: Vec<&str> = model.nodes().map(|n| n.name.as_str()).collect();
            Err(ResolveError::NoNode {
                name: name.to_owned(),
                suggestions: close_names(name, names.iter().copied(), SUGGESTIONS),
                nodes: if names.len() <= SHOW_MATCHES {
                    names.iter().map(|n| (*n).to_owned()).collect()
                } else {
                    Vec::new()
                },
            })
        }
        many => Err(ResolveError::Ambiguous {
            kind: "Node",
            namespace: None,
            prefix: name.to_owned(),
            matches: many
                .iter()
                .take(SHOW_MATCHES)
                .map(|n| n.name.clone())
                .collect(),
            total: many.len(),
        }),
    }
}
