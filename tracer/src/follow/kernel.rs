//! The kernel side of a run: the programs loaded, the attach mode decided by probing
//! ([`super::attach`]), every interface hooked, the ring buffer open, the drop-reason names,
//! and what the programs cost.

use anyhow::{Context as _, bail};
use aya::Ebpf;
use tracer_common::{HopCount, HopKey};

use super::{Attachment, attach, kernel_log::KernelLog};
use crate::{
    btf::Btf,
    caps,
    drop_reason::DropReasons,
    ebpf::{self, LoadOptions},
    events::{self, EventStream},
    exit::MissingPrivilege,
    journey::counted::{Crossed, HopCounts, HopPlace, KernelTotals},
    kernel_layout::KernelOffsets,
    probes::{
        kfree_skb::{self, DropHookChoice},
        nat, route,
        tc::AttachMode,
    },
};

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
    /// The programs' diagnostics, with `--kernel-log`.
    pub log: Option<KernelLog>,
    /// One followed packet in `2^sample_shift` is traced, the rest counted (0: all traced).
    pub sample_shift: u8,
    hop_totals: KernelTotals,
    /// The slots of `HOP_SLOTS` as last read, to give idle ones back.
    slots: events::SlotKeeper,
    /// As of the last [`Self::hop_counts`]: see [`KernelTotals::evicted_unread`].
    pub evicted_unread: u64,
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

/// How the user asked the programs to run (`follow`'s options).
#[derive(Debug, Clone, Copy)]
pub struct KernelOptions {
    pub attach: attach::AttachChoice,
    pub kernel_log: bool,
    pub drop_hook: DropHookChoice,
    pub route_hook: bool,
    pub nat_hook: bool,
    pub sample_shift: u8,
}

impl KernelOptions {
    pub fn of(args: &crate::cli::FollowArgs) -> Self {
        Self {
            attach: args.attach,
            kernel_log: args.kernel_log,
            drop_hook: args.drop_hook,
            route_hook: !args.no_route_hook,
            nat_hook: !args.no_nat_hook,
            sample_shift: args.sample.shift(),
        }
    }
}

impl Kernel {
    /// Loads the programs, decides how to attach them here ([`attach::decide`]) and hooks
    /// every interface of `plan`. Tells the user on stderr which way and what it hooked.
    pub fn attach(
        filter: &[std::net::Ipv4Addr],
        plan: &[Attachment],
        options: &KernelOptions,
    ) -> anyhow::Result<Self> {
        let KernelOptions {
            attach: choice,
            kernel_log,
            drop_hook: drop_choice,
            route_hook,
            nat_hook,
            sample_shift,
        } = *options;
        check_privileges()?;
        let btf = Btf::vmlinux().context("read kernel BTF")?;
        let offsets = KernelOffsets::from_btf(&btf).context("kernel struct offsets")?;
        let reasons = DropReasons::from_btf(&btf).unwrap_or_default();
        let mut ebpf = ebpf::load(&LoadOptions {
            trace_all: false,
            offsets: Some(offsets),
            kernel_log,
            sample_shift,
        })?;
        let log = if kernel_log {
            Some(KernelLog::take(&mut ebpf)?)
        } else {
            None
        };
        events::follow_addresses(&mut ebpf, filter)?;
        let aya_btf = aya::Btf::from_sys_fs().context("read kernel BTF")?;
        let drops = kfree_skb::attach(&mut ebpf, &aya_btf, drop_choice);
        let routes = if route_hook {
            route::attach(&mut ebpf, &aya_btf, &offsets).map_err(|e| e.to_string())
        } else {
            Err("--no-route-hook".to_owned())
        };
        let nats = if nat_hook {
            nat::attach(&mut ebpf, &aya_btf, &offsets).map_err(|e| e.to_string())
        } else {
            Err("--no-nat-hook".to_owned())
        };
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
            "  hooks: tc_ingress, tc_egress ({}); {}; {}; {}",
            decision.mode.name(),
            match &drops {
                Ok(hook) => format!("{} (tp_btf): {}", hook.program(), hook.describe()),
                Err(err) => format!("no drop hook ({err}): drops show as \"not observed\""),
            },
            match &routes {
                Ok(()) => "fib_table_lookup (tp_btf): routing decisions observed".to_owned(),
                Err(err) => {
                    format!(
                        "no route hook ({err}): routing decisions inferred from each node's table"
                    )
                }
            },
            match &nats {
                Ok(hook) => format!(
                    "{} ({}) on {}: NAT rewrites observed with their conntrack entries",
                    hook.program(),
                    hook.attach_type(),
                    nat::FUNCTION
                ),
                Err(err) => {
                    format!(
                        "no NAT hook ({err}): NAT inferred from the headers before and after it"
                    )
                }
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
            log,
            sample_shift,
            hop_totals: KernelTotals::default(),
            slots: events::SlotKeeper::default(),
            evicted_unread: 0,
        })
    }

    /// Hooks one more interface (a new Pod's, found while the run goes on).
    pub fn hook(&mut self, attachment: &Attachment) -> Result<(), String> {
        self.hooks.attach(&mut self.ebpf, attachment)
    }

    /// Lets go of an interface's hooks (it is gone).
    pub fn unhook(&mut self, attachment: &Attachment) {
        self.hooks.detach(attachment);
    }

    /// Adds addresses to the kernel's filter: packets from or to them are followed too.
    pub fn follow_addresses(
        &mut self,
        addresses: &[std::net::Ipv4Addr],
    ) -> Result<(), ebpf::LoadError> {
        events::follow_addresses(&mut self.ebpf, addresses)
    }

    pub fn loss(&self) -> tracer_common::LossCounters {
        events::loss(&self.ebpf).unwrap_or_default()
    }

    /// What the TC hooks counted since the last call (the totals of the places that
    /// changed), when this run samples and something changed.
    pub fn hop_counts(&mut self) -> Option<HopCounts> {
        if self.sample_shift == 0 {
            return None;
        }
        // The map's running total first: what the map counts after it hides, never adds.
        let counted = self.loss().counted_evictable;
        // A read that failed says nothing (its slots would read as empty): the next one will.
        let rows = events::hop_counts(&self.ebpf, &mut self.slots).ok()?;
        // A mark not written keeps its slot from another hop until it is written.
        let _ = events::mark_idle_slots(&mut self.ebpf, &mut self.slots);
        let places = |rows: &Vec<(HopKey, HopCount)>| {
            rows.iter()
                .filter_map(|(key, count)| {
                    let crossed = Crossed {
                        packets: count.packets,
                        bytes: count.bytes,
                    };
                    HopPlace::from_kernel(key).map(|place| (place, crossed))
                })
                .collect::<Vec<_>>()
        };
        let hops = self.hop_totals.update(
            places(&rows.slots),
            places(&rows.retired),
            places(&rows.evictable),
        );
        self.evicted_unread = self.hop_totals.evicted_unread(counted);
        (!hops.is_empty()).then_some(HopCounts {
            sample_shift: self.sample_shift,
            hops,
        })
    }

    /// A sampling run: how many slots of `HOP_SLOTS` idle hops gave to others
    /// (`events::SlotKeeper`).
    pub fn hop_slots_taken(&self) -> Option<u64> {
        (self.sample_shift != 0).then(|| self.slots.taken())
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
