//! The lab's Kubernetes API server as clients meet it: the real `kubectl` (discovery
//! fallback from aggregated discovery, server-side printing, `-o json`, `get -w` across a
//! scenario switch), and raw HTTP for the watch protocol and malformed requests.
//!
//! Needs no root. Every wait is bounded; child processes are killed by a guard.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use tracer_lab::{
    api::{self, ApiServer},
    spec::{Cluster, Scenario},
};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const WATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// kubectl as installed with the Google Cloud SDK: `kubectl` dispatches on the server's
/// version; the versioned binaries beside it are tried too when present.
const VERSIONED_KUBECTLS: [&str; 2] = [
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
];

/// A running server, a kubeconfig for it, and a scratch directory removed on drop.
struct Lab {
    server: ApiServer,
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Lab {
    fn start(tag: &str) -> Self {
        let server = ApiServer::start(
            "127.0.0.1:0".parse().expect("address"),
            &Cluster::seed(Scenario::Healthy),
        )
        .expect("start the API server");
        let dir = std::env::temp_dir().join(format!("tracer-lab-api-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let kubeconfig = dir.join("kubeconfig");
        let url = format!("http://{}", server.local_addr());
        std::fs::write(&kubeconfig, api::kubeconfig(&url)).expect("write kubeconfig");
        Self {
            server,
            dir,
            kubeconfig,
        }
    }

    fn kubectl(&self, binary: &str, args: &[&str]) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.join(format!("cache-{}", binary.replace('/', "_"))))
            .args(args)
            .env("HOME", &self.dir)
            .stdin(Stdio::null());
        command
    }

    /// Runs kubectl to completion (bounded) and returns its output.
    fn run(&self, binary: &str, args: &[&str]) -> Output {
        run_bounded(self.kubectl(binary, args))
    }

    /// Runs kubectl, asserts success, returns stdout.
    fn ok(&self, binary: &str, args: &[&str]) -> String {
        let out = self.run(binary, args);
        assert!(
            out.status.success(),
            "{binary} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Kills and reaps a child process when dropped (a failed assertion included).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_bounded(mut command: Command) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut guard = ChildGuard(child);
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(guard.0.stdout.take().map(|p| Box::new(p) as Box<_>));
    let stderr = drain(guard.0.stderr.take().map(|p| Box::new(p) as Box<_>));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "{command:?} did not finish in {COMMAND_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout"),
        stderr: stderr.join().expect("stderr"),
    }
}

/// The kubectl binaries to test with; none (and a note) when kubectl is not installed,
/// which under CI is a failure.
fn kubectls() -> Vec<String> {
    let installed = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is not installed under CI"
        );
        eprintln!("skipped: kubectl is not installed");
        return Vec::new();
    }
    let mut found = vec!["kubectl".to_owned()];
    found.extend(
        VERSIONED_KUBECTLS
            .iter()
            .filter(|p| Path::new(p).exists())
            .map(|p| (*p).to_owned()),
    );
    found
}

/// The row of `table` whose columns include `name`, split on whitespace.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.contains(&name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"))
}

#[test]
fn kubectl_gets_the_seed_cluster() {
    let kubectls = kubectls();
    if kubectls.is_empty() {
        return;
    }
    let lab = Lab::start("get");
    for k in &kubectls {
        let k = k.as_str();
        let pods = lab.ok(k, &["get", "pods", "-A", "-o", "wide"]);
        let header: Vec<_> = pods
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            [
                "NAMESPACE",
                "NAME",
                "READY",
                "STATUS",
                "RESTARTS",
                "AGE",
                "IP",
                "NODE",
                "NOMINATED",
                "NODE",
                "READINESS",
                "GATES"
            ],
            "{k}"
        );
        assert_eq!(
            row(&pods, "nettest")[..5],
            ["default", "nettest", "1/1", "Running", "0"],
            "{k}"
        );
        assert_eq!(
            row(&pods, "nettest")[6..8],
            ["10.244.102.137", "cpu2"],
            "{k}"
        );
        assert_eq!(row(&pods, "10.244.184.84")[7], "cpu1", "{k}");
        assert_eq!(row(&pods, "10.244.5.203")[7], "gpu1", "{k}");
        assert_eq!(row(&pods, "10.244.102.138")[7], "cpu2", "{k}");
        assert_eq!(pods.lines().count(), 7, "{k}: header and six Pods\n{pods}");

        let services = lab.ok(k, &["get", "svc,endpoints,endpointslices", "-A"]);
        assert_eq!(
            row(&services, "service/nginx-test")[2..6],
            ["ClusterIP", "10.109.60.89", "<none>", "80/TCP"],
            "{k}"
        );
        assert_eq!(
            row(&services, "service/webapp")[2..6],
            ["NodePort", "10.103.193.83", "<none>", "80:32065/TCP"],
            "{k}"
        );
        assert_eq!(
            row(&services, "endpoints/nginx-test")[2],
            "10.244.102.138:80,10.244.184.84:80,10.244.5.203:80",
            "{k}"
        );
        let slice = row(&services, "10.244.102.138,10.244.184.84,10.244.5.203");
        assert!(
            slice[1].starts_with("endpointslice.discovery.k8s.io/nginx-test-"),
            "{k}: {slice:?}"
        );
        assert_eq!(slice[2..4], ["IPv4", "80"], "{k}");

        let nodes = lab.ok(k, &["get", "nodes", "-o", "wide"]);
        let cpu1 = row(&nodes, "cpu1");
        assert_eq!(cpu1[1..3], ["Ready", "control-plane"], "{k}");
        assert_eq!(cpu1[4..7], ["v1.31.13", "172.30.1.43", "<none>"], "{k}");
        assert!(
            cpu1.last()
                .is_some_and(|r| r.starts_with("containerd://1.7.")),
            "{k}: {cpu1:?}"
        );
        assert_eq!(row(&nodes, "gpu1")[2], "<none>", "{k}");

        let json: serde_json::Value =
            serde_json::from_str(&lab.ok(k, &["get", "pods", "-o", "json"]))
                .expect("kubectl -o json");
        let items = json["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(items.len(), 6, "{k}");
        let nettest = items
            .iter()
            .find(|p| p["metadata"]["name"] == "nettest")
            .expect("nettest in -o json");
        assert_eq!(nettest["kind"], "Pod");
        assert_eq!(nettest["status"]["podIP"], "10.244.102.137");
        assert_eq!(nettest["spec"]["nodeName"], "cpu2");

        let missing = lab.run(k, &["get", "pod", "nope"]);
        assert!(!missing.status.success());
        assert!(
            String::from_utf8_lossy(&missing.stderr).contains("pods \"nope\" not found"),
            "{k}: {}",
            String::from_utf8_lossy(&missing.stderr)
        );
    }
    drop(lab);
}

/// Lines a child prints, delivered over a channel as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects lines until `done` holds for what was seen, or panics after `WATCH_TIMEOUT`.
fn wait_for(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + WATCH_TIMEOUT;
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("timed out waiting for {what}; saw:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn kubectl_get_watch_shows_a_scenario_switch() {
    let kubectls = kubectls();
    if kubectls.is_empty() {
        return;
    }
    let lab = Lab::start("watch");
    let nginx = [
        "nginx-test-7d9c4b6f5-x2k8p",
        "nginx-test-7d9c4b6f5-abcde",
        "nginx-test-7d9c4b6f5-q7w4n",
    ];
    for (round, k) in kubectls.iter().enumerate() {
        // Each round starts from healthy and switches to no-endpoints.
        lab.server.update(&Cluster::seed(Scenario::Healthy));
        let mut child = ChildGuard(
            lab.kubectl(k, &["get", "pods", "-w"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn kubectl get -w"),
        );
        let rx = lines_of(&mut child.0);
        let mut seen = Vec::new();
        wait_for(&rx, &mut seen, "the initial listing", |s| s.len() >= 7);
        assert!(seen[0].starts_with("NAME"), "{k}: {seen:?}");
        assert!(
            nginx
                .iter()
                .all(|n| seen.iter().any(|l| l.starts_with(n) && l.contains("1/1"))),
            "{k} round {round}: {seen:?}"
        );

        lab.server.update(&Cluster::seed(Scenario::NoEndpoints));
        wait_for(&rx, &mut seen, "nginx-test Pods turning not ready", |s| {
            nginx.iter().all(|n| {
                s[7..]
                    .iter()
                    .any(|l| l.starts_with(n) && row(l, n)[1] == "0/1")
            })
        });
        // Only the nginx-test Pods changed; no second header.
        assert!(
            seen[7..].iter().all(|l| l.starts_with("nginx-test-")),
            "{k}: {seen:?}"
        );
    }
}

/// Sends a raw HTTP request and returns the whole response (the server closes it).
fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(WATCH_TIMEOUT))
        .expect("read timeout");
    stream.write_all(request).expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn watches_resume_from_a_resource_version_and_end_on_timeout() {
    let lab = Lab::start("raw");
    let addr = lab.server.local_addr();
    let list = raw(
        addr,
        b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    let body = list
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let list: serde_json::Value = serde_json::from_str(body).expect("PodList");
    let version: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("list resourceVersion");

    lab.server.update(&Cluster::seed(Scenario::NoEndpoints));
    let started = Instant::now();
    let watch = raw(
        addr,
        format!(
            "GET /apis/discovery.k8s.io/v1/endpointslices?watch=true&resourceVersion={version}&timeoutSeconds=1 HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "timeoutSeconds ends the stream"
    );
    assert!(watch.contains("Transfer-Encoding: chunked"), "{watch}");
    let events: Vec<serde_json::Value> = watch
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("one event per line"))
        .collect();
    assert_eq!(events.len(), 1, "only nginx-test's slice changed: {watch}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["kind"], "EndpointSlice");
    assert_eq!(
        events[0]["object"]["endpoints"][0]["conditions"]["ready"],
        false
    );
    let event_version: u64 = events[0]["object"]["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("event resourceVersion");
    assert!(event_version > version);
    assert!(watch.ends_with("0\r\n\r\n"), "{watch}");
}

#[test]
fn malformed_requests_get_errors_and_the_server_keeps_serving() {
    let lab = Lab::start("garbage");
    let addr = lab.server.local_addr();
    for garbage in [
        &b"\x00\x01\x02 nonsense\r\n\r\n"[..],
        b"GET /api HTTP/9.9\r\n\r\n",
        b"GET /api HTTP/1.1\r\nno-colon-here\r\n\r\n",
        b"GET /api/v1/pods?labelSelector=%28%28 HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /api/v1/pods?watch=1&resourceVersion=x HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /api/v1/namespaces/%ff%fe/pods/%00 HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let response = raw(addr, garbage);
        assert!(
            response.starts_with("HTTP/1.1 4"),
            "{garbage:?} -> {response}"
        );
    }
    // A client that connects and leaves, and one that sends half a request.
    drop(TcpStream::connect(addr).expect("connect"));
    let mut half = TcpStream::connect(addr).expect("connect");
    half.write_all(b"GET /api HT").expect("send");
    drop(half);
    let version = raw(addr, b"GET /version HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(version.starts_with("HTTP/1.1 200"), "{version}");
    assert!(version.contains("\"gitVersion\":\"v1.31.13\""), "{version}");
}

#[test]
fn stopping_ends_watches_and_slow_clients_promptly() {
    let lab = Lab::start("stop");
    let addr = lab.server.local_addr();
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.write_all(b"GET /api HT").expect("send half a request");
    let mut watching = TcpStream::connect(addr).expect("connect");
    watching
        .set_read_timeout(Some(WATCH_TIMEOUT))
        .expect("read timeout");
    watching
        .write_all(b"GET /api/v1/pods?watch=true HTTP/1.1\r\n\r\n")
        .expect("send");
    let mut head = [0u8; 15];
    watching
        .read_exact(&mut head)
        .expect("watch response starts");
    assert_eq!(&head, b"HTTP/1.1 200 OK");

    let started = Instant::now();
    drop(lab);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let _ = watching.read_to_end(&mut rest);
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "the watch is terminated cleanly"
    );
    let mut end = Vec::new();
    let _ = slow.read_to_end(&mut end);
}
