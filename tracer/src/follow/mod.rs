//! `tracer follow`: resolve → discover → load and attach → the live source → the pipeline
//! (`crate::pipeline`) → sinks.
//!
//! The kernel side is one object: TC classifiers on every interface of the path (each
//! followed Pod's `eth0` inside the Pod and its host-side veth, every traced node's uplink
//! and tunnel devices), attached from a thread that entered the interface's namespace as
//! TCX links or netlink filters, whichever this kernel has ([`attach`]), plus
//! `tp_btf/kfree_skb` for drops. The live source ([`live`]) reads events on
//! this thread and hands them, with the cluster's names and the topology as they change,
//! to the same pipeline a replay uses; nothing on that path calls the Kubernetes API
//! (names come from the watch cache's latest model).
//!
//! Files: `command` (from arguments to a session and its summary), `plan` (arguments
//! resolved), `discovery` (namespaces, the interfaces to hook, what is not visible),
//! `kernel` (programs loaded and attached), `agents`, `pods` and `node_agent` (following
//! through node agents: given, started as Pods, or standing in a DaemonSet), `attach` (TCX or netlink, the hooks a run
//! holds), `live` (the live source and its loop), `signals` (Ctrl-C, SIGTERM, the UI's
//! quit), `rediscover` (the cluster changing under a run), `runs` and `cleanup` (netlink
//! filters killed runs left).

pub mod agents;
pub mod attach;
pub mod cleanup;
pub mod command;
pub mod discovery;
pub mod kernel;
pub mod kernel_log;
pub mod live;
pub mod node_agent;
pub mod plan;
pub mod pods;
pub mod rediscover;
pub mod resumable;
pub mod runs;
pub mod signals;

pub use discovery::{Attachment, attachments, discover_topology, visibility_warnings};
pub use kernel::{Kernel, check_privileges, enable_kernel_stats};
pub use live::Limits;
pub use signals::{install_stop_handlers, request_stop, stop_requested};
