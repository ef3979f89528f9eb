//! Unit tests of the model and of argument resolution, on objects shaped like the API's.

use std::net::Ipv4Addr;

use k8s_openapi::api::{
    core::v1::{Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use serde_json::{Value, json};

use super::{
    model::{ClusterModel, Protocol},
    resolve::{ResolveError, Target, resolve},
};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn pod(ns: &str, name: &str, pod_ip: Option<&str>, node: &str, phase: &str, ready: bool) -> Value {
    let mut status = json!({
        "phase": phase,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    });
    if let Some(pod_ip) = pod_ip {
        status["podIP"] = json!(pod_ip);
        status["podIPs"] = json!([{"ip": pod_ip}]);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"),
                     "creationTimestamp": "2025-01-01T00:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": status,
    })
}

fn deployment_pod(
    ns: &str,
    name: &str,
    deployment: &str,
    hash: &str,
    pod_ip: &str,
    node: &str,
) -> Value {
    let mut p = pod(ns, name, Some(pod_ip), node, "Running", true);
    p["metadata"]["labels"] = json!({"app": deployment, "pod-template-hash": hash});
    p["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-{hash}"),
        "uid": "rs", "controller": true, "blockOwnerDeletion": true,
    }]);
    p
}

fn service(ns: &str, name: &str, type_: &str, cluster_ip: &str, ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": type_, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports},
    })
}

fn slice(ns: &str, name: &str, service: &str, endpoints: Value, ports: Value) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports,
    })
}

fn endpoint(addr: &str, pod_name: &str, node: &str, ready: Option<bool>) -> Value {
    let mut e = json!({
        "addresses": [addr], "nodeName": node,
        "targetRef": {"kind": "Pod", "namespace": "default", "name": pod_name, "uid": "u"},
    });
    if let Some(ready) = ready {
        e["conditions"] = json!({"ready": ready, "serving": ready, "terminating": false});
    }
    e
}

fn node(name: &str, internal: &str, cidr: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": internal}, {"type": "Hostname", "address": name}]},
    })
}

fn typed<T: serde::de::DeserializeOwned>(values: Vec<Value>) -> Vec<T> {
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

/// The seed's cluster (DESIGN §5), with nginx-test's endpoints split over two slices and a
/// fourth, not-ready endpoint.
fn seed() -> ClusterModel {
    let pods: Vec<Pod> = typed(vec![
        pod(
            "default",
            "nettest",
            Some("10.244.102.137"),
            "cpu2",
            "Running",
            true,
        ),
        deployment_pod(
            "default",
            "nginx-test-7d9c4b6f5-abcde",
            "nginx-test",
            "7d9c4b6f5",
            "10.244.102.138",
            "cpu2",
        ),
        deployment_pod(
            "default",
            "nginx-test-7d9c4b6f5-fghij",
            "nginx-test",
            "7d9c4b6f5",
            "10.244.184.84",
            "cpu1",
        ),
        deployment_pod(
            "default",
            "nginx-test-7d9c4b6f5-klmno",
            "nginx-test",
            "7d9c4b6f5",
            "10.244.5.203",
            "gpu1",
        ),
        deployment_pod(
            "default",
            "nginx-test-7d9c4b6f5-pqrst",
            "nginx-test",
            "7d9c4b6f5",
            "10.244.5.204",
            "gpu1",
        ),
        deployment_pod(
            "default",
            "webapp-5f6d8c9b7-xyz12",
            "webapp",
            "5f6d8c9b7",
            "10.244.184.90",
            "cpu1",
        ),
        deployment_pod(
            "default",
            "webapp-5f6d8c9b7-uvw34",
            "webapp",
            "5f6d8c9b7",
            "10.244.102.140",
            "cpu2",
        ),
        pod("default", "pending", None, "", "Pending", false),
        pod(
            "kube-system",
            "coredns-abc",
            Some("10.244.184.66"),
            "cpu1",
            "Running",
            true,
        ),
        pod(
            "kube-system",
            "ngnix-debug",
            Some("10.244.184.67"),
            "cpu1",
            "Running",
            true,
        ),
        {
            let mut p = pod(
                "kube-system",
                "kube-proxy-x1",
                Some("172.30.1.43"),
                "cpu1",
                "Running",
                true,
            );
            p["spec"]["hostNetwork"] = json!(true);
            p
        },
    ]);
    let services: Vec<Service> = typed(vec![
        service(
            "default",
            "nginx-test",
            "ClusterIP",
            "10.109.60.89",
            json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]),
        ),
        service(
            "default",
            "webapp",
            "NodePort",
            "10.103.193.83",
            json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http", "nodePort": 32065}]),
        ),
        service(
            "default",
            "kubernetes",
            "ClusterIP",
            "10.96.0.1",
            json!([{"name": "https", "port": 443, "targetPort": 6443}]),
        ),
        service(
            "kube-system",
            "kube-dns",
            "ClusterIP",
            "10.96.0.10",
            json!([{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]),
        ),
    ]);
    let slices: Vec<EndpointSlice> = typed(vec![
        slice(
            "default",
            "nginx-test-abc12",
            "nginx-test",
            json!([
                endpoint(
                    "10.244.5.203",
                    "nginx-test-7d9c4b6f5-klmno",
                    "gpu1",
                    Some(true)
                ),
                endpoint("10.244.102.138", "nginx-test-7d9c4b6f5-abcde", "cpu2", None),
            ]),
            json!([{"name": "", "port": 80, "protocol": "TCP"}]),
        ),
        slice(
            "default",
            "nginx-test-def34",
            "nginx-test",
            json!([
                endpoint(
                    "10.244.184.84",
                    "nginx-test-7d9c4b6f5-fghij",
                    "cpu1",
                    Some(true)
                ),
                endpoint(
                    "10.244.5.204",
                    "nginx-test-7d9c4b6f5-pqrst",
                    "gpu1",
                    Some(false)
                ),
                // The same endpoint again, as while slices are rewritten.
                endpoint(
                    "10.244.5.203",
                    "nginx-test-7d9c4b6f5-klmno",
                    "gpu1",
                    Some(true)
                ),
            ]),
            json!([{"port": 80, "protocol": "TCP"}]),
        ),
        slice(
            "default",
            "webapp-x",
            "webapp",
            json!([
                endpoint(
                    "10.244.184.90",
                    "webapp-5f6d8c9b7-xyz12",
                    "cpu1",
                    Some(true)
                ),
                endpoint(
                    "10.244.102.140",
                    "webapp-5f6d8c9b7-uvw34",
                    "cpu2",
                    Some(true)
                ),
            ]),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        ),
    ]);
    let nodes: Vec<Node> = typed(vec![
        node("cpu1", "172.30.1.43", "10.244.184.64/26"),
        node("cpu2", "172.30.1.80", "10.244.102.128/26"),
        node("gpu1", "172.30.1.38", "10.244.5.192/26"),
    ]);
    ClusterModel::from_objects(&pods, &services, &slices, &nodes)
}

#[test]
fn pods_services_nodes_are_indexed() {
    let m = seed();
    let nettest = m.pod_by_ip(ip("10.244.102.137")).unwrap();
    assert_eq!(
        (nettest.namespace.as_str(), nettest.name.as_str()),
        ("default", "nettest")
    );
    assert_eq!(nettest.node.as_deref(), Some("cpu2"));
    assert!(nettest.ready);
    assert_eq!(nettest.uid, "uid-default-nettest");
    let nginx = m.pod("default", "nginx-test-7d9c4b6f5-abcde").unwrap();
    assert_eq!(nginx.owner.as_deref(), Some("Deployment nginx-test"));
    assert_eq!(
        m.service_by_cluster_ip(ip("10.109.60.89")).unwrap().name,
        "nginx-test"
    );
    let webapp = m.service_by_node_port(32065, Protocol::Tcp).unwrap();
    assert_eq!(webapp.name, "webapp");
    assert_eq!(webapp.type_, "NodePort");
    assert_eq!(webapp.ports[0].target_port, None, "named targetPort");
    assert_eq!(webapp.ports[0].node_port, Some(32065));
    assert!(m.service_by_node_port(32065, Protocol::Udp).is_none());
    let kubernetes = m.service("default", "kubernetes").unwrap();
    assert_eq!(
        kubernetes.ports[0].protocol,
        Protocol::Tcp,
        "protocol defaults to TCP"
    );
    assert_eq!(kubernetes.ports[0].target_port, Some(6443));
    assert_eq!(m.node_by_ip(ip("172.30.1.80")).unwrap().name, "cpu2");
    assert_eq!(m.node("gpu1").unwrap().pod_cidrs, vec!["10.244.5.192/26"]);
    assert_eq!(m.node_by_pod_ip(ip("10.244.184.84")).unwrap().name, "cpu1");
    // hostNetwork Pods keep the node's address for the node.
    assert!(m.pod_by_ip(ip("172.30.1.43")).is_none());
    assert!(m.pod("kube-system", "kube-proxy-x1").is_some());
    assert_eq!(m.pods().count(), 11);
    assert_eq!(m.services().count(), 4);
    assert_eq!(
        m.nodes().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["cpu1", "cpu2", "gpu1"]
    );
}

#[test]
fn endpoint_slices_are_merged_keeping_not_ready_endpoints() {
    let m = seed();
    let svc = m.service("default", "nginx-test").unwrap();
    let eps: Vec<(String, bool)> = svc
        .endpoints
        .iter()
        .map(|e| (format!("{}:{}", e.ip, e.port), e.ready))
        .collect();
    assert_eq!(
        eps,
        [
            ("10.244.102.138:80".to_owned(), true),
            ("10.244.184.84:80".to_owned(), true),
            ("10.244.5.203:80".to_owned(), true),
            ("10.244.5.204:80".to_owned(), false),
        ]
    );
    let first = &svc.endpoints[0];
    assert_eq!(first.port_name, None, "an empty port name is no name");
    assert_eq!(first.protocol, Protocol::Tcp);
    assert_eq!(first.node.as_deref(), Some("cpu2"));
    assert_eq!(
        first.pod,
        Some((
            "default".to_owned(),
            "nginx-test-7d9c4b6f5-abcde".to_owned()
        ))
    );
    let webapp = m.service("default", "webapp").unwrap();
    assert_eq!(webapp.endpoints.len(), 2);
    assert!(
        webapp
            .endpoints
            .iter()
            .all(|e| e.port == 8080 && e.port_name.as_deref() == Some("http"))
    );
    assert!(
        m.service("default", "kubernetes")
            .unwrap()
            .endpoints
            .is_empty()
    );
}

#[test]
fn endpoint_position_follows_kube_proxy_order() {
    let m = seed();
    let svc = m.service("default", "nginx-test").unwrap();
    assert_eq!(
        m.endpoint_position(svc, ip("10.244.102.138"), 80),
        Some((1, 3))
    );
    assert_eq!(
        m.endpoint_position(svc, ip("10.244.184.84"), 80),
        Some((2, 3))
    );
    assert_eq!(
        m.endpoint_position(svc, ip("10.244.5.203"), 80),
        Some((3, 3))
    );
    assert_eq!(
        m.endpoint_position(svc, ip("10.244.5.204"), 80),
        None,
        "not ready"
    );
    assert_eq!(m.endpoint_position(svc, ip("10.244.5.203"), 81), None);
    assert_eq!(m.endpoint_position(svc, ip("10.9.9.9"), 80), None);
}

#[test]
fn reused_ip_prefers_the_running_pod() {
    for order in [false, true] {
        let mut values = vec![
            {
                let mut p = pod(
                    "default",
                    "job-old",
                    Some("10.244.1.5"),
                    "cpu1",
                    "Succeeded",
                    false,
                );
                p["metadata"]["creationTimestamp"] = json!("2025-01-02T00:00:00Z");
                p
            },
            pod(
                "default",
                "web-new",
                Some("10.244.1.5"),
                "cpu1",
                "Running",
                true,
            ),
            {
                let mut p = pod(
                    "default",
                    "web-gone",
                    Some("10.244.1.5"),
                    "cpu1",
                    "Running",
                    true,
                );
                p["metadata"]["deletionTimestamp"] = json!("2025-01-03T00:00:00Z");
                p
            },
        ];
        if order {
            values.reverse();
        }
        let pods: Vec<Pod> = typed(values);
        let m = ClusterModel::from_objects(&pods, &[], &[], &[]);
        assert_eq!(m.pod_by_ip(ip("10.244.1.5")).unwrap().name, "web-new");
        assert_eq!(m.pods().count(), 3);
    }
    // Duplicate objects (same name twice) do not panic and are kept once.
    let pods: Vec<Pod> = typed(vec![
        pod("default", "a", Some("10.0.0.1"), "n", "Running", true),
        pod("default", "a", Some("10.0.0.1"), "n", "Running", true),
    ]);
    let m = ClusterModel::from_objects(&pods, &[], &[], &[]);
    assert_eq!(m.pods().count(), 1);
    assert_eq!(m.pod_by_ip(ip("10.0.0.1")).unwrap().name, "a");
}

#[test]
fn objects_without_names_or_v4_addresses_are_skipped() {
    let pods: Vec<Pod> = typed(vec![json!({"metadata": {}}), {
        let mut p = pod("default", "v6", None, "n", "Running", true);
        p["status"]["podIP"] = json!("fd00::1");
        p["status"]["podIPs"] = json!([{"ip": "fd00::1"}, {"ip": "10.1.2.3"}]);
        p
    }]);
    let services: Vec<Service> = typed(vec![json!({
        "metadata": {"name": "headless", "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
    })]);
    let m = ClusterModel::from_objects(&pods, &services, &[], &[]);
    assert_eq!(m.pods().count(), 1);
    assert_eq!(m.pod("default", "v6").unwrap().ip, Some(ip("10.1.2.3")));
    let headless = m.service("default", "headless").unwrap();
    assert_eq!(headless.cluster_ip, None);
    assert_eq!(headless.type_, "ClusterIP");
    assert!(ClusterModel::default().is_empty());
}

fn pod_name(t: Result<Target, ResolveError>) -> String {
    match t {
        Ok(Target::Pod(p)) => format!("{}/{}", p.namespace, p.name),
        other => panic!("expected a Pod, got {other:?}"),
    }
}

#[test]
fn resolve_pods_in_every_spelling() {
    let m = seed();
    assert_eq!(
        pod_name(resolve(&m, "nettest", "default")),
        "default/nettest"
    );
    assert_eq!(
        pod_name(resolve(&m, "pod/nettest", "default")),
        "default/nettest"
    );
    assert_eq!(
        pod_name(resolve(&m, "po/nettest", "default")),
        "default/nettest"
    );
    assert_eq!(
        pod_name(resolve(&m, "default/nettest", "kube-system")),
        "default/nettest"
    );
    assert_eq!(
        pod_name(resolve(&m, "pod/kube-system/coredns-abc", "default")),
        "kube-system/coredns-abc"
    );
    assert_eq!(
        pod_name(resolve(&m, "coredns", "kube-system")),
        "kube-system/coredns-abc"
    );
    assert_eq!(
        pod_name(resolve(&m, " nettest ", "default")),
        "default/nettest"
    );
    // Unique prefix, e.g. a Deployment's Pod by the start of its name.
    assert_eq!(
        pod_name(resolve(&m, "nginx-test-7d9c4b6f5-fg", "default")),
        "default/nginx-test-7d9c4b6f5-fghij"
    );
    // An exact name wins over a longer name that it prefixes.
    let pods: Vec<Pod> = typed(vec![
        pod("default", "web", Some("10.0.0.1"), "n", "Running", true),
        pod("default", "web-2", Some("10.0.0.2"), "n", "Running", true),
    ]);
    let m2 = ClusterModel::from_objects(&pods, &[], &[], &[]);
    assert_eq!(pod_name(resolve(&m2, "web", "default")), "default/web");
}

#[test]
fn resolve_services_nodes_and_addresses() {
    let m = seed();
    for spec in [
        "svc/nginx-test",
        "service/nginx-test",
        "services/nginx-test",
        "svc/default/nginx-test",
        "svc/nginx",
    ] {
        match resolve(&m, spec, "default") {
            Ok(Target::Service(s)) => {
                assert_eq!(s.name, "nginx-test", "{spec}");
                assert_eq!(s.cluster_ip, Some(ip("10.109.60.89")));
                assert_eq!(s.endpoints.len(), 4);
            }
            other => panic!("{spec}: {other:?}"),
        }
    }
    assert!(
        matches!(resolve(&m, "svc/kube-system/kube-dns", "default"), Ok(Target::Service(s)) if s.name == "kube-dns")
    );
    assert!(
        matches!(resolve(&m, "node/cpu1", "default"), Ok(Target::Node(n)) if n.internal_ips == [ip("172.30.1.43")])
    );
    assert!(matches!(resolve(&m, "no/gpu", "default"), Ok(Target::Node(n)) if n.name == "gpu1"));
    // Addresses: a Pod's IP is the Pod, a ClusterIP the Service, a node IP the Node.
    assert_eq!(
        pod_name(resolve(&m, "10.244.102.137", "default")),
        "default/nettest"
    );
    assert!(
        matches!(resolve(&m, "10.109.60.89", "default"), Ok(Target::Service(s)) if s.name == "nginx-test")
    );
    assert!(
        matches!(resolve(&m, "172.30.1.43", "default"), Ok(Target::Node(n)) if n.name == "cpu1")
    );
    assert_eq!(
        resolve(&m, "8.8.8.8", "default"),
        Ok(Target::Ip(ip("8.8.8.8")))
    );
    let target = resolve(&m, "nettest", "default").unwrap();
    assert_eq!(target.ip(), Some(ip("10.244.102.137")));
    assert_eq!(
        target.to_string(),
        "pod default/nettest (10.244.102.137 on cpu2)"
    );
}

fn error(m: &ClusterModel, spec: &str, ns: &str) -> String {
    resolve(m, spec, ns).unwrap_err().to_string()
}

#[test]
fn unknown_pod_names_namespace_close_names_and_other_namespaces() {
    let m = seed();
    assert_eq!(
        error(&m, "ngnix", "default"),
        "no Pod \"ngnix\" in namespace \"default\"; did you mean: nginx-test-7d9c4b6f5-abcde, \
         nginx-test-7d9c4b6f5-fghij, nginx-test-7d9c4b6f5-klmno?; in other namespaces: \
         kube-system/ngnix-debug (name the namespace, e.g. `kube-system/ngnix-debug` or `-n kube-system`)"
    );
    assert_eq!(
        error(&m, "nettset", "default"),
        "no Pod \"nettset\" in namespace \"default\"; did you mean: nettest?"
    );
    assert_eq!(
        error(&m, "nettest", "kube-system"),
        "no Pod \"nettest\" in namespace \"kube-system\"; in other namespaces: default/nettest \
         (name the namespace, e.g. `default/nettest` or `-n default`)"
    );
    assert_eq!(
        error(&m, "x", "empty-ns"),
        "no Pod \"x\" in namespace \"empty-ns\" (namespace \"empty-ns\" has no Pods)"
    );
    let structured = resolve(&m, "ngnix", "default").unwrap_err();
    assert!(
        matches!(structured, ResolveError::NoPod { ref suggestions, .. } if suggestions.len() == 3)
    );
}

#[test]
fn ambiguous_prefix_lists_matches() {
    let m = seed();
    assert_eq!(
        error(&m, "nginx-test", "default"),
        "\"nginx-test\" matches 4 Pods in namespace \"default\": nginx-test-7d9c4b6f5-abcde, \
         nginx-test-7d9c4b6f5-fghij, nginx-test-7d9c4b6f5-klmno, nginx-test-7d9c4b6f5-pqrst; give more of the name"
    );
    assert_eq!(
        error(&m, "node/cpu", "default"),
        "\"cpu\" matches 2 Nodes: cpu1, cpu2; give more of the name"
    );
}

#[test]
fn other_errors_are_plain() {
    let m = seed();
    assert_eq!(
        error(&m, "pending", "default"),
        "Pod default/pending has no IP yet (phase Pending); wait until it is running"
    );
    assert_eq!(
        error(&m, "svc/ngnix-test", "default"),
        "no Service \"ngnix-test\" in namespace \"default\"; did you mean: nginx-test?"
    );
    assert_eq!(
        error(&m, "svc/kube-dns", "default"),
        "no Service \"kube-dns\" in namespace \"default\"; in other namespaces: kube-system/kube-dns \
         (name the namespace, e.g. `svc/kube-system/kube-dns` or `-n kube-system`)"
    );
    assert_eq!(
        error(&m, "node/cpu3", "default"),
        "no Node \"cpu3\"; did you mean: cpu1, cpu2, gpu1?"
    );
    assert_eq!(
        error(&m, "node/zzzzzz", "default"),
        "no Node \"zzzzzz\"; Nodes: cpu1, cpu2, gpu1"
    );
    assert_eq!(resolve(&m, "", "default"), Err(ResolveError::Empty));
    assert!(error(&m, "a/b/c", "default").contains("too many `/`"));
    assert!(error(&m, "node/ns/cpu1", "default").contains("Nodes have no namespace"));
    assert!(error(&m, "svc/", "default").contains("empty"));
    assert!(error(&m, "default/", "default").contains("empty"));
}

#[test]
fn bridge_cluster_file_loads_through_the_handle() {
    use std::{path::PathBuf, time::Duration};

    use super::{ClusterHandle, ClusterSource};

    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cluster-bridge.json"
    ));
    let handle =
        ClusterHandle::start(&ClusterSource::File(path.clone()), Duration::from_secs(1)).unwrap();
    assert!(!handle.stale());
    assert_eq!(handle.stale_reason(), None);
    assert_eq!(
        handle.describe(),
        format!("cluster file {}", path.display())
    );
    let m = handle.snapshot();

    let client = resolve(&m, "client", "default").unwrap();
    assert_eq!(
        client.to_string(),
        "pod default/client (10.42.0.5 on node-a)"
    );
    let web_a = m.pod_by_ip(ip("10.42.0.6")).unwrap();
    assert_eq!(
        (web_a.name.as_str(), web_a.node.as_deref()),
        ("web-6b7f9d8c4d-x7k2p", Some("node-a"))
    );
    assert_eq!(web_a.owner.as_deref(), Some("Deployment web"));
    let web_b = m.pod_by_ip(ip("10.42.1.7")).unwrap();
    assert_eq!(
        (web_b.name.as_str(), web_b.node.as_deref()),
        ("web-6b7f9d8c4d-q9m4z", Some("node-b"))
    );

    let Ok(Target::Service(web)) = resolve(&m, "svc/web", "default") else {
        panic!("svc/web")
    };
    assert_eq!(web.cluster_ip, Some(ip("10.43.0.20")));
    assert_eq!(web.ports.len(), 1);
    assert_eq!(
        (web.ports[0].port, web.ports[0].target_port),
        (8080, Some(80))
    );
    assert_eq!(web.endpoints.len(), 2);
    assert_eq!(m.endpoint_position(&web, ip("10.42.0.6"), 80), Some((1, 2)));
    assert_eq!(m.endpoint_position(&web, ip("10.42.1.7"), 80), Some((2, 2)));

    let a = m.node("node-a").unwrap();
    assert_eq!(a.internal_ips, [ip("192.168.50.10")]);
    assert_eq!(a.pod_cidrs, ["10.42.0.0/24"]);
    assert_eq!(m.node("node-b").unwrap().pod_cidrs, ["10.42.1.0/24"]);
    assert_eq!(m.node_by_ip(ip("192.168.50.11")).unwrap().name, "node-b");
    assert_eq!(m.node_by_pod_ip(ip("10.42.1.7")).unwrap().name, "node-b");
    // The flannel DaemonSet's hostNetwork Pods do not take over the node addresses.
    assert!(m.pod_by_ip(ip("192.168.50.10")).is_none());
    assert!(
        matches!(resolve(&m, "192.168.50.10", "default"), Ok(Target::Node(n)) if n.name == "node-a")
    );

    // The model's rows (what recordings carry) rebuild it exactly.
    let again = ClusterModel::from_rows(m.rows());
    assert_eq!(
        again.pods().collect::<Vec<_>>(),
        m.pods().collect::<Vec<_>>()
    );
    assert_eq!(
        again.services().collect::<Vec<_>>(),
        m.services().collect::<Vec<_>>()
    );
    assert_eq!(
        again.nodes().collect::<Vec<_>>(),
        m.nodes().collect::<Vec<_>>()
    );
}

#[test]
fn an_invalid_address_is_not_an_unknown_pod() {
    let m = seed();
    for (spec, reason) in [
        ("999.1.1.1", "not an IPv4 address"),
        ("10.244.102", "not an IPv4 address"),
        ("10.244.0.0/16", "a network, not an address"),
        ("fd00::1", "IPv4 only"),
    ] {
        let err = resolve(&m, spec, "default").unwrap_err();
        assert!(
            matches!(&err, ResolveError::BadSpec { .. }),
            "{spec}: {err:?}"
        );
        assert!(err.is_usage(), "{spec}");
        assert!(err.to_string().contains(reason), "{spec}: {err}");
        assert!(!err.to_string().contains("no Pod"), "{spec}: {err}");
    }
    // A Pod whose name looks like an address is still found by that name.
    let pods: Vec<Pod> = typed(vec![pod(
        "default",
        "1.2.3",
        Some("10.0.0.9"),
        "n",
        "Running",
        true,
    )]);
    let m2 = ClusterModel::from_objects(&pods, &[], &[], &[]);
    assert_eq!(pod_name(resolve(&m2, "1.2.3", "default")), "default/1.2.3");
    // An unknown name is not a usage error: it depends on the cluster.
    assert!(!resolve(&m, "nettset", "default").unwrap_err().is_usage());
}

#[test]
fn the_same_endpoint_twice_is_refused_however_it_is_spelled() {
    use crate::follow::plan::{Asked, plan};

    let m = seed();
    for (from, to) in [
        ("nettest", "nettest"),
        ("nettest", "default/nettest"),
        ("pod/nettest", "10.244.102.137"),
        ("svc/nginx-test", "10.109.60.89"),
        ("node/cpu1", "172.30.1.43"),
        ("8.8.8.8", "8.8.8.8"),
    ] {
        let err = plan(
            &m,
            Asked {
                from,
                to,
                namespace: "default",
                ..Asked::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, ResolveError::SameEndpoint { .. }),
            "{from} {to}: {err:?}"
        );
        assert!(err.is_usage());
        assert!(
            err.to_string()
                .ends_with("follow needs two different endpoints"),
            "{err}"
        );
    }
    assert_eq!(
        plan(
            &m,
            Asked {
                from: "nettest",
                to: "default/nettest",
                namespace: "default",
                ..Asked::default()
            }
        )
        .unwrap_err()
        .to_string(),
        "FROM `nettest` and TO `default/nettest` are the same endpoint \
         (pod default/nettest (10.244.102.137 on cpu2)): follow needs two different endpoints"
    );
    // A Service and one of its endpoints are two endpoints.
    assert!(
        plan(
            &m,
            Asked {
                from: "nettest",
                to: "svc/nginx-test",
                namespace: "default",
                ..Asked::default()
            }
        )
        .is_ok()
    );
    assert!(
        plan(
            &m,
            Asked {
                from: "10.244.184.84",
                to: "svc/nginx-test",
                namespace: "default",
                ..Asked::default()
            }
        )
        .is_ok()
    );
}
