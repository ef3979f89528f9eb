//! Following a cluster that changes under a running `tracer follow`: Pods replaced by their
//! Deployment, an address handed on to a new Pod, namespaces that come and go.
//!
//! `follow` discovers the namespaces and attaches its classifiers once, before the first
//! packet. [`Rediscover`] keeps that picture true while the run goes on. The event loop
//! calls [`Rediscover::tick`] once per round: a clock read, a pointer comparison of the
//! cluster model and a look at a channel. Discovery itself (`ip -j` and `iptables-save` in
//! every namespace, hundreds of milliseconds) runs on a thread of its own
//! (`tracer-rediscover`), so the ring buffer keeps being drained meanwhile. It runs
//! - when the cluster model changes (the watch saw a Pod, Service or endpoint change), and
//!   once more [`SETTLE`] later, for kernel state that lags the API;
//! - when the set of network namespaces changes (checked every [`NETNS_POLL`] with a `stat`
//!   per namespace), for kernel state the API has not caught up with yet.
//!
//! When a discovery arrives, `tick` (on the loop's thread, which owns the programs):
//! - adds the followed targets' new addresses (a Service's new endpoints, a Pod's new
//!   address) to the kernel filter with [`events::follow_addresses`]. Addresses are never
//!   taken out: one that left may come back in a new Pod;
//! - hooks the interfaces it should watch and does not (a new Pod's `eth0` and its
//!   host-side veth, by [`super::attachments`]) through the run's one attach path
//!   ([`super::attach::Hooks`], TCX links or netlink filters), keyed by namespace cookie
//!   and interface index, so a new veth that reuses an old name is hooked again;
//! - unhooks interfaces that are gone (the kernel already removed their TCX links and
//!   filters with the device: this only releases tracer's side, inside the interface's
//!   own namespace, and touches no one else's filter);
//! - swaps in the new [`Topology`] that journeys are named from, and bumps
//!   [`Rediscover::generation`] so names remembered from the old one are dropped.
//!
//! Nothing here changes a packet's fate: it only adds filter entries and hooks more
//! interfaces with the same pass-through programs.
//!
//! Files: this one (the run's live topology, its tick, and applying a discovery: filter
//! updates, attaching and detaching), `thread` (the discovery thread and the namespace
//! fingerprint), `naming` (the rules below).
//!
//! Naming rules, for reused addresses and an API that lags the kernel:
//! - **A namespace keeps its identity.** Namespace cookies are never reused, so a namespace
//!   once known as Pod X is named X for as long as it exists, even after the API deleted X
//!   or gave its address to another Pod; and still for [`RETAIN`] after it vanished, for
//!   packets seen before and explained after.
//! - **A Pod has one namespace.** A Pod (by UID) found in one namespace is not given a
//!   second: a new namespace holding an address the API still gives to a Pod already seen
//!   elsewhere belongs to a Pod the API has not shown yet. It stays unnamed (its hops carry
//!   the node and the interface, no Pod; nothing is attached inside it) until the API names
//!   the address's new holder. (A Pod whose sandbox is recreated under the same UID stays
//!   unnamed the same way until it is deleted.)
//! - Anything else unknown (a namespace no discovery has read yet) is named as before: its
//!   hops carry no node and no Pod, never a guessed one.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    net::Ipv4Addr,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use naming::{bindings, merge, reconcile};
use thread::discover_on_request;

use super::{Attachment, Kernel, plan};
use crate::{
    k8s::{model::ClusterModel, resolve::Target, source::ClusterHandle},
    topology::{Topology, roles::Host},
};

/// How often the set of network namespaces is compared with the last discovery's.
pub const NETNS_POLL: Duration = Duration::from_secs(2);
/// A second discovery this long after a model change catches the kernel catching up.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How long a vanished namespace is still named, for packets explained late.
pub const RETAIN: Duration = Duration::from_secs(60);

/// `(netns cookie, ifindex)`: an interface, whatever its name.
type Key = (u64, u32);

pub(super) struct Request {
    model: Arc<ClusterModel>,
    /// Discover even when no namespace came or went.
    force: bool,
}

pub(super) struct Found {
    model: Arc<ClusterModel>,
    topology: Topology,
}

/// An interface being watched (its hooks are in the run's [`super::attach::Hooks`]).
struct Watched {
    attachment: Attachment,
}

struct State {
    topology: Arc<Topology>,
    generation: u64,
    /// The model last seen; held so its address cannot be reused while names made from it
    /// are stamped with [`Rediscover::generation`].
    model: Arc<ClusterModel>,
    filter: BTreeSet<Ipv4Addr>,
    watched: HashMap<Key, Watched>,
    /// Pod UID → the namespace it was first found in.
    bound: HashMap<String, u64>,
    /// Namespaces already reported as holding an address of a Pod seen elsewhere.
    doubted: HashSet<u64>,
    /// Namespaces that vanished, with when they were first missed.
    vanished: BTreeMap<u64, (Instant, Host)>,
    last_poll: Instant,
    settle_at: Option<Instant>,
    /// The Kubernetes API was not answering at the last tick.
    api_stale: bool,
    /// The API came back after an outage: the next discovery binds Pods to namespaces
    /// afresh (the cluster may have been rebuilt meanwhile: every Pod in a new namespace).
    rebind: bool,
    /// API outages seen, and watched interfaces that vanished, during the run.
    outages: u64,
    vanished_interfaces: u64,
}

/// The live topology of a `follow` run; see the module doc.
pub struct Rediscover {
    state: RefCell<State>,
    cluster: ClusterHandle,
    targets: [Target; 2],
    requests: Option<mpsc::Sender<Request>>,
    found: mpsc::Receiver<Found>,
}

impl Rediscover {
    /// Starts from the topology and attachments `follow` began with.
    pub fn new(
        topology: &Topology,
        plan: &plan::FollowPlan,
        cluster: &ClusterHandle,
        kernel: &Kernel,
    ) -> Self {
        let model = cluster.snapshot();
        let watched = kernel
            .attached
            .iter()
            .filter_map(|a| {
                let key = key_of(topology, a)?;
                Some((
                    key,
                    Watched {
                        attachment: a.clone(),
                    },
                ))
            })
            .collect();
        let bound = bindings(topology, &model);
        let (request_tx, request_rx) = mpsc::channel();
        let (found_tx, found_rx) = mpsc::channel();
        let scope = plan.namespaces.clone();
        let node = plan.node.clone();
        let requests = std::thread::Builder::new()
            .name("tracer-rediscover".to_owned())
            .spawn(move || discover_on_request(&request_rx, &found_tx, &scope, node.as_deref()))
            .ok()
            .map(|_| request_tx);
        Self {
            state: RefCell::new(State {
                topology: Arc::new(topology.clone()),
                generation: 0,
                model,
                filter: plan.filter.iter().copied().collect(),
                watched,
                bound,
                doubted: HashSet::new(),
                vanished: BTreeMap::new(),
                last_poll: Instant::now(),
                settle_at: None,
                api_stale: cluster.stale(),
                rebind: false,
                outages: 0,
                vanished_interfaces: 0,
            }),
            cluster: cluster.clone(),
            targets: [plan.from.clone(), plan.to.clone()],
            requests,
            found: found_rx,
        }
    }

    /// The topology to name journeys from now.
    pub fn current(&self) -> Arc<Topology> {
        Arc::clone(&self.state.borrow().topology)
    }

    /// Changes whenever the topology or the cluster model does: a stamp for anything
    /// remembered from either.
    pub fn generation(&self) -> u64 {
        self.state.borrow().generation
    }

    /// What changed under the run, for its summary: API outages and watched interfaces
    /// that vanished (each sentence only when it happened).
    pub fn disruptions(&self) -> Vec<String> {
        let state = self.state.borrow();
        let mut notes = Vec::new();
        if state.outages > 0 {
            notes.push(format!(
                "the Kubernetes API went away {} time(s) during the session{}",
                state.outages,
                if state.api_stale {
                    " and had not come back at the end"
                } else {
                    "; each time it came back, Pods and namespaces were resolved afresh"
                }
            ));
        }
        if state.vanished_interfaces > 0 {
            notes.push(format!(
                "{} watched interface(s) vanished during the session; {} are watched at the end",
                state.vanished_interfaces,
                state.watched.len()
            ));
        }
        notes
    }

    /// One round of the event loop: cheap unless something changed (see the module doc).
    /// What the user should be told goes to `notices`.
    pub fn tick(&self, kernel: &mut Kernel, notices: &mut Vec<String>) {
        let mut state = self.state.borrow_mut();
        let now = Instant::now();
        let model = self.cluster.snapshot();
        let stale = self.cluster.stale();
        if stale != state.api_stale {
            state.api_stale = stale;
            if stale {
                state.outages += 1;
                notices.push(format!(
                    "the Kubernetes API stopped answering ({}); names may be stale until it is back",
                    self.cluster
                        .stale_reason()
                        .unwrap_or_else(|| "no reason given".to_owned())
                ));
            } else {
                notices.push(
                    "the Kubernetes API answers again: Pods and their namespaces are resolved afresh"
                        .to_owned(),
                );
                state.rebind = true;
                self.request(&model, true);
            }
        }
        if !Arc::ptr_eq(&model, &state.model) {
            state.model = Arc::clone(&model);
            state.generation += 1;
            self.follow_new_addresses(&mut state, kernel, notices);
            self.request(&model, true);
            state.settle_at = Some(now + SETTLE);
        }
        if state.settle_at.is_some_and(|at| now >= at) {
            state.settle_at = None;
            self.request(&model, true);
        }
        if now.duration_since(state.last_poll) >= NETNS_POLL {
            state.last_poll = now;
            self.request(&model, false);
        }
        if let Some(found) = self.found.try_iter().last() {
            apply(&mut state, found, kernel, notices, now);
        }
    }

    fn request(&self, model: &Arc<ClusterModel>, force: bool) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(Request {
                model: Arc::clone(model),
                force,
            });
        }
    }

    /// Adds the addresses the followed targets have now and did not have.
    fn follow_new_addresses(
        &self,
        state: &mut State,
        kernel: &mut Kernel,
        notices: &mut Vec<String>,
    ) {
        let mut added = Vec::new();
        for target in &self.targets {
            let new: Vec<Ipv4Addr> = addresses_now(&state.model, target)
                .into_iter()
                .filter(|ip| !state.filter.contains(ip))
                .collect();
            if new.is_empty() {
                continue;
            }
            match kernel.follow_addresses(&new) {
                Ok(()) => {
                    state.filter.extend(&new);
                    added.push(format!(
                        "{} of {}",
                        join(new.iter().map(ToString::to_string)),
                        plan::describe(target)
                    ));
                }
                Err(e) => notices.push(format!(
                    "cannot follow the new addresses {} ({e}); their packets are not seen",
                    join(new.iter().map(ToString::to_string))
                )),
            }
        }
        if !added.is_empty() {
            notices.push(format!(
                "the cluster changed: now also following {}",
                added.join("; ")
            ));
        }
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// The addresses `target` stands for in `model` now (a Service's current endpoints, a
/// Pod's current address); none when it is gone.
pub fn addresses_now(model: &ClusterModel, target: &Target) -> Vec<Ipv4Addr> {
    let current = match target {
        Target::Pod(p) => model.pod(&p.namespace, &p.name).cloned().map(Target::Pod),
        Target::Service(s) => model
            .service(&s.namespace, &s.name)
            .cloned()
            .map(Target::Service),
        Target::Node(n) => model.node(&n.name).cloned().map(Target::Node),
        Target::Ip(ip) => Some(Target::Ip(*ip)),
    };
    current
        .map(|t| plan::addresses(model, &t))
        .unwrap_or_default()
}

/// The interface an attachment names, as `(cookie, ifindex)` in `topology`.
fn key_of(topology: &Topology, attachment: &Attachment) -> Option<Key> {
    let host = topology
        .hosts
        .iter()
        .find(|h| h.info.path == attachment.netns_path)?;
    let link = host.info.link_named(&attachment.interface)?;
    Some((host.info.cookie, link.ifindex))
}

/// Applies a discovery: names (the module doc's rules), filter-driven attachments, then
/// the topology swap.
fn apply(
    state: &mut State,
    found: Found,
    kernel: &mut Kernel,
    notices: &mut Vec<String>,
    now: Instant,
) {
    let Found {
        model,
        topology: mut live,
    } = found;
    if std::mem::take(&mut state.rebind) {
        state.bound.clear();
        state.doubted.clear();
    }
    for notice in reconcile(
        &state.topology,
        &mut live,
        &mut state.bound,
        &mut state.doubted,
        &model,
    ) {
        notices.push(notice);
    }

    // What to watch now, and what is still there to be watched.
    let filter: Vec<Ipv4Addr> = state.filter.iter().copied().collect();
    let wanted: Vec<(Key, Attachment)> = super::attachments(&live, &filter)
        .into_iter()
        .filter_map(|a| Some((key_of(&live, &a)?, a)))
        .collect();
    let present = |(cookie, ifindex): Key| {
        live.host(cookie)
            .is_some_and(|h| h.info.link(ifindex).is_some())
    };
    let gone: Vec<Key> = state
        .watched
        .keys()
        .copied()
        .filter(|k| !present(*k))
        .collect();
    let mut stopped = Vec::new();
    for key in gone {
        if let Some(watched) = state.watched.remove(&key) {
            kernel.unhook(&watched.attachment);
            stopped.push(watched.attachment.interface);
            state.vanished_interfaces += 1;
        }
    }
    let mut started = Vec::new();
    for (key, attachment) in wanted {
        if state.watched.contains_key(&key) {
            continue;
        }
        match kernel.hook(&attachment) {
            Ok(()) => {
                started.push(format!("{} ({})", attachment.interface, attachment.why));
                state.watched.insert(key, Watched { attachment });
            }
            Err(e) => notices.push(format!(
                "not watching {} ({}): {e}",
                attachment.interface, attachment.why
            )),
        }
    }
    started.sort();
    stopped.sort();
    if !started.is_empty() {
        notices.push(format!("now also watching {}", started.join(", ")));
    }
    if !stopped.is_empty() {
        notices.push(format!("no longer watching {} (gone)", stopped.join(", ")));
    }
    let mut attached: Vec<Attachment> = state
        .watched
        .values()
        .map(|w| w.attachment.clone())
        .collect();
    attached.sort();
    kernel.attached = attached;

    let merged = merge(live, &state.topology, &mut state.vanished, now);
    if merged.hosts != state.topology.hosts {
        state.topology = Arc::new(merged);
        state.generation += 1;
    }
}

mod naming;
#[cfg(test)]
mod tests;
mod thread;
