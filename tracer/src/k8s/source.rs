//! Where the cluster comes from, and the handle the rest of `tracer` reads it through.
//!
//! [`ClusterHandle::start`] either reads a cluster file once ([`super::file`]) or starts the
//! live watch ([`super::watch`]) and waits for its first complete lists. Either way the
//! handle then answers [`ClusterHandle::snapshot`] from memory: an `Arc` clone of the last
//! published [`ClusterModel`], never an API call, so packet handling can ask per event.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use super::{
    error::K8sError,
    file,
    kubeconfig::{self, Environment},
    model::ClusterModel,
    objects::ClusterObjects,
    watch::{self, Shared, StopOnDrop},
};

/// Where `tracer` reads the cluster from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// The Kubernetes API, chosen as kubectl chooses (see [`super::kubeconfig`]).
    Api {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
    /// A cluster file (see [`super::file`]).
    File(PathBuf),
}

/// The live (or file-loaded) cluster; clones share it. The watch thread stops when the last
/// clone is dropped.
#[derive(Clone, Debug)]
pub struct ClusterHandle {
    shared: Arc<Shared>,
    describe: Arc<str>,
    _stop: Option<Arc<StopOnDrop>>,
}

impl ClusterHandle {
    /// Loads the cluster; for the API, blocks until the initial lists are in or `timeout`
    /// passes, then keeps the model current in the background.
    pub fn start(source: &ClusterSource, timeout: Duration) -> Result<ClusterHandle, K8sError> {
        match source {
            ClusterSource::File(path) => {
                let rows = file::read(path)?;
                Ok(Self::from_model(
                    ClusterModel::from_rows(rows),
                    format!("cluster file {}", path.display()),
                ))
            }
            ClusterSource::Api {
                kubeconfig,
                context,
            } => {
                let origin =
                    kubeconfig::choose(kubeconfig.as_deref(), &Environment::from_process())?;
                let shared = Arc::new(Shared::default());
                let (describe, stop) =
                    watch::spawn(origin, context.clone(), Arc::clone(&shared), timeout)?;
                Ok(Self {
                    shared,
                    describe: describe.into(),
                    _stop: Some(Arc::new(stop)),
                })
            }
        }
    }

    /// A handle over fixed objects (tests).
    pub fn from_objects(objects: ClusterObjects, describe: String) -> ClusterHandle {
        let shared = Arc::new(Shared::default());
        shared.publish(objects);
        Self {
            shared,
            describe: describe.into(),
            _stop: None,
        }
    }

    /// A handle over a fixed model (a cluster file).
    pub fn from_model(model: ClusterModel, describe: String) -> ClusterHandle {
        let shared = Arc::new(Shared::default());
        shared.publish_model(model);
        Self {
            shared,
            describe: describe.into(),
            _stop: None,
        }
    }

    /// The current model: cheap (an `Arc` clone), no API call.
    pub fn snapshot(&self) -> Arc<ClusterModel> {
        self.latest().1
    }

    /// The current model and when it was published (CLOCK_MONOTONIC, the clock of kernel
    /// events): it names the packets seen from then on.
    pub fn latest(&self) -> (u64, Arc<ClusterModel>) {
        let published = self.shared.model.read().unwrap_or_else(|e| e.into_inner());
        (published.0, Arc::clone(&published.1))
    }

    /// True while the watch is failing (e.g. the API server went away); the last good model
    /// stays in [`Self::snapshot`].
    pub fn stale(&self) -> bool {
        self.shared.stale.load(Ordering::Relaxed)
    }

    /// Why the data is stale, e.g. "Pods: connection refused"; `None` when it is not.
    pub fn stale_reason(&self) -> Option<String> {
        if !self.stale() {
            return None;
        }
        self.shared
            .stale_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// E.g. "Kubernetes API https://127.0.0.1:16443 (context admin@prod)" or
    /// "cluster file snap.json".
    pub fn describe(&self) -> String {
        self.describe.to_string()
    }

    /// The raw typed objects currently held (trimmed; see [`super::objects`]).
    pub fn objects(&self) -> ClusterObjects {
        ClusterObjects::clone(
            &self
                .shared
                .objects
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}
