//! The Kubernetes side of `tracer`: which Pod, Service and Node each address belongs to.
//!
//! `tracer follow` names every hop from a [`ClusterModel`]: a lean, indexed copy of the
//! cluster's Pods, Services (with their endpoints merged from EndpointSlices) and Nodes.
//! It comes from one of two [`ClusterSource`]s, both ending in
//! [`ClusterModel::from_objects`]:
//!
//! - the Kubernetes API ([`watch`]): kube-rs watchers keep per-kind caches on a background
//!   thread; every change rebuilds the model, swapped in behind an `Arc`, so lookups during
//!   packet handling never wait on the network. The kubeconfig and context are chosen as
//!   kubectl chooses them ([`kubeconfig`]).
//! - a cluster file ([`file`]): the output of
//!   `kubectl get pods,services,endpointslices,nodes -A -o json`, for offline use and tests.
//!
//! [`resolve`] turns the user's FROM/TO arguments (`nettest`, `ns/name`, `svc/nginx-test`,
//! `node/cpu1`, an IP) into [`Target`]s, with errors that say what was searched and what was
//! probably meant.
//!
//! Files: `model` (the model and its indexes), `objects` (raw objects and trimming),
//! `file` (cluster files), `kubeconfig` (choosing the API), `watch` (the live caches),
//! `source` (the handle), `resolve` and `suggest` (arguments), `error`.

pub mod error;
pub mod file;
pub mod kubeconfig;
pub mod lean;
pub mod model;
pub mod objects;
pub mod resolve;
pub mod source;
pub mod suggest;
pub mod watch;

#[cfg(test)]
mod tests;

pub use error::K8sError;
pub use model::{
    ClusterModel, EndpointInfo, NodeInfo, ObjectName, PodInfo, Protocol, ServiceInfo, ServicePort,
};
pub use objects::ClusterObjects;
pub use resolve::{ResolveError, Target, resolve};
pub use source::{ClusterHandle, ClusterSource};
