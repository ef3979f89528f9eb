//! The lab's Kubernetes API server: the lab's Nodes, Pods, Services, Endpoints and
//! EndpointSlices (and the `default`/`kube-system` Namespaces) served over the real
//! Kubernetes REST API on loopback, so that `kubectl` and tracer's own kube-rs client
//! resolve names against the lab exactly as against a cluster.
//!
//! How it fits together:
//! - [`objects`] turns the [`Cluster`](crate::spec::Cluster) into `k8s-openapi`
//!   objects, deterministically, so a rebuild after a scenario switch differs only where
//!   the scenario does;
//! - [`store`] versions them with one etcd-like counter and keeps a history of change
//!   events for watches;
//! - [`http`] is a minimal HTTP/1.1 over `std::net` (keep-alive, chunked watch streams);
//! - [`routes`] maps paths to discovery documents ([`discovery`]), lists, gets and
//!   watches; [`render`] negotiates the representation (objects, `meta.k8s.io` Tables via
//!   [`table`], or metadata only); [`selector`] filters; [`watch`] streams events;
//! - [`server`] owns the listener and threads; [`kubeconfig`] writes the client config.
//!
//! The lab's own objects are read-only: they change only through [`ApiServer::update`],
//! which emits watch events for exactly what changed. Pods may be created and deleted
//! ([`pods`], [`workloads`]), as `tracer follow --agents` does with its agent Pods, and
//! reached through `pods/portforward` ([`portforward`] over [`websocket`]).

pub mod discovery;
pub mod http;
pub mod kubeconfig;
pub mod objects;
pub mod pods;
pub mod portforward;
pub mod render;
pub mod resources;
pub mod routes;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod watch;
pub mod websocket;
pub mod workloads;

pub use kubeconfig::kubeconfig;
pub use server::ApiServer;
