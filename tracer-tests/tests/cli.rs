//! The `tracer` binary as a user runs it: doctor's verdict on this machine, exit statuses,
//! completions, and what an unprivileged user is told.

use std::process::Output;

use tracer_tests::{require_root, tracer_as_nobody};

fn tracer(args: &[&str]) -> Output {
    tracer_tests::tracer()
        .args(args)
        .output()
        .expect("run tracer")
}

fn status_of(report: &serde_json::Value, check: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("doctor reports {check}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn doctor_finds_what_this_kernel_allows_by_trying() {
    if !require_root() {
        return;
    }
    let out = tracer(&["doctor", "--output", "json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor prints JSON");
    assert_eq!(
        out.status.code(),
        Some(0),
        "follow can work here: {report:#}"
    );
    assert_eq!(report["follow_works"], true);
    for check in [
        "btf",
        "ebpf_object",
        "tc_tcx",
        "tc_netlink",
        "ring_buffer",
        "tp_btf",
        "raw_tracepoint",
    ] {
        assert_eq!(
            status_of(&report, check),
            "available",
            "{check}: {report:#}"
        );
    }
    // Ground truth for kprobes: the kprobe event source exists only where they are built in.
    let kprobes_built_in = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let expected = if kprobes_built_in {
        "available"
    } else {
        "unavailable"
    };
    assert_eq!(status_of(&report, "kprobe"), expected);
    assert!(
        report["follow_sees"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("drop reason"))
    );

    let text = tracer(&["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("follow will see:") && text.contains("tracer follow can work here."),
        "{text}"
    );
}

#[test]
fn doctor_as_an_unprivileged_user_names_the_missing_capabilities() {
    if !require_root() {
        return;
    }
    let out = tracer_as_nobody(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit status 3 = missing privileges: {text}"
    );
    assert!(text.contains("NO   CAP_BPF"), "{text}");
    assert!(text.contains("lacks CAP_BPF"), "{text}");
}

#[test]
fn follow_as_an_unprivileged_user_names_the_missing_capabilities_at_once() {
    if !require_root() {
        return;
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cluster-bridge.json"
    );
    let out = tracer_as_nobody(&[
        "follow",
        "client",
        "svc/web",
        "--output",
        "json",
        "--cluster-file",
        fixture,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit status 3 = missing privileges: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"] {
        assert!(stderr.contains(cap), "{stderr}");
    }
}

#[test]
fn unknown_pods_name_the_namespace_and_close_matches() {
    if !require_root() {
        return;
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cluster-bridge.json"
    );
    let out = tracer(&[
        "follow",
        "clinet",
        "svc/web",
        "--output",
        "json",
        "--cluster-file",
        fixture,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"default\"") && stderr.contains("client"),
        "{stderr}"
    );
}

#[test]
fn replay_and_export_refuse_what_is_not_a_recording() {
    let dir = std::env::temp_dir().join(format!("tracer-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bogus = dir.join("notes.txt");
    std::fs::write(&bogus, "just some text, not a recording\n").unwrap();
    let bogus = bogus.to_str().unwrap();
    for args in [
        vec!["replay", bogus, "--output", "text"],
        vec!["export", bogus, "--pcapng", "/dev/null"],
        vec!["replay", "/nonexistent/x.trace", "--output", "json"],
    ] {
        let out = tracer(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("is not a tracer recording") || stderr.contains("cannot read"),
            "{args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_usage_exits_2_with_help() {
    let out = tracer(&["follow", "only-one-endpoint"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("<TO>"));
}

#[test]
fn completions_are_generated() {
    let out = tracer(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_tracer()"));
}
