//! `tracer doctor`: what this kernel and this process can do, found out by trying.
//!
//! Every program type is checked by loading (and where it matters attaching) a real
//! program from the embedded object: TC classifiers are attached to `lo` of a throwaway
//! network namespace (destroyed by the kernel when the probing thread ends), tracepoint
//! programs to their tracepoints, and a packet sent inside that namespace must come back
//! through the ring buffer. Nothing outside that namespace is touched, and every program is
//! detached before `doctor` returns.

use std::{net::UdpSocket, time::Duration};

use aya::{
    Ebpf,
    programs::{FEntry, KProbe, RawTracePoint},
};
use serde::Serialize;
use tracer_common::programs;

use crate::{
    btf::Btf,
    caps,
    ebpf::{self, LoadError, LoadOptions},
    events::EventStream,
    follow::attach,
    kernel_layout::KernelOffsets,
    netns,
    probes::{
        kfree_skb::{self, DropHook, DropHookChoice},
        nat::{self, NatHook},
        route,
        tc::{self, AttachMode, Direction},
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Available,
    Unavailable,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapabilityCheck {
    pub name: &'static str,
    pub present: bool,
    pub needed_for: &'static str,
}

/// How a hop of a journey will be known on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// A kernel hook sees the packet there (● in the UI).
    Observed,
    /// Worked out from what the hooks saw and the node's tables (~ in the UI).
    Inferred,
    /// Neither: the hop is shown as `not observed`.
    Missing,
}

/// One kind of hop (`kind` in the JSON journey schema) and how `follow` will know it here.
#[derive(Debug, Clone, Serialize)]
pub struct HopVisibility {
    pub kind: &'static str,
    pub visibility: Visibility,
    pub how: String,
}

/// One kernel program `follow` will use here, and how it is attached.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedHook {
    pub program: &'static str,
    /// `tcx`, `netlink`, `tp_btf`.
    pub attach: &'static str,
    pub purpose: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub kernel: String,
    /// How `follow` (with the default `--attach auto`) will attach its TC programs here;
    /// null when neither way works.
    pub attach_mode: Option<AttachMode>,
    /// The programs `follow` will attach here.
    pub hooks: Vec<PlannedHook>,
    /// Every kind of hop, observed, inferred or missing here.
    pub hops: Vec<HopVisibility>,
    pub checks: Vec<Check>,
    pub capabilities: Vec<CapabilityCheck>,
    /// Plain-language lines: what `follow` will and will not see here.
    pub follow_sees: Vec<String>,
    pub follow_misses: Vec<String>,
    /// Whether `tracer follow` can work on this machine as this user.
    pub follow_works: bool,
}

fn check(name: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            name,
            status: Status::Available,
            detail,
        },
        Err(detail) => Check {
            name,
            status: Status::Unavailable,
            detail,
        },
    }
}

/// One line for an error, with the verifier's last words when the kernel refused a program.
pub fn explain(err: &LoadError) -> String {
    // aya's errors often repeat their source in their own message: add only what is new.
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        let line = inner.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = inner.source();
    }
    text
}

pub fn run() -> Report {
    let kernel = kernel_release();
    let mut checks = Vec::new();

    let btf = Btf::vmlinux();
    let offsets = btf
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|b| KernelOffsets::from_btf(b).map_err(|e| e.to_string()));
    checks.push(check(
        "btf",
        offsets
            .as_ref()
            .map(|_| {
                "/sys/kernel/btf/vmlinux readable; sk_buff, net_device and net offsets resolved"
                    .to_owned()
            })
            .map_err(Clone::clone),
    ));

    let object = ebpf::object().map(|_| ()).map_err(|e| e.to_string());
    checks.push(check(
        "ebpf_object",
        object
            .clone()
            .map(|()| "embedded in this binary".to_owned()),
    ));

    let aya_btf = aya::Btf::from_sys_fs().ok();
    let options = LoadOptions {
        trace_all: true,
        offsets: offsets.as_ref().ok().copied(),
        kernel_log: false,
        sample_shift: 0,
    };
    match ebpf::load(&options) {
        Ok(_) => probe_programs(&options, aya_btf.as_ref(), &mut checks),
        Err(err) => {
            let detail = explain(&err);
            for name in [
                "tc_tcx",
                "tc_netlink",
                "ring_buffer",
                "tp_btf",
                "drop_reason",
                "route_hook",
                "nat_hook",
                "raw_tracepoint",
                "kprobe",
                "fentry",
            ] {
                checks.push(check(name, Err(format!("not tried: {detail}"))));
            }
        }
    }

    let conntrack_kfunc = btf
        .as_ref()
        .ok()
        .is_some_and(|b| b.has_function("bpf_skb_ct_lookup"))
        || module_btf_has_function("nf_conntrack", "bpf_skb_ct_lookup", btf.as_ref().ok());
    checks.push(check(
        "conntrack_kfuncs",
        if conntrack_kfunc {
            Ok(
                "bpf_skb_ct_lookup is described in kernel BTF (present, not load-tested)"
                    .to_owned(),
            )
        } else {
            Err(
                "bpf_skb_ct_lookup is not in kernel BTF (nf_conntrack not loaded or too old)"
                    .to_owned(),
            )
        },
    ));
    if let Ok(b) = &btf {
        for tp in [
            "fib_table_lookup",
            "netif_receive_skb",
            "net_dev_start_xmit",
            "kfree_skb",
        ] {
            let name = match tp {
                "fib_table_lookup" => "tracepoint_fib_table_lookup",
                "netif_receive_skb" => "tracepoint_netif_receive_skb",
                "net_dev_start_xmit" => "tracepoint_net_dev_start_xmit",
                _ => "tracepoint_kfree_skb",
            };
            checks.push(check(
                name,
                if b.has_tracepoint(tp) {
                    Ok(format!("{tp} is a BTF tracepoint here"))
                } else {
                    Err(format!("no btf_trace_{tp} in kernel BTF"))
                },
            ));
        }
    }

    let effective = caps::effective();
    let capabilities = caps::FOLLOW_NEEDS
        .iter()
        .map(|c| CapabilityCheck {
            name: c.name,
            present: caps::has(effective, *c),
            needed_for: c.needed_for,
        })
        .collect::<Vec<_>>();

    summarise(kernel, checks, capabilities)
}

fn probe_programs(options: &LoadOptions, btf: Option<&aya::Btf>, checks: &mut Vec<Check>) {
    // TCX: the very probe `follow --attach auto` makes (see `follow::attach`).
    let tcx = with_object(options, |ebpf| {
        attach::probe_tcx(ebpf)?;
        Ok("TC classifier attached as a TCX link (to lo of a throwaway namespace)".to_owned())
    });
    let tcx_ok = tcx.is_ok();
    checks.push(check("tc_tcx", tcx));

    let netlink = netns::run_in_fresh({
        let options = *options;
        move || -> Result<String, String> {
            let mut ebpf = ebpf::load(&options).map_err(|e| explain(&e))?;
            tc::attach(&mut ebpf, "lo", Direction::Ingress, AttachMode::Netlink)
                .map_err(|e| explain(&e))?;
            Ok("TC classifier attached under a clsact qdisc via netlink (to lo of a throwaway namespace)".to_owned())
        }
    })
    .map_err(|e| format!("could not create a throwaway network namespace: {e}"))
    .and_then(|r| r);
    let netlink_ok = netlink.is_ok();
    checks.push(check("tc_netlink", netlink));

    // The ring buffer, through whichever way `follow` will attach here: a packet sent in
    // a throwaway namespace must come back as an event.
    let ring_mode = if tcx_ok {
        Some(AttachMode::Tcx)
    } else if netlink_ok {
        Some(AttachMode::Netlink)
    } else {
        None
    };
    let ring = match ring_mode {
        None => Err("not tried: no TC attach mode works here (see tc_tcx, tc_netlink)".to_owned()),
        Some(mode) => netns::run_in_fresh({
            let options = *options;
            move || -> Result<String, String> {
                let mut ebpf = ebpf::load(&options).map_err(|e| explain(&e))?;
                tc::attach(&mut ebpf, "lo", Direction::Egress, mode).map_err(|e| explain(&e))?;
                ring_buffer_roundtrip(&mut ebpf)?;
                Ok(format!(
                    "BPF_MAP_TYPE_RINGBUF created (two); a test packet and the ICMP error it caused came back through them (classifier attached by {})",
                    mode.name()
                ))
            }
        })
        .map_err(|e| format!("could not create a throwaway network namespace: {e}"))
        .and_then(|r| r),
    };
    checks.push(check("ring_buffer", ring));

    // The drop hook as `follow --drop-hook auto` attaches it: with the reason, or without.
    let mut drop_hook = None;
    checks.push(check(
        "tp_btf",
        with_object(options, |ebpf| {
            let btf = btf.ok_or("kernel BTF unavailable")?;
            if options.offsets.is_none() {
                return Err("struct offsets unavailable (see btf)".to_owned());
            }
            let hook =
                kfree_skb::attach(ebpf, btf, DropHookChoice::Auto).map_err(|e| explain(&e))?;
            drop_hook = Some(hook);
            Ok(format!(
                "tp_btf program {} attached to kfree_skb",
                hook.program()
            ))
        }),
    ));
    checks.push(check(
        "drop_reason",
        match drop_hook {
            Some(DropHook::WithReason) => {
                Ok("the kfree_skb tracepoint carries the drop reason".to_owned())
            }
            Some(DropHook::NoReason) => Err(
                "the kfree_skb tracepoint has no reason argument here (before Linux 5.17): drops are reported with reason unknown"
                    .to_owned(),
            ),
            None => Err("no drop hook (see tp_btf)".to_owned()),
        },
    ));

    // The route hook, attached as `follow` attaches it.
    checks.push(check(
        "route_hook",
        with_object(options, |ebpf| {
            let btf = btf.ok_or("kernel BTF unavailable")?;
            let offsets = options
                .offsets
                .ok_or_else(|| "struct offsets unavailable (see btf)".to_owned())?;
            route::attach(ebpf, btf, &offsets).map_err(|e| match e {
                route::RouteHookError::Load(e) => explain(&e),
                other => other.to_string(),
            })?;
            Ok("tp_btf program attached to fib_table_lookup".to_owned())
        }),
    ));

    // The NAT hook, attached as `follow` attaches it: fentry, else kprobe.
    checks.push(check(
        "nat_hook",
        with_object(options, |ebpf| {
            let btf = btf.ok_or("kernel BTF unavailable")?;
            let offsets = options
                .offsets
                .ok_or_else(|| "struct offsets unavailable (see btf)".to_owned())?;
            let hook = nat::attach(ebpf, btf, &offsets).map_err(|e| e.to_string())?;
            Ok(format!(
                "{} program {} attached to {}",
                hook.attach_type(),
                hook.program(),
                nat::FUNCTION
            ))
        }),
    ));

    checks.push(check(
        "raw_tracepoint",
        with_object(options, |ebpf| {
            let name = programs::PROBE_RAW_TRACEPOINT;
            let program: &mut RawTracePoint = program(ebpf, name)?;
            step(name, program.load())?;
            step(name, program.attach("netif_receive_skb"))?;
            Ok("raw tracepoint program attached to netif_receive_skb".to_owned())
        }),
    ));

    checks.push(check(
        "kprobe",
        with_object(options, |ebpf| {
            let name = programs::PROBE_KPROBE;
            let program: &mut KProbe = program(ebpf, name)?;
            step(name, program.load())?;
            step(name, program.attach("ip_rcv", 0))?;
            Ok("kprobe attached to ip_rcv".to_owned())
        }),
    ));

    checks.push(check(
        "fentry",
        with_object(options, |ebpf| {
            let name = programs::PROBE_FENTRY;
            let btf = btf.ok_or("kernel BTF unavailable")?;
            let program: &mut FEntry = program(ebpf, name)?;
            step(name, program.load("ip_rcv", btf))?;
            step(name, program.attach())?;
            Ok("fentry program attached to ip_rcv".to_owned())
        }),
    ));
}

/// A program step's error in the report's words.
fn step<T>(
    name: &'static str,
    result: Result<T, aya::programs::ProgramError>,
) -> Result<T, String> {
    result.map_err(|e| explain(&LoadError::program(name)(e)))
}

/// Loads a fresh copy of the object, runs one probe, and drops everything it attached.
fn with_object(
    options: &LoadOptions,
    probe: impl FnOnce(&mut Ebpf) -> Result<String, String>,
) -> Result<String, String> {
    let mut ebpf = ebpf::load(options).map_err(|e| explain(&e))?;
    probe(&mut ebpf)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| LoadError::NoProgram(name).to_string())?;
    program
        .try_into()
        .map_err(|e| explain(&LoadError::program(name)(e)))
}

/// Sends one UDP datagram over `lo` in the current (throwaway) namespace to a closed port and
/// waits for the classifier's events: the datagram's, through `EVENTS`, and the ICMP port
/// unreachable it causes, through `FAILURES` (loopback is exempt from ICMP rate limits).
fn ring_buffer_roundtrip(ebpf: &mut Ebpf) -> Result<(), String> {
    netns::set_link_up("lo").map_err(|e| format!("bringing lo up: {e}"))?;
    let mut stream = EventStream::take(ebpf).map_err(|e| explain(&e))?;
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .send_to(b"tracer doctor", "127.0.0.1:9")
        .map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let (mut datagram, mut icmp_error) = (false, false);
    for _ in 0..20 {
        if stream
            .wait(Duration::from_millis(100))
            .map_err(|e| e.to_string())?
        {
            stream.drain_into(&mut events);
        }
        datagram |= events.iter().any(|e| u16::from_be(e.packet().dport) == 9);
        icmp_error |= events
            .iter()
            .any(|e| e.packet().ip_proto == 1 && e.packet().icmp_type == 3);
        if datagram && icmp_error {
            return Ok(());
        }
    }
    Err(if datagram {
        "the datagram's event came back, the ICMP error it caused (FAILURES ring buffer) did not within 2 s"
    } else {
        "no event within 2 s"
    }
    .to_owned())
}

fn module_btf_has_function(module: &str, function: &str, base: Option<&Btf>) -> bool {
    let Some(base) = base else { return false };
    let path = std::path::PathBuf::from(format!("/sys/kernel/btf/{module}"));
    Btf::from_file(&path, Some(base)).is_ok_and(|b| b.has_function(function))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn available(checks: &[Check], name: &str) -> bool {
    checks
        .iter()
        .any(|c| c.name == name && c.status == Status::Available)
}

/// The drop hook `follow --drop-hook auto` attaches given these checks.
fn drop_hook(checks: &[Check]) -> Option<DropHook> {
    if !available(checks, "tp_btf") {
        None
    } else if available(checks, "drop_reason") {
        Some(DropHook::WithReason)
    } else {
        Some(DropHook::NoReason)
    }
}

/// The NAT hook `follow` attaches given these checks (its detail says which type).
fn nat_hook(checks: &[Check]) -> Option<NatHook> {
    let check = checks
        .iter()
        .find(|c| c.name == "nat_hook" && c.status == Status::Available)?;
    Some(if check.detail.starts_with("fentry") {
        NatHook::Fentry
    } else {
        NatHook::Kprobe
    })
}

/// The attach mode `follow --attach auto` picks given these checks: the same probe decides.
fn attach_mode(checks: &[Check]) -> Option<AttachMode> {
    if available(checks, "tc_tcx") {
        Some(AttachMode::Tcx)
    } else if available(checks, "tc_netlink") {
        Some(AttachMode::Netlink)
    } else {
        None
    }
}

fn planned_hooks(mode: Option<AttachMode>, checks: &[Check]) -> Vec<PlannedHook> {
    let mut hooks = Vec::new();
    if let Some(mode) = mode {
        hooks.push(PlannedHook {
            program: programs::TC_INGRESS,
            attach: mode.name(),
            purpose: "packets arriving on each watched interface",
        });
        hooks.push(PlannedHook {
            program: programs::TC_EGRESS,
            attach: mode.name(),
            purpose: "packets leaving each watched interface",
        });
    }
    if available(checks, "tp_btf") {
        hooks.push(if available(checks, "drop_reason") {
            PlannedHook {
                program: programs::KFREE_SKB,
                attach: "tp_btf",
                purpose: "drops, with the kernel's drop reason",
            }
        } else {
            PlannedHook {
                program: programs::KFREE_SKB_NO_REASON,
                attach: "tp_btf",
                purpose: "drops, without a reason (this kernel's tracepoint has none)",
            }
        });
    }
    if mode.is_some() && available(checks, "route_hook") {
        hooks.push(PlannedHook {
            program: programs::FIB_TABLE_LOOKUP,
            attach: "tp_btf",
            purpose: "routing decisions for the packets the TC ingress hook saw",
        });
    }
    if mode.is_some()
        && let Some(hook) = nat_hook(checks)
    {
        hooks.push(PlannedHook {
            program: hook.program(),
            attach: hook.attach_type(),
            purpose: "NAT rewrites (Service DNAT, un-DNAT, masquerade) with their conntrack entries",
        });
    }
    hooks
}

/// Each hop kind of the journey schema, and how it is known with these hooks.
fn hop_visibility(
    tc: bool,
    drops: Option<DropHook>,
    routes: bool,
    nat_hook: Option<NatHook>,
) -> Vec<HopVisibility> {
    let at_interface = |kind: &'static str, where_: &str| HopVisibility {
        kind,
        visibility: if tc {
            Visibility::Observed
        } else {
            Visibility::Missing
        },
        how: if tc {
            format!("TC classifier on {where_}")
        } else {
            "no TC classifier can be attached here".to_owned()
        },
    };
    let inferred = |kind: &'static str, how: &str| HopVisibility {
        kind,
        visibility: if tc {
            Visibility::Inferred
        } else {
            Visibility::Missing
        },
        how: if tc {
            how.to_owned()
        } else {
            "needs the TC hops around it, which cannot be attached here".to_owned()
        },
    };
    let nat = |kind: &'static str| match nat_hook {
        Some(hook) if tc => HopVisibility {
            kind,
            visibility: Visibility::Observed,
            how: format!(
                "{} {}: the rewrite and its conntrack entry, named from the node's kube-proxy rules",
                hook.attach_type(),
                nat::FUNCTION
            ),
        },
        _ => inferred(
            kind,
            "the addresses changed between two hooks on one node, named from that node's kube-proxy rules (no NAT hook here: it needs fentry or kprobes)",
        ),
    };
    vec![
        at_interface("pod_egress", "the Pod's eth0 (egress)"),
        at_interface("veth_crossing", "the host side of the Pod's veth"),
        nat("service_dnat"),
        nat("reply_undnat"),
        nat("snat"),
        nat("reply_unsnat"),
        if tc && routes {
            HopVisibility {
                kind: "route_decision",
                visibility: Visibility::Observed,
                how: "tp_btf fib_table_lookup: the table, gateway and output device the kernel chose (the prefix named from the node's table)".to_owned(),
            }
        } else {
            inferred(
                "route_decision",
                "looked up in the node's routing table where the packet left or died (no fib_table_lookup hook here)",
            )
        },
        at_interface("encapsulation", "the VXLAN device (egress)"),
        at_interface("decapsulation", "the VXLAN device (ingress)"),
        at_interface("node_egress", "the node's uplink (egress)"),
        at_interface("node_ingress", "the node's uplink (ingress)"),
        at_interface("pod_delivery", "the Pod's eth0 (ingress)"),
        HopVisibility {
            kind: "drop",
            visibility: if drops.is_some() {
                Visibility::Observed
            } else {
                Visibility::Missing
            },
            how: match drops {
                Some(DropHook::WithReason) => "tp_btf kfree_skb, with the drop reason".to_owned(),
                Some(DropHook::NoReason) => {
                    "tp_btf kfree_skb, without a reason (reason unknown on this kernel)".to_owned()
                }
                None => "no drop hook here: a packet that vanishes shows as not_observed after its last hop"
                    .to_owned(),
            },
        },
    ]
}

/// Turns the raw checks into what they mean for `follow`.
fn summarise(kernel: String, checks: Vec<Check>, capabilities: Vec<CapabilityCheck>) -> Report {
    let mut sees = Vec::new();
    let mut misses = Vec::new();
    let mode = attach_mode(&checks);
    match mode {
        Some(AttachMode::Tcx) => sees.push("every hop at an interface: Pod egress, veth crossings, node uplinks, VXLAN devices, Pod delivery (attach mode tcx: TCX links, removed by the kernel if tracer dies)".to_owned()),
        Some(AttachMode::Netlink) => sees.push("every hop at an interface: Pod egress, veth crossings, node uplinks, VXLAN devices, Pod delivery (attach mode netlink: no TCX here, so clsact qdiscs and netlink filters; a tracer killed with SIGKILL leaves them behind until the next `tracer follow` or `tracer cleanup`)".to_owned()),
        None => misses.push(
            "no hop at any interface: TC programs cannot be attached, so follow cannot work"
                .to_owned(),
        ),
    }
    let routes = mode.is_some() && available(&checks, "route_hook");
    sees.push(if routes {
        "routing decisions as the kernel made them: table, gateway and output device (tp_btf fib_table_lookup)".to_owned()
    } else {
        "routing decisions: the route each packet took, from its node's routing table (no fib_table_lookup hook here)".to_owned()
    });
    let drops = drop_hook(&checks);
    if drops == Some(DropHook::WithReason) {
        sees.push("drops, with the kernel's drop reason (tp_btf kfree_skb)".to_owned());
    } else if drops == Some(DropHook::NoReason) {
        sees.push("drops, where they happen (tp_btf kfree_skb_no_reason)".to_owned());
        misses.push("why a packet was dropped: this kernel's kfree_skb tracepoint has no reason argument (before Linux 5.17), so drops say \"reason unknown on this kernel\"".to_owned());
    } else {
        misses.push("drops and their reasons: a packet that vanishes shows as \"not observed\" after its last hop".to_owned());
    }
    let nats = nat_hook(&checks).filter(|_| mode.is_some());
    if let Some(hook) = nats {
        sees.push(format!(
            "NAT rewrites as netfilter made them, with their conntrack entries: Service DNAT, un-DNAT, masquerade ({} {})",
            hook.attach_type(),
            nat::FUNCTION
        ));
    } else if !available(&checks, "kprobe") && !available(&checks, "fentry") {
        misses.push("the NAT rewrite itself (no kprobe/fentry here): DNAT, un-DNAT and masquerade are still shown, inferred from the headers before and after each hop and named from the node's kube-proxy rules".to_owned());
    } else {
        misses.push(format!(
            "the NAT rewrite itself: kprobe/fentry work on this kernel but the NAT hook did not attach ({}); DNAT and un-DNAT are inferred from the headers before and after each hop and the node's kube-proxy rules (load nf_nat, e.g. by adding a NAT rule, before follow)",
            checks
                .iter()
                .find(|c| c.name == "nat_hook")
                .map_or("not tried", |c| c.detail.as_str())
        ));
    }
    if !available(&checks, "ring_buffer") {
        misses.push("no events can reach userspace: the ring buffer test failed".to_owned());
    }
    let missing_caps: Vec<_> = capabilities
        .iter()
        .filter(|c| !c.present)
        .map(|c| c.name)
        .collect();
    if !missing_caps.is_empty() {
        misses.push(format!(
            "this process lacks {}: run tracer as root or grant them",
            missing_caps.join(", ")
        ));
    }
    let follow_works = mode.is_some()
        && available(&checks, "ring_buffer")
        && available(&checks, "btf")
        && missing_caps.is_empty();
    Report {
        kernel,
        attach_mode: mode,
        hooks: planned_hooks(mode, &checks),
        hops: hop_visibility(mode.is_some(), drops, routes, nats),
        checks,
        capabilities,
        follow_sees: sees,
        follow_misses: misses,
        follow_works,
    }
}

/// The human form of the report.
pub fn render_text(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "kernel {}", report.kernel);
    let _ = writeln!(out, "\nprogram and kernel features (found by trying):");
    for c in &report.checks {
        let mark = match c.status {
            Status::Available => "yes",
            Status::Unavailable => "NO ",
        };
        let _ = writeln!(out, "  {mark}  {:<30} {}", c.name, c.detail);
    }
    let _ = writeln!(out, "\ncapabilities follow needs:");
    for c in &report.capabilities {
        let mark = if c.present { "yes" } else { "NO " };
        let _ = writeln!(out, "  {mark}  {:<30} {}", c.name, c.needed_for);
    }
    let _ = writeln!(
        out,
        "\nfollow attaches here: {}",
        report
            .attach_mode
            .map_or("nothing (no TC attach mode works)", AttachMode::name)
    );
    for hook in &report.hooks {
        let _ = writeln!(
            out,
            "  {:<19} {:<8} {}",
            hook.program, hook.attach, hook.purpose
        );
    }
    let _ = writeln!(out, "\nhops:");
    for hop in &report.hops {
        let mark = match hop.visibility {
            Visibility::Observed => "observed",
            Visibility::Inferred => "inferred",
            Visibility::Missing => "MISSING ",
        };
        let _ = writeln!(out, "  {mark}  {:<16} {}", hop.kind, hop.how);
    }
    let _ = writeln!(out, "\nfollow will see:");
    for line in &report.follow_sees {
        let _ = writeln!(out, "  + {line}");
    }
    if !report.follow_misses.is_empty() {
        let _ = writeln!(out, "follow will not see:");
        for line in &report.follow_misses {
            let _ = writeln!(out, "  - {line}");
        }
    }
    let verdict = if report.follow_works {
        "tracer follow can work here."
    } else {
        "tracer follow cannot work here (see above)."
    };
    let _ = writeln!(out, "\n{verdict}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(available: &[&'static str]) -> Vec<Check> {
        [
            "btf",
            "tc_tcx",
            "tc_netlink",
            "ring_buffer",
            "tp_btf",
            "drop_reason",
            "route_hook",
            "nat_hook",
            "raw_tracepoint",
            "kprobe",
            "fentry",
            "tracepoint_fib_table_lookup",
        ]
        .into_iter()
        .map(|name| Check {
            name,
            status: if available.contains(&name) {
                Status::Available
            } else {
                Status::Unavailable
            },
            // As the real check words it: the attach type first.
            detail: if name == "nat_hook" {
                "kprobe program nat_kprobe attached to nf_nat_manip_pkt".to_owned()
            } else {
                String::new()
            },
        })
        .collect()
    }

    fn all_caps() -> Vec<CapabilityCheck> {
        caps::FOLLOW_NEEDS
            .iter()
            .map(|c| CapabilityCheck {
                name: c.name,
                present: true,
                needed_for: c.needed_for,
            })
            .collect()
    }

    #[test]
    fn this_machines_profile_can_follow_and_says_what_kprobes_would_add() {
        let report = summarise(
            "6.18".into(),
            checks(&[
                "btf",
                "tc_tcx",
                "tc_netlink",
                "ring_buffer",
                "tp_btf",
                "drop_reason",
                "route_hook",
                "raw_tracepoint",
                "tracepoint_fib_table_lookup",
            ]),
            all_caps(),
        );
        assert!(report.follow_works);
        assert!(
            report
                .follow_misses
                .iter()
                .any(|l| l.contains("no kprobe/fentry"))
        );
        assert!(report.follow_sees.iter().any(|l| l.contains("drop reason")));
        let routes: Vec<_> = report
            .hooks
            .iter()
            .filter(|h| h.program == "fib_table_lookup")
            .map(|h| h.attach)
            .collect();
        assert_eq!(routes, ["tp_btf"]);
        let route = report
            .hops
            .iter()
            .find(|h| h.kind == "route_decision")
            .unwrap();
        assert_eq!(route.visibility, Visibility::Observed, "{}", route.how);
        let dnat = report
            .hops
            .iter()
            .find(|h| h.kind == "service_dnat")
            .unwrap();
        assert_eq!(dnat.visibility, Visibility::Inferred);
    }

    #[test]
    fn a_kernel_without_tcx_follows_by_netlink_and_says_so() {
        // What Debian's 6.1 kernel answers (issue #12): TCX refused, netlink filters fine.
        let report = summarise(
            "6.1.0-57-amd64".into(),
            checks(&[
                "btf",
                "tc_netlink",
                "ring_buffer",
                "tp_btf",
                "drop_reason",
                "raw_tracepoint",
                "kprobe",
                "fentry",
            ]),
            all_caps(),
        );
        assert!(report.follow_works);
        assert_eq!(report.attach_mode, Some(AttachMode::Netlink));
        let attaches: Vec<_> = report.hooks.iter().map(|h| (h.program, h.attach)).collect();
        assert_eq!(
            attaches,
            [
                ("tc_ingress", "netlink"),
                ("tc_egress", "netlink"),
                ("kfree_skb", "tp_btf")
            ]
        );
        let visibility = |kind: &str| {
            report
                .hops
                .iter()
                .find(|h| h.kind == kind)
                .map(|h| h.visibility)
        };
        assert_eq!(visibility("veth_crossing"), Some(Visibility::Observed));
        assert_eq!(visibility("service_dnat"), Some(Visibility::Inferred));
        assert_eq!(visibility("drop"), Some(Visibility::Observed));
        assert!(
            report
                .follow_misses
                .iter()
                .any(|l| l.contains("the NAT hook did not attach")),
            "kprobes here without the NAT hook, and doctor says so: {:?}",
            report.follow_misses
        );
        let text = render_text(&report);
        assert!(text.contains("follow attaches here: netlink"), "{text}");
        assert!(text.contains("SIGKILL"), "{text}");
    }

    #[test]
    fn where_the_nat_hook_attaches_nat_hops_are_planned_as_observed() {
        let report = summarise(
            "6.1".into(),
            checks(&[
                "btf",
                "tc_netlink",
                "ring_buffer",
                "tp_btf",
                "drop_reason",
                "route_hook",
                "nat_hook",
                "kprobe",
            ]),
            all_caps(),
        );
        let nat: Vec<_> = report
            .hooks
            .iter()
            .filter(|h| h.program.starts_with("nat_"))
            .map(|h| (h.program, h.attach))
            .collect();
        assert_eq!(nat, [("nat_kprobe", "kprobe")]);
        for kind in ["service_dnat", "reply_undnat", "snat", "reply_unsnat"] {
            let hop = report.hops.iter().find(|h| h.kind == kind).unwrap();
            assert_eq!(hop.visibility, Visibility::Observed, "{kind}");
            assert!(hop.how.contains("kprobe nf_nat_manip_pkt"), "{}", hop.how);
        }
        assert!(
            report
                .follow_sees
                .iter()
                .any(|l| l.contains("NAT rewrites as netfilter made them")),
            "{:?}",
            report.follow_sees
        );
    }

    #[test]
    fn a_kernel_whose_drop_tracepoint_has_no_reason_plans_the_reasonless_hook() {
        let report = summarise(
            "5.15".into(),
            checks(&["btf", "tc_netlink", "ring_buffer", "tp_btf", "kprobe"]),
            all_caps(),
        );
        assert!(report.follow_works);
        let drops: Vec<_> = report
            .hooks
            .iter()
            .filter(|h| h.attach == "tp_btf")
            .map(|h| h.program)
            .collect();
        assert_eq!(drops, ["kfree_skb_no_reason"]);
        let drop = report.hops.iter().find(|h| h.kind == "drop").unwrap();
        assert_eq!(drop.visibility, Visibility::Observed);
        assert!(drop.how.contains("reason unknown"), "{}", drop.how);
        assert!(
            report
                .follow_misses
                .iter()
                .any(|l| l.contains("reason unknown on this kernel")),
            "{:?}",
            report.follow_misses
        );
    }

    #[test]
    fn no_tc_or_missing_capability_means_follow_cannot_work() {
        let report = summarise(
            "6.18".into(),
            checks(&["btf", "ring_buffer", "tp_btf"]),
            all_caps(),
        );
        assert!(!report.follow_works);
        assert_eq!(report.attach_mode, None);
        assert!(
            report
                .hops
                .iter()
                .filter(|h| h.kind != "drop")
                .all(|h| h.visibility == Visibility::Missing)
        );
        let mut caps = all_caps();
        caps[0].present = false;
        let report = summarise(
            "6.18".into(),
            checks(&["btf", "tc_tcx", "ring_buffer"]),
            caps,
        );
        assert!(!report.follow_works);
        assert!(report.follow_misses.iter().any(|l| l.contains("CAP_BPF")));
        assert!(render_text(&report).contains("cannot work"));
    }
}
