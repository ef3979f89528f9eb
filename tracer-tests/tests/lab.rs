//! The lab, end to end: each scenario is brought up and its symptom asserted with the
//! ordinary tools a person would use (ping, curl, ip, iptables-save, tcpdump, kubectl).
//! Each test builds its own lab under a unique prefix (so a lab a developer has up is never
//! touched) and a guard takes it down even when the test fails. Needs root; serial.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tracer_tests::{lab::Lab, require_root, run};

/// Counts VXLAN packets on a node's uplink while `traffic` runs.
fn vxlan_packets_on(lab: &Lab, node: &str, traffic: impl FnOnce()) -> usize {
    let tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns(node),
            "timeout",
            "4",
            "tcpdump",
            "-i",
            "enp2s0",
            "-nn",
            "-l",
            "udp port 4789",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    thread::sleep(Duration::from_millis(700));
    traffic();
    let out = tcpdump.wait_with_output().expect("tcpdump output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("VXLAN"))
        .count()
}

#[test]
fn healthy_lab_serves_the_seeds_cluster() {
    if !require_root() {
        return;
    }
    let host_before = tracer_tests::host_snapshot();
    let lab = Lab::up("healthy");

    // Direct routes exactly as the seed's `ip route | grep 10.244`.
    let routes = lab.exec_ok("cpu1", &["ip", "route"]);
    assert!(
        routes.contains("10.244.5.192/26 via 172.30.1.38 dev enp2s0 proto 80 onlink"),
        "{routes}"
    );
    assert!(
        routes.contains("10.244.102.128/26 via 172.30.1.80 dev enp2s0 proto 80 onlink"),
        "{routes}"
    );
    let vxlan = lab.exec_ok("cpu1", &["ip", "-d", "link", "show", "vxlan.calico"]);
    assert!(
        vxlan.contains("mtu 1450") && vxlan.contains("vxlan id 4096 local 172.30.1.43 dev enp2s0"),
        "{vxlan}"
    );

    // The veth pair names each other's index, like the seed's eth0@if22 / cali…@if2.
    let pod_link = lab.exec_ok("pod-nettest", &["ip", "-o", "link", "show", "eth0"]);
    let host_links = lab.exec_ok("cpu2", &["ip", "-o", "link"]);
    let pod_index: u32 = pod_link.split(':').next().unwrap().trim().parse().unwrap();
    let peer_index: u32 = pod_link
        .split("eth0@if")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host_line = host_links
        .lines()
        .find(|l| l.starts_with(&format!("{peer_index}: cali")))
        .unwrap_or_else(|| panic!("host side {peer_index} is a cali veth: {host_links}"));
    assert!(
        host_line.contains(&format!("@if{pod_index}")),
        "{host_line}"
    );
    assert!(
        lab.exec_ok("pod-nettest", &["ip", "route"])
            .contains("default via 169.254.1.1 dev eth0")
    );

    // kube-proxy's chains, named as in the seed.
    let rules = lab.exec_ok("cpu2", &["iptables-save", "-t", "nat"]);
    for needle in [
        "-A KUBE-SERVICES -d 10.109.60.89/32 -p tcp -m comment --comment \"default/nginx-test cluster IP\" -m tcp --dport 80 -j KUBE-SVC-W67AXLFK7VEUVN6G",
        "--probability 0.33333333349 -j KUBE-SEP-SOT6P6LQ532M4OEI",
        "--probability 0.50000000000 -j KUBE-SEP-3DGSCWRDZYIA2HSW",
        "-A KUBE-SEP-SOT6P6LQ532M4OEI -p tcp -m comment --comment \"default/nginx-test\" -m tcp -j DNAT --to-destination 10.244.102.138:80",
        "-A KUBE-SEP-3DGSCWRDZYIA2HSW -p tcp -m comment --comment \"default/nginx-test\" -m tcp -j DNAT --to-destination 10.244.184.84:80",
    ] {
        assert!(rules.contains(needle), "missing `{needle}` in:\n{rules}");
    }

    // The ClusterIP answers from all three endpoints; Pods ping across nodes.
    let mut served_by = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (code, response) = lab.curl("pod-nettest", "http://10.109.60.89/");
        assert_eq!(code, 0, "{response}");
        assert!(response.contains("Welcome to nginx!"));
        if let Some(line) = response.lines().find(|l| l.starts_with("X-Served-By:")) {
            served_by.insert(line.trim().to_owned());
        }
        if served_by.len() == 3 {
            break;
        }
    }
    assert_eq!(
        served_by.len(),
        3,
        "all three endpoints answer: {served_by:?}"
    );
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    assert!(lab.ping("pod-nettest", "10.244.5.203"));

    // NodePort from a machine outside the nodes, on every node's address.
    for node_ip in ["172.30.1.43", "172.30.1.80", "172.30.1.38"] {
        let (code, page) = lab.curl("client", &format!("http://{node_ip}:32065/"));
        assert_eq!(code, 0, "NodePort via {node_ip}: {page}");
        assert!(page.contains("<h1>Welcome to Kubernetes!</h1>"), "{page}");
    }

    // The lab's Kubernetes API, through the real kubectl.
    let pods = lab.kubectl(&["get", "pods", "-A", "-o", "wide"]);
    assert!(
        pods.contains("nettest") && pods.contains("10.244.102.137") && pods.contains("cpu2"),
        "{pods}"
    );
    let nodes = lab.kubectl(&["get", "nodes", "-o", "wide"]);
    assert!(nodes.contains("172.30.1.43"), "{nodes}");
    let services = lab.kubectl(&["get", "svc,endpoints,endpointslices", "-A"]);
    assert!(
        services.contains("10.109.60.89") && services.contains("32065"),
        "{services}"
    );

    // Idempotent: a second `up` succeeds and changes nothing that matters. It says how to
    // point tools at the lab's API, since nothing finds it by itself.
    let up = lab.tracer(&["lab", "up", "--scenario", "healthy"]);
    let said = String::from_utf8_lossy(&up.stdout);
    assert!(up.status.success(), "{said}");
    assert!(
        said.contains(&format!("export KUBECONFIG={}", lab.kubeconfig().display())),
        "{said}"
    );
    assert!(lab.ping("pod-nettest", "10.244.184.84"));

    let status = lab.tracer(&["lab", "status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("daemon     running"));

    drop(lab);
    assert_eq!(
        host_before,
        tracer_tests::host_snapshot(),
        "the host namespace is exactly as it was"
    );
}

#[test]
fn wrong_interface_reproduces_the_seeds_incident() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let routes = lab.exec_ok("cpu1", &["ip", "route"]);
    assert!(
        !routes.contains("10.244.102.128/26"),
        "cpu1 has no route to cpu2's block: {routes}"
    );
    assert!(
        lab.exec_ok("cpu1", &["ip", "link", "show", "wlp3s0"])
            .contains("state DOWN")
    );
    let out = lab.exec(
        "pod-nettest",
        &["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.244.184.84"],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("100% packet loss"));
    assert!(
        lab.ping("pod-nettest", "10.244.102.138"),
        "same-node Pod traffic works"
    );
    assert!(lab.ping("cpu2", "172.30.1.43"), "node-to-node ping works");
}

#[test]
fn vxlan_encapsulates_cross_node_traffic_on_the_uplink() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("vxlan");
    let routes = lab.exec_ok("cpu2", &["ip", "route"]);
    assert!(
        routes.contains("10.244.184.64/26 via 10.244.184.64 dev vxlan.calico proto 80 onlink"),
        "{routes}"
    );
    let packets = vxlan_packets_on(&lab, "cpu2", || {
        assert!(lab.ping("pod-nettest", "10.244.184.84"));
        let (code, page) = lab.curl("pod-nettest", "http://10.244.184.84/");
        assert_eq!(code, 0, "{page}");
    });
    assert!(
        packets >= 4,
        "cross-node packets travel encapsulated on enp2s0 ({packets} seen)"
    );
}

#[test]
fn cross_subnet_tunnels_only_towards_the_other_subnet() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("cross-subnet");
    let direct = vxlan_packets_on(&lab, "cpu2", || {
        assert!(lab.ping("pod-nettest", "10.244.184.84"))
    });
    assert_eq!(direct, 0, "cpu2 -> cpu1 is direct routing");
    let tunnelled = vxlan_packets_on(&lab, "cpu2", || {
        assert!(lab.ping("pod-nettest", "10.244.5.203"))
    });
    assert!(tunnelled >= 2, "cpu2 -> gpu1 is VXLAN ({tunnelled} seen)");
    assert!(
        lab.exec_ok("gpu1", &["ip", "-o", "addr"])
            .contains("172.30.2.38/24")
    );
}

#[test]
fn mtu_blackhole_passes_small_packets_and_swallows_large_ones() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("mtu-blackhole");
    assert!(
        lab.exec_ok("pod-nettest", &["ip", "link", "show", "eth0"])
            .contains("mtu 1500")
    );
    let (code, small) = lab.curl("pod-nettest", "http://10.244.184.84/bytes/200");
    assert_eq!(code, 0, "small response arrives: {small}");
    let (code, _) = lab.curl("pod-nettest", "http://10.244.184.84/bytes/200000");
    assert_eq!(code, 28, "a large response never arrives (curl times out)");
}

#[test]
fn no_endpoints_rejects_and_shows_in_the_api() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let before = lab.kubectl(&["get", "endpoints", "nginx-test"]);
    assert!(before.contains("10.244.102.138:80"), "{before}");
    lab.switch("no-endpoints");
    let started = Instant::now();
    let (code, _) = lab.curl("pod-nettest", "http://10.109.60.89/");
    assert_eq!(code, 7, "connection refused by kube-proxy's REJECT rule");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "rejected at once, not timed out"
    );
    // Rejected by kube-proxy's rule (its counter moved), not by a missing route.
    let counters = lab.exec_ok(
        "cpu2",
        &[
            "iptables",
            "-t",
            "filter",
            "-L",
            "KUBE-SERVICES",
            "-v",
            "-n",
            "-x",
        ],
    );
    let reject = counters
        .lines()
        .find(|l| l.contains("default/nginx-test has no endpoints"))
        .unwrap_or_else(|| panic!("REJECT rule present: {counters}"));
    let packets: u64 = reject.split_whitespace().next().unwrap().parse().unwrap();
    assert!(packets >= 1, "the REJECT rule matched: {reject}");
    // The daemon follows the scenario file; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = lab.kubectl(&["get", "endpoints", "nginx-test"]);
        if !after.contains("10.244.102.138:80") {
            break;
        }
        assert!(Instant::now() < deadline, "endpoints still listed: {after}");
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn down_leaves_nothing_and_up_refuses_foreign_namespaces() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let daemon_pid =
        std::fs::read_to_string(format!("/run/{}state/daemon.pid", lab.prefix)).unwrap();
    let out = lab.tracer(&["lab", "down"]);
    assert!(out.status.success());
    let left: Vec<_> = run(&["ip", "netns", "list"])
        .lines()
        .filter(|l| l.starts_with(&lab.prefix))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        !PathBuf::from(format!("/run/{}state", lab.prefix)).exists(),
        "state directory removed"
    );
    assert!(
        !PathBuf::from(format!("/proc/{}", daemon_pid.trim())).exists(),
        "daemon stopped"
    );

    // A namespace with a lab name that the lab did not create: refuse, do not clobber.
    let foreign = lab.ns("cpu1");
    run(&["ip", "netns", "add", &foreign]);
    let out = lab.tracer(&["lab", "up"]);
    let _ = Command::new("ip").args(["netns", "del", &foreign]).status();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not created by `tracer lab`"));

    let out = lab.tracer(&["lab", "up", "--scenario", "sunny"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid scenarios: healthy"));
}
