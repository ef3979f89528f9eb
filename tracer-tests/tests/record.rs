//! Recording, replay and export end to end: a lab session recorded by `tracer follow
//! --record`, replayed without privileges into the same journeys, exported to pcapng and
//! read by tshark; a recorder killed with SIGKILL and one that runs out of disk. Needs
//! root (for the live part); serial.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{ChildGuard, follow::Follow, lab::Lab, require_root};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-rec-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn replay_json(path: &std::path::Path) -> (Vec<Value>, String, bool) {
    let out = tracer_tests::tracer()
        .args(["replay", "--output", "json"])
        .arg(path)
        .output()
        .unwrap();
    let journeys = tracer_tests::follow::journeys_of(&String::from_utf8_lossy(&out.stdout));
    (
        journeys,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn key(j: &Value) -> String {
    format!(
        "{} {} {} {}",
        j["summary"],
        j["verdict"],
        j["diagnosis"],
        j["hops"].as_array().unwrap().len()
    )
}

#[test]
fn a_recorded_session_replays_identically_and_exports_to_pcapng() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let recording = scratch("session.trace");
    let record_arg = recording.to_str().unwrap().to_owned();
    let follow = Follow::start(
        &lab,
        &["nettest", "svc/nginx-test", "--record", &record_arg],
    );
    for _ in 0..5 {
        assert_eq!(lab.curl("pod-nettest", "http://10.109.60.89/").0, 0);
    }
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    let live = follow.stop();
    assert!(!live.is_empty());
    assert_eq!(
        std::fs::metadata(&recording).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Replay needs no privileges: run it as nobody on a copy nobody may read.
    let copy = scratch("copy.trace");
    std::fs::copy(&recording, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(
        copy.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let unprivileged = tracer_tests::tracer_as_nobody(&[
        std::ffi::OsStr::new("replay"),
        "--output".as_ref(),
        "json".as_ref(),
        copy.as_os_str(),
    ]);
    assert!(
        unprivileged.status.success(),
        "{}",
        String::from_utf8_lossy(&unprivileged.stderr)
    );
    let replayed: Vec<Value> =
        tracer_tests::follow::journeys_of(&String::from_utf8_lossy(&unprivileged.stdout));
    let mut live_keys: Vec<_> = live.iter().map(key).collect();
    let mut replay_keys: Vec<_> = replayed.iter().map(key).collect();
    live_keys.sort();
    replay_keys.sort();
    assert_eq!(
        live_keys, replay_keys,
        "replay prints the journeys follow printed"
    );

    // Export: one packet per observed hop, names in the comments, read by plain tshark.
    let pcapng = scratch("session.pcapng");
    let out = tracer_tests::tracer()
        .args([
            "export",
            record_arg.as_str(),
            "--pcapng",
            pcapng.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let observed_hops: usize = replayed
        .iter()
        .map(|j| {
            j["hops"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|h| h["observed"] == true)
                .count()
        })
        .sum();
    let tshark = Command::new("tshark")
        .args([
            "-r",
            pcapng.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
            "-e",
            "frame.interface_name",
        ])
        .output()
        .expect("tshark");
    assert!(
        tshark.status.success(),
        "{}",
        String::from_utf8_lossy(&tshark.stderr)
    );
    let text = String::from_utf8_lossy(&tshark.stdout);
    assert_eq!(
        text.lines().count(),
        observed_hops,
        "packet count equals observed hop count"
    );
    assert!(
        text.contains("default/nginx-test") && text.contains("default/nettest"),
        "names in comments"
    );
    assert!(text.contains("KUBE-SEP-"), "kube-proxy chains in comments");
    assert!(
        text.contains("cpu2/enp2s0") && text.contains("cpu1/"),
        "interfaces named by node: {text}"
    );
    let _ = std::fs::remove_dir_all(recording.parent().unwrap());
}

#[test]
fn a_record_only_session_keeps_every_observation_for_replay() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let recording = scratch("record-only.trace");
    let record_arg = recording.to_str().unwrap().to_owned();
    let follow = Follow::start(
        &lab,
        &[
            "nettest",
            "svc/nginx-test",
            "--record",
            &record_arg,
            "--output",
            "summary",
        ],
    );
    for _ in 0..5 {
        assert_eq!(lab.curl("pod-nettest", "http://10.109.60.89/").0, 0);
    }
    let (stdout, _) = follow.stop_raw();
    // "N observations recorded (see the journeys with `tracer replay`); events lost …"
    let recorded: usize = stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in the summary: {stdout}"));
    assert!(
        stdout.contains("observations recorded") && stdout.contains("events lost in the kernel: 0"),
        "{stdout}"
    );

    // Replay does the correlation the live session skipped: every observation is there,
    // and five HTTP exchanges come out as delivered journeys through the Service.
    let summary = tracer_tests::tracer()
        .args(["replay", "--output", "summary"])
        .arg(&recording)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.contains(&format!("(from {recorded} observations)")),
        "replay reads every recorded observation: {summary} vs {recorded}"
    );
    let (journeys, _, ok) = replay_json(&recording);
    assert!(ok);
    let syns: Vec<_> = journeys
        .iter()
        .filter(|j| j["summary"] == "SYN" && j["direction"] == "request")
        .collect();
    assert_eq!(syns.len(), 5, "one SYN per request");
    for syn in syns {
        assert_eq!(syn["verdict"], "delivered", "{syn}");
        assert!(
            syn["hops"].to_string().contains("KUBE-SEP-"),
            "the Service DNAT is explained at replay: {syn}"
        );
    }
    let _ = std::fs::remove_dir_all(recording.parent().unwrap());
}

#[test]
fn a_recorder_killed_with_sigkill_replays_every_complete_record() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let recording = scratch("killed.trace");
    let record_arg = recording.to_str().unwrap().to_owned();
    let follow = Follow::start(
        &lab,
        &[
            "nettest",
            "nginx-test-7d9c4b6f5-abcde",
            "--record",
            &record_arg,
        ],
    );
    // Pings go on while the recorder is killed: it dies mid-stream.
    let mut ping = ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns("pod-nettest")])
            .args(["ping", "-i", "0.05", "-c", "2000", "10.244.184.84"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The writer flushes each chunk as the session drains: wait until some are on disk.
    tracer_tests::wait_until(
        "the recording to hold 4 journeys",
        Duration::from_secs(20),
        || replay_json(&recording).0.len() >= 4,
    );
    follow.kill(); // SIGKILL
    let _ = ping.0.kill();
    let _ = ping.0.wait();

    let (journeys, stderr, ok) = replay_json(&recording);
    assert!(ok, "{stderr}");
    assert!(
        journeys.len() >= 4,
        "journeys recorded before the kill: {}",
        journeys.len()
    );
    assert!(
        stderr.contains("no end record") || stderr.contains("cut at byte"),
        "the cut is reported: {stderr}"
    );

    // Tear the last record in half, as a crash mid-write would.
    let bytes = std::fs::read(&recording).unwrap();
    std::fs::write(&recording, &bytes[..bytes.len() - 7]).unwrap();
    let (torn, stderr, ok) = replay_json(&recording);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cut at byte"), "{stderr}");
    assert!(
        torn.len() + 12 >= journeys.len(),
        "only the torn record is lost"
    );
    let _ = std::fs::remove_dir_all(recording.parent().unwrap());
}

/// Runs `tracer follow ARGS --record /tmp/tracer-full/r.trace` inside a private mount
/// namespace whose /tmp/tracer-full is an 80 KiB tmpfs (nothing is mounted on the host)
/// while nettest pings fast enough to fill it, and stops it with Ctrl-C once the disk has
/// filled; returns the exit status, stdout, stderr and the partial recording (copied out).
fn follow_into_a_full_disk(lab: &Lab, tag: &str, args: &str) -> (i32, String, String, PathBuf) {
    let out_dir = scratch(tag);
    std::fs::create_dir_all(&out_dir).unwrap();
    let script = format!(
        "set -e; mkdir -p /tmp/tracer-full; mount -t tmpfs -o size=80k tracer-full /tmp/tracer-full; \
         set +e; {tracer} follow nettest nginx-test-7d9c4b6f5-abcde {args} --kubeconfig {kc} \
           --netns-prefix {prefix} --record /tmp/tracer-full/r.trace > {out}/stdout.txt 2> {out}/stderr.txt & \
         echo $! > {out}/pid; wait $!; echo $? > {out}/status; cp /tmp/tracer-full/r.trace {out}/r.trace",
        tracer = tracer_tests::tracer_bin().display(),
        kc = lab.kubeconfig().display(),
        prefix = lab.prefix,
        out = out_dir.display()
    );
    let mut session = ChildGuard(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .spawn()
            .unwrap(),
    );
    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap_or_default();
    tracer_tests::wait_until("follow to attach", Duration::from_secs(30), || {
        read("stderr.txt").contains("watching")
    });
    // Enough traffic to fill 80 KiB of recording.
    let _ = lab.exec(
        "pod-nettest",
        &["ping", "-i", "0.002", "-c", "1500", "-q", "10.244.184.84"],
    );
    tracer_tests::wait_until("the recording to stop", Duration::from_secs(10), || {
        read("stderr.txt").contains("recording stopped")
    });
    // In-flight packets settle, then Ctrl-C.
    thread::sleep(tracer_tests::scaled(Duration::from_millis(800)));
    let pid: i32 = read("pid").trim().parse().unwrap();
    // SAFETY: signalling the tracer this test started.
    unsafe { libc::kill(pid, libc::SIGINT) };
    assert!(session.0.wait().unwrap().success());
    let status = read("status").trim().parse().unwrap();
    (
        status,
        read("stdout.txt"),
        read("stderr.txt"),
        out_dir.join("r.trace"),
    )
}

#[test]
fn a_full_disk_stops_the_recording_not_the_session_and_fails_the_run() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let (status, stdout, stderr, partial) =
        follow_into_a_full_disk(&lab, "fulldisk", "--output json");
    assert_eq!(status, 1, "a failed recording is a failed run: {stderr}");
    assert!(
        stderr.contains("recording stopped") && stderr.contains("No space left"),
        "told at once: {stderr}"
    );
    let live = tracer_tests::follow::journeys_of(&stdout);
    assert!(
        live.len() > 1000,
        "following went on after the disk filled ({} journeys)",
        live.len()
    );
    // The summary says how much was saved and how much was not.
    let summary = tracer_tests::follow::summary_of(&stdout);
    let note = summary["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .find(|n| n.contains("recording FAILED"))
        .unwrap_or_else(|| panic!("{summary:#}"))
        .to_owned();
    let numbers: Vec<u64> = note
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (saved, offered) = (numbers[0], numbers[1]);
    assert!(saved > 0 && saved < offered, "{note}");
    assert_eq!(summary["failed"], true);

    let (replayed, stderr, ok) = replay_json(&partial);
    assert!(ok, "{stderr}");
    assert!(!replayed.is_empty());
    assert!(
        stderr.contains("no end record") || stderr.contains("cut at byte"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(partial.parent().unwrap().parent().unwrap());
}

/// A record-only session (`--output summary`) whose disk fills does not lose the session:
/// it correlates live from then on and says so, and fails the run.
#[test]
fn a_record_only_session_on_a_full_disk_correlates_the_rest_live() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let (status, stdout, stderr, partial) =
        follow_into_a_full_disk(&lab, "fullrecordonly", "--output summary");
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(stderr.contains("correlating the packets live"), "{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    let journeys: u64 = first
        .split(" journeys:")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("journeys in {stdout}"));
    assert!(journeys > 500, "the rest was correlated live: {stdout}");
    assert!(stdout.contains("recording FAILED"), "{stdout}");
    let (replayed, _, ok) = replay_json(&partial);
    assert!(ok && !replayed.is_empty(), "the partial file replays");
    let _ = std::fs::remove_dir_all(partial.parent().unwrap().parent().unwrap());
}
