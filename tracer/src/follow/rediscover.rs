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
//! - attaches TCX links to the interfaces it should watch and does not (a new Pod's `eth0`
//!   and its host-side veth, by [`super::attachments`]), keyed by namespace cookie and
//!   interface index, so a new veth that reuses an old name is attached again;
//! - detaches the links it made on interfaces that are gone. They are TCX links: closing
//!   them touches no qdisc and no filter (the kernel already unhooked them with the
//!   device). Links made at start-up stay open until the run ends;
//! - swaps in the new [`Topology`] that journeys are named from, and bumps
//!   [`Rediscover::generation`] so names remembered from the old one are dropped.
//!
//! Nothing here changes a packet's fate: it only adds filter entries and hooks more
//! interfaces with the same pass-through programs.
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
    os::unix::fs::MetadataExt as _,
    path::Path,
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use aya::programs::tc::SchedClassifierLinkId;

use super::{Attachment, Kernel, plan};
use crate::{
    events,
    k8s::{model::ClusterModel, resolve::Target, source::ClusterHandle},
    netns,
    probes::tc::{self, Direction},
    topology::{
        NamespaceScope, Topology, discover,
        roles::{Host, HostRole},
    },
};

/// How often the set of network namespaces is compared with the last discovery's.
pub const NETNS_POLL: Duration = Duration::from_secs(2);
/// A second discovery this long after a model change catches the kernel catching up.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How long a vanished namespace is still named, for packets explained late.
pub const RETAIN: Duration = Duration::from_secs(60);

/// `(netns cookie, ifindex)`: an interface, whatever its name.
type Key = (u64, u32);

struct Request {
    model: Arc<ClusterModel>,
    /// Discover even when no namespace came or went.
    force: bool,
}

struct Found {
    model: Arc<ClusterModel>,
    topology: Topology,
}

/// An interface being watched, and the links this module made on it (none for the
/// start-up ones).
struct Watched {
    attachment: Attachment,
    links: Vec<(Direction, SchedClassifierLinkId)>,
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
                        links: Vec::new(),
                    },
                ))
            })
            .collect();
        let bound = bindings(topology, &model);
        let (request_tx, request_rx) = mpsc::channel();
        let (found_tx, found_rx) = mpsc::channel();
        let scope = plan.namespaces.clone();
        let requests = std::thread::Builder::new()
            .name("tracer-rediscover".to_owned())
            .spawn(move || discover_on_request(&request_rx, &found_tx, &scope))
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

    /// One round of the event loop: cheap unless something changed (see the module doc).
    /// What the user should be told goes to `notices`.
    pub fn tick(&self, kernel: &mut Kernel, notices: &mut Vec<String>) {
        let mut state = self.state.borrow_mut();
        let now = Instant::now();
        let model = self.cluster.snapshot();
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
            match events::follow_addresses(&mut kernel.ebpf, &new) {
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

/// A Pod's UID in `model`, or `namespace/name` when the model does not have it.
fn uid_of(model: &ClusterModel, namespace: &str, name: &str) -> String {
    model
        .pod(namespace, name)
        .map_or_else(|| format!("{namespace}/{name}"), |p| p.uid.clone())
}

/// Pod UID → namespace cookie, for the Pods of a topology.
fn bindings(topology: &Topology, model: &ClusterModel) -> HashMap<String, u64> {
    topology
        .hosts
        .iter()
        .filter_map(|host| match &host.role {
            HostRole::Pod(pod) => {
                Some((uid_of(model, &pod.namespace, &pod.name), host.info.cookie))
            }
            _ => None,
        })
        .collect()
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

/// The rediscovery thread: discovers on request, when forced or when the namespaces
/// changed; ends when the run drops its [`Rediscover`].
fn discover_on_request(
    requests: &mpsc::Receiver<Request>,
    found: &mpsc::Sender<Found>,
    scope: &NamespaceScope,
) {
    let mut namespaces = fingerprint(scope);
    while let Ok(mut request) = requests.recv() {
        // Coalesce what queued up meanwhile: the newest model, forced if any was.
        for next in requests.try_iter() {
            request = Request {
                force: request.force || next.force,
                model: next.model,
            };
        }
        let now = fingerprint(scope);
        if !request.force && now == namespaces {
            continue;
        }
        namespaces = now;
        let topology = super::discover_topology(&request.model, scope);
        let reply = Found {
            model: request.model,
            topology,
        };
        if found.send(reply).is_err() {
            return;
        }
    }
}

/// The network namespaces in `scope`, by device and inode.
fn fingerprint(scope: &NamespaceScope) -> BTreeSet<(u64, u64)> {
    discover::namespace_paths(scope)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
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
            for (direction, link) in watched.links {
                // The interface is gone, and the kernel unhooked the link with it: this
                // only closes the link. An error here changes nothing for the run.
                let _ = tc::detach(&mut kernel.ebpf, direction, link);
            }
            stopped.push(watched.attachment.interface);
        }
    }
    let mut started = Vec::new();
    for (key, attachment) in wanted {
        if state.watched.contains_key(&key) {
            continue;
        }
        match attach(kernel, &attachment) {
            Ok(links) => {
                started.push(format!("{} ({})", attachment.interface, attachment.why));
                state.watched.insert(key, Watched { attachment, links });
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

/// Attaches both classifiers to one interface inside its namespace, as TCX links; on
/// failure nothing of it stays attached.
fn attach(
    kernel: &mut Kernel,
    attachment: &Attachment,
) -> Result<Vec<(Direction, SchedClassifierLinkId)>, String> {
    let ebpf = &mut kernel.ebpf;
    let interface = attachment.interface.as_str();
    netns::run_in_scoped(Path::new(&attachment.netns_path), move || {
        let mut links = Vec::new();
        for direction in [Direction::Ingress, Direction::Egress] {
            match tc::attach_tcx(ebpf, interface, direction) {
                Ok(link) => links.push((direction, link)),
                Err(e) => {
                    for (direction, link) in links {
                        let _ = tc::detach(ebpf, direction, link);
                    }
                    return Err(e.to_string());
                }
            }
        }
        Ok(links)
    })
    .map_err(|e| format!("enter {}: {e}", attachment.netns_path))?
}

/// Applies the naming rules of the module doc to a fresh discovery `live`, against the
/// topology in use (`previous`); returns what the user should be told.
fn reconcile(
    previous: &Topology,
    live: &mut Topology,
    bound: &mut HashMap<String, u64>,
    doubted: &mut HashSet<u64>,
    model: &ClusterModel,
) -> Vec<String> {
    let mut notices = Vec::new();
    for host in &mut live.hosts {
        let cookie = host.info.cookie;
        // A namespace keeps its identity.
        if let Some(HostRole::Pod(known)) = previous.host(cookie).map(|h| &h.role) {
            let same = matches!(&host.role, HostRole::Pod(p)
                if p.namespace == known.namespace && p.name == known.name);
            if !same {
                host.role = HostRole::Pod(known.clone());
            }
            continue;
        }
        // A Pod has one namespace.
        let HostRole::Pod(pod) = &host.role else {
            continue;
        };
        let uid = uid_of(model, &pod.namespace, &pod.name);
        match bound.get(&uid) {
            Some(&first) if first != cookie => {
                if doubted.insert(cookie) {
                    notices.push(format!(
                        "a new network namespace holds {}, which the Kubernetes API still gives to Pod {} (seen in another namespace): its hops stay unnamed until the API names the new Pod",
                        pod.ip,
                        pod.qualified()
                    ));
                }
                host.role = HostRole::Other;
            }
            _ => {
                bound.insert(uid, cookie);
            }
        }
    }
    let uids: HashSet<&str> = model.pods().map(|p| p.uid.as_str()).collect();
    bound.retain(|uid, _| uids.contains(uid.as_str()));
    live.reindex();
    notices
}

/// `live` plus the namespaces that vanished less than [`RETAIN`] ago, after it (so lookups
/// by address find a live namespace first).
fn merge(
    mut live: Topology,
    previous: &Topology,
    vanished: &mut BTreeMap<u64, (Instant, Host)>,
    now: Instant,
) -> Topology {
    for host in &previous.hosts {
        if live.host(host.info.cookie).is_none() {
            vanished
                .entry(host.info.cookie)
                .or_insert_with(|| (now, host.clone()));
        }
    }
    vanished.retain(|cookie, (since, _)| {
        live.host(*cookie).is_none() && now.duration_since(*since) < RETAIN
    });
    live.hosts
        .extend(vanished.values().map(|(_, host)| host.clone()));
    live.reindex();
    live
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{Pod, PodSpec, PodStatus},
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    use super::*;
    use crate::topology::{
        Address, Link, NetnsInfo,
        roles::{NodeRef, PodRef},
    };

    const NODE: u64 = 1;

    fn link(ifindex: u32, name: &str, peer: Option<u32>) -> Link {
        Link {
            ifindex,
            name: name.into(),
            mtu: 1450,
            kind: "veth".into(),
            peer_ifindex: peer,
            up: true,
            master: None,
            vxlan: None,
        }
    }

    fn netns(cookie: u64, links: Vec<Link>, addresses: &[(u32, [u8; 4])]) -> NetnsInfo {
        NetnsInfo {
            cookie,
            inode: cookie,
            path: format!("/run/netns/ns{cookie}"),
            links,
            addresses: addresses
                .iter()
                .map(|&(ifindex, ip)| Address {
                    ifindex,
                    ip: Ipv4Addr::from(ip),
                    prefix: 32,
                })
                .collect(),
            routes: vec![],
            dnat_rules: vec![],
            proxy_modes: vec![],
        }
    }

    /// Node cpu1 (cookie 1, 172.30.1.43) with one veth per Pod namespace: Pod namespace
    /// `cookie` holds `eth0` (index 2) peered with the node's index `10 + cookie`.
    fn discover(pods_in: &[(u64, [u8; 4])], model: &ClusterModel) -> Topology {
        let mut node_links = vec![link(3, "enp2s0", None)];
        let mut namespaces = Vec::new();
        for &(cookie, ip) in pods_in {
            let host_index = u32::try_from(10 + cookie).unwrap();
            node_links.push(link(host_index, &format!("cali{cookie}"), Some(2)));
            namespaces.push(netns(
                cookie,
                vec![link(2, "eth0", Some(host_index))],
                &[(2, ip)],
            ));
        }
        namespaces.insert(0, netns(NODE, node_links, &[(3, [172, 30, 1, 43])]));
        let nodes = [NodeRef {
            name: "cpu1".into(),
            ips: vec![Ipv4Addr::new(172, 30, 1, 43)],
        }];
        let pods: Vec<PodRef> = model
            .pods()
            .filter_map(|p| {
                Some(PodRef {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    ip: p.ip?,
                    node: p.node.clone(),
                })
            })
            .collect();
        Topology::build(namespaces, &nodes, &pods)
    }

    fn model(pods: &[(&str, [u8; 4])]) -> ClusterModel {
        let pods: Vec<Pod> = pods
            .iter()
            .map(|&(name, ip)| Pod {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some("default".into()),
                    uid: Some(format!("uid-{name}")),
                    ..ObjectMeta::default()
                },
                spec: Some(PodSpec {
                    node_name: Some("cpu1".into()),
                    ..PodSpec::default()
                }),
                status: Some(PodStatus {
                    phase: Some("Running".into()),
                    pod_ip: Some(Ipv4Addr::from(ip).to_string()),
                    ..PodStatus::default()
                }),
            })
            .collect();
        ClusterModel::from_objects(&pods, &[], &[], &[])
    }

    fn pod_in(topology: &Topology, cookie: u64) -> Option<String> {
        match &topology.host(cookie)?.role {
            HostRole::Pod(p) => Some(p.name.clone()),
            _ => None,
        }
    }

    const OLD_IP: [u8; 4] = [10, 244, 184, 84];

    /// Everything `apply` keeps between discoveries, minus the kernel.
    struct Run {
        topology: Topology,
        bound: HashMap<String, u64>,
        doubted: HashSet<u64>,
        vanished: BTreeMap<u64, (Instant, Host)>,
        start: Instant,
    }

    impl Run {
        fn new(model: &ClusterModel, pods_in: &[(u64, [u8; 4])]) -> Self {
            let topology = discover(pods_in, model);
            Self {
                bound: bindings(&topology, model),
                topology,
                doubted: HashSet::new(),
                vanished: BTreeMap::new(),
                start: Instant::now(),
            }
        }

        /// One discovery at `secs` into the run; returns the notices.
        fn discover(
            &mut self,
            model: &ClusterModel,
            pods_in: &[(u64, [u8; 4])],
            secs: u64,
        ) -> Vec<String> {
            let mut live = discover(pods_in, model);
            let notices = reconcile(
                &self.topology,
                &mut live,
                &mut self.bound,
                &mut self.doubted,
                model,
            );
            self.topology = merge(
                live,
                &self.topology,
                &mut self.vanished,
                self.start + Duration::from_secs(secs),
            );
            notices
        }
    }

    #[test]
    fn a_reused_address_is_not_given_to_the_old_pod_while_the_api_lags() {
        let old = model(&[("nginx-old", OLD_IP)]);
        let mut run = Run::new(&old, &[(5, OLD_IP)]);
        assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));

        // The old namespace is gone and a new one holds its address, but the API still
        // says nginx-old: the new namespace stays unnamed, the old one is remembered.
        let notices = run.discover(&old, &[(6, OLD_IP)], 1);
        assert_eq!(pod_in(&run.topology, 6), None);
        assert!(run.topology.host(6).is_some());
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("default/nginx-old"), "{notices:?}");
        assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));
        assert_eq!(
            run.topology
                .pod_by_ip(Ipv4Addr::from(OLD_IP))
                .map(|p| p.name.as_str()),
            Some("nginx-old"),
            "only the vanished namespace is named by that address"
        );
        // Said once.
        assert!(run.discover(&old, &[(6, OLD_IP)], 1).is_empty());

        // The API catches up: the new namespace is the new Pod, found first by address.
        let new = model(&[("nginx-new", OLD_IP)]);
        run.discover(&new, &[(6, OLD_IP)], 2);
        assert_eq!(pod_in(&run.topology, 6).as_deref(), Some("nginx-new"));
        assert_eq!(
            run.topology
                .pod_by_ip(Ipv4Addr::from(OLD_IP))
                .map(|p| p.name.as_str()),
            Some("nginx-new")
        );
        assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));

        // Long after it vanished, the old namespace is forgotten.
        run.discover(&new, &[(6, OLD_IP)], 2 + RETAIN.as_secs());
        assert!(run.topology.host(5).is_none());
        assert_eq!(pod_in(&run.topology, 6).as_deref(), Some("nginx-new"));
    }

    #[test]
    fn a_namespace_keeps_its_pod_after_the_api_deleted_it() {
        let both = model(&[("nginx-old", OLD_IP), ("nginx-new", [10, 244, 184, 65])]);
        let mut run = Run::new(&both, &[(5, OLD_IP), (6, [10, 244, 184, 65])]);
        // The API deleted the old Pod before its namespace went (a new address).
        let new = model(&[("nginx-new", [10, 244, 184, 65])]);
        run.discover(&new, &[(5, OLD_IP), (6, [10, 244, 184, 65])], 1);
        assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));
        assert_eq!(pod_in(&run.topology, 6).as_deref(), Some("nginx-new"));
        // The host side of each veth still names its Pod.
        let role = run.topology.interface_role(NODE, 15);
        assert!(
            matches!(role, crate::topology::roles::InterfaceRole::HostVeth(p) if p.name == "nginx-old")
        );
    }

    #[test]
    fn a_new_namespace_the_api_does_not_know_yet_is_unnamed_then_named() {
        let old = model(&[("nginx-old", OLD_IP)]);
        let mut run = Run::new(&old, &[(5, OLD_IP)]);
        // Wired before the API shows the Pod (a new address): nothing to name it by.
        assert!(
            run.discover(&old, &[(5, OLD_IP), (7, [10, 244, 184, 65])], 1)
                .is_empty()
        );
        assert_eq!(pod_in(&run.topology, 7), None);
        assert!(matches!(
            run.topology.interface_role(NODE, 17),
            crate::topology::roles::InterfaceRole::Other
        ));
        let both = model(&[("nginx-old", OLD_IP), ("nginx-new", [10, 244, 184, 65])]);
        run.discover(&both, &[(5, OLD_IP), (7, [10, 244, 184, 65])], 2);
        assert_eq!(pod_in(&run.topology, 7).as_deref(), Some("nginx-new"));
    }

    #[test]
    fn attachments_are_keyed_by_namespace_and_index() {
        let m = model(&[("nginx-old", OLD_IP)]);
        let topology = discover(&[(5, OLD_IP)], &m);
        let wanted = super::super::attachments(&topology, &[Ipv4Addr::from(OLD_IP)]);
        let keys: BTreeSet<Key> = wanted.iter().filter_map(|a| key_of(&topology, a)).collect();
        // The uplink, the Pod's eth0 and its host side.
        assert_eq!(keys, BTreeSet::from([(NODE, 3), (5, 2), (NODE, 15)]));
        let stranger = Attachment {
            netns_path: "/run/netns/elsewhere".into(),
            interface: "eth0".into(),
            why: String::new(),
        };
        assert_eq!(key_of(&topology, &stranger), None);
    }

    #[test]
    fn followed_addresses_are_the_targets_current_ones() {
        let m = model(&[("nginx-new", [10, 244, 184, 65])]);
        let gone = Target::Pod(crate::k8s::model::PodInfo {
            namespace: "default".into(),
            name: "nginx-old".into(),
            ip: Some(Ipv4Addr::from(OLD_IP)),
            node: None,
            ready: true,
            owner: None,
            uid: String::new(),
        });
        assert!(addresses_now(&m, &gone).is_empty());
        let ip = Target::Ip(Ipv4Addr::from(OLD_IP));
        assert_eq!(addresses_now(&m, &ip), [Ipv4Addr::from(OLD_IP)]);
        let Some(now) = m.pod("default", "nginx-new").cloned() else {
            panic!("pod");
        };
        assert_eq!(
            addresses_now(&m, &Target::Pod(now)),
            [Ipv4Addr::new(10, 244, 184, 65)]
        );
    }
}
