//! Attaching the TC classifiers (`tc_ingress`, `tc_egress`) to an interface, in one of two
//! ways, and finding tracer's netlink filters again.
//!
//! - **TCX links** (kernel 6.6+): no clsact qdisc, and the kernel removes the link when its
//!   last file descriptor closes, so a tracer killed with SIGKILL leaves nothing attached.
//! - **Netlink filters** under a clsact qdisc (every kernel tracer targets): the qdisc is
//!   created only where none exists, never replaced. Each filter is added with
//!   `NLM_F_EXCL` and tracer's reserved handle [`TRACER_HANDLE`], at a priority of its own:
//!   one before the first existing filter on that side, so tracer sees the packet before
//!   anyone else may redirect it ([`tracer_priority`]); where that is impossible (a filter
//!   at priority 1) or there is none, the kernel picks a free one. The programs return
//!   `TC_ACT_UNSPEC`, so the next filter still runs: a packet's fate is unchanged. Such
//!   filters outlive the process; [`TRACER_HANDLE`] plus the program name is how tracer
//!   recognises its own among foreign ones ([`list_filters`]).
//!
//! Everything here acts in the calling thread's network namespace (see [`crate::netns`]).

use std::process::Command;

use aya::{
    Ebpf,
    programs::{
        Link as _, LinkOrder, SchedClassifier, TcAttachType, tc,
        tc::{SchedClassifierLink, SchedClassifierLinkId, TcHandle},
    },
};
use serde_json::Value;
use tracer_common::programs;

use crate::ebpf::LoadError;

/// The handle of every netlink filter tracer adds: ASCII "trac". Filter handles are the
/// adder's choice within a priority, so this marks a filter as tracer's (together with the
/// program name, see [`is_tracer_filter`]); it never collides with a filter of someone else
/// because tracer's filters get a priority of their own.
pub const TRACER_HANDLE: u32 = 0x7472_6163;

/// Which side of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const BOTH: [Self; 2] = [Self::Ingress, Self::Egress];

    fn program(self) -> &'static str {
        match self {
            Self::Ingress => programs::TC_INGRESS,
            Self::Egress => programs::TC_EGRESS,
        }
    }

    fn attach_type(self) -> TcAttachType {
        match self {
            Self::Ingress => TcAttachType::Ingress,
            Self::Egress => TcAttachType::Egress,
        }
    }

    /// The word `tc filter show` takes for this side of a clsact qdisc.
    pub fn tc_word(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// How a classifier is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// A TCX link: nothing outlives the process.
    Tcx,
    /// A netlink filter under a clsact qdisc.
    Netlink,
}

impl AttachMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Netlink => "netlink",
        }
    }
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, LoadError> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or(LoadError::NoProgram(name))?
        .try_into()
        .map_err(LoadError::program(name))?;
    if program.fd().is_err() {
        program.load().map_err(LoadError::program(name))?;
    }
    Ok(program)
}

/// The kernel's id of a loaded classifier (what a netlink filter names in `prog id`).
pub fn program_id(ebpf: &mut Ebpf, direction: Direction) -> Result<u32, LoadError> {
    let name = direction.program();
    let info = classifier(ebpf, name)?
        .info()
        .map_err(LoadError::program(name))?;
    Ok(info.id())
}

/// Adds a clsact qdisc to `interface` unless one is there; true if this call created it.
pub fn ensure_clsact(interface: &str) -> Result<bool, LoadError> {
    match tc::qdisc_add_clsact(interface) {
        Ok(()) => Ok(true),
        // Already there (ours or someone else's): use it, never replace it.
        Err(tc::TcError::AlreadyAttached) => Ok(false),
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(err) => Err(LoadError::program("clsact qdisc")(err.into())),
    }
}

/// Attaches the classifier for `direction` to `interface` for as long as the interface's
/// namespace lives: for throwaway namespaces only (doctor's probes, tests). A TCX link stays
/// with the program and closes with `ebpf`; a netlink filter is left to go with the
/// namespace (aya would otherwise detach it from whichever namespace drops `ebpf`, where the
/// same index, priority and handle may name another filter). Returns whether a clsact qdisc
/// had to be created (netlink mode only).
pub fn attach(
    ebpf: &mut Ebpf,
    interface: &str,
    direction: Direction,
    mode: AttachMode,
) -> Result<bool, LoadError> {
    let created_qdisc = mode == AttachMode::Netlink && ensure_clsact(interface)?;
    match mode {
        AttachMode::Tcx => {
            attach_link(ebpf, interface, direction, mode)?;
        }
        AttachMode::Netlink => {
            let link = attach_owned(ebpf, interface, direction, mode)?;
            // No file descriptor behind it: forgetting it only leaves the filter in place.
            std::mem::forget(link);
        }
    }
    Ok(created_qdisc)
}

/// Attaches the classifier for `direction` to `interface` (no qdisc is created here: see
/// [`ensure_clsact`]) and returns the link's id within the program.
pub fn attach_link(
    ebpf: &mut Ebpf,
    interface: &str,
    direction: Direction,
    mode: AttachMode,
) -> Result<SchedClassifierLinkId, LoadError> {
    let name = direction.program();
    let options = match mode {
        AttachMode::Tcx => tc::TcAttachOptions::TcxOrder(LinkOrder::default()),
        AttachMode::Netlink => tc::TcAttachOptions::Netlink(tc::NlOptions {
            priority: tracer_priority(&priorities(interface, direction).unwrap_or_default()),
            handle: TcHandle::from(TRACER_HANDLE),
            classid: None,
        }),
    };
    classifier(ebpf, name)?
        .attach_with_options(interface, direction.attach_type(), options)
        .map_err(LoadError::program(name))
}

/// Attaches like [`attach_link`] and takes the link out of the program, so the caller
/// decides where and when it is detached. aya keys a program's netlink links by
/// (ifindex, side, priority, handle) without the namespace, so leaving them in the program
/// would refuse a second interface with the same index in another namespace ("already
/// attached") and would detach them from whatever namespace drops the program.
pub fn attach_owned(
    ebpf: &mut Ebpf,
    interface: &str,
    direction: Direction,
    mode: AttachMode,
) -> Result<SchedClassifierLink, LoadError> {
    let name = direction.program();
    let id = attach_link(ebpf, interface, direction, mode)?;
    classifier(ebpf, name)?
        .take_link(id)
        .map_err(LoadError::program(name))
}

/// Detaches a link taken by [`attach_owned`], in the calling thread's namespace: for a
/// netlink filter that must be the namespace it was added in.
pub fn detach_owned(link: SchedClassifierLink) -> Result<(), aya::programs::ProgramError> {
    link.detach()
}

/// The priority for tracer's filter given the priorities already in use on that side: one
/// before the first, so tracer runs first; 0 (the kernel picks a free one) when there is
/// none or the first is at 1.
pub fn tracer_priority(in_use: &[u16]) -> u16 {
    match in_use.iter().min() {
        Some(&first) if first > 1 => first - 1,
        _ => 0,
    }
}

/// The priorities of every filter (any kind) on one side of `interface`'s clsact qdisc.
pub fn priorities(interface: &str, direction: Direction) -> std::io::Result<Vec<u16>> {
    let Some(out) = show_filters(interface, direction)? else {
        return Ok(Vec::new());
    };
    let json: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
    Ok(json
        .as_array()
        .map(|filters| {
            filters
                .iter()
                .filter_map(|f| u16::try_from(f.get("pref")?.as_u64()?).ok())
                .collect()
        })
        .unwrap_or_default())
}

/// One BPF filter on a clsact qdisc, as `tc -j filter show` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfFilter {
    pub direction: Direction,
    pub priority: u16,
    pub handle: u32,
    /// The name given when the filter was added (tracer: its program's name).
    pub name: String,
    /// The program the filter runs.
    pub program_id: Option<u32>,
}

impl BpfFilter {
    /// Whether tracer added this filter: its reserved handle and one of its programs.
    pub fn is_tracer_filter(&self) -> bool {
        is_tracer_filter(self.handle, &self.name)
    }
}

/// tracer's mark on a filter: [`TRACER_HANDLE`] and the name of one of its classifiers.
pub fn is_tracer_filter(handle: u32, name: &str) -> bool {
    // `tc` shows the name as given, and older versions append `:[id]`.
    let name = name.split(':').next().unwrap_or_default();
    handle == TRACER_HANDLE
        && Direction::BOTH
            .iter()
            .any(|d| name == d.program() || name.starts_with(&format!("{}.", d.program())))
}

/// The BPF filters on both sides of `interface`'s clsact qdisc, in the calling thread's
/// namespace (`tc` runs as a child and inherits it). An interface without a clsact qdisc
/// has none.
pub fn list_filters(interface: &str) -> std::io::Result<Vec<BpfFilter>> {
    let mut filters = Vec::new();
    for direction in Direction::BOTH {
        // None: no clsact qdisc (or the interface went away): nothing of ours there.
        let Some(out) = show_filters(interface, direction)? else {
            continue;
        };
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() {
            continue;
        }
        let json: Value = serde_json::from_str(&text).map_err(std::io::Error::other)?;
        filters.extend(parse_filters(&json, direction));
    }
    Ok(filters)
}

/// `tc -j filter show dev INTERFACE DIRECTION`'s output, or `None` when `tc` fails (no
/// clsact qdisc, no such interface).
fn show_filters(interface: &str, direction: Direction) -> std::io::Result<Option<Vec<u8>>> {
    let out = Command::new("tc")
        .args([
            "-j",
            "filter",
            "show",
            "dev",
            interface,
            direction.tc_word(),
        ])
        .output()?;
    Ok(out.status.success().then_some(out.stdout))
}

/// Whether `interface` has a clsact qdisc, in the calling thread's namespace.
pub fn has_clsact(interface: &str) -> std::io::Result<bool> {
    let out = Command::new("tc")
        .args(["-j", "qdisc", "show", "dev", interface])
        .output()?;
    if !out.status.success() {
        return Ok(false);
    }
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    Ok(json
        .as_array()
        .is_some_and(|qs| qs.iter().any(|q| q["kind"] == "clsact")))
}

/// Removes `interface`'s clsact qdisc if it carries no filter at all (anyone's); true if
/// removed. Used only on a qdisc tracer itself created.
pub fn remove_clsact_if_empty(interface: &str) -> std::io::Result<bool> {
    if !has_clsact(interface)? || !list_all_filters_empty(interface)? {
        return Ok(false);
    }
    let status = Command::new("tc")
        .args(["qdisc", "del", "dev", interface, "clsact"])
        .output()?
        .status;
    Ok(status.success())
}

/// True when neither side of the clsact qdisc has any filter, of any kind.
fn list_all_filters_empty(interface: &str) -> std::io::Result<bool> {
    for direction in Direction::BOTH {
        let Some(out) = show_filters(interface, direction)? else {
            return Ok(false);
        };
        let json: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        if json.as_array().is_some_and(|a| !a.is_empty()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes one filter by priority and handle, in the calling thread's namespace.
pub fn remove_filter(interface: &str, filter: &BpfFilter) -> Result<(), LoadError> {
    let link = SchedClassifierLink::attached(
        interface,
        filter.direction.attach_type(),
        filter.priority,
        TcHandle::from(filter.handle),
        None,
    )
    .map_err(|e| LoadError::program(filter.direction.program())(tc::TcError::IoError(e).into()))?;
    link.detach()
        .map_err(LoadError::program(filter.direction.program()))
}

fn parse_handle(text: &str) -> Option<u32> {
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The BPF filters in `tc -j filter show` output. Each filter appears once with its
/// options (handle, name, program); entries without options are the priority's header.
pub fn parse_filters(json: &Value, direction: Direction) -> Vec<BpfFilter> {
    let Some(items) = json.as_array() else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|f| f["kind"] == "bpf")
        .filter_map(|f| {
            let options = f.get("options")?;
            let handle = parse_handle(options.get("handle")?.as_str()?)?;
            let priority = u16::try_from(f.get("pref")?.as_u64()?).ok()?;
            let name = options
                .get("bpf_name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let program_id = options
                .get("prog")
                .and_then(|p| p.get("id"))
                .and_then(Value::as_u64)
                .and_then(|id| u32::try_from(id).ok());
            Some(BpfFilter {
                direction,
                priority,
                handle,
                name,
                program_id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracer_filters_are_known_by_handle_and_program_name() {
        assert!(is_tracer_filter(TRACER_HANDLE, "tc_ingress"));
        assert!(is_tracer_filter(TRACER_HANDLE, "tc_egress:[42]"));
        // Someone else's program under our handle, or ours under another handle.
        assert!(!is_tracer_filter(TRACER_HANDLE, "cil_from_container"));
        assert!(!is_tracer_filter(1, "tc_ingress"));
        assert!(!is_tracer_filter(TRACER_HANDLE, "tc_ingress_other"));
    }

    #[test]
    fn tc_json_is_read_into_filters() {
        // `tc -j filter show dev enp2s0 ingress` (iproute2 6.1) in a lab node: a foreign
        // classic-BPF filter at priority 21 and tracer's at 20.
        let json: Value = serde_json::from_str(
            r#"[{"protocol":"all","pref":20,"kind":"bpf","chain":0},{"protocol":"all","pref":20,"kind":"bpf","chain":0,"options":{"handle":"0x74726163","bpf_name":"tc_ingress","direct-action":true,"not_in_hw":true,"prog":{"id":42,"name":"tc_ingress","tag":"5c598618b2cd123b","jited":1}}},{"protocol":"all","pref":21,"kind":"bpf","chain":0},{"protocol":"all","pref":21,"kind":"bpf","chain":0,"options":{"handle":"0x5","not_in_hw":true,"bytecode":{"length":1,"insns":[{"code":6,"jt":0,"jf":0,"k":0}]}}}]"#,
        )
        .unwrap();
        let filters = parse_filters(&json, Direction::Ingress);
        assert_eq!(filters.len(), 2, "{filters:?}");
        assert_eq!(
            filters[0],
            BpfFilter {
                direction: Direction::Ingress,
                priority: 20,
                handle: TRACER_HANDLE,
                name: "tc_ingress".into(),
                program_id: Some(42),
            }
        );
        assert!(filters[0].is_tracer_filter());
        assert_eq!((filters[1].priority, filters[1].handle), (21, 5));
        assert!(!filters[1].is_tracer_filter());
    }

    #[test]
    fn tracer_goes_first_where_it_can_and_never_on_a_taken_priority() {
        assert_eq!(tracer_priority(&[]), 0);
        assert_eq!(tracer_priority(&[21, 21, 40]), 20);
        // Priority 1 taken: nothing goes before it, the kernel picks a free one.
        assert_eq!(tracer_priority(&[1, 5]), 0);
        assert_eq!(tracer_priority(&[2]), 1);
    }
}
