//! The `tracer` binary as a user runs it: doctor's verdict on this machine, exit statuses,
//! completions, what an unprivileged user is told, the output files it refuses to write
//! (see `tracer::files`; issue #10), the arguments it refuses, and errors said once.

use std::process::Output;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Stdio,
};

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
    // TCX exists from 6.6 (issue #12: Debian's 6.1 refuses it); netlink filters everywhere.
    let tcx = status_of(&report, "tc_tcx") == "available";
    assert_eq!(
        report["attach_mode"],
        if tcx { "tcx" } else { "netlink" },
        "{report:#}"
    );
    for check in [
        "btf",
        "ebpf_object",
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
    let kprobes_built_in = Path::new("/sys/bus/event_source/devices/kprobe").exists();
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
    // Checked before anything is built.
    let out = tracer(&["lab", "up", "--scenario", "bogus"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown scenario `bogus`; valid scenarios: healthy"),
        "{stderr}"
    );
}

#[test]
fn completions_are_generated() {
    let out = tracer(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_tracer()"));
}

/// A scratch directory, removed on drop (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("UTF-8 path").to_owned()
    }

    /// Every entry with its bytes (symlinks as their target) and mode, for before/after.
    fn state(&self) -> Vec<(String, Vec<u8>, u32)> {
        let mut entries: Vec<_> = std::fs::read_dir(&self.0)
            .expect("read scratch dir")
            .map(|entry| {
                let path = entry.expect("entry").path();
                let meta = std::fs::symlink_metadata(&path).expect("lstat");
                let bytes = if meta.is_dir() {
                    Vec::new()
                } else if meta.file_type().is_symlink() {
                    std::fs::read_link(&path)
                        .expect("readlink")
                        .into_os_string()
                        .into_encoded_bytes()
                } else {
                    std::fs::read(&path).expect("read")
                };
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    bytes,
                    meta.permissions().mode() & 0o7777,
                )
            })
            .collect();
        entries.sort();
        entries
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real recording (of the lab, committed under `tests/data/`), copied to `path`.
fn write_recording(path: &Path) {
    let recording = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/v1-healthy-ping.trace"
    );
    std::fs::copy(recording, path).expect("copy the recording");
}

/// Asserts a refusal: exit status 2, one line on stderr containing each of `expected`.
fn assert_refused(out: &Output, args: &[&str], expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line: {stderr}"
    );
    for text in expected {
        assert!(stderr.contains(text), "{args:?}: {text:?} in {stderr}");
    }
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

#[test]
fn export_refuses_its_input_an_existing_file_and_a_symlink_and_changes_nothing() {
    let dir = Scratch::new("export-refusals");
    write_recording(&dir.path("r.trace"));
    std::fs::hard_link(dir.path("r.trace"), dir.path("r-link.trace")).expect("hard link");
    std::fs::write(dir.path("old.pcapng"), b"an earlier export").expect("write");
    std::fs::set_permissions(
        dir.path("old.pcapng"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::os::unix::fs::symlink(dir.path("old.pcapng"), dir.path("link.pcapng")).expect("symlink");
    std::fs::create_dir(dir.path("sub")).expect("mkdir");
    let recording = dir.arg("r.trace");
    let same_file_by_another_path = format!("{}/sub/../r.trace", dir.0.display());
    let before = dir.state();
    for force in [false, true] {
        for (target, expected) in [
            (recording.clone(), "is the file this command reads"),
            (
                same_file_by_another_path.clone(),
                "which this command reads",
            ),
            (dir.arg("r-link.trace"), "is the same file as"),
            (dir.arg("link.pcapng"), "is a symbolic link"),
            (dir.arg("sub"), "is a directory"),
        ] {
            let mut args = vec!["export", recording.as_str(), "--pcapng", target.as_str()];
            if force {
                args.push("--force");
            }
            assert_refused(&tracer(&args), &args, &[&target, expected]);
            assert_eq!(dir.state(), before, "{args:?} changed nothing");
        }
    }
    let args = ["export", &recording, "--pcapng", &dir.arg("old.pcapng")];
    assert_refused(
        &tracer(&args),
        &args,
        &[&dir.arg("old.pcapng"), "already exists; pass --force"],
    );
    assert_eq!(dir.state(), before);
}

#[test]
fn export_writes_private_files_replaces_only_with_force_and_streams_to_dash() {
    let dir = Scratch::new("export-writes");
    write_recording(&dir.path("r.trace"));
    let recording = dir.arg("r.trace");

    let fresh = dir.arg("new.pcapng");
    let out = tracer(&["export", &recording, "--pcapng", &fresh]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&fresh)
            .expect("exported")
            .starts_with(&PCAPNG_MAGIC)
    );
    let mode = std::fs::metadata(&fresh)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "exports are private, like recordings");

    let old = dir.path("old.pcapng");
    std::fs::write(&old, b"an earlier export").expect("write");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::hard_link(&old, dir.path("old-link")).expect("hard link");
    let out = tracer(&[
        "export",
        &recording,
        "--pcapng",
        old.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&old)
            .expect("replaced")
            .starts_with(&PCAPNG_MAGIC)
    );
    assert_eq!(
        std::fs::metadata(&old).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(dir.path("old-link")).expect("read"),
        b"an earlier export",
        "replaced by a new file, not rewritten in place"
    );

    // `-` is stdout, and no file named `-` appears.
    let before = dir.state();
    let out = tracer_tests::tracer()
        .args(["export", &recording, "--pcapng", "-"])
        .current_dir(&dir.0)
        .output()
        .expect("run tracer");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(&PCAPNG_MAGIC), "pcapng on stdout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to stdout"));
    assert_eq!(dir.state(), before);
}

#[test]
fn export_errors_name_the_target_once() {
    let dir = Scratch::new("export-errors");
    write_recording(&dir.path("r.trace"));
    let recording = dir.arg("r.trace");
    for (target, cause) in [
        ("/dev/full", "No space left on device"),
        (
            "/nonexistent-tracer-dir/out.pcapng",
            "No such file or directory",
        ),
    ] {
        let out = tracer(&["export", &recording, "--pcapng", target]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{target}: {stderr}");
        assert!(stderr.contains(target), "{target}: {stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{target}: {stderr}");
    }
    // Writing to a device creates nothing beside the recording.
    let before = dir.state();
    let out = tracer(&["export", &recording, "--pcapng", "/dev/null"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dir.state(), before);
}

#[test]
fn follow_refuses_a_record_file_that_exists_or_is_a_symlink_before_anything_else() {
    // Refused before privileges and before the cluster is read: the cluster file does not
    // exist, so getting past the refusal would fail differently.
    let dir = Scratch::new("record-refusals");
    std::fs::write(dir.path("old.trace"), b"an earlier recording").expect("write");
    std::fs::set_permissions(
        dir.path("old.trace"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    std::fs::write(dir.path("precious"), b"somebody's file").expect("write");
    std::os::unix::fs::symlink(dir.path("precious"), dir.path("link.trace")).expect("symlink");
    std::os::unix::fs::symlink(dir.path("nowhere"), dir.path("dangling.trace")).expect("symlink");
    let before = dir.state();
    let cases: [(&str, bool, &[&str]); 5] = [
        (
            "old.trace",
            false,
            &["old.trace", "already exists; pass --force"],
        ),
        ("link.trace", false, &["link.trace", "is a symbolic link"]),
        ("link.trace", true, &["link.trace", "is a symbolic link"]),
        (
            "dangling.trace",
            true,
            &["dangling.trace", "is a symbolic link"],
        ),
        ("-", false, &["not to stdout"]),
    ];
    for (name, force, expected) in cases {
        let target = if name == "-" {
            "-".to_owned()
        } else {
            dir.arg(name)
        };
        let mut args = vec![
            "follow",
            "client",
            "svc/web",
            "--output",
            "json",
            "--cluster-file",
            "/nonexistent-tracer-cluster.json",
            "--record",
            &target,
        ];
        if force {
            args.push("--force");
        }
        assert_refused(&tracer(&args), &args, expected);
        assert_refused(&tracer_as_nobody(&args), &args, expected);
        assert_eq!(dir.state(), before, "{args:?} changed nothing");
    }
    // A directory that is not there is found out as early (a failure, not a refusal).
    let args = [
        "follow",
        "client",
        "svc/web",
        "--cluster-file",
        "/nonexistent-tracer-cluster.json",
        "--record",
        "/nonexistent-tracer-dir/r.trace",
    ];
    let out = tracer(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "tracer: cannot create /nonexistent-tracer-dir/r.trace: No such file or directory (os error 2)"
    );
}

#[test]
fn an_agent_records_and_shows_no_journeys() {
    for (args, expected) in [
        (vec!["agent", "nettest", "svc/nginx-test"], "--record FILE"),
        (
            vec![
                "agent",
                "nettest",
                "svc/nginx-test",
                "--record",
                "/nonexistent/a.trace",
                "--output",
                "json",
            ],
            "shows no journeys",
        ),
        // The reader of agents' streams: what the agents decide is refused, before any
        // agent is reached.
        (
            vec![
                "follow",
                "nettest",
                "svc/nginx-test",
                "--agent",
                "127.0.0.1:9",
                "--port",
                "80",
            ],
            "--port with --agent: the agents decide what they trace",
        ),
        (
            vec![
                "follow",
                "nettest",
                "svc/nginx-test",
                "--agent",
                "127.0.0.1:9",
                "--agent",
                "127.0.0.1:9",
            ],
            "--agent 127.0.0.1:9 is given twice",
        ),
    ] {
        let out = tracer(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn replay_refuses_to_stitch_recordings_of_different_sessions() {
    let recordings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/recordings");
    let a = recordings.join("healthy-service.trace");
    let b = recordings.join("concurrent-pings.trace");
    let out = tracer(&[
        "replay",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--output",
        "text",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("only recordings of one session stitch together"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing replayed");
}

#[test]
fn installed_as_kubectl_tracer_it_is_a_kubectl_plugin() {
    let dir = std::env::temp_dir().join(format!("tracer-plugin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(tracer_tests::tracer_bin(), dir.join("kubectl-tracer")).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let recording = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/recordings/wrong-interface.trace");
    let Ok(out) = std::process::Command::new("kubectl")
        .args(["tracer", "replay", "--output", "text"])
        .arg(&recording)
        .env("PATH", &path)
        .output()
    else {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("skipped: kubectl is not installed here");
        return;
    };
    let listed = std::process::Command::new("kubectl")
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .expect("kubectl plugin list");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("dropped on cpu1"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("kubectl-tracer"),
        "{}",
        String::from_utf8_lossy(&listed.stdout)
    );
}

#[test]
fn meaningless_follow_arguments_are_usage_errors() {
    for (option, value, expected) in [
        ("--duration", "0", "longer than zero"),
        ("--duration", "0ms", "longer than zero"),
        ("--duration", "-5s", "negative"),
        ("--duration", "NaN", "not a duration"),
        ("--duration", "1000000h", "more than a year"),
        ("--count", "0", "1 or more"),
        ("--port", "0", "1 to 65535"),
        ("--port", "70000", "not a port"),
        ("--namespace", "", "namespace is empty"),
    ] {
        // `--option=value`: `-5s` alone would be read as a flag.
        let option = format!("{option}={value}");
        let args = ["follow", "client", "svc/web", &option];
        let out = tracer(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let args = ["follow", "client", "svc/web", "--force"];
    assert_eq!(
        tracer(&args).status.code(),
        Some(2),
        "--force without --record"
    );
}

#[test]
fn the_same_endpoint_twice_and_invalid_addresses_are_usage_errors() {
    if !require_root() {
        return;
    }
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/cluster-bridge.json"
    );
    for (from, to, expected) in [
        ("client", "client", "FROM and TO are both `client`"),
        (
            "client",
            "default/client",
            "are the same endpoint (pod default/client",
        ),
        (
            "client",
            "10.42.0.5",
            "are the same endpoint (pod default/client",
        ),
        (
            "svc/web",
            "10.43.0.20",
            "are the same endpoint (service default/web",
        ),
        ("999.1.1.1", "svc/web", "not an IPv4 address"),
        ("client", "10.42.0.0/16", "a network, not an address"),
    ] {
        let args = [
            "follow",
            from,
            to,
            "--output",
            "json",
            "--cluster-file",
            fixture,
        ];
        assert_refused(&tracer(&args), &args, &[expected]);
    }
}

#[test]
fn errors_are_said_once() {
    let out = tracer(&["replay", "/nonexistent/x.trace", "--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "tracer: cannot read /nonexistent/x.trace: No such file or directory (os error 2)"
    );
    if !require_root() {
        return;
    }
    let out = tracer(&[
        "follow",
        "client",
        "svc/web",
        "--cluster-file",
        "/nonexistent/cluster.json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("/nonexistent/cluster.json"), "{stderr}");
}

#[test]
fn a_closed_pipe_ends_quietly() {
    for args in [
        &["doctor", "--output", "json"][..],
        &["completions", "bash"][..],
        &["lab", "scenarios"][..],
    ] {
        let mut child = tracer_tests::tracer()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tracer");
        // Close the reading end before tracer writes: its first write fails with EPIPE.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.is_empty(),
            "{args:?}: nothing to say about a closed pipe: {stderr}"
        );
        assert!(
            matches!(out.status.code(), Some(0 | 3 | 4)),
            "{args:?}: its own status, not a crash: {:?}",
            out.status
        );
    }
}

/// `replay --flows` on a committed lab recording (the seed's incident): text and summary
/// print the flows before the summary, JSON prints one `flow_path` line per path before the
/// `session_summary`, and each says the replies die on cpu1. Unprivileged.
#[test]
fn replay_with_flows_prints_each_flow_and_its_paths_in_every_output() {
    let recording = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/recordings/wrong-interface.trace");
    let recording = recording.to_str().unwrap();
    for output in ["text", "summary"] {
        let out = tracer(&["replay", recording, "--flows", "--output", output]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{output}: {stdout}");
        let flows_at = stdout.find("3 flows, 3 distinct paths:").expect(&stdout);
        let summary_at = stdout.find("6 journeys: ").expect(&stdout);
        assert!(flows_at < summary_at, "{output}: flows before the summary");
        assert!(
            stdout.contains(
                "icmp nginx-test-7d9c4b6f5-abcde → nettest (reply)\n  path 1: dropped · 2 packets"
            ),
            "{output}: {stdout}"
        );
        assert!(
            stdout.contains("cpu1 DROP calie3f2558665a IP_INNOROUTES"),
            "{stdout}"
        );
        // Journeys are listed in text, not in the summary.
        assert_eq!(stdout.contains("#1 icmp echo-request"), output == "text");
    }
    let out = tracer(&["replay", recording, "--flows", "--output", "json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let paths: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("flow_path")).collect();
    assert_eq!(paths.len(), 3);
    let first_path = lines
        .iter()
        .position(|l| l.get("flow_path").is_some())
        .unwrap();
    assert!(
        lines[..first_path]
            .iter()
            .all(|l| l.get("verdict").is_some())
    );
    assert_eq!(
        lines.last().unwrap()["session_summary"]["flows"],
        serde_json::json!({"flows": 3, "paths": 3, "journeys_not_kept": 0})
    );
    let dropped = paths
        .iter()
        .find(|p| p["verdict"] == "dropped")
        .expect("the dropped replies' path");
    assert_eq!(dropped["flow"]["direction"], "reply");
    assert_eq!(dropped["packets"], 2);
    assert_eq!(dropped["journeys"], serde_json::json!([2, 5]));
    assert!(
        dropped["diagnosis"]
            .as_str()
            .unwrap()
            .contains("missing on cpu1")
    );
}
