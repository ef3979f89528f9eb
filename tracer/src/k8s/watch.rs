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
/// Longest wait between restarts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

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
    tokio::spawn(watch_kind(
        Api::<Pod>::all(client.clone()),
        Kind::Pods,
        tx.clone(),
        Msg::Pod,
    ));
    tokio::spawn(watch_kind(
        Api::<Service>::all(client.clone()),
        Kind::Services,
        tx.clone(),
        Msg::Service,
    ));
    tokio::spawn(watch_kind(
        Api::<EndpointSlice>::all(client.clone()),
        Kind::EndpointSlices,
        tx.clone(),
        Msg::Slice,
    ));
    tokio::spawn(watch_kind(
        Api::<Node>::all(client),
        Kind::Nodes,
        tx,
        Msg::Node,
    ));
    coordinate(rx, &shared, boot, &url).await;
}

/// Forwards one kind's watch events forever, restarting the watcher after errors.
async fn watch_kind<K>(
    api: Api<K>,
    kind: Kind,
    tx: mpsc::UnboundedSender<Msg>,
    wrap: fn(Event<Box<K>>) -> Msg,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Trim + 'static,
{
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut stream = std::pin::pin!(watcher::watcher(api.clone(), watcher::Config::default()));
        while let Some(item) = stream.next().await {
            let msg = match item {
                Ok(event) => {
                    if matches!(event, Event::InitDone) {
                        backoff = BACKOFF_MIN;
                    }
                    wrap(boxed(event.modify(Trim::trim)))
                }
                Err(e) => {
                    if tx.send(Msg::Failed(kind, e)).is_err() {
                        return;
                    }
                    break;
                }
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
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
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shared: &Shared,
    boot: std_mpsc::Sender<Boot>,
    url: &str,
) {
    let mut caches = Caches::default();
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
        let Some(msg) = msg else { return };
        if let Msg::Failed(kind, error) = &msg {
            let error = start_error(url, *kind, error);
            if !booted {
                let _ = boot.send(Boot::Failed(error));
                return;
            }
            let reason = match error {
                K8sError::Refused { what, cause, .. } => format!("{what}: {cause}"),
                K8sError::Unreachable { cause, .. } => format!("{}: {cause}", kind.plural()),
                other => other.to_string(),
            };
            *shared
                .stale_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(reason);
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
        kube::Error::Api(status) => K8sError::Refused {
            url: url.to_owned(),
            what: kind.plural(),
            cause: status_text(&status.message, status.code, &status.reason),
        },
        other => K8sError::Unreachable {
            url: url.to_owned(),
            cause: root_cause(other),
        },
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
