//! Per-node agents and the offline merge end to end (issue #13): on the lab, each node's
//! `tracer agent --node N --record N.trace` runs beside one `tracer follow --record` of
//! every node, on the same traffic; `tracer replay cpu1.trace cpu2.trace gpu1.trace` must
//! tell the journeys the whole recording tells, with hops of several nodes in one journey,
//! while each node's recording alone holds only its own node's hops. Needs root; serial.

use std::path::PathBuf;

use serde_json::Value;
use tracer_tests::{follow::Follow, lab::Lab, require_root};

const NODES: [&str; 3] = ["cpu1", "cpu2", "gpu1"];

/// A directory of this test's own, removed also when the test fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-agents-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn replay(files: &[String]) -> (Vec<Value>, Value) {
    replay_in_order(files)
}

/// Replays `files` stitched, the first one's clock the reference.
fn replay_in_order(files: &[String]) -> (Vec<Value>, Value) {
    let out = tracer_tests::tracer()
        .args(["replay", "--output", "json"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay {files:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    (
        tracer_tests::follow::journeys_of(&text),
        tracer_tests::follow::summary_of(&text),
    )
}

/// What must agree between the whole and the stitched: the packet, its fate, and where
/// each hop was seen. Not the times: each process's programs run one after the other on a
/// shared interface, so each stamps a hop a few microseconds apart.
fn key(journey: &Value) -> String {
    let diagnosis = journey["diagnosis"].as_str().unwrap_or_default();
    let diagnosis = match diagnosis.rsplit_once(", ") {
        Some((head, duration))
            if duration.ends_with('s') && duration.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            head
        }
        _ => diagnosis,
    };
    let hops: Vec<String> = journey["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}:{}:{}", h["node"], h["kind"], h["interface"]))
        .collect();
    format!(
        "{} {} {} | {}",
        journey["summary"],
        journey["verdict"],
        diagnosis,
        hops.join(" ")
    )
}

/// Each stitched source's name and whether it ended cleanly, from a JSON summary.
fn ended_cleanly(summary: &Value) -> Vec<(String, bool)> {
    summary["sources"]
        .as_array()
        .expect("each source's account")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["ended_cleanly"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn nodes_of(journey: &Value) -> std::collections::BTreeSet<String> {
    journey["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["observed"] == true)
        .filter_map(|h| h["node"].as_str().map(str::to_owned))
        .collect()
}

/// What one session recorded by node tells: the whole recording's journeys, the stitched
/// ones, and each node's alone.
struct Told {
    whole: Vec<Value>,
    stitched: Vec<Value>,
    alone: Vec<(String, Vec<Value>)>,
}

/// Runs one `follow --record` of every node and one agent per node while `traffic` runs.
fn record_by_node(
    lab: &Lab,
    scratch: &Scratch,
    from: &str,
    to: &str,
    traffic: impl FnOnce(),
) -> Told {
    let whole_file = scratch.file("whole.trace");
    let whole = Follow::start(
        lab,
        &[from, to, "--record", &whole_file, "--output", "summary"],
    );
    let files: Vec<String> = NODES
        .iter()
        .map(|n| scratch.file(&format!("{n}.trace")))
        .collect();
    let agents: Vec<Follow> = NODES
        .iter()
        .zip(&files)
        .map(|(node, file)| Follow::agent(lab, &[from, to, "--node", node, "--record", file]))
        .collect();
    for agent in &agents {
        assert!(
            agent.stderr_so_far().contains("ready: watching"),
            "{}",
            agent.stderr_so_far()
        );
    }
    traffic();
    for agent in agents {
        agent.stop_raw();
    }
    whole.stop_raw();
    let (whole, _) = replay(&[whole_file]);
    let (stitched, summary) = replay(&files);
    let notes = summary["notes"].to_string();
    assert!(
        notes.contains("stitched 3 recordings (cpu1, cpu2, gpu1)"),
        "{notes}"
    );
    let alone = NODES
        .iter()
        .zip(&files)
        .map(|(node, file)| ((*node).to_owned(), replay(std::slice::from_ref(file)).0))
        .collect();
    Told {
        whole,
        stitched,
        alone,
    }
}

fn assert_same_journeys(whole: &[Value], stitched: &[Value]) {
    let mut want: Vec<String> = whole.iter().map(key).collect();
    let mut got: Vec<String> = stitched.iter().map(key).collect();
    want.sort();
    got.sort();
    let only_whole: Vec<&String> = want.iter().filter(|k| !got.contains(k)).collect();
    let only_stitched: Vec<&String> = got.iter().filter(|k| !want.contains(k)).collect();
    assert!(
        want == got,
        "the stitched per-node recordings tell what the whole one tells; {} vs {} journeys\nonly in the whole: {only_whole:#?}\nonly stitched: {only_stitched:#?}",
        want.len(),
        got.len()
    );
}

fn assert_each_node_alone_sees_only_itself(alone: &[(String, Vec<Value>)]) {
    for (node, journeys) in alone {
        // nettest's node sees every packet; the others those sent to their endpoints.
        assert!(!journeys.is_empty() || node != "cpu2", "{node} saw nothing");
        for journey in journeys {
            let seen = nodes_of(journey);
            assert!(
                seen.iter().all(|n| n == node),
                "{node}'s recording holds hops of {seen:?}: {}",
                key(journey)
            );
        }
    }
}

/// The seed's incident, told across nodes: every reply dies on cpu1 for want of a route to
/// cpu2's Pod block, and every request is one journey of cpu2's and cpu1's hops.
fn assert_the_seed_incident(journeys: &[Value]) {
    let of = |summary: &str| -> Vec<&Value> {
        journeys
            .iter()
            .filter(|j| j["summary"] == summary)
            .collect()
    };
    let replies = of("echo-reply");
    assert!(!replies.is_empty(), "{journeys:#?}");
    for reply in &replies {
        assert_eq!(reply["verdict"], "dropped", "{reply:#}");
        assert_eq!(reply["drop"]["node"], "cpu1");
        let hint = reply["drop"]["hint"].as_str().unwrap();
        assert!(hint.contains("10.244.102.128/26"), "{hint}");
    }
    let requests = of("echo-request");
    assert!(!requests.is_empty(), "{journeys:#?}");
    for request in requests {
        assert_eq!(request["verdict"], "delivered", "{request:#}");
        let seen = nodes_of(request);
        assert!(
            seen.contains("cpu1") && seen.contains("cpu2"),
            "one journey of cpu2's and cpu1's hops: {seen:?}"
        );
    }
}

#[test]
fn the_seed_incident_from_three_node_recordings_stitched() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let scratch = Scratch::new("seed");
    let Told {
        whole,
        stitched,
        alone,
    } = record_by_node(
        &lab,
        &scratch,
        "nettest",
        "nginx-test-7d9c4b6f5-abcde",
        || {
            assert!(!lab.ping("pod-nettest", "10.244.184.84"));
        },
    );
    assert_same_journeys(&whole, &stitched);
    assert_each_node_alone_sees_only_itself(&alone);
    assert_the_seed_incident(&stitched);
}

#[test]
fn service_journeys_with_their_dnat_from_three_node_recordings_stitched() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let scratch = Scratch::new("service");
    let Told {
        whole,
        stitched,
        alone,
    } = record_by_node(&lab, &scratch, "nettest", "svc/nginx-test", || {
        // kube-proxy picks an endpoint at random: twelve connections leave cpu2 for
        // another node's endpoint all but certainly ((1/3)^12 that none does).
        for _ in 0..12 {
            assert_eq!(lab.curl("pod-nettest", "http://10.109.60.89/").0, 0);
        }
    });
    assert_same_journeys(&whole, &stitched);
    assert_each_node_alone_sees_only_itself(&alone);
    let crossing: Vec<&Value> = stitched
        .iter()
        .filter(|j| j["verdict"] == "delivered" && nodes_of(j).len() > 1)
        .collect();
    assert!(!crossing.is_empty(), "{stitched:#?}");
    assert!(
        stitched.iter().any(|j| j["hops"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "service_dnat" && h["service"] == "default/nginx-test")),
        "a Service hop named: {stitched:#?}"
    );
}

#[test]
fn a_node_whose_clock_is_40_ms_off_is_set_right_by_the_packets_that_crossed() {
    if !require_root() {
        return;
    }
    let lab = Lab::up_with(&["--scenario", "healthy", "--clock-offset", "cpu1=+40ms"]);
    let scratch = Scratch::new("clock");
    let Told { whole, .. } = record_by_node(
        &lab,
        &scratch,
        "nettest",
        "nginx-test-7d9c4b6f5-abcde",
        || {
            for _ in 0..3 {
                assert!(lab.ping("pod-nettest", "10.244.184.84"));
            }
        },
    );
    // cpu2's clock is the reference (gpu1 shares it: one kernel, no offset): cpu1's runs
    // 40 ms ahead of it.
    let files: Vec<String> = ["cpu2", "cpu1", "gpu1"]
        .iter()
        .map(|n| scratch.file(&format!("{n}.trace")))
        .collect();
    let (stitched, summary) = replay_in_order(&files);
    assert_same_journeys(&whole, &stitched);
    let clocks = summary["clocks"].as_array().expect("clocks in the summary");
    let cpu1 = clocks
        .iter()
        .find(|c| c["machine"] == "cpu1")
        .unwrap_or_else(|| panic!("{summary:#}"));
    assert_eq!(cpu1["reference"], "cpu2+gpu1");
    eprintln!("cpu1's clock as the crossings show it: {cpu1}");
    let offset = cpu1["offset_ns"].as_i64().unwrap();
    let error = cpu1["error_ns"]
        .as_i64()
        .expect("crossings both ways: an error");
    assert!(
        (offset - 40_000_000).abs() <= 1_000_000 && error < 1_000_000,
        "cpu1 is 40 ms ahead: {cpu1}"
    );
    assert!(
        summary["notes"].to_string().contains("cpu1's clock is"),
        "{summary:#}"
    );
    // In causal order: no hop before the one it follows.
    for journey in &stitched {
        let times: Vec<i64> = journey["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["t_ns"].as_i64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}", key(journey));
    }
}

#[test]
fn a_node_agent_killed_mid_run_is_named_and_the_others_go_on() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let scratch = Scratch::new("killed");
    let files: Vec<String> = NODES
        .iter()
        .map(|n| scratch.file(&format!("{n}.trace")))
        .collect();
    let mut agents: Vec<Option<Follow>> = NODES
        .iter()
        .zip(&files)
        .map(|(node, file)| {
            Some(Follow::agent(
                &lab,
                &[
                    "nettest",
                    "nginx-test-7d9c4b6f5-abcde",
                    "--node",
                    node,
                    "--record",
                    file,
                ],
            ))
        })
        .collect();
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    // cpu1's agent dies as `kill -9` or the OOM killer would end it.
    agents[0].take().unwrap().kill();
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    for agent in agents.into_iter().flatten() {
        agent.stop_raw();
    }
    let (journeys, summary) = replay(&files);
    assert_eq!(
        ended_cleanly(&summary),
        vec![
            ("cpu1".to_owned(), false),
            ("cpu2".to_owned(), true),
            ("gpu1".to_owned(), true)
        ]
    );
    let notes = summary["notes"].to_string();
    assert!(
        notes.contains("cpu1: recording has no end record"),
        "{notes}"
    );
    // Before the kill, requests are whole; after it, cpu2 still shows them leave.
    let requests: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-request")
        .collect();
    assert!(
        requests.iter().any(|j| j["verdict"] == "delivered"),
        "{journeys:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|j| j["verdict"] == "incomplete" && nodes_of(j).contains("cpu2")),
        "after the kill: {journeys:#?}"
    );
}

#[test]
fn follow_through_streaming_agents_tells_the_journeys_live() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let scratch = Scratch::new("streaming");
    let (from, to) = ("nettest", "nginx-test-7d9c4b6f5-abcde");
    let whole_file = scratch.file("whole.trace");
    let whole = Follow::start(
        &lab,
        &[from, to, "--record", &whole_file, "--output", "summary"],
    );
    // Each agent listens on a port of its own choosing and says which.
    let agents: Vec<Follow> = NODES
        .iter()
        .map(|node| Follow::agent(&lab, &[from, to, "--node", node, "--listen", "127.0.0.1:0"]))
        .collect();
    let addresses: Vec<String> = agents
        .iter()
        .map(|agent| {
            let said = "waiting for a reader on ";
            assert!(
                agent.wait_for_stderr(said, std::time::Duration::from_secs(10)),
                "{}",
                agent.stderr_so_far()
            );
            let stderr = agent.stderr_so_far();
            let at = stderr.find(said).unwrap() + said.len();
            stderr[at..].split_whitespace().next().unwrap().to_owned()
        })
        .collect();
    let mut args = vec![from, to];
    for address in &addresses {
        args.extend(["--agent", address.as_str()]);
    }
    // The reader attaches nothing: it only reads the agents' streams.
    let live = Follow::start(&lab, &args);
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    // gpu1's agent dies (kill -9): the others go on, and the reader says so.
    let mut agents: Vec<Option<Follow>> = agents.into_iter().map(Some).collect();
    agents[2].take().unwrap().kill();
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    let (text, stderr) = live.stop_raw();
    let journeys = tracer_tests::follow::journeys_of(&text);
    let summary = tracer_tests::follow::summary_of(&text);
    for agent in agents.into_iter().flatten() {
        agent.stop_raw();
    }
    whole.stop_raw();
    let (recorded, _) = replay(&[whole_file]);
    assert_same_journeys(&recorded, &journeys);
    assert_eq!(
        ended_cleanly(&summary),
        vec![
            ("cpu1".to_owned(), true),
            ("cpu2".to_owned(), true),
            ("gpu1".to_owned(), false)
        ],
        "{summary:#}"
    );
    assert!(
        journeys
            .iter()
            .any(|j| j["summary"] == "echo-reply" && j["drop"]["node"] == "cpu1"),
        "{journeys:#?}"
    );
    assert!(
        stderr.contains("through 3 agents (cpu1, cpu2, gpu1)"),
        "{stderr}"
    );
    // Each node's health in one line of the summary (tcx, or netlink on older kernels).
    let notes = summary["notes"].to_string();
    let line = notes
        .split('"')
        .find(|n| n.starts_with("nodes: "))
        .unwrap_or_else(|| panic!("{notes}"));
    let each: Vec<&str> = line.trim_start_matches("nodes: ").split("; ").collect();
    assert_eq!(each.len(), 3, "{line}");
    for (said, node) in each.iter().zip(NODES) {
        assert!(said.starts_with(&format!("{node} attached (")), "{line}");
        assert_eq!(
            said.contains("lost before the end"),
            node == "gpu1",
            "{line}"
        );
    }
    // Said when it happened, not only in the summary.
    assert!(
        stderr.contains("tracer: gpu1: agent lost (its stream broke off or fell silent)"),
        "{stderr}"
    );
}

/// The agent Pods `follow --agents` made, as `kubectl get pods` lists them:
/// (name, phase).
fn agent_pods(lab: &Lab) -> Vec<(String, String)> {
    lab.kubectl(&[
        "get",
        "pods",
        "-A",
        "-l",
        "app.kubernetes.io/name=tracer-agent",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
    ])
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(name, phase)| (name.to_owned(), phase.to_owned()))
    .collect()
}

#[test]
fn follow_agents_runs_an_agent_pod_per_node_crossed_and_deletes_them() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let live = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde", "--agents"]);
    // The request leaves cpu2 and the reply dies on cpu1: those two nodes, not gpu1.
    let running = agent_pods(&lab);
    let nodes: Vec<&str> = running
        .iter()
        .map(|(name, _)| {
            name.trim_start_matches("tracer-agent-")
                .split('-')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(nodes, ["cpu1", "cpu2"], "{running:?}");
    assert!(
        running.iter().all(|(_, phase)| phase == "Running"),
        "{running:?}"
    );
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    let (text, stderr) = live.stop_raw();
    let journeys = tracer_tests::follow::journeys_of(&text);
    assert!(!journeys.is_empty(), "{stderr}");
    assert_the_seed_incident(&journeys);
    // Deleted before follow ended.
    assert_eq!(agent_pods(&lab), vec![], "{stderr}");
}

#[test]
fn agent_pods_of_a_killed_follow_delete_themselves_once_their_reader_is_gone() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    // Its agents wait 1 s for a reader that went to come back (30 s by default: an API
    // server that restarts).
    let live = Follow::start(
        &lab,
        &[
            "nettest",
            "svc/nginx-test",
            "--agents",
            "--agent-resume-within",
            "1s",
        ],
    );
    // A Service's endpoints are on all three nodes.
    assert_eq!(agent_pods(&lab).len(), 3);
    live.kill();
    // The port-forwards closed with the process: each agent's reader is gone, and it ends
    // once it has waited for it to come back, and deletes its own Pod (its deadline is the
    // backstop, an hour away).
    tracer_tests::wait_until(
        "the agent Pods are gone",
        std::time::Duration::from_secs(20),
        || agent_pods(&lab).is_empty(),
    );
}

#[test]
fn follow_agents_uses_the_standing_node_agents_of_tracer_deploy() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let out = tracer_tests::tracer().arg("deploy").output().unwrap();
    assert!(out.status.success());
    let daemon_set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(daemon_set["kind"], "DaemonSet");
    // The lab has no DaemonSet controller: its Pods are made here, one per node, as the
    // controller would (on the lab, one machine holds every node: each is told its own).
    for node in NODES {
        let mut pod = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": daemon_set["spec"]["template"]["metadata"].clone(),
            "spec": daemon_set["spec"]["template"]["spec"].clone(),
        });
        pod["metadata"]["name"] = format!("tracer-node-agent-{node}").into();
        pod["spec"]["nodeName"] = node.into();
        let args = pod["spec"]["containers"][0]["args"].as_array_mut().unwrap();
        args.extend(["--node", node, "--netns-prefix", &lab.prefix].map(Value::from));
        let file = std::env::temp_dir().join(format!(
            "tracer-node-agent-{}-{node}.json",
            std::process::id()
        ));
        std::fs::write(&file, pod.to_string()).unwrap();
        // The lab serves no OpenAPI document to validate against.
        lab.kubectl(&[
            "create",
            "--validate=false",
            "-n",
            "kube-system",
            "-f",
            file.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(&file);
    }
    let standing = || {
        lab.kubectl(&[
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "app.kubernetes.io/name=tracer-node-agent",
            "-o",
            "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ])
    };
    tracer_tests::wait_until(
        "the node agents are ready",
        std::time::Duration::from_secs(20),
        || standing().lines().filter(|l| *l == "True").count() == 3,
    );
    // Two readers, one after the other: a standing agent serves each in turn.
    for round in 0..2 {
        let live = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde", "--agents"]);
        assert!(
            agent_pods(&lab).is_empty(),
            "no Pod made: {:?}",
            agent_pods(&lab)
        );
        assert!(!lab.ping("pod-nettest", "10.244.184.84"));
        let (text, stderr) = live.stop_raw();
        assert_eq!(
            stderr.matches("standing agent").count(),
            2,
            "round {round}: {stderr}"
        );
        let journeys = tracer_tests::follow::journeys_of(&text);
        assert!(
            journeys.iter().any(|j| j["summary"] == "echo-reply"
                && j["verdict"] == "dropped"
                && j["drop"]["node"] == "cpu1"),
            "round {round}: {journeys:#?}"
        );
        assert!(
            journeys.iter().any(|j| j["summary"] == "echo-request"
                && j["verdict"] == "delivered"
                && nodes_of(j).len() == 2),
            "round {round}: {journeys:#?}"
        );
    }
    // They stay for the next reader.
    assert_eq!(standing().lines().filter(|l| *l == "True").count(), 3);
    // And end with the lab, though `lab down` kills its daemon, their parent: an idle agent
    // writes nothing, so nothing tells it its log's reader went.
    let prefix = lab.prefix.clone();
    assert_eq!(node_agents_of(&prefix).len(), 3);
    drop(lab);
    assert_eq!(node_agents_of(&prefix), Vec::<String>::new());
}

/// The command lines of the running node agents of the lab whose prefix is `prefix`.
fn node_agents_of(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let state = stat.get(stat.rfind(')')? + 2..)?.chars().next()?;
            let argv = std::fs::read_to_string(path.join("cmdline")).ok()?;
            let argv = argv.split('\0').collect::<Vec<_>>().join(" ");
            (state != 'Z' && argv.contains("node-agent") && argv.contains(prefix)).then_some(argv)
        })
        .collect()
}

#[test]
fn follow_agents_sets_a_40_ms_off_clock_right_live() {
    if !require_root() {
        return;
    }
    let lab = Lab::up_with(&["--scenario", "healthy", "--clock-offset", "cpu1=+40ms"]);
    let live = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde", "--agents"]);
    for _ in 0..3 {
        assert!(lab.ping("pod-nettest", "10.244.184.84"));
    }
    let (text, stderr) = live.stop_raw();
    let journeys = tracer_tests::follow::journeys_of(&text);
    let summary = tracer_tests::follow::summary_of(&text);
    // The agents are read in node order: cpu1's clock is the reference, and cpu2's runs
    // 40 ms behind it.
    let clocks = summary["clocks"].as_array().expect("clocks in the summary");
    assert_eq!(clocks.len(), 1, "{summary:#}");
    let cpu2 = &clocks[0];
    assert_eq!(
        (cpu2["machine"].as_str(), cpu2["reference"].as_str()),
        (Some("cpu2"), Some("cpu1")),
        "{cpu2}"
    );
    let offset = cpu2["offset_ns"].as_i64().unwrap();
    let error = cpu2["error_ns"]
        .as_i64()
        .expect("crossings both ways: an error");
    eprintln!("cpu2's clock as the crossings showed it live: {cpu2}");
    assert!(
        (offset + 40_000_000).abs() <= 1_000_000 && error < 1_000_000,
        "cpu2 is 40 ms behind cpu1: {cpu2}"
    );
    assert!(
        stderr.contains("clocks set by the packets that crossed: cpu2 −40."),
        "{stderr}"
    );
    let requests: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-request")
        .collect();
    assert!(requests.len() >= 3, "{journeys:#?}");
    for journey in &journeys {
        assert_eq!(journey["verdict"], "delivered", "{journey:#}");
        assert_eq!(nodes_of(journey).len(), 2, "{journey:#}");
        // In causal order: no hop before the one it follows.
        let times: Vec<i64> = journey["hops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["t_ns"].as_i64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{journey:#}");
    }
}

#[test]
fn follow_goes_through_agent_pods_by_itself_for_nodes_this_machine_does_not_hold() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let kubeconfig = lab.kubeconfig();
    // Seen through a prefix that holds cpu1's and cpu2's namespaces but not gpu1's, this
    // machine is a machine of two nodes; the Service's endpoints are on all three.
    let prefix = format!("{}c", lab.prefix);
    let args = |local: bool| {
        let mut args = vec![
            "nettest",
            "svc/nginx-test",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ];
        if local {
            args.push("--local");
        }
        args
    };
    let auto = Follow::start_with(&prefix, &args(false));
    assert!(
        auto.stderr_so_far()
            .contains("node gpu1 is not on this machine: following through agent Pods instead"),
        "{}",
        auto.stderr_so_far()
    );
    // gpu1's agent cannot see gpu1 either, through that prefix: it ends, says why, and the
    // others go on.
    let said = auto.stderr_so_far();
    assert!(
        said.contains("watching through 2 agents (cpu1, cpu2)"),
        "{said}"
    );
    assert!(
        said.contains("node gpu1: no agent: its Pod")
            && said.contains("that node's network namespace is not on this machine"),
        "{said}"
    );
    assert_eq!(agent_pods(&lab).len(), 3);
    let (text, _) = auto.stop_raw();
    let summary = tracer_tests::follow::summary_of(&text);
    assert!(
        summary["notes"]
            .to_string()
            .contains("node gpu1 not followed: its agent could not be reached"),
        "{summary:#}"
    );
    assert_eq!(agent_pods(&lab), vec![]);
    // --local: what this machine sees, and nothing started elsewhere.
    let local = Follow::start_with(&prefix, &args(true));
    assert!(
        !local.stderr_so_far().contains("agent Pods"),
        "{}",
        local.stderr_so_far()
    );
    assert_eq!(agent_pods(&lab), vec![]);
    local.stop_raw();
    // Agent Pods that cannot be made (here: no such namespace; elsewhere: no RBAC): it says
    // so and follows what this machine sees.
    let mut refused = args(false);
    refused.extend(["--agent-namespace", "no-such-namespace"]);
    let stayed = Follow::start_with(&prefix, &refused);
    let said = stayed.stderr_so_far();
    assert!(
        said.contains(
            "note: cannot create the agent Pod for node cpu1 in namespace no-such-namespace"
        ) && said.contains("following on this machine only; its hops on gpu1 will be missing"),
        "{said}"
    );
    stayed.stop_raw();
}

#[test]
fn a_broken_port_forward_is_opened_again_and_the_stream_resumes() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("wrong-interface");
    let live = Follow::start(&lab, &["nettest", "nginx-test-7d9c4b6f5-abcde", "--agents"]);
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    // Every connection to the API server breaks, as when it restarts: both port-forwards
    // with them (and the watches, which kube's client opens again).
    let kubeconfig = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    let port = kubeconfig
        .split("server: \"http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the lab API's port")
        .to_owned();
    tracer_tests::run(&[
        "ss",
        "-K",
        "-t",
        &format!("( sport = :{port} or dport = :{port} )"),
    ]);
    // The reader opens each again and the agents go on from the byte it had: prompt, for
    // the agents write at least every 100 ms and so find out at once.
    tracer_tests::wait_until(
        "both port-forwards opened again",
        std::time::Duration::from_secs(20),
        || {
            live.stderr_so_far()
                .matches("its port-forward was opened again; the stream resumed at byte")
                .count()
                == 2
        },
    );
    assert!(!lab.ping("pod-nettest", "10.244.184.84"));
    let (text, stderr) = live.stop_raw();
    let journeys = tracer_tests::follow::journeys_of(&text);
    let summary = tracer_tests::follow::summary_of(&text);
    assert!(!stderr.contains("agent lost"), "{stderr}");
    let notes = summary["notes"].to_string();
    assert!(!notes.contains("lost before the end"), "{notes}");
    // The pings before the break and after it: 2 each, every reply dropped on cpu1, every
    // request seen by both nodes.
    let replies: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-reply")
        .collect();
    assert_eq!(replies.len(), 4, "{stderr}\n{journeys:#?}");
    assert!(replies.iter().all(|r| r["drop"]["node"] == "cpu1"));
    let requests: Vec<&Value> = journeys
        .iter()
        .filter(|j| j["summary"] == "echo-request")
        .collect();
    assert_eq!(requests.len(), 4, "{journeys:#?}");
    assert!(
        requests.iter().all(|r| nodes_of(r).len() == 2),
        "{journeys:#?}"
    );
}
