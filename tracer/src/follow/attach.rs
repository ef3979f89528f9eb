//! The one attach path of `follow`: which way the TC classifiers are attached on this
//! kernel, and the hooks a run holds, from start-up and from re-discovery alike.
//!
//! **Choosing by feature.** [`probe_tcx`] attaches the run's own `tc_egress` as a TCX link
//! to `lo` of a throwaway namespace. If the kernel takes it (6.6+, or a backport), every
//! interface is hooked with TCX links; if not, with netlink filters under clsact qdiscs
//! (see [`tc`]). `--attach tcx|netlink` forces one; `doctor` runs the same probe, so what
//! it reports is what `follow` does.
//!
//! **Owning the hooks.** Each hook's link is taken out of aya's program ([`tc::attach_owned`])
//! and kept in a [`Hook`], keyed by interface here. A netlink filter belongs to a
//! namespace and aya would detach it in whichever namespace the link happens to be dropped;
//! a [`Hook`] is always detached from a thread inside its own namespace. In netlink mode a
//! run also keeps a [`RunRecord`] (see [`super::runs`]) so that the filters of a run killed
//! with SIGKILL are found and removed by the next run or by `tracer cleanup`, and the
//! filters of a live run never are. Before hooking anything, a netlink run cleans up after
//! dead runs ([`super::cleanup::after_dead_runs`]).
//!
//! When the run ends (or an interface goes), its filters are removed, and a clsact qdisc
//! it created is removed once nothing is attached to it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aya::{Ebpf, programs::tc::SchedClassifierLink};

use super::{
    Attachment, cleanup,
    runs::{self, NetnsRef, Place, RunRecord},
};
use crate::{
    ebpf::LoadError,
    netns,
    probes::tc::{self, AttachMode, Direction},
};

/// What the user asked for with `--attach`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AttachChoice {
    /// TCX where the kernel has it, netlink filters otherwise.
    #[default]
    Auto,
    /// TCX links only (kernel 6.6+).
    Tcx,
    /// clsact qdiscs and netlink filters, even where TCX exists.
    Netlink,
}

/// The way this run attaches, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mode: AttachMode,
    pub why: String,
}

/// Attaches `tc_egress` as a TCX link to `lo` in a throwaway namespace (gone with the
/// probing thread, link and all). `Err` carries the kernel's refusal.
pub fn probe_tcx(ebpf: &mut Ebpf) -> Result<(), String> {
    netns::run_in_fresh_scoped(|| {
        tc::attach_owned(ebpf, "lo", Direction::Egress, AttachMode::Tcx)
            .map(drop)
            .map_err(|e| crate::doctor::explain(&e))
    })
    .map_err(|e| format!("could not create a throwaway network namespace: {e}"))?
}

/// Decides how to attach, probing the kernel when the choice is `auto`.
pub fn decide(choice: AttachChoice, ebpf: &mut Ebpf) -> Decision {
    match choice {
        AttachChoice::Tcx => Decision {
            mode: AttachMode::Tcx,
            why: "--attach tcx".to_owned(),
        },
        AttachChoice::Netlink => Decision {
            mode: AttachMode::Netlink,
            why: "--attach netlink".to_owned(),
        },
        AttachChoice::Auto => match probe_tcx(ebpf) {
            Ok(()) => Decision {
                mode: AttachMode::Tcx,
                why: "this kernel has TCX".to_owned(),
            },
            Err(e) => Decision {
                mode: AttachMode::Netlink,
                why: format!("no TCX on this kernel ({e})"),
            },
        },
    }
}

/// One classifier on one side of one interface. Dropping it detaches it from inside its
/// namespace (a TCX link just closes).
pub struct Hook {
    netns_path: PathBuf,
    mode: AttachMode,
    link: Option<SchedClassifierLink>,
}

impl Drop for Hook {
    fn drop(&mut self) {
        let Some(link) = self.link.take() else { return };
        match self.mode {
            AttachMode::Tcx => drop(link),
            AttachMode::Netlink => {
                // The interface or namespace may be gone, and the filter with it: nothing
                // else to do then. Never detach from another namespace.
                if netns::run_in_scoped(&self.netns_path, move || tc::detach_owned(link)).is_err() {
                    // Could not enter: leave the filter for `tracer cleanup`.
                }
            }
        }
    }
}

/// Both classifiers on one interface, and whether this run created its clsact qdisc.
struct Hooked {
    hooks: Vec<Hook>,
    created_qdisc: Option<Place>,
}

/// Every hook of a run, keyed by interface; see the module doc.
pub struct Hooks {
    mode: AttachMode,
    hooked: BTreeMap<(String, String), Hooked>,
    /// Netlink mode only. Dropped last: the record must outlive the filters it protects.
    record: Option<RunRecord>,
}

impl Hooks {
    /// Starts a run's hooks. In netlink mode: cleans up after dead runs, then records this
    /// run's programs as live. Returns what the clean-up removed, for the user.
    pub fn start(ebpf: &mut Ebpf, mode: AttachMode) -> Result<(Self, cleanup::Swept), LoadError> {
        let mut swept = cleanup::Swept::default();
        let record = match mode {
            AttachMode::Tcx => None,
            AttachMode::Netlink => {
                let dir = Path::new(runs::RUN_DIR);
                match cleanup::after_dead_runs(dir) {
                    Ok(s) => swept = s,
                    Err(e) => swept
                        .problems
                        .push(format!("reading {}: {e}", dir.display())),
                }
                let programs = [
                    tc::program_id(ebpf, Direction::Ingress)?,
                    tc::program_id(ebpf, Direction::Egress)?,
                ];
                Some(
                    RunRecord::create(dir, &programs).map_err(|e| LoadError::RunRecord {
                        dir: dir.display().to_string(),
                        source: e,
                    })?,
                )
            }
        };
        Ok((
            Self {
                mode,
                hooked: BTreeMap::new(),
                record,
            },
            swept,
        ))
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Hooks both sides of `attachment`'s interface; on failure nothing of it stays.
    pub fn attach(&mut self, ebpf: &mut Ebpf, attachment: &Attachment) -> Result<(), String> {
        let key = (attachment.netns_path.clone(), attachment.interface.clone());
        if self.hooked.contains_key(&key) {
            return Ok(());
        }
        let netns_path = PathBuf::from(&attachment.netns_path);
        let place = match self.mode {
            AttachMode::Tcx => None,
            AttachMode::Netlink => Some(Place {
                netns: NetnsRef::of(&attachment.netns_path)
                    .map_err(|e| format!("{}: {e}", attachment.netns_path))?,
                interface: attachment.interface.clone(),
            }),
        };
        if let (Some(record), Some(place)) = (self.record.as_mut(), &place) {
            record
                .note_hook(place)
                .map_err(|e| format!("recording the hook in {}: {e}", runs::RUN_DIR))?;
        }
        let mode = self.mode;
        let interface = attachment.interface.as_str();
        let (links, created_qdisc) = netns::run_in_scoped(&netns_path, move || {
            let created = mode == AttachMode::Netlink && tc::ensure_clsact(interface)?;
            let mut links = Vec::new();
            for direction in Direction::BOTH {
                match tc::attach_owned(ebpf, interface, direction, mode) {
                    Ok(link) => links.push(link),
                    Err(e) => {
                        for link in links {
                            let _ = tc::detach_owned(link);
                        }
                        if created {
                            let _ = tc::remove_clsact_if_empty(interface);
                        }
                        return Err(e);
                    }
                }
            }
            Ok((links, created))
        })
        .map_err(|e| format!("enter {}: {e}", attachment.netns_path))?
        .map_err(|e| crate::doctor::explain(&e))?;
        let created_qdisc = place.filter(|_| created_qdisc);
        if let (Some(record), Some(place)) = (self.record.as_mut(), &created_qdisc) {
            // The filters are in place already; failing to note the qdisc only risks an
            // empty clsact qdisc after a SIGKILL.
            let _ = record.note_qdisc(place);
        }
        let hooks = links
            .into_iter()
            .map(|link| Hook {
                netns_path: netns_path.clone(),
                mode,
                link: Some(link),
            })
            .collect();
        self.hooked.insert(
            key,
            Hooked {
                hooks,
                created_qdisc,
            },
        );
        Ok(())
    }

    /// Unhooks `attachment`'s interface (gone, or no longer wanted).
    pub fn detach(&mut self, attachment: &Attachment) {
        let key = (attachment.netns_path.clone(), attachment.interface.clone());
        if let Some(hooked) = self.hooked.remove(&key) {
            release(hooked);
        }
    }
}

/// Detaches both hooks, then removes the qdisc if this run created it and it is empty.
fn release(hooked: Hooked) {
    let Hooked {
        hooks,
        created_qdisc,
    } = hooked;
    drop(hooks);
    if let Some(place) = created_qdisc
        && place.netns.still_at_path()
    {
        let interface = place.interface;
        let _ = netns::run_in(Path::new(&place.netns.path), move || {
            tc::remove_clsact_if_empty(&interface)
        });
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        for (_, hooked) in std::mem::take(&mut self.hooked) {
            release(hooked);
        }
        // `record` goes after this, with every filter it protected already removed.
    }
}
