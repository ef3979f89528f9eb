//! A topology that is not the lab: a flannel-style cluster (a `cni0` bridge per node, Pods'
//! host-side veths named `veth…` as bridge ports, a `flannel.1` VXLAN device on UDP 8472,
//! a different uplink name), named from a `--cluster-file` snapshot instead of an API. The
//! tracer must follow it with no naming conventions to lean on. Needs root.

use std::process::Command;

use tracer_tests::{
    follow::{has_hop, hops},
    require_root, run,
};

/// Two flannel-style nodes in namespaces named `tbr<pid>-…`, removed on drop.
struct BridgeCluster {
    prefix: String,
}

impl BridgeCluster {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn build() -> Self {
        let cluster = Self {
            prefix: format!("tbr{}-", std::process::id()),
        };
        let p = &cluster.prefix;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bridge-cluster.sh");
        let out = Command::new("sh")
            .args([script, p.as_str()])
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "building the bridge cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }
}

impl Drop for BridgeCluster {
    fn drop(&mut self) {
        for ns in [
            "pod-client",
            "pod-web-a",
            "pod-web-b",
            "node-a",
            "node-b",
            "lan",
        ] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .status();
        }
    }
}

#[test]
fn a_bridge_cni_cluster_named_from_a_cluster_file_is_followed() {
    if !require_root() {
        return;
    }
    let cluster = BridgeCluster::build();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cluster-bridge.json"
    );
    let follow = tracer_tests::follow::Follow::start_with(
        &cluster.prefix,
        &["client", "svc/web", "--cluster-file", fixture],
    );
    // Across nodes through flannel.1, Pod to Pod…
    run(&[
        "ip",
        "netns",
        "exec",
        &cluster.ns("pod-client"),
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "10.42.1.7",
    ]);
    // …and to the Service: DNAT to the endpoint on node-b (nothing listens: it answers RST).
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &cluster.ns("pod-client"),
            "bash",
            "-c",
            "echo > /dev/tcp/10.43.0.20/8080",
        ])
        .output();
    let (journeys, stderr) = follow.stop_with_stderr();

    let pings: Vec<_> = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-request" && j["direction"] == "request")
        .collect();
    assert_eq!(pings.len(), 2, "{journeys:#?}\n{stderr}");
    for j in &pings {
        assert_eq!(j["verdict"], "delivered", "{j:#}");
        assert_eq!(j["from"]["pod"], "default/client");
        let veth = hops(j, "veth_crossing");
        assert!(
            veth.iter()
                .any(|h| h["interface"] == "veth5e1f0a2b" && h["node"] == "node-a"),
            "{j:#}"
        );
        assert!(
            veth.iter()
                .any(|h| h["interface"] == "vethb2a48f06" && h["node"] == "node-b"),
            "{j:#}"
        );
        let encap = &hops(j, "encapsulation")[0]["encap"];
        assert_eq!(encap["vni"], 1, "{j:#}");
        assert_eq!(encap["device"], "flannel.1");
        assert_eq!(encap["outer_dst"], "192.168.50.11");
        assert_eq!(encap["udp_port"], 8472);
        assert_eq!(hops(j, "route_decision")[0]["route"]["dev"], "flannel.1");
        assert_eq!(
            hops(j, "pod_delivery")[0]["pod"],
            "default/web-6b7f9d8c4d-q9m4z"
        );
    }
    let syn = journeys
        .iter()
        .find(|j| j["summary"] == "SYN" && j["direction"] == "request")
        .unwrap_or_else(|| panic!("the SYN to the Service: {journeys:#?}"));
    assert_eq!(syn["to"]["service"], "default/web");
    let nat = &hops(syn, "service_dnat")[0]["nat"];
    assert_eq!(nat["service"], "default/web");
    assert_eq!(nat["endpoint_pod"], "default/web-6b7f9d8c4d-q9m4z");
    assert_eq!(nat["chain"], "KUBE-SEP-TESTWEBREMOTE0");
    assert!(has_hop(syn, "decapsulation"), "{syn:#}");
}
