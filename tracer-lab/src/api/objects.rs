//! The lab's cluster as Kubernetes API objects, built from [`Cluster`] with `k8s-openapi`
//! types: Namespaces, Nodes, Pods, Services, Endpoints and EndpointSlices, shaped as
//! kubeadm, kubelet, Calico and the endpoint controllers would leave them.
//!
//! Building is a pure function of the cluster and a [`Host`] (start time, kernel, OS), so
//! rebuilding after a scenario switch yields equal objects for everything that did not
//! change, and the store can emit watch events for exactly the differences. UIDs and the
//! other identifiers (EndpointSlice name suffixes, container and machine IDs) are derived
//! from names by hashing, never random; `resourceVersion` is left to the store.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1 as core,
        discovery::v1::{self as discovery, EndpointConditions},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{ObjectMeta, OwnerReference, Time},
        util::intstr::IntOrString,
    },
    jiff::Timestamp,
};
use serde_json::Value;
use sha2::Digest as _;

use super::resources::Kind;
use crate::spec::{self, Cluster, KUBERNETES_VERSION, Server, ServiceType};

/// The containerd version the lab's nodes report.
pub const CONTAINER_RUNTIME_VERSION: &str = "containerd://1.7.27";

/// Facts about the machine the lab runs on, which its nodes report as their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Every object's `creationTimestamp`: when the API server started.
    pub created: Timestamp,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_version: String,
    /// `PRETTY_NAME` from `/etc/os-release`.
    pub os_image: String,
    /// GOARCH spelling (`amd64`, `arm64`).
    pub architecture: &'static str,
}

impl Host {
    /// Reads this machine's kernel and OS; the start time is now, to the second.
    pub fn detect() -> Self {
        let kernel_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| pretty_name(&text))
            .unwrap_or_else(|| "Linux".to_owned());
        Self {
            created: now(),
            kernel_version,
            os_image,
            architecture: go_arch(std::env::consts::ARCH),
        }
    }
}

/// The current time to the second (what API timestamps carry). Read from `SystemTime`
/// because `k8s-openapi` builds `jiff` without its clock.
pub fn now() -> Timestamp {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(seconds)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// Go's `GOARCH` name for a Rust `target_arch`.
pub fn go_arch(rust_arch: &str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        _ => "unknown",
    }
}

/// One served object.
#[expect(
    clippy::large_enum_variant,
    reason = "the store keeps objects behind Arc, so variant sizes never multiply"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(core::Namespace),
    Node(core::Node),
    Pod(core::Pod),
    Service(core::Service),
    Endpoints(core::Endpoints),
    EndpointSlice(discovery::EndpointSlice),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Namespace(_) => Kind::Namespace,
            Self::Node(_) => Kind::Node,
            Self::Pod(_) => Kind::Pod,
            Self::Service(_) => Kind::Service,
            Self::Endpoints(_) => Kind::Endpoints,
            Self::EndpointSlice(_) => Kind::EndpointSlice,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Namespace(o) => &o.metadata,
            Self::Node(o) => &o.metadata,
            Self::Pod(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Endpoints(o) => &o.metadata,
            Self::EndpointSlice(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Namespace(o) => &mut o.metadata,
            Self::Node(o) => &mut o.metadata,
            Self::Pod(o) => &mut o.metadata,
            Self::Service(o) => &mut o.metadata,
            Self::Endpoints(o) => &mut o.metadata,
            Self::EndpointSlice(o) => &mut o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The namespace, "" for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    /// The object as the API serves it (with `apiVersion` and `kind`).
    pub fn to_json(&self) -> Value {
        let value = match self {
            Self::Namespace(o) => serde_json::to_value(o),
            Self::Node(o) => serde_json::to_value(o),
            Self::Pod(o) => serde_json::to_value(o),
            Self::Service(o) => serde_json::to_value(o),
            Self::Endpoints(o) => serde_json::to_value(o),
            Self::EndpointSlice(o) => serde_json::to_value(o),
        };
        value.unwrap_or(Value::Null)
    }
}

/// All objects of the cluster, in [`Kind`] order.
pub fn build(cluster: &Cluster, host: &Host) -> Vec<Object> {
    let mut objects: Vec<Object> = ["default", "kube-system"]
        .into_iter()
        .map(|ns| Object::Namespace(namespace(ns, host)))
        .collect();
    objects.extend(cluster.nodes.iter().map(|n| Object::Node(node(n, host))));
    objects.extend(
        cluster
            .pods
            .iter()
            .map(|p| Object::Pod(pod(p, cluster, host))),
    );
    objects.extend(
        cluster
            .services
            .iter()
            .map(|s| Object::Service(service(s, host))),
    );
    objects.extend(
        cluster
            .services
            .iter()
            .map(|s| Object::Endpoints(endpoints(s, cluster, host))),
    );
    objects.extend(
        cluster
            .services
            .iter()
            .map(|s| Object::EndpointSlice(endpoint_slice(s, cluster, host))),
    );
    objects
}

fn digest(parts: &[&str]) -> [u8; 32] {
    sha2::Sha256::digest(parts.join("/").as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID-shaped id derived from the object's identity (RFC 9562 version 8: custom).
pub fn uid(kind: Kind, namespace: &str, name: &str) -> String {
    uid_for(kind.kind(), namespace, name)
}

fn uid_for(kind: &str, namespace: &str, name: &str) -> String {
    let mut b = digest(&["uid", kind, namespace, name]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix `generateName` would append, derived from `seed`.
fn name_suffix(seed: &str) -> String {
    // The alphabet of Kubernetes' random name generator (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest(&["suffix", seed])
        .iter()
        .take(5)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn meta(kind: Kind, namespace: Option<&str>, name: &str, host: &Host) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        uid: Some(uid(kind, namespace.unwrap_or_default(), name)),
        creation_timestamp: Some(Time(host.created)),
        ..ObjectMeta::default()
    }
}

fn namespace(name: &str, host: &Host) -> core::Namespace {
    core::Namespace {
        metadata: ObjectMeta {
            labels: Some(labels([("kubernetes.io/metadata.name", name)])),
            ..meta(Kind::Namespace, None, name, host)
        },
        spec: Some(core::NamespaceSpec {
            finalizers: Some(vec!["kubernetes".to_owned()]),
        }),
        status: Some(core::NamespaceStatus {
            phase: Some("Active".to_owned()),
            conditions: None,
        }),
    }
}

fn node_condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    host: &Host,
) -> core::NodeCondition {
    core::NodeCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(host.created)),
        last_transition_time: Some(Time(host.created)),
    }
}

fn node(n: &spec::Node, host: &Host) -> core::Node {
    let name = n.name;
    let mut node_labels = labels([
        ("beta.kubernetes.io/arch", host.architecture),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", host.architecture),
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
    ]);
    if n.control_plane {
        node_labels.insert(
            "node-role.kubernetes.io/control-plane".to_owned(),
            String::new(),
        );
        node_labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".to_owned(),
            String::new(),
        );
    }
    let annotations = labels([
        ("node.alpha.kubernetes.io/ttl", "0"),
        (
            "projectcalico.org/IPv4Address",
            &format!("{}/{}", n.ip, n.subnet.prefix),
        ),
        (
            "projectcalico.org/IPv4VXLANTunnelAddr",
            &n.vtep_ip().to_string(),
        ),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach",
            "true",
        ),
    ]);
    let block = n.block.to_string();
    let id = |what: &str| hex(&digest(&[what, name])[..16]);
    let capacity: BTreeMap<String, Quantity> = [("pods", "110")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
        .collect();
    core::Node {
        metadata: ObjectMeta {
            labels: Some(node_labels),
            annotations: Some(annotations),
            ..meta(Kind::Node, None, name, host)
        },
        spec: Some(core::NodeSpec {
            pod_cidr: Some(block.clone()),
            pod_cidrs: Some(vec![block]),
            ..core::NodeSpec::default()
        }),
        status: Some(core::NodeStatus {
            addresses: Some(vec![
                core::NodeAddress {
                    type_: "InternalIP".to_owned(),
                    address: n.ip.to_string(),
                },
                core::NodeAddress {
                    type_: "Hostname".to_owned(),
                    address: name.to_owned(),
                },
            ]),
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(vec![
                node_condition(
                    "NetworkUnavailable",
                    false,
                    "CalicoIsUp",
                    "Calico is running on this node",
                    host,
                ),
                node_condition(
                    "MemoryPressure",
                    false,
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    host,
                ),
                node_condition(
                    "DiskPressure",
                    false,
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    host,
                ),
                node_condition(
                    "PIDPressure",
                    false,
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    host,
                ),
                node_condition(
                    "Ready",
                    true,
                    "KubeletReady",
                    "kubelet is posting ready status",
                    host,
                ),
            ]),
            daemon_endpoints: Some(core::NodeDaemonEndpoints {
                kubelet_endpoint: Some(core::DaemonEndpoint { port: 10250 }),
            }),
            node_info: Some(core::NodeSystemInfo {
                architecture: host.architecture.to_owned(),
                boot_id: uid(Kind::Node, "boot", name),
                container_runtime_version: CONTAINER_RUNTIME_VERSION.to_owned(),
                kernel_version: host.kernel_version.clone(),
                kube_proxy_version: KUBERNETES_VERSION.to_owned(),
                kubelet_version: KUBERNETES_VERSION.to_owned(),
                machine_id: id("machine-id"),
                operating_system: "linux".to_owned(),
                os_image: host.os_image.clone(),
                system_uuid: uid(Kind::Node, "system", name),
                swap: None,
            }),
            ..core::NodeStatus::default()
        }),
    }
}

/// The container name `kubectl create deployment`/`kubectl run` would give.
fn container_name(p: &spec::Pod) -> String {
    match p.deployment {
        // `kubectl create deployment --image=nginx:alpine` names the container after the
        // image; the seed's webapp manifest names it `nginx` too.
        Some(_) => image_base(p.image).to_owned(),
        None => p.name.clone(),
    }
}

fn image_base(image: &str) -> &str {
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split(':').next().unwrap_or(last)
}

/// The fully qualified image reference containerd reports.
fn qualified_image(image: &str) -> String {
    let tagged = if image.rsplit('/').next().unwrap_or(image).contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    };
    match tagged.matches('/').count() {
        0 => format!("docker.io/library/{tagged}"),
        1 => format!("docker.io/{tagged}"),
        _ => tagged,
    }
}

fn pod_condition(type_: &str, status: bool, host: &Host) -> core::PodCondition {
    core::PodCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        last_transition_time: Some(Time(host.created)),
        ..core::PodCondition::default()
    }
}

fn pod(p: &spec::Pod, cluster: &Cluster, host: &Host) -> core::Pod {
    // A Pod made after `up` (`lab replace-pod`) carries its own creation time everywhere
    // the seed's Pods carry the lab's start.
    let created = p
        .created
        .and_then(|s| Timestamp::from_second(i64::try_from(s).ok()?).ok());
    let host = &Host {
        created: created.unwrap_or(host.created),
        ..host.clone()
    };
    let container = container_name(p);
    let ip = p.ip.to_string();
    let host_ip = cluster
        .node(p.node)
        .map(|n| n.ip.to_string())
        .unwrap_or_default();
    let mut pod_labels = BTreeMap::new();
    let mut owner_references = None;
    let mut generate_name = None;
    match (p.app, p.deployment) {
        (Some(app), Some((deployment, hash))) => {
            pod_labels.insert("app".to_owned(), app.to_owned());
            pod_labels.insert("pod-template-hash".to_owned(), hash.to_owned());
            let replica_set = format!("{deployment}-{hash}");
            generate_name = Some(format!("{replica_set}-"));
            owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "ReplicaSet".to_owned(),
                // The lab serves no ReplicaSets, but the owner still has a stable identity.
                uid: uid_for("ReplicaSet", p.namespace, &replica_set),
                name: replica_set,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]);
        }
        (Some(app), None) => {
            pod_labels.insert("app".to_owned(), app.to_owned());
        }
        // `kubectl run` labels its Pod `run=<name>`.
        (None, _) => {
            pod_labels.insert("run".to_owned(), p.name.clone());
        }
    }
    let annotations = labels([
        (
            "cni.projectcalico.org/containerID",
            &hex(&digest(&["sandbox", p.namespace, &p.name])),
        ),
        ("cni.projectcalico.org/podIP", &format!("{ip}/32")),
        ("cni.projectcalico.org/podIPs", &format!("{ip}/32")),
    ]);
    let ports = (p.server != Server::None).then(|| {
        vec![core::ContainerPort {
            container_port: 80,
            protocol: Some("TCP".to_owned()),
            ..core::ContainerPort::default()
        }]
    });
    let (volumes, volume_mounts) = if p.server == Server::WebApp {
        (
            Some(vec![core::Volume {
                name: "html-volume".to_owned(),
                config_map: Some(core::ConfigMapVolumeSource {
                    name: "webapp-config".to_owned(),
                    default_mode: Some(0o644),
                    ..core::ConfigMapVolumeSource::default()
                }),
                ..core::Volume::default()
            }]),
            Some(vec![core::VolumeMount {
                name: "html-volume".to_owned(),
                mount_path: "/usr/share/nginx/html".to_owned(),
                ..core::VolumeMount::default()
            }]),
        )
    } else {
        (None, None)
    };
    let command =
        (p.server == Server::None).then(|| vec!["sleep".to_owned(), "infinity".to_owned()]);
    let ready = p.ready;
    let mut ready_condition = pod_condition("Ready", ready, host);
    let mut containers_ready = pod_condition("ContainersReady", ready, host);
    if !ready {
        for c in [&mut ready_condition, &mut containers_ready] {
            c.reason = Some("ContainersNotReady".to_owned());
            c.message = Some(format!("containers with unready status: [{container}]"));
        }
    }
    core::Pod {
        metadata: ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            generate_name,
            owner_references,
            ..meta(Kind::Pod, Some(p.namespace), &p.name, host)
        },
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: container.clone(),
                image: Some(p.image.to_owned()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                command,
                ports,
                volume_mounts,
                termination_message_path: Some("/dev/termination-log".to_owned()),
                termination_message_policy: Some("File".to_owned()),
                ..core::Container::default()
            }],
            dns_policy: Some("ClusterFirst".to_owned()),
            enable_service_links: Some(true),
            node_name: Some(p.node.to_owned()),
            preemption_policy: Some("PreemptLowerPriority".to_owned()),
            priority: Some(0),
            restart_policy: Some("Always".to_owned()),
            scheduler_name: Some("default-scheduler".to_owned()),
            service_account: Some("default".to_owned()),
            service_account_name: Some("default".to_owned()),
            termination_grace_period_seconds: Some(30),
            volumes,
            ..core::PodSpec::default()
        }),
        status: Some(core::PodStatus {
            phase: Some("Running".to_owned()),
            conditions: Some(vec![
                pod_condition("PodReadyToStartContainers", true, host),
                pod_condition("Initialized", true, host),
                ready_condition,
                containers_ready,
                pod_condition("PodScheduled", true, host),
            ]),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![core::HostIP { ip: host_ip }]),
            pod_ip: Some(ip.clone()),
            pod_ips: Some(vec![core::PodIP { ip }]),
            qos_class: Some("BestEffort".to_owned()),
            start_time: Some(Time(host.created)),
            container_statuses: Some(vec![core::ContainerStatus {
                name: container,
                container_id: Some(format!(
                    "containerd://{}",
                    hex(&digest(&["container", p.namespace, &p.name]))
                )),
                image: qualified_image(p.image),
                image_id: String::new(),
                ready,
                restart_count: 0,
                started: Some(true),
                state: Some(core::ContainerState {
                    running: Some(core::ContainerStateRunning {
                        started_at: Some(Time(host.created)),
                    }),
                    ..core::ContainerState::default()
                }),
                ..core::ContainerStatus::default()
            }]),
            ..core::PodStatus::default()
        }),
    }
}

fn service(s: &spec::Service, host: &Host) -> core::Service {
    let node_port = s.kind == ServiceType::NodePort;
    core::Service {
        metadata: ObjectMeta {
            // `kubectl expose deployment` copies the Deployment's labels.
            labels: Some(labels([("app", s.app)])),
            ..meta(Kind::Service, Some(s.namespace), s.name, host)
        },
        spec: Some(core::ServiceSpec {
            type_: Some(if node_port { "NodePort" } else { "ClusterIP" }.to_owned()),
            cluster_ip: Some(s.cluster_ip.to_string()),
            cluster_ips: Some(vec![s.cluster_ip.to_string()]),
            external_traffic_policy: node_port.then(|| "Cluster".to_owned()),
            internal_traffic_policy: Some("Cluster".to_owned()),
            ip_families: Some(vec!["IPv4".to_owned()]),
            ip_family_policy: Some("SingleStack".to_owned()),
            ports: Some(vec![core::ServicePort {
                port: i32::from(s.port),
                protocol: Some("TCP".to_owned()),
                target_port: Some(IntOrString::Int(i32::from(s.target_port))),
                node_port: s.node_port.map(i32::from),
                ..core::ServicePort::default()
            }]),
            selector: Some(labels([("app", s.app)])),
            session_affinity: Some("None".to_owned()),
            ..core::ServiceSpec::default()
        }),
        status: Some(core::ServiceStatus {
            load_balancer: Some(core::LoadBalancerStatus::default()),
            conditions: None,
        }),
    }
}

/// The Pods a Service selects, ready or not, ordered by IP as the endpoint controllers
/// order addresses.
fn selected<'a>(s: &spec::Service, cluster: &'a Cluster) -> Vec<&'a spec::Pod> {
    let mut pods: Vec<&spec::Pod> = cluster
        .pods
        .iter()
        .filter(|p| p.namespace == s.namespace && p.app == Some(s.app))
        .collect();
    pods.sort_by_key(|p| p.ip.to_string());
    pods
}

fn pod_ref(p: &spec::Pod) -> core::ObjectReference {
    core::ObjectReference {
        kind: Some("Pod".to_owned()),
        namespace: Some(p.namespace.to_owned()),
        name: Some(p.name.clone()),
        uid: Some(uid(Kind::Pod, p.namespace, &p.name)),
        ..core::ObjectReference::default()
    }
}

fn endpoints(s: &spec::Service, cluster: &Cluster, host: &Host) -> core::Endpoints {
    let pods = selected(s, cluster);
    let address = |p: &&spec::Pod| core::EndpointAddress {
        ip: p.ip.to_string(),
        node_name: Some(p.node.to_owned()),
        target_ref: Some(pod_ref(p)),
        hostname: None,
    };
    let ready: Vec<_> = pods.iter().filter(|p| p.ready).map(address).collect();
    let not_ready: Vec<_> = pods.iter().filter(|p| !p.ready).map(address).collect();
    let subsets = (!pods.is_empty()).then(|| {
        vec![core::EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: Some(vec![core::EndpointPort {
                port: i32::from(s.target_port),
                protocol: Some("TCP".to_owned()),
                ..core::EndpointPort::default()
            }]),
        }]
    });
    core::Endpoints {
        metadata: ObjectMeta {
            labels: Some(labels([("app", s.app)])),
            ..meta(Kind::Endpoints, Some(s.namespace), s.name, host)
        },
        subsets,
    }
}

/// The name of a Service's (only) EndpointSlice: the Service name plus a generated suffix.
pub fn endpoint_slice_name(s: &spec::Service) -> String {
    format!(
        "{}-{}",
        s.name,
        name_suffix(&format!("{}/{}", s.namespace, s.name))
    )
}

fn endpoint_slice(s: &spec::Service, cluster: &Cluster, host: &Host) -> discovery::EndpointSlice {
    let name = endpoint_slice_name(s);
    let endpoints = selected(s, cluster)
        .into_iter()
        .map(|p| discovery::Endpoint {
            addresses: vec![p.ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(p.ready),
                serving: Some(p.ready),
                terminating: Some(false),
            }),
            node_name: Some(p.node.to_owned()),
            target_ref: Some(pod_ref(p)),
            ..discovery::Endpoint::default()
        })
        .collect();
    discovery::EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", s.name)),
            labels: Some(labels([
                ("app", s.app),
                (
                    "endpointslice.kubernetes.io/managed-by",
                    "endpointslice-controller.k8s.io",
                ),
                ("kubernetes.io/service-name", s.name),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Service".to_owned(),
                name: s.name.to_owned(),
                uid: uid(Kind::Service, s.namespace, s.name),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..meta(Kind::EndpointSlice, Some(s.namespace), &name, host)
        },
        address_type: "IPv4".to_owned(),
        endpoints,
        ports: Some(vec![discovery::EndpointPort {
            name: Some(String::new()),
            port: Some(i32::from(s.target_port)),
            protocol: Some("TCP".to_owned()),
            app_protocol: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Scenario;

    pub(crate) fn host() -> Host {
        Host {
            created: Timestamp::from_second(1_750_000_000).unwrap_or_default(),
            kernel_version: "6.8.0-test".to_owned(),
            os_image: "Ubuntu 24.04 LTS".to_owned(),
            architecture: "amd64",
        }
    }

    fn find<'a>(objects: &'a [Object], kind: Kind, name: &str) -> &'a Object {
        objects
            .iter()
            .find(|o| o.kind() == kind && o.name() == name)
            .unwrap_or_else(|| panic!("{kind:?} {name} built"))
    }

    fn slice_of(objects: &[Object], service: &str) -> discovery::EndpointSlice {
        let found = objects.iter().find_map(|o| match o {
            Object::EndpointSlice(s)
                if s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    == Some(&service.to_owned()) =>
            {
                Some(s.clone())
            }
            _ => None,
        });
        found.unwrap_or_else(|| panic!("slice of {service}"))
    }

    #[test]
    fn nginx_slice_has_three_ready_endpoints_when_healthy_and_none_ready_without_endpoints() {
        let healthy = build(&Cluster::seed(Scenario::Healthy), &host());
        let slice = slice_of(&healthy, "nginx-test");
        assert_eq!(slice.address_type, "IPv4");
        let addresses: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| e.addresses[0].as_str())
            .collect();
        assert_eq!(
            addresses,
            ["10.244.102.138", "10.244.184.84", "10.244.5.203"]
        );
        let nodes: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| e.node_name.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(nodes, ["cpu2", "cpu1", "gpu1"]);
        assert!(
            slice
                .endpoints
                .iter()
                .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        );
        let target = slice.endpoints[0]
            .target_ref
            .as_ref()
            .map(|r| r.name.clone());
        assert_eq!(target, Some(Some("nginx-test-7d9c4b6f5-x2k8p".to_owned())));

        let broken = build(&Cluster::seed(Scenario::NoEndpoints), &host());
        let slice = slice_of(&broken, "nginx-test");
        assert_eq!(slice.endpoints.len(), 3);
        assert!(
            slice
                .endpoints
                .iter()
                .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(false))
        );
        let Object::Endpoints(ep) = find(&broken, Kind::Endpoints, "nginx-test") else {
            panic!("endpoints");
        };
        let subset = &ep.subsets.as_deref().unwrap_or_default()[0];
        assert!(subset.addresses.is_none());
        assert_eq!(subset.not_ready_addresses.as_ref().map(Vec::len), Some(3));
        // webapp is untouched.
        assert_eq!(slice_of(&broken, "webapp"), slice_of(&healthy, "webapp"));
    }

    #[test]
    fn pods_carry_owner_node_ip_and_readiness() {
        let objects = build(&Cluster::seed(Scenario::NoEndpoints), &host());
        let Object::Pod(pod) = find(&objects, Kind::Pod, "nginx-test-7d9c4b6f5-abcde") else {
            panic!("pod");
        };
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some("cpu1"));
        assert_eq!(spec.containers[0].name, "nginx");
        assert_eq!(
            spec.containers[0]
                .ports
                .as_ref()
                .map(|p| p[0].container_port),
            Some(80)
        );
        let status = pod.status.as_ref().expect("status");
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.184.84"));
        assert_eq!(status.host_ip.as_deref(), Some("172.30.1.43"));
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status.as_str());
        assert_eq!(ready, Some("False"));
        let owner = &pod.metadata.owner_references.as_deref().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", "nginx-test-7d9c4b6f5")
        );
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("nginx-test"));
        assert_eq!(
            labels.get("pod-template-hash").map(String::as_str),
            Some("7d9c4b6f5")
        );
    }

    #[test]
    fn nodes_and_services_look_like_kubeadm_made_them() {
        let objects = build(&Cluster::seed(Scenario::Healthy), &host());
        let Object::Node(cpu1) = find(&objects, Kind::Node, "cpu1") else {
            panic!("node");
        };
        let labels = cpu1.metadata.labels.clone().unwrap_or_default();
        assert!(labels.contains_key("node-role.kubernetes.io/control-plane"));
        assert_eq!(
            labels.get("kubernetes.io/hostname").map(String::as_str),
            Some("cpu1")
        );
        let spec = cpu1.spec.as_ref().expect("spec");
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.184.64/26"));
        let info = cpu1
            .status
            .as_ref()
            .and_then(|s| s.node_info.clone())
            .expect("info");
        assert_eq!(info.kubelet_version, "v1.31.13");
        assert_eq!(info.kernel_version, "6.8.0-test");
        assert!(
            info.container_runtime_version
                .starts_with("containerd://1.7.")
        );
        let Object::Service(webapp) = find(&objects, Kind::Service, "webapp") else {
            panic!("service");
        };
        let spec = webapp.spec.as_ref().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.103.193.83"));
        assert_eq!(
            spec.ports.as_ref().and_then(|p| p[0].node_port),
            Some(32065)
        );
    }

    #[test]
    fn identity_is_deterministic_and_unique() {
        let a = build(&Cluster::seed(Scenario::Healthy), &host());
        let b = build(&Cluster::seed(Scenario::Healthy), &host());
        assert_eq!(a, b);
        let uids: std::collections::HashSet<_> =
            a.iter().map(|o| o.metadata().uid.clone()).collect();
        assert_eq!(uids.len(), a.len());
        let u = uid(Kind::Pod, "default", "nettest");
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'8');
        assert!(
            endpoint_slice_name(&Cluster::seed(Scenario::Healthy).services[0])
                .starts_with("nginx-test-")
        );
    }

    #[test]
    fn images_are_qualified_as_containerd_reports_them() {
        assert_eq!(
            qualified_image("nginx:alpine"),
            "docker.io/library/nginx:alpine"
        );
        assert_eq!(
            qualified_image("nicolaka/netshoot"),
            "docker.io/nicolaka/netshoot:latest"
        );
        assert_eq!(image_base("nicolaka/netshoot"), "netshoot");
        assert_eq!(
            pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n").as_deref(),
            Some("Debian GNU/Linux 12")
        );
    }
    #[test]
    fn a_replacement_pod_is_new_in_name_uid_and_time_and_its_endpoints_follow() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let rollout = cluster
            .rollout(
                "nginx-test-7d9c4b6f5-abcde",
                false,
                "objects",
                1_800_000_000,
            )
            .unwrap();
        let before = build(&cluster, &host());
        let after = build(&cluster.with_changes(&rollout.changes), &host());
        let Object::Pod(new) = find(&after, Kind::Pod, &rollout.new.name) else {
            panic!("pod");
        };
        assert!(!after.iter().any(|o| o.name() == rollout.old.name));
        let Object::Pod(old) = find(&before, Kind::Pod, &rollout.old.name) else {
            panic!("pod");
        };
        assert_ne!(new.metadata.uid, old.metadata.uid);
        assert_eq!(
            new.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second()),
            Some(1_800_000_000)
        );
        assert_eq!(new.metadata.owner_references, old.metadata.owner_references);
        assert_eq!(
            new.metadata.generate_name.as_deref(),
            Some("nginx-test-7d9c4b6f5-")
        );
        assert_eq!(
            new.status.as_ref().and_then(|s| s.pod_ip.as_deref()),
            Some("10.244.184.65")
        );
        let slice = slice_of(&after, "nginx-test");
        let targets: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.addresses[0].clone(),
                    e.target_ref.as_ref().and_then(|r| r.name.clone()),
                )
            })
            .collect();
        assert!(targets.contains(&("10.244.184.65".to_owned(), Some(rollout.new.name.clone()))));
        assert_eq!(targets.len(), 3);
        assert_eq!(
            slice_name_of(&after, "nginx-test"),
            slice_name_of(&before, "nginx-test")
        );
    }

    fn slice_name_of(objects: &[Object], service: &str) -> Option<String> {
        slice_of(objects, service).metadata.name
    }
}
