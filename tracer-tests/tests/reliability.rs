//! Reliability: loss is counted exactly and recovered from, a killed tracer leaves nothing
//! attached, and the API server dying mid-run leaves names usable. Needs root; serial.

use std::{
    net::UdpSocket,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tracer::{
    ebpf::{self, LoadOptions},
    events::{self, EventStream},
    netns,
    probes::tc::{self, AttachMode, Direction},
};
use tracer_tests::{ChildGuard, NetnsPair, follow::Follow, lab::Lab, require_root, run};

/// Sends `count` UDP datagrams from namespace A to B's address, as fast as possible.
fn blast(pair: &NetnsPair, count: u32) {
    let target = format!("{}:9", pair.addr_b);
    netns::run_in(&pair.netns_path_a(), move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        for i in 0..count {
            socket.send_to(&i.to_be_bytes(), &target).unwrap();
        }
    })
    .unwrap();
}

#[test]
fn flooding_the_ring_buffer_is_counted_exactly_and_recovers() {
    if !require_root() {
        return;
    }
    let pair = NetnsPair::create("fd");
    let mut ebpf = ebpf::load(&LoadOptions {
        trace_all: false,
        offsets: None,
        kernel_log: false,
        sample_shift: 0,
    })
    .unwrap();
    events::follow_addresses(&mut ebpf, &[pair.addr_b]).unwrap();
    let mut ebpf = netns::run_in(&pair.netns_path_a(), {
        let iface = pair.if_a.clone();
        move || {
            tc::attach(&mut ebpf, &iface, Direction::Egress, AttachMode::Tcx).unwrap();
            ebpf
        }
    })
    .unwrap();
    let mut stream = EventStream::take(&mut ebpf).unwrap();

    // Nobody reads while 200,000 datagrams leave: the 4 MiB ring buffer must overflow.
    let sent = 200_000u64;
    blast(&pair, u32::try_from(sent).unwrap());
    let mut events = Vec::new();
    stream.drain_into(&mut events);
    let lost = events::loss(&ebpf).unwrap().ringbuf_full;
    let read = events.len() as u64;
    assert!(lost > 0, "the flood overflowed the ring buffer");
    let accounted = read + lost;
    let error = sent.abs_diff(accounted) as f64 / sent as f64;
    assert!(
        error < 0.01,
        "sent {sent}, read {read} + lost {lost} = {accounted}: off by {:.2}%",
        error * 100.0
    );

    // After the flood, with a reader keeping up, nothing more is lost.
    events.clear();
    let before = lost;
    for _ in 0..10 {
        blast(&pair, 100);
        thread::sleep(Duration::from_millis(20));
        stream.drain_into(&mut events);
    }
    assert_eq!(events.len(), 1000, "every event after the flood arrives");
    assert_eq!(
        events::loss(&ebpf).unwrap().ringbuf_full,
        before,
        "no new loss"
    );
}

/// TCX links on the machine. bpftool fails with EAGAIN when a link vanishes while it
/// lists them (our programs are being attached or detached): read again.
fn tcx_links() -> usize {
    for _ in 0..50 {
        let out = Command::new("bpftool")
            .args(["link", "show"])
            .output()
            .expect("bpftool");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("type 11") || l.contains("tcx"))
                .count();
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("bpftool link show kept failing");
}

fn qdiscs(lab: &Lab) -> String {
    ["cpu1", "cpu2", "gpu1", "pod-nettest"]
        .iter()
        .map(|ns| run(&["ip", "netns", "exec", &lab.ns(ns), "tc", "qdisc", "show"]))
        .collect()
}

#[test]
fn sigterm_and_sigkill_leave_no_program_link_or_qdisc_behind() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let links_before = tcx_links();
    let qdiscs_before = qdiscs(&lab);
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let mut child = ChildGuard(
            tracer_tests::tracer()
                .args([
                    "follow",
                    "nettest",
                    "svc/nginx-test",
                    "--output",
                    "json",
                    "--kubeconfig",
                ])
                .arg(lab.kubeconfig())
                .args(["--netns-prefix", &lab.prefix])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while tcx_links() < links_before + 10 {
            assert!(Instant::now() < deadline, "follow attached its links");
            thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(i32::try_from(child.0.id()).unwrap(), signal) };
        let status = child.0.wait().unwrap();
        if signal == libc::SIGTERM {
            assert!(status.success(), "SIGTERM ends follow cleanly: {status}");
        }
        // Links of an earlier test may still be being freed when `links_before` was
        // counted (the kernel frees them asynchronously): only more is a leftover.
        let deadline = Instant::now() + Duration::from_secs(5);
        while tcx_links() > links_before {
            assert!(
                Instant::now() < deadline,
                "links left after signal {signal}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            qdiscs(&lab),
            qdiscs_before,
            "no qdisc added or removed (signal {signal})"
        );
    }
}

#[test]
fn the_api_server_going_away_mid_run_keeps_names_and_says_they_may_be_stale() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    let pid = std::fs::read_to_string(format!("/run/{}state/daemon.pid", lab.prefix)).unwrap();
    run(&["kill", "-9", pid.trim()]);
    thread::sleep(Duration::from_secs(2));
    assert!(
        lab.ping("pod-nettest", "10.244.184.84"),
        "the data path does not depend on the API"
    );
    let (journeys, stderr) = follow.stop_with_stderr();
    assert!(
        stderr.contains("names may be stale"),
        "the summary says names may be stale: {stderr}"
    );
    let named = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-request")
        .all(|j| j["from"]["pod"] == "default/nettest" && j["verdict"] == "delivered");
    assert!(
        named && !journeys.is_empty(),
        "journeys still named after the API died: {journeys:#?}"
    );
}

/// The whole cluster goes and comes back under a running follow (`lab down`, `lab up`: the
/// API server, every namespace and interface): the run says so when it happens, attaches
/// to the new interfaces, re-resolves the Pods, and the journeys after the return are
/// delivered and named, as before.
#[test]
fn follow_survives_the_cluster_going_away_and_coming_back() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde"]);
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    let down = lab.tracer(&["lab", "down"]);
    assert!(down.status.success());
    // Prompt by design: a refused connection fails the watch at once.
    assert!(
        follow.wait_for_stderr("stopped answering", Duration::from_secs(10)),
        "said when the API went: {}",
        follow.stderr_so_far()
    );
    let up = lab.tracer(&["lab", "up", "--scenario", "healthy"]);
    assert!(up.status.success());
    // The watch retries at most every 2 s and namespaces are polled every 2 s.
    assert!(
        follow.wait_for_stderr("answers again", Duration::from_secs(15)),
        "said when the API came back: {}",
        follow.stderr_so_far()
    );
    assert!(
        follow.wait_for_stderr("host side of Pod default/nettest", Duration::from_secs(15)),
        "the new veths are watched: {}",
        follow.stderr_so_far()
    );
    let returned = tracer::clock::monotonic_ns();
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    let (journeys, stderr) = follow.stop_with_stderr();
    let after: Vec<_> = journeys
        .iter()
        .filter(|j| j["start_ns"].as_u64().unwrap_or(0) >= returned)
        .collect();
    assert!(!after.is_empty(), "journeys after the return: {stderr}");
    for j in &after {
        assert_eq!(j["verdict"], "delivered", "{j:#}");
        assert!(
            [&j["from"]["pod"], &j["to"]["pod"]]
                .iter()
                .all(|p| p.as_str().is_some_and(|p| p.starts_with("default/"))),
            "named: {j:#}"
        );
    }
    assert!(
        stderr.contains("went away 1 time(s)") && stderr.contains("resolved afresh"),
        "the summary says the cluster went and came back: {stderr}"
    );
}
