//! A cluster of 50,000 Pods (issue #10): memory and time follow what is followed, not the
//! cluster. The lab's own objects plus 50,000 more Pods in a ~100 MB cluster file: `follow`
//! resolves its arguments in under 2 s of CPU time and stays under 200 MB, and its
//! recording — only the names its packets need — replays named. Timing and memory are the
//! release build's (what users run). The time is the process's CPU time, not the wall
//! clock's: what resolving costs, the same on a busy machine as on an idle one. Needs root;
//! serial.

use std::{
    fmt::Write as _,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{ChildGuard, lab::Lab, release_tracer_bin, require_root};

const PODS: usize = 50_000;

/// A Pod as `kubectl get -o json` prints one, about 2 KB.
fn pod(i: usize) -> String {
    let ip = format!("10.{}.{}.{}", 100 + i / 65_536, (i / 256) % 256, i % 256);
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"creationTimestamp":"2026-01-01T00:00:00Z","generateName":"bulk-7f9c6d-","labels":{{"app":"bulk","pod-template-hash":"7f9c6d"}},"name":"bulk-7f9c6d-{i:05}","namespace":"bulk{ns}","ownerReferences":[{{"apiVersion":"apps/v1","blockOwnerDeletion":true,"controller":true,"kind":"ReplicaSet","name":"bulk-7f9c6d","uid":"5f1d3c6e-0000-4000-8000-000000000001"}}],"resourceVersion":"{rv}","uid":"00000000-0000-4000-8000-{i:012}"}},"spec":{{"containers":[{{"image":"registry.example/bulk:1.0","imagePullPolicy":"IfNotPresent","name":"app","ports":[{{"containerPort":8080,"protocol":"TCP"}}],"resources":{{"limits":{{"cpu":"500m","memory":"256Mi"}},"requests":{{"cpu":"100m","memory":"64Mi"}}}},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","volumeMounts":[{{"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","name":"kube-api-access-{i:05}","readOnly":true}}]}}],"dnsPolicy":"ClusterFirst","enableServiceLinks":true,"nodeName":"bulk-node-{node}","preemptionPolicy":"PreemptLowerPriority","priority":0,"restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{{}},"serviceAccount":"default","serviceAccountName":"default","terminationGracePeriodSeconds":30,"tolerations":[{{"effect":"NoExecute","key":"node.kubernetes.io/not-ready","operator":"Exists","tolerationSeconds":300}}],"volumes":[{{"name":"kube-api-access-{i:05}","projected":{{"defaultMode":420,"sources":[{{"serviceAccountToken":{{"expirationSeconds":3607,"path":"token"}}}},{{"configMap":{{"items":[{{"key":"ca.crt","path":"ca.crt"}}],"name":"kube-root-ca.crt"}}}}]}}}}]}},"status":{{"conditions":[{{"lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:05Z","status":"True","type":"Initialized"}},{{"lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:09Z","status":"True","type":"Ready"}},{{"lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:09Z","status":"True","type":"ContainersReady"}},{{"lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:00Z","status":"True","type":"PodScheduled"}}],"containerStatuses":[{{"containerID":"containerd://{i:012}","image":"registry.example/bulk:1.0","lastState":{{}},"name":"app","ready":true,"restartCount":0,"started":true,"state":{{"running":{{"startedAt":"2026-01-01T00:00:08Z"}}}}}}],"hostIP":"172.31.{hn}.{hh}","phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"qosClass":"Burstable","startTime":"2026-01-01T00:00:00Z"}}}}"#,
        ns = i % 100,
        rv = 100_000 + i,
        node = i % 1000,
        hn = (i % 1000) / 250,
        hh = i % 250,
    )
}

/// CPU time a process has used so far (user + system, `/proc/PID/stat`).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: a plain query.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Peak resident memory of a process, kB (`VmHWM`).
fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_50000_pod_cluster_file_resolves_fast_in_little_memory_and_its_recording_replays() {
    if !require_root() {
        return;
    }
    let lab = Lab::up("healthy");
    let dir = std::env::temp_dir().join(format!("tracer-big-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster_file = dir.join("cluster.json");
    let recording = dir.join("big.trace");

    // The lab's objects, then 50,000 more Pods.
    let lab_objects: Value = serde_json::from_str(&lab.kubectl(&[
        "get",
        "pods,services,endpointslices,nodes",
        "-A",
        "-o",
        "json",
    ]))
    .unwrap();
    let mut text = String::from(r#"{"apiVersion":"v1","kind":"List","items":["#);
    for item in lab_objects["items"].as_array().unwrap() {
        text.push_str(&item.to_string());
        text.push(',');
    }
    for i in 0..PODS {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&pod(i));
    }
    write!(text, r#"],"metadata":{{"resourceVersion":""}}}}"#).unwrap();
    std::fs::write(&cluster_file, &text).unwrap();
    let size_mb = text.len() / 1_000_000;
    drop(text);
    assert!(size_mb >= 90, "a cluster file of {size_mb} MB");

    let started = Instant::now();
    let mut child = Command::new(release_tracer_bin())
        .args([
            "follow",
            "nettest",
            "nginx-test-7d9c4b6f5-abcde",
            "--cluster-file",
        ])
        .arg(&cluster_file)
        .args([
            "--netns-prefix",
            &lab.prefix,
            "--output",
            "json",
            "--record",
        ])
        .arg(&recording)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let mut tracer = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // Read at once: the process goes on working, so this errs on the high side.
            let spent = cpu_time(pid);
            let _ = tx.send((started.elapsed(), spent, line));
        }
    });
    let mut resolved = None;
    let mut said = String::new();
    while !said.contains("watching") {
        let (at, spent, line) = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("tracer did not start: {said}"));
        if line.starts_with("following ") {
            resolved = Some((at, spent));
        }
        said.push_str(&line);
        said.push('\n');
    }
    let (resolved_wall, resolved) = resolved.expect("the following line");
    assert!(lab.ping("pod-nettest", "10.244.184.84"));
    thread::sleep(Duration::from_millis(500));
    let peak = peak_kb(pid);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGINT) };
    assert!(tracer.0.wait().unwrap().success());
    eprintln!(
        "{size_mb} MB, {PODS} Pods: resolved in {resolved:?} of CPU time ({resolved_wall:?} on the wall clock), peak {peak} kB"
    );
    assert!(
        resolved < Duration::from_secs(2),
        "resolved in {resolved:?} of CPU time: {said}"
    );
    assert!(peak < 200 * 1024, "peak {peak} kB");

    // The recording keeps only the names its packets need, and replays named.
    let bytes = std::fs::metadata(&recording).unwrap().len();
    assert!(bytes < 200 * 1024, "a recording of {bytes} bytes");
    let replay = Command::new(release_tracer_bin())
        .args(["replay", "--output", "json"])
        .arg(&recording)
        .output()
        .unwrap();
    assert!(replay.status.success());
    let journeys = tracer_tests::follow::journeys_of(&String::from_utf8_lossy(&replay.stdout));
    assert!(!journeys.is_empty());
    for j in &journeys {
        assert_eq!(j["verdict"], "delivered", "{j:#}");
        assert!(
            j["from"]["pod"]
                .as_str()
                .is_some_and(|p| p.starts_with("default/"))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
