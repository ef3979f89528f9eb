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
//! resolved), `live` (the live source and its loop), `signals` (Ctrl-C, SIGTERM, the UI's
//! quit), `rediscover` (the cluster changing under a run), `attach` (TCX or netlink, the
//! hooks a run holds), `runs` and `cleanup` (netlink filters killed runs left), and here
//! the topology discovery, attachments and the kernel side.

pub mod attach;
pub mod cleanup;
pub mod command;
pub mod live;
pub mod plan;
pub mod rediscover;
pub mod runs;
pub mod signals;

use std::{collections::BTreeSet, time::Duration};

use anyhow::{Context as _, bail};
use aya::Ebpf;

pub use signals::{install_stop_handlers, request_stop};

use crate::{
    btf::Btf,
    caps,
    drop_reason::DropReasons,
    ebpf::{self, LoadOptions},
    events::{self, EventStream},
    exit::MissingPrivilege,
    k8s::model::ClusterModel,
    kernel_layout::KernelOffsets,
    probes::{kfree_skb, tc::AttachMode},
    topology::{
        NamespaceScope, Topology, discover,
        roles::{HostRole, NodeRef, PodRef},
    },
};

pub struct Limits {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Record raw observations and leave correlation to `tracer replay` (the
    /// `--output summary --record` session, the cheapest way to capture a flood). Has no
    /// effect without a recorder, or once the recording has failed.
    pub record_only: bool,
}

/// Builds the topology from the namespaces in `scope`, named with the cluster model.
pub fn discover_topology(model: &ClusterModel, scope: &NamespaceScope) -> Topology {
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
    let namespaces = discover::namespace_paths(scope)
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

/// The kernel side of a run: programs loaded and attached, ring buffer open.
pub struct Kernel {
    /// Before `ebpf`: the hooks go first when a run ends.
    hooks: attach::Hooks,
    ebpf: Ebpf,
    pub stream: EventStream,
    pub reasons: DropReasons,
    pub attached: Vec<Attachment>,
    /// How the TC classifiers are attached in this run.
    pub mode: AttachMode,
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
    /// Loads the programs, decides how to attach them here ([`attach::decide`]) and hooks
    /// every interface of `plan`. Tells the user on stderr which way and what it hooked.
    pub fn attach(
        filter: &[std::net::Ipv4Addr],
        plan: &[Attachment],
        choice: attach::AttachChoice,
    ) -> anyhow::Result<Self> {
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
        let drops = kfree_skb::attach(&mut ebpf, &aya_btf);
        let decision = attach::decide(choice, &mut ebpf);
        let (mut hooks, swept) = attach::Hooks::start(&mut ebpf, decision.mode)?;
        if !swept.is_empty() {
            eprintln!("  cleaned up after a killed tracer: {}", swept.describe());
        }
        for problem in &swept.problems {
            eprintln!("  note: cleaning up after a killed tracer: {problem}");
        }
        eprintln!(
            "  attach mode: {} ({}){}",
            decision.mode.name(),
            decision.why,
            match decision.mode {
                AttachMode::Tcx => "; TCX links",
                AttachMode::Netlink =>
                    "; netlink filters under clsact qdiscs, removed on exit or by `tracer cleanup` after a kill",
            }
        );
        eprintln!(
            "  hooks: tc_ingress, tc_egress ({}); {}",
            decision.mode.name(),
            match &drops {
                Ok(()) => "kfree_skb (tp_btf): drops with their reason".to_owned(),
                Err(err) => format!("no drop hook ({err}): drops show as \"not observed\""),
            }
        );
        let mut attached = Vec::new();
        for attachment in plan {
            match hooks.attach(&mut ebpf, attachment) {
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
            hooks,
            ebpf,
            stream,
            reasons,
            attached,
            mode: decision.mode,
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
