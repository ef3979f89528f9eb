//! What the kernel says the machine looks like: every network namespace, its interfaces,
//! addresses, routes and kube-proxy rules, and — joined with the cluster model — which
//! namespace is which node and which Pod.
//!
//! Nothing here relies on interface naming conventions. A namespace is a *node* when one
//! of its addresses is a Node's InternalIP, and a *Pod* when its address is a Pod IP; a
//! Pod's host-side interface is the veth in its node's namespace whose index is the Pod
//! `eth0`'s peer index (`eth0@ifN`) and whose own peer index is `eth0`'s. That works for
//! Calico's `cali…` veths and for a bridge CNI's `veth…` ports alike. The uplink is the
//! interface holding the node's address; tunnel devices are found by kind (`vxlan`).
//!
//! Discovery runs `ip -j` and kube-proxy's tools inside each namespace at start-up (and
//! when the cluster changes), never on the per-packet path; kube-proxy's rules are read in
//! whichever mode each node runs it (iptables, nftables, IPVS: [`kube_proxy`]). It reads every namespace, or with
//! `follow --netns-prefix` only the host's and the named ones with that prefix
//! ([`NamespaceScope`]). The result is serialisable, so a
//! recording carries it and replay names hops without the machine.

pub mod discover;
pub mod kube_proxy;
pub mod netinfo;
pub mod roles;

pub use discover::NamespaceScope;
pub use netinfo::{Address, DnatRule, Link, NetnsInfo, ProxyMode, Route};
pub use roles::{HostRole, Topology};
