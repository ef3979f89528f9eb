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
        let script = format!(
            r#"set -e
for ns in lan node-a node-b pod-client pod-web-a pod-web-b; do ip netns add {p}$ns; done
ip -n {p}lan link add sw0 type bridge; ip -n {p}lan link set sw0 up
node() {{ # name ip podnet gw mac vtep
  ip -n {p}lan link add $1 type veth peer name ens3 netns {p}$1
  ip -n {p}lan link set $1 master sw0 up
  ip -n {p}$1 link set lo up; ip -n {p}$1 addr add $2/24 dev ens3; ip -n {p}$1 link set ens3 up
  ip -n {p}$1 link add cni0 type bridge; ip -n {p}$1 addr add $4/24 dev cni0; ip -n {p}$1 link set cni0 up
  ip -n {p}$1 link add flannel.1 type vxlan id 1 local $2 dev ens3 dstport 8472 nolearning
  ip -n {p}$1 link set flannel.1 address $5 mtu 1450 up
  ip -n {p}$1 addr add $6/32 dev flannel.1
  ip netns exec {p}$1 sysctl -qw net.ipv4.ip_forward=1
}}
node node-a 192.168.50.10 10.42.0.0 10.42.0.1 0a:fa:00:00:00:0a 10.42.0.0
node node-b 192.168.50.11 10.42.1.0 10.42.1.1 0a:fa:00:00:00:0b 10.42.1.0
ip -n {p}node-a route add 10.42.1.0/24 via 10.42.1.0 dev flannel.1 onlink
ip -n {p}node-a neigh add 10.42.1.0 lladdr 0a:fa:00:00:00:0b dev flannel.1 nud permanent
bridge -n {p}node-a fdb add 0a:fa:00:00:00:0b dev flannel.1 dst 192.168.50.11 self permanent
ip -n {p}node-b route add 10.42.0.0/24 via 10.42.0.0 dev flannel.1 onlink
ip -n {p}node-b neigh add 10.42.0.0 lladdr 0a:fa:00:00:00:0a dev flannel.1 nud permanent
bridge -n {p}node-b fdb add 0a:fa:00:00:00:0a dev flannel.1 dst 192.168.50.10 self permanent
pod() {{ # node pod veth ip gw
  ip -n {p}$1 link add $3 type veth peer name eth0 netns {p}$2
  ip -n {p}$1 link set $3 master cni0 up
  ip -n {p}$2 link set lo up; ip -n {p}$2 addr add $4/24 dev eth0; ip -n {p}$2 link set eth0 up
  ip -n {p}$2 route add default via $5
}}
pod node-a pod-client veth5e1f0a2b 10.42.0.5 10.42.0.1
pod node-a pod-web-a veth9c3d7e41 10.42.0.6 10.42.0.1
pod node-b pod-web-b vethb2a48f06 10.42.1.7 10.42.1.1
# The Service, as a kube-proxy-like DNAT on the client's node (always to the remote endpoint).
ip netns exec {p}node-a iptables -t nat -N KUBE-SEP-TESTWEBREMOTE0
ip netns exec {p}node-a iptables -t nat -A KUBE-SEP-TESTWEBREMOTE0 -p tcp -m comment --comment default/web:http -j DNAT --to-destination 10.42.1.7:80
ip netns exec {p}node-a iptables -t nat -A PREROUTING -d 10.43.0.20/32 -p tcp --dport 8080 -j KUBE-SEP-TESTWEBREMOTE0
"#
        );
        let out = Command::new("sh")
            .args(["-c", &script])
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
        assert_eq!(encap["vni"], 1);
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
