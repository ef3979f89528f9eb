//! Server-side printing: `meta.k8s.io/v1` Tables, the form `kubectl get` asks for.
//!
//! `kubectl get` sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints
//! whatever columns the server defines (upper-cased), keeping those of `priority` 1 for
//! `-o wide`. The columns and cell formats here are the ones Kubernetes' own printers use
//! for these kinds, so the output reads as it does against a real cluster. Each row
//! carries its object as `PartialObjectMetadata` unless `includeObject` says otherwise;
//! kubectl reads the namespace (`-A`) and labels (`--show-labels`) from there.

use k8s_openapi::{
    api::{core::v1 as core, discovery::v1 as discovery},
    jiff::{SignedDuration, Timestamp},
};
use serde_json::{Value, json};

use super::{objects::Object, resources::Kind};

/// `includeObject`: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

struct Column {
    name: &'static str,
    format: &'static str,
    priority: u8,
    description: &'static str,
}

const fn col(name: &'static str, priority: u8, description: &'static str) -> Column {
    Column {
        name,
        format: "",
        priority,
        description,
    }
}

const NAME: Column = Column {
    name: "Name",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
};
const AGE: Column = col(
    "Age",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::Namespace => vec![NAME, col("Status", 0, "The status of the namespace"), AGE],
        Kind::Node => vec![
            NAME,
            col("Status", 0, "The status of the node"),
            col("Roles", 0, "The roles of the node"),
            AGE,
            col("Version", 0, "Kubelet Version reported by the node."),
            col(
                "Internal-IP",
                1,
                "List of internal IPs assigned to the node.",
            ),
            col(
                "External-IP",
                1,
                "List of external IPs assigned to the node.",
            ),
            col(
                "OS-Image",
                1,
                "OS Image reported by the node from /etc/os-release.",
            ),
            col(
                "Kernel-Version",
                1,
                "Kernel Version reported by the node from 'uname -r'.",
            ),
            col(
                "Container-Runtime",
                1,
                "Container runtime version reported by the node.",
            ),
        ],
        Kind::Pod => vec![
            NAME,
            col(
                "Ready",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            col("IP", 1, "IP address allocated to the pod."),
            col(
                "Node",
                1,
                "NodeName is the name of the node this pod is scheduled to.",
            ),
            col(
                "Nominated Node",
                1,
                "The node the scheduler nominated for this pod, if any.",
            ),
            col(
                "Readiness Gates",
                1,
                "Readiness gates the pod waits for, if any.",
            ),
        ],
        Kind::Service => vec![
            NAME,
            col("Type", 0, "Determines how the Service is exposed."),
            col(
                "Cluster-IP",
                0,
                "The IP address of the service, assigned by the master.",
            ),
            col(
                "External-IP",
                0,
                "External IPs at which the service is exposed.",
            ),
            col("Port(s)", 0, "The ports exposed by this service."),
            AGE,
            col(
                "Selector",
                1,
                "Route service traffic to pods with label keys and values matching this selector.",
            ),
        ],
        Kind::Endpoints => vec![
            NAME,
            col(
                "Endpoints",
                0,
                "Endpoints of the service: addresses and ports.",
            ),
            AGE,
        ],
        Kind::EndpointSlice => vec![
            NAME,
            col(
                "AddressType",
                0,
                "The type of address carried by this EndpointSlice.",
            ),
            col("Ports", 0, "Ports exposed by the endpoints in this slice."),
            col("Endpoints", 0, "Addresses of the endpoints in this slice."),
            AGE,
        ],
    }
}

/// The `columnDefinitions` of a kind's Table.
pub fn column_definitions(kind: Kind) -> Value {
    columns(kind)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": "string",
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

/// A Table of `objects`; `with_columns` false leaves `columnDefinitions` out, as the
/// server does for all but the first event of a watch.
pub fn table<'a>(
    kind: Kind,
    objects: impl IntoIterator<Item = &'a Object>,
    resource_version: u64,
    include: Include,
    with_columns: bool,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects.into_iter().map(|o| row(o, include, now)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": if with_columns { column_definitions(kind) } else { Value::Null },
        "rows": rows,
    })
}

/// An object as `PartialObjectMetadata`: its metadata only.
pub fn partial_metadata(object: &Object) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": serde_json::to_value(object.metadata()).unwrap_or(Value::Null),
    })
}

fn row(object: &Object, include: Include, now: Timestamp) -> Value {
    let embedded = match include {
        Include::None => Value::Null,
        Include::Metadata => partial_metadata(object),
        Include::Object => object.to_json(),
    };
    json!({"cells": cells(object, now), "object": embedded})
}

/// One row's cells, in [`columns`] order.
pub fn cells(object: &Object, now: Timestamp) -> Vec<Value> {
    let name = Value::from(object.name());
    let age = Value::from(object.metadata().creation_timestamp.as_ref().map_or_else(
        || "<unknown>".to_owned(),
        |t| human_duration(now.duration_since(t.0)),
    ));
    match object {
        Object::Namespace(ns) => {
            let phase = ns.status.as_ref().and_then(|s| s.phase.clone());
            vec![name, phase.unwrap_or_default().into(), age]
        }
        Object::Node(node) => node_cells(node, name, age),
        Object::Pod(pod) => pod_cells(pod, name, age),
        Object::Service(svc) => service_cells(svc, name, age),
        Object::Endpoints(ep) => vec![name, format_endpoints(ep).into(), age],
        Object::EndpointSlice(slice) => slice_cells(slice, name, age),
    }
}

fn or_none(s: Option<&str>) -> Value {
    match s {
        Some(s) if !s.is_empty() => s.into(),
        _ => "<none>".into(),
    }
}

fn node_cells(node: &core::Node, name: Value, age: Value) -> Vec<Value> {
    let status = node.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str());
    let mut state = match ready {
        Some("True") => "Ready",
        Some("False") => "NotReady",
        _ => "Unknown",
    }
    .to_owned();
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        state.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<&str> = node
        .metadata
        .labels
        .iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort_unstable();
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.join(",")
    };
    let address = |type_: &str| {
        status
            .addresses
            .iter()
            .flatten()
            .find(|a| a.type_ == type_)
            .map(|a| a.address.clone())
    };
    let info = status.node_info.clone().unwrap_or_default();
    let unknown = |s: String| {
        if s.is_empty() {
            "<unknown>".to_owned()
        } else {
            s
        }
    };
    vec![
        name,
        state.into(),
        roles.into(),
        age,
        info.kubelet_version.clone().into(),
        or_none(address("InternalIP").as_deref()),
        or_none(address("ExternalIP").as_deref()),
        unknown(info.os_image).into(),
        unknown(info.kernel_version).into(),
        unknown(info.container_runtime_version).into(),
    ]
}

fn pod_cells(pod: &core::Pod, name: Value, age: Value) -> Vec<Value> {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let statuses = status.container_statuses.clone().unwrap_or_default();
    let ready = statuses.iter().filter(|c| c.ready).count();
    let restarts: i64 = statuses.iter().map(|c| i64::from(c.restart_count)).sum();
    let waiting = statuses.iter().find_map(|c| {
        let reason = c.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
        (!reason.is_empty()).then_some(reason)
    });
    let reason = waiting
        .or(status.reason.clone())
        .or(status.phase.clone())
        .unwrap_or_default();
    let gates = spec.readiness_gates.as_deref().unwrap_or_default();
    vec![
        name,
        format!("{ready}/{}", spec.containers.len()).into(),
        reason.into(),
        restarts.into(),
        age,
        or_none(status.pod_ip.as_deref()),
        or_none(spec.node_name.as_deref()),
        or_none(status.nominated_node_name.as_deref()),
        if gates.is_empty() {
            "<none>".into()
        } else {
            format!("0/{}", gates.len()).into()
        },
    ]
}

fn service_cells(svc: &core::Service, name: Value, age: Value) -> Vec<Value> {
    let spec = svc.spec.clone().unwrap_or_default();
    let type_ = spec.type_.clone().unwrap_or_else(|| "ClusterIP".to_owned());
    let external = match spec.external_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.join(","),
        _ if type_ == "LoadBalancer" => "<pending>".to_owned(),
        _ => "<none>".to_owned(),
    };
    let ports: Vec<String> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            match p.node_port {
                Some(node_port) if node_port != 0 => format!("{}:{node_port}/{proto}", p.port),
                _ => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    let selector: Vec<String> = spec
        .selector
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vec![
        name,
        type_.into(),
        or_none(spec.cluster_ip.as_deref()),
        external.into(),
        or_none(Some(&ports.join(","))),
        age,
        or_none(Some(&selector.join(","))),
    ]
}

/// At most three items, then " + N more...", as kubectl's printers shorten lists.
fn list_with_more(items: Vec<String>, empty: &str) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let shown = items.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{shown} + {} more...", count - MAX)
    } else if shown.is_empty() {
        empty.to_owned()
    } else {
        shown
    }
}

/// Ready `ip:port` pairs. As in Kubernetes' printer, Endpoints with subsets but no ready
/// address print an empty cell, and no subsets at all print `<none>`.
fn format_endpoints(ep: &core::Endpoints) -> String {
    let subsets = ep.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut items = Vec::new();
    for subset in subsets {
        let addresses = subset.addresses.as_deref().unwrap_or_default();
        match subset.ports.as_deref() {
            Some(ports) if !ports.is_empty() => {
                for port in ports {
                    items.extend(addresses.iter().map(|a| format!("{}:{}", a.ip, port.port)));
                }
            }
            _ => items.extend(addresses.iter().map(|a| a.ip.clone())),
        }
    }
    list_with_more(items, "")
}

fn slice_cells(slice: &discovery::EndpointSlice, name: Value, age: Value) -> Vec<Value> {
    let ports = slice
        .ports
        .iter()
        .flatten()
        .map(|p| match (p.port, &p.name) {
            (Some(port), _) => port.to_string(),
            (None, Some(name)) if !name.is_empty() => name.clone(),
            _ => "*".to_owned(),
        })
        .collect();
    let addresses = slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().cloned())
        .collect();
    vec![
        name,
        slice.address_type.clone().into(),
        list_with_more(ports, "<unset>").into(),
        list_with_more(addresses, "<unset>").into(),
        age,
    ]
}

/// Kubernetes' `duration.HumanDuration`: the AGE column's compact form (`45s`, `3m12s`,
/// `4h5m`, `2d3h`).
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if days < 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if days < 365 * 8 {
        let dy = days % 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::objects::{Host, build},
        spec::{Cluster, Scenario},
    };

    fn host() -> Host {
        Host {
            created: Timestamp::from_second(1_750_000_000).unwrap_or_default(),
            kernel_version: "6.8.0-test".to_owned(),
            os_image: "Ubuntu 24.04 LTS".to_owned(),
            architecture: "amd64",
        }
    }

    fn rows(scenario: Scenario, kind: Kind) -> Vec<Vec<Value>> {
        let host = host();
        let now = host
            .created
            .checked_add(SignedDuration::from_secs(300))
            .unwrap_or(host.created);
        build(&Cluster::seed(scenario), &host)
            .iter()
            .filter(|o| o.kind() == kind)
            .map(|o| cells(o, now))
            .collect()
    }

    fn row<'a>(rows: &'a [Vec<Value>], name: &str) -> &'a [Value] {
        rows.iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("row {name}"))
    }

    #[test]
    fn pod_rows_read_like_kubectl_get_pods_wide() {
        let healthy = rows(Scenario::Healthy, Kind::Pod);
        assert_eq!(
            row(&healthy, "nettest"),
            [
                json!("nettest"),
                json!("1/1"),
                json!("Running"),
                json!(0),
                json!("5m"),
                json!("10.244.102.137"),
                json!("cpu2"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let broken = rows(Scenario::NoEndpoints, Kind::Pod);
        assert_eq!(row(&broken, "nginx-test-7d9c4b6f5-q7w4n")[1], "0/1");
        assert_eq!(row(&broken, "nginx-test-7d9c4b6f5-q7w4n")[6], "gpu1");
        assert_eq!(columns(Kind::Pod).len(), healthy[0].len());
    }

    #[test]
    fn node_service_and_endpoint_rows() {
        let nodes = rows(Scenario::Healthy, Kind::Node);
        let cpu1 = row(&nodes, "cpu1");
        assert_eq!(cpu1[1..5], ["Ready", "control-plane", "5m", "v1.31.13"]);
        assert_eq!(cpu1[5], "172.30.1.43");
        assert_eq!(row(&nodes, "gpu1")[2], "<none>");

        let services = rows(Scenario::Healthy, Kind::Service);
        assert_eq!(
            row(&services, "nginx-test")[1..5],
            ["ClusterIP", "10.109.60.89", "<none>", "80/TCP"]
        );
        assert_eq!(row(&services, "webapp")[4], "80:32065/TCP");
        assert_eq!(row(&services, "webapp")[6], "app=webapp");

        let endpoints = rows(Scenario::Healthy, Kind::Endpoints);
        assert_eq!(
            row(&endpoints, "nginx-test")[1],
            "10.244.102.138:80,10.244.184.84:80,10.244.5.203:80"
        );
        assert_eq!(
            row(&rows(Scenario::NoEndpoints, Kind::Endpoints), "nginx-test")[1],
            ""
        );

        let slices = rows(Scenario::Healthy, Kind::EndpointSlice);
        let nginx = slices
            .iter()
            .find(|r| r[0].as_str().is_some_and(|n| n.starts_with("nginx-test-")))
            .expect("nginx slice");
        assert_eq!(
            nginx[1..4],
            ["IPv4", "80", "10.244.102.138,10.244.184.84,10.244.5.203"]
        );
    }

    #[test]
    fn tables_carry_partial_object_metadata() {
        let host = host();
        let objects = build(&Cluster::seed(Scenario::Healthy), &host);
        let pods: Vec<_> = objects.iter().filter(|o| o.kind() == Kind::Pod).collect();
        let t = table(
            Kind::Pod,
            pods.iter().copied(),
            7,
            Include::Metadata,
            true,
            host.created,
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["columnDefinitions"][5]["name"], "IP");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        let bare = table(Kind::Pod, pods, 7, Include::None, false, host.created);
        assert!(bare["columnDefinitions"].is_null());
        assert!(bare["rows"][0]["object"].is_null());
    }

    #[test]
    fn ages_are_humanized_as_kubernetes_does() {
        let h = |s| human_duration(SignedDuration::from_secs(s));
        assert_eq!(h(-5), "<invalid>");
        assert_eq!(h(-1), "0s");
        assert_eq!(h(59), "59s");
        assert_eq!(h(119), "119s");
        assert_eq!(h(192), "3m12s");
        assert_eq!(h(600), "10m");
        assert_eq!(h(3 * 3600 + 5 * 60), "3h5m");
        assert_eq!(h(30 * 3600), "30h");
        assert_eq!(h(51 * 3600), "2d3h");
        assert_eq!(h(400 * 86400), "400d");
        assert_eq!(h(3 * 365 * 86400), "3y");
    }
}
