//! The four kinds as a cluster file spells them, reading only the fields naming needs:
//! serde skips the rest (containers, volumes, managed fields, images) without building
//! them, which is what makes a 100 MB file of 50,000 Pods load in about a second instead of
//! many. Each lean object becomes the `k8s-openapi` object with just those fields, so the
//! model's rules are written once ([`super::model::RowsBuilder`]).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            Node, NodeAddress, NodeSpec, NodeStatus, ObjectReference, Pod, PodCondition, PodIP,
            PodSpec, PodStatus, Service, ServicePort, ServiceSpec,
        },
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::{
        apis::meta::v1::{ObjectMeta, OwnerReference, Time},
        util::intstr::IntOrString,
    },
};
use serde::Deserialize;

/// Just the kind, to choose what to read an object as.
#[derive(Deserialize)]
pub struct KindOf {
    pub kind: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Meta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    creation_timestamp: Option<String>,
    deletion_timestamp: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<Owner>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Owner {
    kind: String,
    name: String,
    controller: Option<bool>,
}

impl Meta {
    fn into_k8s(self) -> ObjectMeta {
        let time = |t: Option<String>| t.and_then(|t| t.parse().ok()).map(Time);
        ObjectMeta {
            name: self.name,
            namespace: self.namespace,
            uid: self.uid,
            creation_timestamp: time(self.creation_timestamp),
            deletion_timestamp: time(self.deletion_timestamp),
            labels: self.labels,
            owner_references: self.owner_references.map(|owners| {
                owners
                    .into_iter()
                    .map(|o| OwnerReference {
                        kind: o.kind,
                        name: o.name,
                        controller: o.controller,
                        ..OwnerReference::default()
                    })
                    .collect()
            }),
            ..ObjectMeta::default()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LeanPod {
    metadata: Meta,
    spec: Option<PodSpecLean>,
    status: Option<PodStatusLean>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PodSpecLean {
    node_name: Option<String>,
    host_network: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PodStatusLean {
    #[serde(rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pod_ips: Option<Vec<Address>>,
    phase: Option<String>,
    conditions: Option<Vec<Condition>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Address {
    ip: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Condition {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

impl LeanPod {
    pub fn into_k8s(self) -> Pod {
        Pod {
            metadata: self.metadata.into_k8s(),
            spec: self.spec.map(|s| PodSpec {
                node_name: s.node_name,
                host_network: s.host_network,
                ..PodSpec::default()
            }),
            status: self.status.map(|s| PodStatus {
                pod_ip: s.pod_ip,
                pod_ips: s
                    .pod_ips
                    .map(|ips| ips.into_iter().map(|a| PodIP { ip: a.ip }).collect()),
                phase: s.phase,
                conditions: s.conditions.map(|cs| {
                    cs.into_iter()
                        .map(|c| PodCondition {
                            type_: c.type_,
                            status: c.status,
                            ..PodCondition::default()
                        })
                        .collect()
                }),
                ..PodStatus::default()
            }),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LeanService {
    metadata: Meta,
    spec: Option<ServiceSpecLean>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ServiceSpecLean {
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<String>>,
    #[serde(rename = "type")]
    type_: Option<String>,
    ports: Option<Vec<ServicePortLean>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ServicePortLean {
    name: Option<String>,
    protocol: Option<String>,
    port: i32,
    target_port: Option<IntOrString>,
    node_port: Option<i32>,
}

impl LeanService {
    pub fn into_k8s(self) -> Service {
        Service {
            metadata: self.metadata.into_k8s(),
            spec: self.spec.map(|s| ServiceSpec {
                cluster_ip: s.cluster_ip,
                cluster_ips: s.cluster_ips,
                type_: s.type_,
                ports: s.ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|p| ServicePort {
                            name: p.name,
                            protocol: p.protocol,
                            port: p.port,
                            target_port: p.target_port,
                            node_port: p.node_port,
                            ..ServicePort::default()
                        })
                        .collect()
                }),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LeanSlice {
    metadata: Meta,
    address_type: String,
    endpoints: Option<Vec<SliceEndpoint>>,
    ports: Option<Vec<SlicePort>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SliceEndpoint {
    addresses: Vec<String>,
    conditions: Option<SliceConditions>,
    target_ref: Option<TargetRef>,
    node_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SliceConditions {
    ready: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TargetRef {
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SlicePort {
    name: Option<String>,
    protocol: Option<String>,
    port: Option<i32>,
}

impl LeanSlice {
    pub fn into_k8s(self) -> EndpointSlice {
        EndpointSlice {
            metadata: self.metadata.into_k8s(),
            address_type: self.address_type,
            endpoints: self
                .endpoints
                .unwrap_or_default()
                .into_iter()
                .map(|e| Endpoint {
                    addresses: e.addresses,
                    conditions: e.conditions.map(|c| EndpointConditions {
                        ready: c.ready,
                        ..EndpointConditions::default()
                    }),
                    target_ref: e.target_ref.map(|r| ObjectReference {
                        kind: r.kind,
                        name: r.name,
                        namespace: r.namespace,
                        ..ObjectReference::default()
                    }),
                    node_name: e.node_name,
                    ..Endpoint::default()
                })
                .collect(),
            ports: self.ports.map(|ports| {
                ports
                    .into_iter()
                    .map(|p| EndpointPort {
                        name: p.name,
                        protocol: p.protocol,
                        port: p.port,
                        ..EndpointPort::default()
                    })
                    .collect()
            }),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct LeanNode {
    metadata: Meta,
    spec: Option<NodeSpecLean>,
    status: Option<NodeStatusLean>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct NodeSpecLean {
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    #[serde(rename = "podCIDRs")]
    pod_cidrs: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeStatusLean {
    addresses: Option<Vec<NodeAddressLean>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeAddressLean {
    #[serde(rename = "type")]
    type_: String,
    address: String,
}

impl LeanNode {
    pub fn into_k8s(self) -> Node {
        Node {
            metadata: self.metadata.into_k8s(),
            spec: self.spec.map(|s| NodeSpec {
                pod_cidr: s.pod_cidr,
                pod_cidrs: s.pod_cidrs,
                ..NodeSpec::default()
            }),
            status: self.status.map(|s| NodeStatus {
                addresses: s.addresses.map(|addresses| {
                    addresses
                        .into_iter()
                        .map(|a| NodeAddress {
                            type_: a.type_,
                            address: a.address,
                        })
                        .collect()
                }),
                ..NodeStatus::default()
            }),
        }
    }
}
