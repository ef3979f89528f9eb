//! tracer's Kubernetes client (kube-rs watch caches, `tracer::k8s`) against the lab's API
//! server on loopback: the initial lists, a scenario switch arriving through the watch,
//! the API server going away (stale, last model kept) and coming back, and the start-up
//! error when nothing listens.
//!
//! Needs no root and no cluster. Every wait is bounded.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tracer::k8s::{
    ClusterHandle, ClusterModel, ClusterSource, Protocol, Target, resolve, watch::BACKOFF_MAX,
};
use tracer_lab::{
    api::{self, ApiServer},
    spec::{Cluster, Scenario},
};
use tracer_tests::wait_until;

const START_TIMEOUT: Duration = Duration::from_secs(20);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Recovery after the API server returns is bounded by design: one reconnect backoff at
/// most, then one relist (see `tracer::k8s::watch`). The margin is for a loaded machine.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(BACKOFF_MAX.as_secs() + 5);

/// A scratch directory holding a kubeconfig, removed on drop.
struct Scratch {
    dir: PathBuf,
    kubeconfig: PathBuf,
}

impl Scratch {
    fn new(tag: &str, server: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-k8s-api-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, api::kubeconfig(&format!("http://{server}")))
            .expect("write kubeconfig");
        Self { dir, kubeconfig }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(scenario: Scenario) -> ApiServer {
    ApiServer::start(
        "127.0.0.1:0".parse().expect("address"),
        &Cluster::seed(scenario),
    )
    .expect("start the lab API server")
}

fn connect(kubeconfig: &Path) -> ClusterHandle {
    let source = ClusterSource::Api {
        kubeconfig: Some(kubeconfig.to_owned()),
        context: None,
    };
    match ClusterHandle::start(&source, START_TIMEOUT) {
        Ok(handle) => handle,
        Err(e) => panic!("ClusterHandle::start: {e}"),
    }
}

fn ready_endpoints(model: &ClusterModel, service: &str) -> Option<usize> {
    model
        .service("default", service)
        .map(|s| s.endpoints.iter().filter(|e| e.ready).count())
}

#[test]
fn watch_caches_load_the_lab_and_follow_a_scenario_switch() {
    let server = serve(Scenario::Healthy);
    let scratch = Scratch::new("watch", server.local_addr());
    let handle = connect(&scratch.kubeconfig);
    assert_eq!(
        handle.describe(),
        format!(
            "Kubernetes API http://{} (context tracer-lab)",
            server.local_addr()
        )
    );
    assert!(!handle.stale());

    let model = handle.snapshot();
    match resolve(&model, "nettest", "default") {
        Ok(Target::Pod(pod)) => {
            assert_eq!(pod.ip, Some("10.244.102.137".parse().expect("ip")));
            assert_eq!(pod.node.as_deref(), Some("cpu2"));
        }
        other => panic!("nettest resolved to {other:?}"),
    }
    let nginx = match resolve(&model, "svc/nginx-test", "default") {
        Ok(Target::Service(svc)) => svc,
        other => panic!("svc/nginx-test resolved to {other:?}"),
    };
    assert_eq!(nginx.cluster_ip, Some("10.109.60.89".parse().expect("ip")));
    assert_eq!(ready_endpoints(&model, "nginx-test"), Some(3));
    for (i, ip) in ["10.244.102.138", "10.244.184.84", "10.244.5.203"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            model.endpoint_position(&nginx, ip.parse().expect("ip"), 80),
            Some((i + 1, 3)),
            "position of {ip}"
        );
    }
    let webapp = model
        .service_by_node_port(32065, Protocol::Tcp)
        .expect("NodePort 32065");
    assert_eq!(webapp.name, "webapp");
    assert_eq!(
        model
            .node_by_ip("172.30.1.43".parse().expect("ip"))
            .map(|n| n.name.as_str()),
        Some("cpu1")
    );
    let objects = handle.objects();
    assert_eq!(objects.nodes.len(), 3);
    assert!(
        objects
            .pods
            .iter()
            .all(|p| p.metadata.managed_fields.is_none())
    );

    server.update(&Cluster::seed(Scenario::NoEndpoints));
    wait_until(
        "nginx-test to lose its ready endpoints",
        CHANGE_TIMEOUT,
        || ready_endpoints(&handle.snapshot(), "nginx-test") == Some(0),
    );
    let model = handle.snapshot();
    let nginx = model
        .service("default", "nginx-test")
        .expect("nginx-test still exists");
    assert_eq!(
        model.endpoint_position(nginx, "10.244.184.84".parse().expect("ip"), 80),
        None
    );
    assert_eq!(
        ready_endpoints(&model, "webapp"),
        Some(2),
        "other Services unchanged"
    );
    assert!(!handle.stale());
}

#[test]
fn api_server_gone_marks_stale_keeps_the_model_and_recovers() {
    let server = serve(Scenario::Healthy);
    let addr = server.local_addr();
    let scratch = Scratch::new("stale", addr);
    let handle = connect(&scratch.kubeconfig);
    assert!(!handle.stale());

    server.stop();
    wait_until(
        "stale() after the API server stopped",
        CHANGE_TIMEOUT,
        || handle.stale(),
    );
    let reason = handle.stale_reason().unwrap_or_default();
    assert!(!reason.is_empty(), "a stale handle says why");
    let model = handle.snapshot();
    assert!(
        matches!(resolve(&model, "nettest", "default"), Ok(Target::Pod(_))),
        "the last good model stays usable while stale"
    );

    // The same address again (std sets SO_REUSEADDR), now with the no-endpoints scenario.
    // Its resourceVersions start over: a watch merely resumed there would never see the
    // change, so recovery shows that every kind relisted.
    let again = ApiServer::start(addr, &Cluster::seed(Scenario::NoEndpoints))
        .expect("restart the lab API server");
    let back = Instant::now();
    wait_until(
        "recovery after the API server came back",
        RECOVERY_TIMEOUT,
        || !handle.stale() && ready_endpoints(&handle.snapshot(), "nginx-test") == Some(0),
    );
    eprintln!(
        "recovered {:?} after the API server came back",
        back.elapsed()
    );
    assert_eq!(handle.stale_reason(), None);
    drop(again);
}

#[test]
fn nothing_listening_fails_start_with_the_url_and_the_offline_way() {
    // A port that was free a moment ago and has no listener now.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let scratch = Scratch::new("refused", addr);
    let source = ClusterSource::Api {
        kubeconfig: Some(scratch.kubeconfig.clone()),
        context: None,
    };
    let err = ClusterHandle::start(&source, START_TIMEOUT)
        .expect_err("no API server")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot reach the Kubernetes API at http://{addr}: connection refused"
        )),
        "{err}"
    );
    assert!(
        err.contains("--cluster-file with the output of `kubectl get pods,services,endpointslices,nodes -A -o json`"),
        "{err}"
    );

    let source = ClusterSource::Api {
        kubeconfig: Some(scratch.kubeconfig.clone()),
        context: Some("elsewhere".to_owned()),
    };
    let err = ClusterHandle::start(&source, START_TIMEOUT)
        .expect_err("unknown context")
        .to_string();
    assert!(
        err.contains("no context \"elsewhere\" (contexts: tracer-lab)"),
        "{err}"
    );
}

#[test]
fn silent_api_times_out_naming_the_url() {
    // Connections complete in the kernel's backlog but nothing ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let scratch = Scratch::new("silent", addr);
    let source = ClusterSource::Api {
        kubeconfig: Some(scratch.kubeconfig.clone()),
        context: None,
    };
    let started = Instant::now();
    let err = ClusterHandle::start(&source, Duration::from_millis(1500))
        .expect_err("nothing answers")
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "start honours its timeout"
    );
    assert!(
        err.starts_with(&format!(
            "the Kubernetes API at http://{addr} did not send the cluster's objects within 1.5s."
        )),
        "{err}"
    );
    assert!(err.contains("--cluster-file"), "{err}");
    drop(listener);
}

#[test]
fn https_to_a_plain_http_server_fails_cleanly() {
    // Exercises the rustls/ring stack: the handshake fails, start reports it, nothing panics.
    let server = serve(Scenario::Healthy);
    let dir = std::env::temp_dir().join(format!("tracer-k8s-api-{}-tls", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let kubeconfig = dir.join("kubeconfig");
    let url = format!("https://{}", server.local_addr());
    std::fs::write(&kubeconfig, api::kubeconfig(&url)).expect("write kubeconfig");
    let source = ClusterSource::Api {
        kubeconfig: Some(kubeconfig),
        context: None,
    };
    let err = ClusterHandle::start(&source, START_TIMEOUT)
        .expect_err("TLS to an HTTP server")
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        err.starts_with(&format!("cannot reach the Kubernetes API at {url}: ")),
        "{err}"
    );
}

/// A server on loopback that answers every request with `response`, until dropped.
struct FakeServer {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    fn answering(response: &'static [u8]) -> Self {
        use std::io::{Read as _, Write as _};

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                // Read the request head, then answer and close.
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && matches!(stream.read(&mut byte), Ok(1)) {
                    head.push(byte[0]);
                }
                let _ = stream.write_all(response);
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_reply_that_is_not_kubernetes_is_not_called_unreachable() {
    let server = FakeServer::answering(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 21\r\nConnection: close\r\n\r\n<html>a web page</html",
    );
    let scratch = Scratch::new("not-json", server.addr);
    let source = ClusterSource::Api {
        kubeconfig: Some(scratch.kubeconfig.clone()),
        context: None,
    };
    let err = ClusterHandle::start(&source, START_TIMEOUT)
        .expect_err("not a Kubernetes reply")
        .to_string();
    let url = format!("http://{}", server.addr);
    assert!(
        err.starts_with(&format!(
            "the Kubernetes API at {url} answered the list of "
        )),
        "{err}"
    );
    assert!(err.contains("is not a Kubernetes reply"), "{err}");
    assert!(
        err.contains(&format!("is {url} a Kubernetes API server?")),
        "{err}"
    );
    assert!(!err.contains("cannot reach"), "{err}");
}
