//! Attaching by netlink filters (the way kernels without TCX are hooked), forced with
//! `--attach netlink` on any kernel: a killed run's filters are found and removed by
//! `tracer cleanup` and by the next `follow`, a live run's never, a foreign clsact qdisc
//! and foreign filters never (issue #12). And `doctor` names the attach mode and hooks
//! that `follow` then uses. Needs root; serial.

use std::{collections::BTreeMap, io::Write as _, process::Command};

use serde_json::Value;
use tracer_tests::{follow::Follow, lab::Lab, require_root, run, tracer};

/// tracer's filter handle ("trac"), as `tc -j` prints it.
const TRACER_HANDLE: &str = "0x74726163";

/// The lab's namespaces.
fn namespaces(lab: &Lab) -> Vec<String> {
    run(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&lab.prefix))
        .map(str::to_owned)
        .collect()
}

fn interfaces(ns: &str) -> Vec<String> {
    let links: Value =
        serde_json::from_str(&run(&["ip", "-n", ns, "-j", "link", "show"])).expect("ip -j");
    links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_owned())
        .collect()
}

/// One interface's qdiscs and the filters on both sides of its clsact qdisc, as `tc -j`
/// prints them.
struct TcState {
    interface: String,
    qdiscs: Value,
    ingress: Value,
    egress: Value,
}

/// Every interface of namespace `ns`, read by one `tc -batch` (a process per interface and
/// question is far too slow in an emulated VM).
fn tc_state(ns: &str) -> Vec<TcState> {
    let names = interfaces(ns);
    let mut commands = String::new();
    for name in &names {
        commands.push_str(&format!(
            "qdisc show dev {name}\nfilter show dev {name} ingress\nfilter show dev {name} egress\n"
        ));
    }
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "tc", "-j", "-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tc -batch");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(commands.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("tc -batch output");
    let values: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("tc -j -batch in {ns}: {e}"));
    assert_eq!(
        values.len(),
        3 * names.len(),
        "one answer per question in {ns}"
    );
    names
        .into_iter()
        .zip(values.chunks(3))
        .map(|(interface, v)| TcState {
            interface,
            qdiscs: v[0].clone(),
            ingress: v[1].clone(),
            egress: v[2].clone(),
        })
        .collect()
}

/// Every interface's qdiscs and non-tracer filters, per `namespace/interface`: what must
/// come out of a run exactly as it went in.
fn foreign_state(lab: &Lab) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    for ns in namespaces(lab) {
        for tc in tc_state(&ns) {
            let mut text = tc.qdiscs.to_string();
            for (side, filters) in [("ingress", &tc.ingress), ("egress", &tc.egress)] {
                // tc prints each priority's header and then its filters; keep only entries
                // that are not tracer's (headers of tracer's priorities included).
                let all = filters.as_array().cloned().unwrap_or_default();
                let tracer_prios: Vec<&Value> = all
                    .iter()
                    .filter(|f| f["options"]["handle"] == TRACER_HANDLE)
                    .map(|f| &f["pref"])
                    .collect();
                let foreign: Vec<&Value> = all
                    .iter()
                    .filter(|f| !tracer_prios.contains(&&f["pref"]))
                    .collect();
                text.push_str(&format!(" {side}: {foreign:?}"));
            }
            state.insert(format!("{ns}/{}", tc.interface), text);
        }
    }
    state
}

/// tracer's filters in the lab: `namespace/interface side priority program-id`.
fn tracer_filters(lab: &Lab) -> Vec<String> {
    let mut found = Vec::new();
    for ns in namespaces(lab) {
        for tc in tc_state(&ns) {
            for (side, filters) in [("ingress", &tc.ingress), ("egress", &tc.egress)] {
                for f in filters.as_array().into_iter().flatten() {
                    if f["options"]["handle"] == TRACER_HANDLE {
                        found.push(format!(
                            "{ns}/{} {side} {} {}",
                            tc.interface, f["pref"], f["options"]["prog"]["id"]
                        ));
                    }
                }
            }
        }
    }
    found
}

/// A foreign clsact qdisc with two foreign filters on cpu1's uplink (one at priority 1,
/// before which nothing fits), and a bare foreign clsact qdisc on cpu2's uplink. The
/// filters are classic BPF returning 0: "no match", so every packet goes on as before.
fn place_foreign_filters(lab: &Lab) {
    let cpu1 = lab.ns("cpu1");
    let cpu2 = lab.ns("cpu2");
    for argv in [
        vec![
            "ip", "netns", "exec", &cpu1, "tc", "qdisc", "add", "dev", "enp2s0", "clsact",
        ],
        vec![
            "ip",
            "netns",
            "exec",
            &cpu1,
            "tc",
            "filter",
            "add",
            "dev",
            "enp2s0",
            "ingress",
            "prio",
            "21",
            "handle",
            "5",
            "protocol",
            "all",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
        ],
        vec![
            "ip",
            "netns",
            "exec",
            &cpu1,
            "tc",
            "filter",
            "add",
            "dev",
            "enp2s0",
            "egress",
            "prio",
            "1",
            "handle",
            "7",
            "protocol",
            "all",
            "bpf",
            "bytecode",
            "1,6 0 0 0,",
        ],
        vec![
            "ip", "netns", "exec", &cpu2, "tc", "qdisc", "add", "dev", "enp2s0", "clsact",
        ],
    ] {
        run(&argv);
    }
}

/// `N` of "watching N interfaces" on the tracer's stderr.
fn watched_interfaces(stderr: &str) -> usize {
    let at = stderr.find("watching ").expect("watching line") + "watching ".len();
    stderr[at..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no interface count in {stderr}"))
}

fn cleanup(lab: &Lab) -> String {
    let out = tracer()
        .args(["cleanup", "--netns-prefix", &lab.prefix])
        .output()
        .expect("run tracer cleanup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tracer cleanup: {text}");
    text
}

#[test]
fn a_killed_netlink_run_leaves_filters_that_cleanup_removes_and_nothing_foreign_is_touched() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    place_foreign_filters(&lab);
    let before = foreign_state(&lab);

    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test", "--attach", "netlink"]);
    let stderr = follow.stderr_so_far();
    assert!(stderr.contains("attach mode: netlink"), "{stderr}");
    let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
    assert_eq!(
        code, 0,
        "the Service answers with tracer's filters in place: {page}"
    );
    let hooked = tracer_filters(&lab);
    assert_eq!(
        hooked.len(),
        2 * watched_interfaces(&stderr),
        "one filter per side of each watched interface: {hooked:#?}"
    );
    // tracer went before the foreign ingress filter at 21, and found its own priority on
    // the egress side where a foreign filter holds 1.
    assert!(
        hooked.iter().any(|f| f.contains("cpu1/enp2s0 ingress 20 ")),
        "{hooked:#?}"
    );
    assert!(
        hooked
            .iter()
            .filter(|f| f.contains("cpu1/enp2s0 egress"))
            .all(|f| !f.contains(" egress 1 ")),
        "{hooked:#?}"
    );

    follow.kill();
    assert_eq!(
        tracer_filters(&lab),
        hooked,
        "netlink filters outlive a killed process"
    );
    let report = cleanup(&lab);
    assert!(report.contains("left by 1 dead run"), "{report}");
    assert_eq!(tracer_filters(&lab), Vec::<String>::new(), "{report}");
    assert_eq!(foreign_state(&lab), before, "{report}");
    // Nothing left to do a second time.
    assert!(cleanup(&lab).contains("removed 0 filter(s) and 0 clsact qdisc(s)"));
}

#[test]
fn the_next_follow_removes_a_killed_runs_filters_and_cleanup_spares_a_live_run() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    place_foreign_filters(&lab);
    let before = foreign_state(&lab);
    let args = ["nettest", "svc/nginx-test", "--attach", "netlink"];

    let killed = Follow::start(&lab, &args);
    let left = tracer_filters(&lab);
    assert!(!left.is_empty());
    killed.kill();

    let live = Follow::start(&lab, &args);
    let stderr = live.stderr_so_far();
    assert!(
        stderr.contains("cleaned up after a killed tracer: removed"),
        "{stderr}"
    );
    let hooked = tracer_filters(&lab);
    assert_eq!(hooked.len(), 2 * watched_interfaces(&stderr), "{hooked:#?}");
    assert!(
        hooked.iter().all(|f| !left.contains(f)),
        "only the new run's filters (new program ids): {hooked:#?} vs {left:#?}"
    );

    // A cleanup while a run is going leaves that run alone.
    let report = cleanup(&lab);
    assert!(report.contains("removed 0 filter(s)"), "{report}");
    assert_eq!(tracer_filters(&lab), hooked, "{report}");
    let (code, page) = lab.curl("pod-nettest", "http://10.109.60.89/");
    assert_eq!(code, 0, "{page}");
    let journeys = live.stop();
    assert!(
        journeys.iter().any(|j| j["verdict"] == "delivered"),
        "the live run still sees packets after the cleanup: {journeys:#?}"
    );

    // A clean exit removes what it added, qdiscs included.
    assert_eq!(tracer_filters(&lab), Vec::<String>::new());
    assert_eq!(foreign_state(&lab), before);
}

#[test]
fn doctor_names_the_attach_mode_and_hooks_that_follow_then_uses() {
    if !require_root() {
        return;
    }
    let out = tracer()
        .args(["doctor", "--output", "json"])
        .output()
        .expect("run tracer doctor");
    let report: Value = serde_json::from_slice(&out.stdout).expect("doctor prints JSON");
    let mode = report["attach_mode"]
        .as_str()
        .unwrap_or_else(|| panic!("an attach mode: {report:#}"))
        .to_owned();
    let tcx = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "tc_tcx" && c["status"] == "available");
    assert_eq!(mode, if tcx { "tcx" } else { "netlink" }, "{report:#}");

    let lab = Lab::up("healthy");
    let follow = Follow::start(&lab, &["nettest", "svc/nginx-test"]);
    let stderr = follow.stderr_so_far();
    assert!(
        stderr.contains(&format!("attach mode: {mode} (")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("interfaces ({mode})")), "{stderr}");
    let hooks_line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("hooks:"))
        .unwrap_or_else(|| panic!("a hooks line: {stderr}"));
    for hook in report["hooks"].as_array().unwrap() {
        let program = hook["program"].as_str().unwrap();
        let attach = hook["attach"].as_str().unwrap();
        assert!(
            hooks_line.contains(program) && hooks_line.contains(attach),
            "doctor's {program} ({attach}) is what follow uses: {hooks_line}"
        );
    }
    // Where TCX is used, no netlink filter of tracer's appears.
    if mode == "tcx" {
        assert_eq!(tracer_filters(&lab), Vec::<String>::new());
    } else {
        assert!(!tracer_filters(&lab).is_empty());
    }
    follow.stop();
}
