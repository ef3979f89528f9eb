//! `tracer follow`: resolve → discover → load and attach → read, correlate, explain → sinks.
//!
//! The kernel side is one object: TC classifiers on every interface of the path (each
//! followed Pod's `eth0` inside the Pod and its host-side veth, every traced node's uplink
//! and tunnel devices), attached as TCX links from a thread that entered the interface's
//! namespace, plus `tp_btf/kfree_skb` for drops. Events are read on this thread, grouped
//! into packets by [`crate::journey::assemble`] and named by
//! [`crate::journey::explain`]; nothing on that path calls the Kubernetes API (names come
//! from the watch cache's latest snapshot).

pub mod command;
pub mod naming;
pub mod plan;
pub mod rediscover;

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::Ebpf;

use crate::{
    btf::Btf,
    caps,
    clock::monotonic_ns,
    drop_reason::DropReasons,
    ebpf::{self, LoadOptions},
    events::{self, EventStream},
    exit::MissingPrivilege,
    journey::{
        assemble::Assembler,
        explain::{self, Context},
        memo::Memo,
        model::Journey,
        observation::{Hook, Observation},
    },
    k8s::{model::ClusterModel, source::ClusterHandle},
    kernel_layout::KernelOffsets,
    netns,
    output::Sink,
    probes::{
        kfree_skb,
        tc::{self, AttachMode, Direction},
    },
    topology::{
        Topology, discover,
        roles::{HostRole, NodeRef, PodRef},
    },
};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks a running [`run`] to finish (what Ctrl-C does); used by the TUI's quit key.
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end the run cleanly (the journeys in flight are still printed).
/// Installed before anything is attached, so a signal during start-up also ends cleanly.
pub fn install_stop_handlers() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub struct Limits {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Record raw observations and leave correlation to `tracer replay` (the
    /// `--output summary --record` session, the cheapest way to capture a flood). Has no
    /// effect without a recorder, or once the recording has failed.
    pub record_only: bool,
}

/// Builds the topology from every namespace the kernel has, named with the cluster model.
pub fn discover_topology(model: &ClusterModel) -> Topology {
    let nodes: Vec<NodeRef> = model
        .nodes()
        .map(|n| NodeRef {
            name: n.name.clone(),
            ips: n.internal_ips.clone(),
        })
        .collect();
    let pods: Vec<PodRef> = model
        .pods()
        .filter_map(|p| {
            let ip = p.ip?;
            // Host-network Pods share their node's namespace; they are not Pod hosts.
            let is_node_ip = nodes.iter().any(|n| n.ips.contains(&ip));
            (!is_node_ip).then(|| PodRef {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                ip,
                node: p.node.clone(),
            })
        })
        .collect();
    let namespaces = discover::namespace_paths()
        .iter()
        .filter_map(|path| discover::read(path))
        .collect();
    Topology::build(namespaces, &nodes, &pods)
}

/// One interface to attach both classifiers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    pub netns_path: String,
    pub interface: String,
    pub why: String,
}

/// Where to hook: the followed Pods' interfaces on both sides of their veth, and every
/// traced node's uplinks and tunnel devices.
pub fn attachments(topology: &Topology, filter: &[std::net::Ipv4Addr]) -> Vec<Attachment> {
    let mut out = BTreeSet::new();
    for host in &topology.hosts {
        match &host.role {
            HostRole::Node { name } => {
                for link in topology.uplinks(host.info.cookie) {
                    out.insert(Attachment {
                        netns_path: host.info.path.clone(),
                        interface: link.name.clone(),
                        why: format!("uplink of {name}"),
                    });
                }
                for link in host.info.links.iter().filter(|l| l.kind == "vxlan") {
                    out.insert(Attachment {
                        netns_path: host.info.path.clone(),
                        interface: link.name.clone(),
                        why: format!("tunnel device of {name}"),
                    });
                }
            }
            HostRole::Pod(pod) if filter.contains(&pod.ip) => {
                out.insert(Attachment {
                    netns_path: host.info.path.clone(),
                    interface: pod.eth.clone(),
                    why: format!("{} inside Pod {}", pod.eth, pod.qualified()),
                });
                if let (Some(cookie), Some(veth)) = (pod.node_cookie, &pod.host_veth)
                    && let Some(node) = topology.host(cookie)
                {
                    out.insert(Attachment {
                        netns_path: node.info.path.clone(),
                        interface: veth.clone(),
                        why: format!("host side of Pod {}", pod.qualified()),
                    });
                }
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

pub fn wall_offset_ns() -> i128 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    i128::try_from(wall).unwrap_or(0) - i128::from(monotonic_ns())
}

/// The kernel side of a run: programs loaded and attached, ring buffer open.
pub struct Kernel {
    ebpf: Ebpf,
    pub stream: EventStream,
    pub reasons: DropReasons,
    pub attached: Vec<Attachment>,
}

/// Refuses at once, naming what is missing, when this process cannot follow.
pub fn check_privileges() -> Result<(), MissingPrivilege> {
    let missing = caps::missing(&caps::FOLLOW_NEEDS);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<_> = missing.iter().map(|c| c.name).collect();
    Err(MissingPrivilege(format!(
        "follow needs {} (run it as root, e.g. with sudo); `tracer doctor` shows what this user can do",
        names.join(", ")
    )))
}

impl Kernel {
    pub fn attach(filter: &[std::net::Ipv4Addr], plan: &[Attachment]) -> anyhow::Result<Self> {
        check_privileges()?;
        let btf = Btf::vmlinux().context("read kernel BTF")?;
        let offsets = KernelOffsets::from_btf(&btf).context("kernel struct offsets")?;
        let reasons = DropReasons::from_btf(&btf).unwrap_or_default();
        let mut ebpf = ebpf::load(&LoadOptions {
            trace_all: false,
            offsets: Some(offsets),
        })?;
        events::follow_addresses(&mut ebpf, filter)?;
        let aya_btf = aya::Btf::from_sys_fs().context("read kernel BTF")?;
        if let Err(err) = kfree_skb::attach(&mut ebpf, &aya_btf) {
            eprintln!("tracer: drops will not be seen ({err}); they show as \"not observed\"");
        }
        let mut attached = Vec::new();
        for attachment in plan {
            let path = std::path::PathBuf::from(&attachment.netns_path);
            let interface = attachment.interface.clone();
            let result = netns::run_in(&path, move || {
                let mut result = Ok(());
                for direction in [Direction::Ingress, Direction::Egress] {
                    if let Err(e) = tc::attach(&mut ebpf, &interface, direction, AttachMode::Tcx) {
                        result = Err(e);
                    }
                }
                (ebpf, result)
            })
            .with_context(|| format!("enter {}", attachment.netns_path))?;
            ebpf = result.0;
            match result.1 {
                Ok(()) => attached.push(attachment.clone()),
                Err(e) => eprintln!(
                    "tracer: not watching {} ({}): {e}",
                    attachment.interface, attachment.why
                ),
            }
        }
        if attached.is_empty() {
            bail!("no interface could be watched; see `tracer doctor`");
        }
        let stream = EventStream::take(&mut ebpf)?;
        Ok(Self {
            ebpf,
            stream,
            reasons,
            attached,
        })
    }

    pub fn loss(&self) -> tracer_common::LossCounters {
        events::loss(&self.ebpf).unwrap_or_default()
    }

    /// Average run time per invocation of each loaded program, from the kernel's BPF
    /// statistics (only counted while [`enable_kernel_stats`]' descriptor is open).
    pub fn program_costs(&self) -> Vec<(String, u64, u64)> {
        self.ebpf
            .programs()
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                let runs = info.run_count();
                let ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
                (runs > 0).then(|| (name.to_owned(), runs, ns / runs))
            })
            .collect()
    }
}

/// Turns on the kernel's BPF run-time accounting until the returned descriptor is dropped.
pub fn enable_kernel_stats() -> anyhow::Result<std::os::fd::OwnedFd> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enable BPF run-time statistics")
}

impl Kernel {}

/// Counts per verdict, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub delivered: u64,
    pub dropped: u64,
    pub incomplete: u64,
    /// Observations read from the kernel (one per packet per hook).
    pub observations: u64,
}

impl Tally {
    pub fn add(&mut self, journey: &Journey) {
        match journey.verdict {
            crate::journey::model::Verdict::Delivered => self.delivered += 1,
            crate::journey::model::Verdict::Dropped => self.dropped += 1,
            crate::journey::model::Verdict::Incomplete => self.incomplete += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.delivered + self.dropped + self.incomplete
    }
}

/// Whether a journey passes the user's port/protocol filters.
fn wanted(journey: &Journey, plan: &plan::FollowPlan) -> bool {
    if let Some(protocol) = plan.protocol
        && journey.protocol != protocol
    {
        return false;
    }
    if let Some(port) = plan.port {
        let touches = |e: &crate::journey::model::Endpoints| e.sport == port || e.dport == port;
        return touches(&journey.original)
            || journey
                .hops
                .iter()
                .filter_map(|h| h.packet.as_ref())
                .any(touches);
    }
    true
}

/// Reads events until a limit, Ctrl-C or SIGTERM; returns the tally. Raw observations go
/// to the recorder, if any, before they are correlated.
pub fn run(
    kernel: &mut Kernel,
    cluster: &ClusterHandle,
    topology: &Topology,
    plan: &plan::FollowPlan,
    limits: &Limits,
    sink: &mut dyn Sink,
    mut recorder: Option<&mut crate::record::writer::Recorder>,
) -> anyhow::Result<Tally> {
    let started = Instant::now();
    let live = rediscover::Rediscover::new(topology, plan, cluster, kernel);
    let mut output = Output {
        cluster,
        topology: &live,
        plan,
        limits,
        reasons: kernel.reasons.clone(),
        wall_offset_ns: wall_offset_ns(),
        tally: Tally::default(),
        memo: Memo::default(),
    };
    let mut assembler = Assembler::new();
    let mut events = Vec::new();
    let mut recording_failed = false;
    let mut last_loss_report = Instant::now();
    let mut last_read = 0;
    let mut recorded = live.generation();
    loop {
        if STOP.load(Ordering::Relaxed) || limits.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        live.tick(kernel, sink);
        last_read = kernel.stream.next_batch(last_read, &mut events);
        let in_scope = live.current();
        let mut observations: Vec<Observation> = events
            .drain(..)
            .filter_map(|e| Observation::from_event(&e))
            // The drop tracepoint sees every namespace on the machine: keep drops in the
            // traced ones (and those whose device is unknown), not another network's packets
            // that happen to carry the same addresses.
            .filter(|o| {
                o.hook != Hook::Drop
                    || o.netns_cookie == 0
                    || in_scope.host(o.netns_cookie).is_some()
            })
            .collect();
        output.tally.observations += observations.len() as u64;
        let record_only = limits.record_only && recorder.is_some() && !recording_failed;
        let report_loss = last_loss_report.elapsed() >= Duration::from_secs(1);
        let loss = report_loss.then(|| kernel.loss());
        if let Some(recorder) = recorder.as_deref_mut()
            && !recording_failed
        {
            // Pods came or went: the recording gets the new names and namespaces at once,
            // before the packets that need them, so a replay names the replacements as live
            // did. (The watch publishes at most every 50 ms; on a large cluster that changes
            // often this costs a copy of its trimmed objects per change.)
            if live.generation() != recorded {
                recorder.context(cluster.objects(), live.current());
                recorded = live.generation();
            }
            if record_only {
                recorder.observations(observations);
                observations = Vec::new();
            } else {
                recorder.observations(observations.clone());
            }
            if let Some(loss) = loss {
                recorder.loss(loss.ringbuf_full, loss.parse_failed);
            }
            if let Some(error) = recorder.error() {
                // Tell the user at once; following goes on without the recording.
                sink.notice(&format!(
                    "recording stopped: {error}; following continues without it"
                ));
                recording_failed = true;
            }
        }
        if let Some(loss) = loss {
            sink.loss(loss.ringbuf_full, loss.parse_failed);
            last_loss_report = Instant::now();
        }
        let mut closed = Vec::new();
        for obs in observations {
            closed.extend(assembler.push(obs));
        }
        closed.extend(assembler.flush(monotonic_ns()));
        if output.emit(closed, sink)? {
            return Ok(output.tally);
        }
    }
    // Whatever is still in flight is shown as it stands.
    output.emit(assembler.flush(u64::MAX), sink)?;
    Ok(output.tally)
}

/// Explains finished packets and hands the wanted ones to the sink.
struct Output<'a> {
    cluster: &'a ClusterHandle,
    topology: &'a rediscover::Rediscover,
    plan: &'a plan::FollowPlan,
    limits: &'a Limits,
    reasons: DropReasons,
    wall_offset_ns: i128,
    tally: Tally,
    memo: Memo,
}

impl Output<'_> {
    /// True once the journey limit is reached.
    fn emit(
        &mut self,
        raws: Vec<crate::journey::assemble::RawJourney>,
        sink: &mut dyn Sink,
    ) -> anyhow::Result<bool> {
        if raws.is_empty() {
            return Ok(false);
        }
        let topology = self.topology.current();
        for raw in raws {
            // Named by the cluster as it was when the packet started, not as it is now: a
            // Pod replaced (its IP reused) in between must not rename the old one's packets.
            let started = raw.observations.first().map_or(u64::MAX, |o| o.ts_ns);
            let model = self.cluster.snapshot_at(started);
            // A new model (the watch saw a change) or topology means new names.
            self.memo.renew((
                Arc::as_ptr(&model) as usize,
                usize::try_from(self.topology.generation()).unwrap_or(usize::MAX),
            ));
            let names = naming::ModelNames(&model);
            let ctx = Context {
                topology: &topology,
                cluster: &names,
                reasons: &self.reasons,
                followed: &self.plan.followed,
                wall_offset_ns: self.wall_offset_ns,
                memo: &self.memo,
            };
            let journey = explain::explain(&raw, &ctx);
            if !wanted(&journey, self.plan) {
                continue;
            }
            sink.journey(&journey)?;
            self.tally.add(&journey);
            if self.limits.count.is_some_and(|c| self.tally.total() >= c) {
                sink.flush()?;
                return Ok(true);
            }
        }
        sink.flush()?;
        Ok(false)
    }
}

/// What the user should know about visibility before the first packet: a followed Pod on a
/// node that is not traced from here, or not found in any namespace.
pub fn visibility_warnings(topology: &Topology, plan: &plan::FollowPlan) -> Vec<String> {
    let mut notes = Vec::new();
    for target in [&plan.from, &plan.to] {
        if let crate::k8s::resolve::Target::Pod(pod) = target
            && let Some(ip) = pod.ip
            && topology.pod_by_ip(ip).is_none()
        {
            notes.push(format!(
                "Pod {}/{} runs on node {}, which is not traced from here: only its packets that pass through this node are visible",
                pod.namespace,
                pod.name,
                pod.node.as_deref().unwrap_or("?")
            ));
        }
    }
    notes
}
