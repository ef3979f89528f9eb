//! The live source: watch caches of the four kinds on a background thread.
//!
//! One OS thread (`tracer-k8s`) runs a single-threaded tokio runtime. In it:
//!
//! - one task per kind (Pods, Services, EndpointSlices, Nodes, all namespaces, no
//!   selectors) consumes a `kube_runtime::watcher` stream, trims each object (see
//!   [`super::objects::Trim`]) and forwards the events;
//! - a coordinator owns the four caches. A (re)list arrives as `Init`, `InitApply`…,
//!   `InitDone`; the new list is buffered and swapped in whole at `InitDone`, so a
//!   relist never shows a half-empty cluster. Other events apply at once. After a change
//!   it waits [`DEBOUNCE`] for more, then rebuilds the [`ClusterModel`] and publishes it
//!   (and the raw objects) behind `RwLock<Arc<…>>`: readers only clone an `Arc`.
//!
//! Start-up: [`spawn`] blocks until every kind has finished its first list; an error before
//! that fails the start with the API URL and the cause, and running out of time fails it
//! too (the thread is then told to stop).
//!
//! Failures later (API server gone, watch refused): the task reports the error, waits
//! (exponential backoff from [`BACKOFF_MIN`] to [`BACKOFF_MAX`]) and starts a fresh watcher,
//! whose first action is a full relist. The kind counts as failing from the error until
//! that relist completes; while any kind fails, `stale` is true and the last good model
//! stays published. Restarting from a relist (rather than resuming the old stream) gives
//! recovery a definite signal, `InitDone`, and cannot miss deletions made while away.
//!
//! An outage restarts every kind, not only the one that saw it. A watch the server ends
//! cleanly (a server shutting down does that) is resumed by kube's watcher from its last
//! resourceVersion without any error; if that resume reaches a restarted server whose
//! versions started over (the lab's, an API server restored from a backup), the kind
//! would go on silently with the old objects, never relisting. So the first time any kind
//! cannot reach the server (connection refused, reset, timed out: the server went away; a
//! refusal such as `410 Expired` from a live server is that kind's business only) a new
//! *epoch* starts: every task drops its watcher and relists, every kind counts as failing
//! until its relist of the new epoch completes, and events from older watchers still in the
//! channel are ignored. Recovery after the server returns is then bounded by
//! [`BACKOFF_MAX`] (short, so that a follow re-attaches within seconds) plus one relist.
//!
//! A connection that goes silent without closing (the API host vanished) is caught by the
//! [`READ_WATCHDOG`] read timeout and handled like any other failure.
//!
//! The thread ends when the last [`super::ClusterHandle`] clone is dropped.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
        mpsc as std_mpsc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::{
    core::v1::{Node, Pod, Service},
    discovery::v1::EndpointSlice,
};
use kube::{
    Api, Client, Resource,
    runtime::watcher::{self, Event},
};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::{
    error::{K8sError, root_cause},
    kubeconfig::{self, Origin},
    model::ClusterModel,
    objects::{ClusterObjects, Trim},
};

/// How long the coordinator waits for more changes before rebuilding the model.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// First wait before restarting a failed watch.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between restarts: how long recovery can lag behind the API server's return
/// (four kinds, so at most two requests a second against a server that is down).
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The API server ends every watch after the watcher's `timeoutSeconds` (290 s); a
/// connection silent for longer than this is dead (host gone without closing it), so a read
/// that waits this long fails and the watch restarts. Only applies when the kubeconfig sets
/// no read timeout of its own.
pub const READ_WATCHDOG: Duration = Duration::from_secs(330);

/// What the handle and the watch thread share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The newest model and the CLOCK_MONOTONIC time it was published: it names the
    /// packets seen from then on (the pipeline keeps the versions before it).
    pub model: RwLock<(u64, Arc<ClusterModel>)>,
    pub objects: RwLock<Arc<ClusterObjects>>,
    pub stale: AtomicBool,
    /// Why the watch is failing (while `stale`), e.g. "Pods: connection refused".
    pub stale_reason: Mutex<Option<String>>,
}

impl Shared {
    pub fn publish(&self, objects: ClusterObjects) {
        self.publish_model(objects.model());
        *self.objects.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(objects);
    }

    /// Publishes a model built without objects (a cluster file's rows).
    pub fn publish_model(&self, model: ClusterModel) {
        let now = crate::clock::monotonic_ns();
        // A poisoned lock only means a reader panicked while holding it; the data is a
        // plain Arc and still whole.
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = (now, Arc::new(model));
    }
}

/// Dropping this (with the last handle) stops the watch thread.
#[derive(Debug)]
pub struct StopOnDrop {
    _stop: oneshot::Sender<()>,
}

/// Start-up messages from the watch thread.
enum Boot {
    Configured { url: String, describe: String },
    Ready,
    Failed(K8sError),
}

/// Starts the watch thread and waits (at most `timeout`) for the first complete lists.
/// Returns the description of the source and the guard that keeps the thread running.
pub fn spawn(
    origin: Origin,
    context: Option<String>,
    shared: Arc<Shared>,
    timeout: Duration,
) -> Result<(String, StopOnDrop), K8sError> {
    let deadline = Instant::now() + timeout;
    let (boot_tx, boot_rx) = std_mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(K8sError::Runtime)?;
    std::thread::Builder::new()
        .name("tracer-k8s".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = stop_rx => {}
                    () = run(origin, context, shared, boot_tx) => {}
                }
            });
        })
        .map_err(K8sError::Runtime)?;
    let guard = StopOnDrop { _stop: stop_tx };
    let mut url = None;
    let mut describe = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match boot_rx.recv_timeout(left) {
            Ok(Boot::Configured {
                url: u,
                describe: d,
            }) => {
                url = Some(u);
                describe = d;
            }
            Ok(Boot::Ready) => return Ok((describe, guard)),
            Ok(Boot::Failed(e)) => return Err(e),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                return Err(K8sError::Timeout {
                    url: url.unwrap_or_else(|| "(configuration still loading)".to_owned()),
                    timeout,
                });
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                return Err(K8sError::Runtime(std::io::Error::other(
                    "the watch thread stopped during start-up",
                )));
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pods,
    Services,
    EndpointSlices,
    Nodes,
}

impl Kind {
    fn plural(self) -> &'static str {
        match self {
            Self::Pods => "Pods",
            Self::Services => "Services",
            Self::EndpointSlices => "EndpointSlices",
            Self::Nodes => "Nodes",
        }
    }
}

/// One event from a watch task, tagged with the epoch its watcher started in (module doc).
struct Tagged {
    epoch: u64,
    msg: Msg,
}

/// One event from a watch task; objects are boxed so the channel's slots stay small.
enum Msg {
    Pod(Event<Box<Pod>>),
    Service(Event<Box<Service>>),
    Slice(Event<Box<EndpointSlice>>),
    Node(Event<Box<Node>>),
    Failed(Kind, watcher::Error),
}

async fn run(
    origin: Origin,
    context: Option<String>,
    shared: Arc<Shared>,
    boot: std_mpsc::Sender<Boot>,
) {
    let (mut config, describe) = match kubeconfig::load(&origin, context.as_deref()).await {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = boot.send(Boot::Failed(e));
            return;
        }
    };
    if config.read_timeout.is_none() {
        config.read_timeout = Some(READ_WATCHDOG);
    }
    let url = kubeconfig::url_text(&config.cluster_url);
    let _ = boot.send(Boot::Configured {
        url: url.clone(),
        describe,
    });
    let client = match Client::try_from(config) {
        Ok(client) => client,
        Err(e) => {
            let _ = boot.send(Boot::Failed(K8sError::Unreachable {
                url,
                cause: root_cause(&e),
            }));
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let (epoch_tx, epoch_rx) = tokio::sync::watch::channel(0u64);
    tokio::spawn(watch_kind(
        Api::<Pod>::all(client.clone()),
        Kind::Pods,
        (tx.clone(), epoch_rx.clone()),
        Msg::Pod,
    ));
    tokio::spawn(watch_kind(
        Api::<Service>::all(client.clone()),
        Kind::Services,
        (tx.clone(), epoch_rx.clone()),
        Msg::Service,
    ));
    tokio::spawn(watch_kind(
        Api::<EndpointSlice>::all(client.clone()),
        Kind::EndpointSlices,
        (tx.clone(), epoch_rx.clone()),
        Msg::Slice,
    ));
    tokio::spawn(watch_kind(
        Api::<Node>::all(client),
        Kind::Nodes,
        (tx, epoch_rx),
        Msg::Node,
    ));
    coordinate(rx, &epoch_tx, &shared, boot, &url).await;
}

/// Why a watch task stopped reading its watcher.
enum Stop {
    /// Its watcher failed: wait before relisting.
    Failed,
    /// A new epoch began (an outage somewhere): relist now.
    NewEpoch,
    /// The coordinator is gone.
    Shutdown,
}

/// Forwards one kind's watch events forever, restarting the watcher (from a relist) after
/// an error of its own or when a new epoch begins.
async fn watch_kind<K>(
    api: Api<K>,
    kind: Kind,
    (tx, mut epochs): (
        mpsc::UnboundedSender<Tagged>,
        tokio::sync::watch::Receiver<u64>,
    ),
    wrap: fn(Event<Box<K>>) -> Msg,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Trim + 'static,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        // This relist starts now, so it covers every epoch begun so far.
        let epoch = *epochs.borrow_and_update();
        let send = |msg| tx.send(Tagged { epoch, msg }).is_ok();
        let mut stream = std::pin::pin!(watcher::watcher(api.clone(), watcher::Config::default()));
        let stop = loop {
            let item = tokio::select! {
                biased;
                changed = epochs.changed() => {
                    break if changed.is_ok() { Stop::NewEpoch } else { Stop::Shutdown };
                }
                item = stream.next() => item,
            };
            let msg = match item {
                Some(Ok(event)) => {
                    if matches!(event, Event::InitDone) {
                        backoff = BACKOFF_MIN;
                    }
                    wrap(boxed(event.modify(Trim::trim)))
                }
                Some(Err(e)) => {
                    break if send(Msg::Failed(kind, e)) {
                        Stop::Failed
                    } else {
                        Stop::Shutdown
                    };
                }
                // kube's watcher never ends its stream; restart it if it ever does.
                None => break Stop::Failed,
            };
            if !send(msg) {
                return;
            }
        };
        match stop {
            Stop::Shutdown => return,
            Stop::NewEpoch => {}
            Stop::Failed => {
                // A new epoch (begun by this very failure, or another kind's) ends the wait.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    changed = epochs.changed() => if changed.is_err() { return },
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn boxed<K>(event: Event<K>) -> Event<Box<K>> {
    match event {
        Event::Apply(o) => Event::Apply(Box::new(o)),
        Event::Delete(o) => Event::Delete(Box::new(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(Box::new(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// One kind's cache; see the module doc for the Init buffering.
struct Cache<K> {
    objects: BTreeMap<String, Box<K>>,
    relist: Option<BTreeMap<String, Box<K>>>,
    synced: bool,
    failing: bool,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            relist: None,
            synced: false,
            failing: false,
        }
    }
}

impl<K: Resource + Clone> Cache<K> {
    /// Applies one event; true when what the model sees changed.
    fn apply(&mut self, event: Event<Box<K>>) -> bool {
        match event {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(object) => {
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&*object), object);
                false
            }
            Event::InitDone => {
                self.objects = self.relist.take().unwrap_or_default();
                self.synced = true;
                self.failing = false;
                true
            }
            Event::Apply(object) => {
                self.objects.insert(key(&*object), object);
                true
            }
            Event::Delete(object) => self.objects.remove(&key(&*object)).is_some(),
        }
    }

    fn values(&self) -> Vec<K> {
        self.objects.values().map(|o| K::clone(o)).collect()
    }
}

fn key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

#[derive(Default)]
struct Caches {
    pods: Cache<Pod>,
    services: Cache<Service>,
    slices: Cache<EndpointSlice>,
    nodes: Cache<Node>,
}

impl Caches {
    fn apply(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Pod(e) => self.pods.apply(e),
            Msg::Service(e) => self.services.apply(e),
            Msg::Slice(e) => self.slices.apply(e),
            Msg::Node(e) => self.nodes.apply(e),
            Msg::Failed(kind, _) => {
                match kind {
                    Kind::Pods => self.pods.failing = true,
                    Kind::Services => self.services.failing = true,
                    Kind::EndpointSlices => self.slices.failing = true,
                    Kind::Nodes => self.nodes.failing = true,
                }
                false
            }
        }
    }

    fn synced(&self) -> bool {
        self.pods.synced && self.services.synced && self.slices.synced && self.nodes.synced
    }

    /// A new epoch began: every kind fails until its next relist completes.
    fn fail_all(&mut self) {
        self.pods.failing = true;
        self.services.failing = true;
        self.slices.failing = true;
        self.nodes.failing = true;
    }

    /// True while an outage's epoch is still being relisted by every kind (no need for
    /// another one).
    fn all_failing(&self) -> bool {
        self.pods.failing && self.services.failing && self.slices.failing && self.nodes.failing
    }

    fn failing(&self) -> bool {
        self.pods.failing || self.services.failing || self.slices.failing || self.nodes.failing
    }

    fn objects(&self) -> ClusterObjects {
        ClusterObjects {
            pods: self.pods.values(),
            services: self.services.values(),
            endpoint_slices: self.slices.values(),
            nodes: self.nodes.values(),
        }
    }
}

/// Owns the caches: boots, then keeps the published model current (module doc).
async fn coordinate(
    mut rx: mpsc::UnboundedReceiver<Tagged>,
    epochs: &tokio::sync::watch::Sender<u64>,
    shared: &Shared,
    boot: std_mpsc::Sender<Boot>,
    url: &str,
) {
    let mut caches = Caches::default();
    let mut epoch = 0;
    let mut booted = false;
    let mut rebuild_at: Option<tokio::time::Instant> = None;
    loop {
        let msg = match rebuild_at {
            Some(at) => tokio::select! {
                msg = rx.recv() => msg,
                () = tokio::time::sleep_until(at) => {
                    rebuild_at = None;
                    shared.publish(caches.objects());
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(Tagged {
            epoch: began_in,
            msg,
        }) = msg
        else {
            return;
        };
        // A watcher begun before this epoch may be a watch resumed on a restarted server
        // (module doc): only relists of the current epoch count.
        if began_in < epoch {
            continue;
        }
        if let Msg::Failed(kind, error) = &msg {
            let error = start_error(url, *kind, error);
            if !booted {
                let _ = boot.send(Boot::Failed(error));
                return;
            }
            let server_gone = matches!(error, K8sError::Unreachable { .. });
            let reason = match error {
                K8sError::Refused { what, cause, .. } | K8sError::BadReply { what, cause, .. } => {
                    format!("{what}: {cause}")
                }
                K8sError::Unreachable { cause, .. } => format!("{}: {cause}", kind.plural()),
                other => other.to_string(),
            };
            *shared
                .stale_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(reason);
            if server_gone && !caches.all_failing() {
                // Before `stale` is set: whoever sees it stale can rely on every kind
                // relisting from now on.
                epoch += 1;
                let _ = epochs.send(epoch);
                caches.fail_all();
            }
        }
        let changed = caches.apply(msg);
        if !booted {
            if caches.synced() {
                booted = true;
                shared.publish(caches.objects());
                let _ = boot.send(Boot::Ready);
            }
            continue;
        }
        let failing = caches.failing();
        shared.stale.store(failing, Ordering::Relaxed);
        if !failing {
            *shared
                .stale_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
        }
        if changed && rebuild_at.is_none() {
            rebuild_at = Some(tokio::time::Instant::now() + DEBOUNCE);
        }
    }
}

/// The start-up failure for `error` while listing `kind`.
fn start_error(url: &str, kind: Kind, error: &watcher::Error) -> K8sError {
    let client_error = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        watcher::Error::WatchError(status) => {
            return K8sError::Refused {
                url: url.to_owned(),
                what: kind.plural(),
                cause: status_text(&status.message, status.code, &status.reason),
            };
        }
        watcher::Error::NoResourceVersion => {
            return K8sError::Refused {
                url: url.to_owned(),
                what: kind.plural(),
                cause: error.to_string(),
            };
        }
    };
    match client_error {
        // kube makes a Status up when the error body is not one (a proxy's or a web
        // server's page): that is not a Kubernetes API refusing.
        kube::Error::Api(status) if status.reason == KUBE_UNPARSED_STATUS => K8sError::BadReply {
            url: url.to_owned(),
            what: kind.plural(),
            cause: format!("HTTP {}: {}", status.code, excerpt(&status.message)),
        },
        kube::Error::Api(status) => K8sError::Refused {
            url: url.to_owned(),
            what: kind.plural(),
            cause: status_text(&status.message, status.code, &status.reason),
        },
        // The server answered: what it said was not a Kubernetes reply.
        kube::Error::SerdeError(_)
        | kube::Error::FromUtf8(_)
        | kube::Error::LinesCodecMaxLineLengthExceeded => K8sError::BadReply {
            url: url.to_owned(),
            what: kind.plural(),
            cause: root_cause(client_error),
        },
        other => K8sError::Unreachable {
            url: url.to_owned(),
            cause: root_cause(other),
        },
    }
}

/// The `reason` kube-client gives the Status it makes up from an error body that is not a
/// Kubernetes Status (kube-client 5, `handle_api_errors`).
const KUBE_UNPARSED_STATUS: &str = "Failed to parse error data";

/// The start of a reply body, on one line: enough to recognise a web page or a proxy.
fn excerpt(body: &str) -> String {
    const LONGEST: usize = 60;
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(LONGEST) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None if line.is_empty() => "an empty body".to_owned(),
        None => line,
    }
}

fn status_text(message: &str, code: u16, reason: &str) -> String {
    match (message.is_empty(), reason.is_empty()) {
        (false, false) => format!("{message} ({code} {reason})"),
        (false, true) => format!("{message} ({code})"),
        (true, false) => format!("{code} {reason}"),
        (true, true) => format!("HTTP {code}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str) -> Box<Pod> {
        Box::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": "cpu1", "containers": []},
                "status": {"phase": "Running", "podIP": "10.244.1.5",
                           "podIPs": [{"ip": "10.244.1.5"}]},
            }))
            .expect("a Pod"),
        )
    }

    /// A complete relist of `kinds` by watchers begun in `epoch`; the Pods list holds `pods`.
    fn relist(tx: &mpsc::UnboundedSender<Tagged>, epoch: u64, kinds: &[Kind], pods: &[&str]) {
        let send = |msg| tx.send(Tagged { epoch, msg }).expect("coordinator running");
        for kind in kinds {
            match kind {
                Kind::Pods => {
                    send(Msg::Pod(Event::Init));
                    for name in pods {
                        send(Msg::Pod(Event::InitApply(pod(name))));
                    }
                    send(Msg::Pod(Event::InitDone));
                }
                Kind::Services => {
                    send(Msg::Service(Event::Init));
                    send(Msg::Service(Event::InitDone));
                }
                Kind::EndpointSlices => {
                    send(Msg::Slice(Event::Init));
                    send(Msg::Slice(Event::InitDone));
                }
                Kind::Nodes => {
                    send(Msg::Node(Event::Init));
                    send(Msg::Node(Event::InitDone));
                }
            }
        }
    }

    /// Lets the coordinator take in what was sent and publish it.
    async fn settle() {
        tokio::time::sleep(DEBOUNCE * 4).await;
    }

    fn pod_names(shared: &Shared) -> Vec<String> {
        let model = Arc::clone(&shared.model.read().expect("model").1);
        model.pods().map(|p| p.name.clone()).collect()
    }

    const ALL: [Kind; 4] = [
        Kind::Pods,
        Kind::Services,
        Kind::EndpointSlices,
        Kind::Nodes,
    ];

    #[test]
    fn reply_bodies_are_shown_short_and_on_one_line() {
        assert_eq!(
            excerpt("<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>"),
            "<!DOCTYPE HTML> <html lang=\"en\"> <head>"
        );
        assert_eq!(excerpt(&"x".repeat(100)), format!("{}…", "x".repeat(60)));
        assert_eq!(excerpt(" \n"), "an empty body");
    }

    #[tokio::test]
    async fn an_outage_relists_every_kind_and_ignores_watchers_begun_before_it() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (epoch_tx, epochs) = tokio::sync::watch::channel(0);
        let (boot_tx, boot_rx) = std_mpsc::channel();
        let shared = Arc::new(Shared::default());
        let coordinator = tokio::spawn({
            let shared = Arc::clone(&shared);
            async move { coordinate(rx, &epoch_tx, &shared, boot_tx, "http://test").await }
        });

        relist(&tx, 0, &ALL, &["web-old"]);
        settle().await;
        assert!(matches!(boot_rx.try_recv(), Ok(Boot::Ready)));
        assert_eq!(pod_names(&shared), ["web-old"]);
        assert!(!shared.stale.load(Ordering::Relaxed));

        // A refusal from a live server is that kind's alone: stale until it relists.
        tx.send(Tagged {
            epoch: 0,
            msg: Msg::Failed(Kind::Services, watcher::Error::NoResourceVersion),
        })
        .expect("coordinator running");
        settle().await;
        assert_eq!(*epochs.borrow(), 0, "no new epoch");
        assert!(shared.stale.load(Ordering::Relaxed));
        relist(&tx, 0, &[Kind::Services], &[]);
        settle().await;
        assert!(!shared.stale.load(Ordering::Relaxed));

        // One kind cannot reach the server: a new epoch for all of them, and stale.
        let reset =
            kube::Error::ReadEvents(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        tx.send(Tagged {
            epoch: 0,
            msg: Msg::Failed(Kind::Nodes, watcher::Error::WatchFailed(reset)),
        })
        .expect("coordinator running");
        settle().await;
        assert_eq!(*epochs.borrow(), 1);
        assert!(shared.stale.load(Ordering::Relaxed));
        assert_eq!(
            shared.stale_reason.lock().expect("reason").as_deref(),
            Some("Nodes: connection reset")
        );

        // A watcher of the old epoch goes on (a watch resumed on the restarted server):
        // what it says is not believed, and it does not end the outage.
        tx.send(Tagged {
            epoch: 0,
            msg: Msg::Pod(Event::Apply(pod("web-resumed"))),
        })
        .expect("coordinator running");
        relist(&tx, 0, &ALL, &["web-resumed"]);
        settle().await;
        assert_eq!(pod_names(&shared), ["web-old"]);
        assert!(shared.stale.load(Ordering::Relaxed));

        // Stale until every kind has relisted in the new epoch.
        relist(
            &tx,
            1,
            &[Kind::Pods, Kind::Services, Kind::EndpointSlices],
            &["web-new"],
        );
        settle().await;
        assert!(
            shared.stale.load(Ordering::Relaxed),
            "Nodes have not relisted"
        );
        relist(&tx, 1, &[Kind::Nodes], &[]);
        settle().await;
        assert!(!shared.stale.load(Ordering::Relaxed));
        assert_eq!(pod_names(&shared), ["web-new"]);
        assert_eq!(*epochs.borrow(), 1, "one outage, one new epoch");

        drop(tx);
        coordinator
            .await
            .expect("the coordinator ends with its inbox");
    }
}
