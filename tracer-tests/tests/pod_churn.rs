//! Pods replaced while following; IP reuse. `tracer lab replace-pod` replaces a Deployment's
//! Pod the way its ReplicaSet does, and `kubectl`, `curl` and kube-proxy's rules all see the
//! rollout; a running `tracer follow` hooks the new Pod's veth and names its hops by the new
//! Pod, across a replacement with a new address and one that reuses the old address. Each
//! test builds its own lab (unique prefix, taken down by a guard even when it fails). Needs
//! root; serial.

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::Value;
// CLOCK_MONOTONIC: the clock of a journey's `start_ns`.
use tracer::clock::monotonic_ns;
use tracer_tests::{
    ChildGuard,
    follow::{Follow, hops},
    lab::Lab,
    require_root,
};

const SERVICE: &str = "http://10.109.60.89/";
const CPU1_POD: &str = "nginx-test-7d9c4b6f5-abcde";
const CPU1_IP: &str = "10.244.184.84";
const GPU1_POD: &str = "nginx-test-7d9c4b6f5-q7w4n";
const GPU1_IP: &str = "10.244.5.203";

/// The Pod `replace-pod` made: its name and address, from the command's one line
/// (`replaced OLD (IP, NODE) with NEW (IP, NODE) in …`).
struct Replaced {
    name: String,
    ip: String,
}

fn replace(lab: &Lab, pod: &str, reuse_ip: bool) -> Replaced {
    let mut args = vec!["lab", "replace-pod", pod];
    if reuse_ip {
        args.push("--reuse-ip");
    }
    let out = lab.tracer(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replace-pod {pod}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words.get(..2), Some(&["replaced", pod][..]), "{stdout}");
    let with = words.iter().position(|w| *w == "with").expect("with");
    Replaced {
        name: words[with + 1].to_owned(),
        ip: words[with + 2]
            .trim_start_matches('(')
            .trim_end_matches(',')
            .to_owned(),
    }
}

/// The host-side veth of a lab Pod, from `lab status`.
fn host_veth(lab: &Lab, pod: &str) -> String {
    let out = lab.tracer(&["lab", "status"]);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    status
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pod))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("{pod} in lab status: {status}"))
        .to_owned()
}

/// `curl` from nettest until stopped, counting failures: the Service must keep answering.
struct CurlLoop {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU32>,
    total: Arc<AtomicU32>,
    thread: Option<thread::JoinHandle<()>>,
}

impl CurlLoop {
    fn start(lab: &Lab) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicU32::new(0));
        let total = Arc::new(AtomicU32::new(0));
        let netns = lab.ns("pod-nettest");
        let thread = {
            let (stop, failures, total) = (stop.clone(), failures.clone(), total.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let ok = Command::new("ip")
                        .args(["netns", "exec", &netns, "curl", "-sf", "-o", "/dev/null"])
                        .args(["-m", "3", SERVICE])
                        .status()
                        .is_ok_and(|s| s.success());
                    total.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Self {
            stop,
            failures,
            total,
            thread: Some(thread),
        }
    }

    /// Stops; returns (requests, failures).
    fn finish(mut self) -> (u32, u32) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("curl loop");
        }
        (
            self.total.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

impl Drop for CurlLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn replace_pod_is_a_rollout_that_kubectl_curl_and_kube_proxy_see() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let mut watch = ChildGuard(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(lab.kubeconfig())
            .args([
                "get",
                "pods",
                "--watch",
                "--output-watch-events",
                "--no-headers",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get pods --watch"),
    );
    let events = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    {
        let stdout = watch.0.stdout.take().expect("stdout");
        let events = events.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                if let (Some(event), Some(name)) = (words.next(), words.next()) {
                    events
                        .lock()
                        .unwrap()
                        .push((event.to_owned(), name.to_owned()));
                }
            }
        });
    }
    // The watch lists the six Pods first.
    let listed = (0..100).any(|_| {
        thread::sleep(Duration::from_millis(50));
        events.lock().unwrap().len() >= 6
    });
    assert!(listed, "{:?}", events.lock().unwrap());

    let old_veth = host_veth(&lab, CPU1_POD);
    let curls = CurlLoop::start(&lab);
    thread::sleep(Duration::from_millis(500));
    let fresh = replace(&lab, CPU1_POD, false);
    thread::sleep(Duration::from_millis(500));
    let reused = replace(&lab, GPU1_POD, true);
    thread::sleep(Duration::from_millis(500));
    let (requests, failures) = curls.finish();
    assert!(requests >= 10, "only {requests} requests");
    assert_eq!(
        failures, 0,
        "{failures} of {requests} requests to the Service failed"
    );

    // New names in the ReplicaSet's style, a new address from cpu1's block, the old one
    // on gpu1.
    for new in [&fresh, &reused] {
        let suffix = new
            .name
            .strip_prefix("nginx-test-7d9c4b6f5-")
            .expect("RS name");
        assert_eq!(suffix.len(), 5, "{}", new.name);
        assert_ne!(new.name, CPU1_POD);
        assert_ne!(new.name, GPU1_POD);
    }
    assert_eq!(fresh.ip, "10.244.184.65");
    assert_eq!(reused.ip, GPU1_IP);

    // kubectl saw the rollouts as watch events, in a Deployment's order: the new Pod
    // before the old one goes, except when it takes the old one's address.
    let seen = (0..100).any(|_| {
        thread::sleep(Duration::from_millis(50));
        events.lock().unwrap().len() >= 10
    });
    let events = events.lock().unwrap().clone();
    assert!(seen, "{events:?}");
    let at = |event: &str, name: &str| {
        events
            .iter()
            .position(|(e, n)| e == event && n == name)
            .unwrap_or_else(|| panic!("{event} {name} in {events:?}"))
    };
    assert!(
        at("ADDED", &fresh.name) < at("DELETED", CPU1_POD),
        "{events:?}"
    );
    assert!(
        at("DELETED", GPU1_POD) < at("ADDED", &reused.name),
        "{events:?}"
    );

    // The API: Pods, Endpoints and the EndpointSlice name the new Pods.
    let pods = lab.kubectl(&["get", "pods", "-o", "wide", "--no-headers"]);
    assert!(
        !pods.contains(CPU1_POD) && !pods.contains(GPU1_POD),
        "{pods}"
    );
    for (new, node) in [(&fresh, "cpu1"), (&reused, "gpu1")] {
        let line = pods
            .lines()
            .find(|l| l.starts_with(&new.name))
            .unwrap_or_else(|| panic!("{} in {pods}", new.name));
        assert!(line.contains(&new.ip) && line.contains(node), "{line}");
    }
    let slices: Value = serde_json::from_str(&lab.kubectl(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=nginx-test",
        "-o",
        "json",
    ]))
    .expect("JSON");
    let endpoints: BTreeSet<(String, String)> = slices["items"][0]["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or_default().to_owned(),
                e["targetRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        BTreeSet::from([
            (
                "10.244.102.138".to_owned(),
                "nginx-test-7d9c4b6f5-x2k8p".to_owned()
            ),
            (fresh.ip.clone(), fresh.name.clone()),
            (reused.ip.clone(), reused.name.clone()),
        ])
    );
    let legacy = lab.kubectl(&["get", "endpoints", "nginx-test", "--no-headers"]);
    assert!(
        legacy.contains("10.244.184.65:80") && !legacy.contains(CPU1_IP),
        "{legacy}"
    );

    // kube-proxy on every node DNATs to the new addresses only.
    for node in ["cpu1", "cpu2", "gpu1"] {
        let nat = lab.exec_ok(node, &["iptables-save", "-t", "nat"]);
        assert!(
            nat.contains("--to-destination 10.244.184.65:80"),
            "{node}: {nat}"
        );
        assert!(nat.contains(&format!("--to-destination {GPU1_IP}:80")));
        assert!(!nat.contains(&format!("--to-destination {CPU1_IP}:80")));
    }

    // The old Pod's namespace, veth and route are gone; the new ones are wired.
    let namespaces = tracer_tests::run(&["ip", "netns", "list"]);
    assert!(!namespaces.contains(&lab.ns(&format!("pod-{CPU1_POD}"))));
    assert!(!namespaces.contains(&lab.ns(&format!("pod-{GPU1_POD}"))));
    assert!(namespaces.contains(&lab.ns(&format!("pod-{}", fresh.name))));
    let links = lab.exec_ok("cpu1", &["ip", "-o", "link"]);
    assert!(!links.contains(&old_veth), "{links}");
    assert!(links.contains(&host_veth(&lab, &fresh.name)), "{links}");
    let routes = lab.exec_ok("cpu1", &["ip", "route"]);
    assert!(!routes.contains(CPU1_IP), "{routes}");
    assert!(routes.contains("10.244.184.65 dev cali"), "{routes}");
    let address = lab.exec_ok(&format!("pod-{}", reused.name), &["ip", "-o", "addr"]);
    assert!(address.contains(&format!("{GPU1_IP}/32")), "{address}");

    // The new Pods answer HTTP themselves.
    for new in [&fresh, &reused] {
        let (code, page) = lab.curl("pod-nettest", &format!("http://{}/", new.ip));
        assert_eq!(code, 0, "{page}");
        assert!(
            page.contains(&format!("X-Served-By: {}", new.name)),
            "{page}"
        );
    }
    let status = String::from_utf8_lossy(&lab.tracer(&["lab", "status"]).stdout).into_owned();
    assert!(
        status.contains("REPLACED") && status.contains(CPU1_POD),
        "{status}"
    );

    // A scenario switch keeps the replaced Pods, and down leaves nothing.
    lab.switch("vxlan");
    let (code, page) = lab.curl("pod-nettest", &format!("http://{}/", fresh.ip));
    assert_eq!(code, 0, "{page}");
    let out = lab.tracer(&["lab", "down"]);
    assert!(out.status.success());
    let namespaces = tracer_tests::run(&["ip", "netns", "list"]);
    assert!(!namespaces.contains(&lab.prefix), "{namespaces}");
    assert!(!std::path::Path::new(&format!("/run/{}state", lab.prefix)).exists());
}

fn curl_ok(lab: &Lab, url: &str) {
    let (code, page) = lab.curl("pod-nettest", url);
    assert_eq!(code, 0, "{url}: {page}");
}

/// Journeys of this lab (observed by a hook in one of its namespaces: a drop the kernel
/// reports from a namespace of another lab on this machine has no node) that started in
/// `[from, to)`.
fn started_in(journeys: &[Value], from: u64, to: u64) -> Vec<&Value> {
    journeys
        .iter()
        .filter(|j| {
            let start = j["start_ns"].as_u64().unwrap_or(0);
            let ours = j["hops"].as_array().is_some_and(|h| {
                h.iter()
                    .any(|h| h["observed"] == true && !h["node"].is_null())
            });
            ours && (from..to).contains(&start)
        })
        .collect()
}

fn syns<'a>(journeys: &[&'a Value]) -> Vec<&'a Value> {
    journeys
        .iter()
        .copied()
        .filter(|j| j["direction"] == "request" && j["summary"] == "SYN")
        .collect()
}

/// The Pod a request was delivered to, checked against its DNAT hop when it has one.
fn delivered_to(syn: &Value) -> (String, String) {
    assert_eq!(syn["verdict"], "delivered", "{syn:#}");
    let delivery = hops(syn, "pod_delivery");
    assert_eq!(delivery.len(), 1, "{syn:#}");
    let pod = delivery[0]["pod"].as_str().expect("pod").to_owned();
    let dst = syn["hops"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find_map(|h| h["packet"]["dst"].as_str())
        .expect("destination")
        .to_owned();
    if let Some(dnat) = hops(syn, "service_dnat").first() {
        assert_eq!(
            dnat["nat"]["endpoint_pod"].as_str(),
            Some(pod.as_str()),
            "{syn:#}"
        );
        assert_eq!(dnat["nat"]["after"]["dst"].as_str(), Some(dst.as_str()));
        assert_eq!(dnat["nat"]["endpoints_total"], 3, "{syn:#}");
    }
    (pod, dst)
}

/// The host-side veth hop into the endpoint Pod.
fn veth_into<'a>(syn: &'a Value, pod: &str) -> Option<&'a Value> {
    hops(syn, "veth_crossing")
        .into_iter()
        .find(|h| h["pod"] == pod && h["interface"] != "cali37b956d7204")
}

#[test]
fn follow_names_the_new_pod_after_a_rollout_and_after_ip_reuse() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let old_cpu1_veth = host_veth(&lab, CPU1_POD);
    let old_gpu1_veth = host_veth(&lab, GPU1_POD);
    let recording = std::env::temp_dir().join(format!("tracer-churn-{}.trace", std::process::id()));
    let _ = std::fs::remove_file(&recording);
    let record_arg = recording.to_str().unwrap().to_owned();
    let follow = Follow::start(
        &lab,
        &["nettest", "svc/nginx-test", "--record", &record_arg],
    );
    let began = monotonic_ns();
    for _ in 0..15 {
        curl_ok(&lab, SERVICE);
    }
    curl_ok(&lab, &format!("http://{CPU1_IP}/"));
    // Journeys close 0.3 s after their last packet: let them be named before the change.
    thread::sleep(Duration::from_millis(1500));

    // A rollout with a new address.
    let first_change = monotonic_ns();
    let fresh = replace(&lab, CPU1_POD, false);
    let fresh_veth = host_veth(&lab, &fresh.name);
    assert!(
        follow.wait_for_stderr(&fresh_veth, Duration::from_secs(15)),
        "the new veth is watched: {}",
        follow.stderr_so_far()
    );
    let first_ready = monotonic_ns();
    for _ in 0..30 {
        curl_ok(&lab, SERVICE);
    }
    for _ in 0..3 {
        curl_ok(&lab, &format!("http://{}/", fresh.ip));
    }
    thread::sleep(Duration::from_millis(1500));

    // A rollout that hands the old address to the new Pod.
    let second_change = monotonic_ns();
    let reused = replace(&lab, GPU1_POD, true);
    assert_eq!(reused.ip, GPU1_IP);
    let reused_veth = host_veth(&lab, &reused.name);
    assert!(
        follow.wait_for_stderr(&reused_veth, Duration::from_secs(15)),
        "the new veth is watched: {}",
        follow.stderr_so_far()
    );
    let second_ready = monotonic_ns();
    for _ in 0..30 {
        curl_ok(&lab, SERVICE);
    }
    for _ in 0..3 {
        curl_ok(&lab, &format!("http://{GPU1_IP}/"));
    }
    let (journeys, stderr) = follow.stop_with_stderr();

    // Before any change: the seed's Pods, by their old veths.
    let before = started_in(&journeys, began, first_change);
    let requests = syns(&before);
    assert_eq!(requests.len(), 16, "{before:#?}");
    let mut reached = BTreeSet::new();
    for syn in &requests {
        let (pod, dst) = delivered_to(syn);
        if dst == CPU1_IP {
            assert_eq!(pod, format!("default/{CPU1_POD}"), "{syn:#}");
            let veth = veth_into(syn, &pod).expect("the old veth hop");
            assert_eq!(veth["interface"], old_cpu1_veth.as_str(), "{syn:#}");
        }
        reached.insert(pod);
    }
    assert!(
        reached.contains(&format!("default/{CPU1_POD}")),
        "{reached:?}"
    );
    for journey in &before {
        let text = journey.to_string();
        assert!(
            !text.contains(&fresh.name) && !text.contains(&reused.name),
            "{journey:#}"
        );
    }

    // After the first rollout: the new Pod, by its new veth; never the old Pod.
    let middle = started_in(&journeys, first_ready, second_change);
    let requests = syns(&middle);
    assert_eq!(requests.len(), 33, "{middle:#?}");
    let mut to_fresh = 0;
    for syn in &requests {
        let (pod, dst) = delivered_to(syn);
        if dst == fresh.ip {
            to_fresh += 1;
            assert_eq!(pod, format!("default/{}", fresh.name), "{syn:#}");
            let veth = veth_into(syn, &pod).expect("the new veth hop");
            assert_eq!(veth["interface"], fresh_veth.as_str(), "{syn:#}");
            assert_eq!(veth["node"], "cpu1");
        }
        assert_ne!(dst, CPU1_IP, "{syn:#}");
    }
    assert!(to_fresh >= 3, "{to_fresh} requests reached the new Pod");
    for journey in &middle {
        let text = journey.to_string();
        assert!(
            !text.contains(CPU1_POD) && !text.contains(&old_cpu1_veth),
            "{journey:#}"
        );
    }

    // After the address was reused: the new Pod by that address, never the old name.
    let after = started_in(&journeys, second_ready, u64::MAX);
    let requests = syns(&after);
    assert_eq!(requests.len(), 33, "{after:#?}");
    let mut to_reused = 0;
    for syn in &requests {
        let (pod, dst) = delivered_to(syn);
        if dst == GPU1_IP {
            to_reused += 1;
            assert_eq!(pod, format!("default/{}", reused.name), "{syn:#}");
            let veth = veth_into(syn, &pod).expect("the new veth hop");
            assert_eq!(veth["interface"], reused_veth.as_str(), "{syn:#}");
            assert_eq!(veth["node"], "gpu1");
            // kube-proxy names the endpoint chain by address: the same chain, a new Pod.
            if let Some(dnat) = hops(syn, "service_dnat").first() {
                assert_eq!(dnat["nat"]["chain"], "KUBE-SEP-ZQGHP4RVI2IXV53C");
            }
        }
    }
    assert!(
        to_reused >= 3,
        "{to_reused} requests reached the reused address"
    );
    let replies_from_reused: Vec<_> = after
        .iter()
        .filter(|j| j["direction"] == "reply" && j["original"]["src"] == GPU1_IP)
        .collect();
    assert!(!replies_from_reused.is_empty());
    for reply in replies_from_reused {
        assert_eq!(
            reply["from"]["pod"],
            format!("default/{}", reused.name),
            "{reply:#}"
        );
    }
    for journey in &after {
        let text = journey.to_string();
        assert!(
            !text.contains(GPU1_POD) && !text.contains(&old_gpu1_veth) && !text.contains(CPU1_POD),
            "{journey:#}"
        );
    }

    // The run went on through both rollouts, said what it did, and its summary adds up.
    for (what, needle) in [
        ("now also following", fresh.ip.as_str()),
        ("now also watching", fresh_veth.as_str()),
        ("no longer watching", old_cpu1_veth.as_str()),
        ("no longer watching", old_gpu1_veth.as_str()),
        ("now also watching", reused_veth.as_str()),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(what) && l.contains(needle)),
            "{what} … {needle} in {stderr}"
        );
    }
    let summary = stderr
        .lines()
        .find(|l| l.contains(" journeys: "))
        .unwrap_or_else(|| panic!("a summary in {stderr}"));
    let number = |after: &str| -> u64 {
        summary
            .split(after)
            .next()
            .and_then(|s| s.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("`{after}` in {summary}"))
    };
    let count = |verdict: &str| journeys.iter().filter(|j| j["verdict"] == verdict).count() as u64;
    assert_eq!(number(" journeys:"), journeys.len() as u64, "{summary}");
    assert_eq!(number(" delivered"), count("delivered"), "{summary}");
    assert_eq!(number(" dropped"), count("dropped"), "{summary}");
    assert_eq!(number(" incomplete"), count("incomplete"), "{summary}");
    assert!(!summary.contains("stale"), "{summary}");
    assert!(!stderr.contains("not watching"), "{stderr}");

    // The recording carries the new names and namespaces too: its replay names the
    // replacement Pods and their veths, as the live run did.
    let replay = tracer_tests::tracer()
        .args(["replay", "--output", "json"])
        .arg(&recording)
        .output()
        .expect("tracer replay");
    let _ = std::fs::remove_file(&recording);
    assert!(replay.status.success());
    let replayed: Vec<Value> =
        tracer_tests::follow::journeys_of(&String::from_utf8_lossy(&replay.stdout));
    // One pipeline for live and replay: the replay prints exactly what the live session
    // printed, Pods replaced mid-session and all.
    assert_eq!(replayed.len(), journeys.len(), "as many journeys as live");
    for (live, again) in journeys.iter().zip(&replayed) {
        assert_eq!(again, live, "replay differs from live");
    }
    for (pod, veth, from, to) in [
        (&fresh.name, &fresh_veth, first_ready, second_change),
        (&reused.name, &reused_veth, second_ready, u64::MAX),
    ] {
        let delivered: Vec<_> = syns(&started_in(&replayed, from, to))
            .into_iter()
            .filter(|syn| delivered_to(syn).0 == format!("default/{pod}"))
            .collect();
        assert!(
            delivered.len() >= 3,
            "replay names {pod}: {}",
            delivered.len()
        );
        assert!(
            delivered
                .iter()
                .all(|syn| veth_into(syn, &format!("default/{pod}"))
                    .is_some_and(|h| h["interface"] == veth.as_str())),
            "replay names {veth}"
        );
    }
}
