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

/// One item of a list, read in one pass: its kind comes before its `spec` and `status` in
/// what kubectl prints, so those are read straight into the kind's lean form; fields that
/// come before the kind (or a kindless item's) are kept as text and read once it is known.
pub enum LeanItem {
    Pod(LeanPod),
    Service(LeanService),
    Slice(LeanSlice),
    Node(LeanNode),
    /// A list inside the list (rare): its items, for the caller to walk.
    List(Vec<serde_json::Value>),
    /// Another kind: skipped.
    Other,
    /// No kind of its own (a typed list's item): its fields, to be read as the list's kind.
    Kindless(String),
}

/// The lean form of each of the four kinds, filled field by field.
enum Filling {
    Pod(LeanPod),
    Service(LeanService),
    Slice(LeanSlice),
    Node(LeanNode),
    List(Vec<serde_json::Value>),
    Other,
}

impl Filling {
    fn of(kind: &str) -> Self {
        match kind {
            "Pod" => Self::Pod(LeanPod::default()),
            "Service" => Self::Service(LeanService::default()),
            "EndpointSlice" => Self::Slice(LeanSlice::default()),
            "Node" => Self::Node(LeanNode::default()),
            k if k.ends_with("List") => Self::List(Vec::new()),
            _ => Self::Other,
        }
    }

    /// Reads the value of `key` into the lean form (or skips it).
    fn read<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        use serde::de::IgnoredAny;
        match (self, key) {
            (Self::Pod(p), "metadata") => p.metadata = map.next_value()?,
            (Self::Pod(p), "spec") => p.spec = map.next_value()?,
            (Self::Pod(p), "status") => p.status = map.next_value()?,
            (Self::Service(s), "metadata") => s.metadata = map.next_value()?,
            (Self::Service(s), "spec") => s.spec = map.next_value()?,
            (Self::Slice(s), "metadata") => s.metadata = map.next_value()?,
            (Self::Slice(s), "addressType") => s.address_type = map.next_value()?,
            (Self::Slice(s), "endpoints") => s.endpoints = map.next_value()?,
            (Self::Slice(s), "ports") => s.ports = map.next_value()?,
            (Self::Node(n), "metadata") => n.metadata = map.next_value()?,
            (Self::Node(n), "spec") => n.spec = map.next_value()?,
            (Self::Node(n), "status") => n.status = map.next_value()?,
            (Self::List(items), "items") => *items = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn done(self) -> LeanItem {
        match self {
            Self::Pod(p) => LeanItem::Pod(p),
            Self::Service(s) => LeanItem::Service(s),
            Self::Slice(s) => LeanItem::Slice(s),
            Self::Node(n) => LeanItem::Node(n),
            Self::List(items) => LeanItem::List(items),
            Self::Other => LeanItem::Other,
        }
    }
}

impl<'de> Deserialize<'de> for LeanItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> serde::de::Visitor<'de> for ItemVisitor {
    type Value = LeanItem;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LeanItem, A::Error> {
        use serde::de::Error as _;
        let mut filling: Option<Filling> = None;
        // Fields read before the kind: (key, JSON text).
        let mut early: Vec<(String, Box<serde_json::value::RawValue>)> = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match (&mut filling, key.as_ref()) {
                (None, "kind") => filling = Some(Filling::of(&map.next_value::<String>()?)),
                (Some(f), key) => f.read(key, &mut map)?,
                (None, key) => early.push((key.to_owned(), map.next_value()?)),
            }
        }
        let Some(mut filling) = filling else {
            return Ok(LeanItem::Kindless(object_text(&early)));
        };
        for (key, raw) in early {
            let mut one = serde_json::Deserializer::from_str(raw.get());
            let mut access = OneField {
                value: Some(&mut one),
            };
            filling
                .read(&key, &mut access)
                .map_err(|e| A::Error::custom(format!("`{key}`: {e}")))?;
        }
        Ok(filling.done())
    }
}

/// `{"key":value,…}` of fields kept as text.
fn object_text(fields: &[(String, Box<serde_json::value::RawValue>)]) -> String {
    let mut text = String::from("{");
    for (i, (key, raw)) in fields.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key).unwrap_or_default());
        text.push(':');
        text.push_str(raw.get());
    }
    text.push('}');
    text
}

/// A map access of one value already read as text, so a field read before the kind goes
/// through the same [`Filling::read`].
struct OneField<'a, 'de> {
    value: Option<&'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>>,
}

impl<'de> serde::de::MapAccess<'de> for OneField<'_, 'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        _seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        Ok(None)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let de = self
            .value
            .take()
            .ok_or_else(|| <serde_json::Error as serde::de::Error>::custom("no value"))?;
        seed.deserialize(de)
    }
}
