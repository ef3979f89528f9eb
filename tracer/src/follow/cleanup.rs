//! Removing the netlink filters (and clsact qdiscs) that dead `follow` runs left behind,
//! and nothing else.
//!
//! A filter is removed only when all of these hold:
//! - it carries tracer's mark ([`tc::TRACER_HANDLE`] and a tracer program name);
//! - the program it runs is not one a live run recorded (see [`super::runs`]): a run that
//!   is still going keeps its filters, whoever cleans up.
//!
//! A clsact qdisc is removed only when a dead run's record says that run created it and no
//! filter of anyone is left on it. Foreign qdiscs and filters are never touched.
//!
//! Two sweeps: [`after_dead_runs`] visits only the interfaces dead runs recorded (cheap:
//! every `follow` does it before attaching), [`everywhere`] visits every interface of
//! every namespace (`tracer cleanup`; it also finds filters whose record is gone).

use std::{collections::BTreeSet, path::Path, process::Command};

use serde_json::Value;

use super::runs::{self, NetnsRef, Place};
use crate::{
    netns,
    probes::tc,
    topology::{NamespaceScope, discover},
};

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// `netns path: interface side priority` of each filter removed.
    pub filters: Vec<String>,
    /// `netns path: interface` of each qdisc removed.
    pub qdiscs: Vec<String>,
    /// Tracer filters left because a live run owns them.
    pub live: usize,
    /// Dead runs whose records were cleared.
    pub dead_runs: usize,
    /// What could not be done (a namespace that cannot be entered, a filter that would not go).
    pub problems: Vec<String>,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.qdiscs.is_empty()
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "removed {} filter(s) and {} clsact qdisc(s) left by {} dead run(s); {} tracer filter(s) of live runs kept",
            self.filters.len(),
            self.qdiscs.len(),
            self.dead_runs,
            self.live
        )
    }
}

/// Cleans up after the dead runs recorded in `dir`, visiting only what they hooked.
pub fn after_dead_runs(dir: &Path) -> std::io::Result<Swept> {
    let survey = runs::survey(dir)?;
    let mut swept = Swept::default();
    let mut places: BTreeSet<Place> = BTreeSet::new();
    let mut qdiscs: BTreeSet<Place> = BTreeSet::new();
    for dead in &survey.dead {
        places.extend(dead.contents.hooked.iter().cloned());
        qdiscs.extend(dead.contents.qdiscs.iter().cloned());
    }
    let mut by_netns: Vec<(NetnsRef, Vec<String>)> = Vec::new();
    for place in places {
        match by_netns.last_mut() {
            Some((netns, interfaces)) if *netns == place.netns => {
                interfaces.push(place.interface);
            }
            _ => by_netns.push((place.netns, vec![place.interface])),
        }
    }
    for (netns, interfaces) in by_netns {
        // A namespace gone took its filters with it.
        if netns.still_at_path() {
            sweep_namespace(&netns, Some(&interfaces), &survey.live_programs, &mut swept);
        }
    }
    remove_empty_qdiscs(&qdiscs, &mut swept);
    finish(survey, swept)
}

/// Cleans up every namespace in `scope` (`tracer cleanup`), then the dead runs' records.
pub fn everywhere(dir: &Path, scope: &NamespaceScope) -> std::io::Result<Swept> {
    let survey = runs::survey(dir)?;
    let mut swept = Swept::default();
    for path in discover::namespace_paths(scope) {
        let Some(path) = path.to_str() else { continue };
        match NetnsRef::of(path) {
            Ok(netns) => sweep_namespace(&netns, None, &survey.live_programs, &mut swept),
            // A process that exited since the list was made.
            Err(_) => continue,
        }
    }
    let qdiscs: BTreeSet<Place> = survey
        .dead
        .iter()
        .flat_map(|d| d.contents.qdiscs.iter().cloned())
        .collect();
    remove_empty_qdiscs(&qdiscs, &mut swept);
    finish(survey, swept)
}

fn finish(survey: runs::Survey, mut swept: Swept) -> std::io::Result<Swept> {
    swept.dead_runs = survey.dead.len();
    for dead in survey.dead {
        dead.forget()?;
    }
    Ok(swept)
}

/// Removes dead tracer filters on `interfaces` (all of them when `None`) of one namespace.
fn sweep_namespace(
    netns: &NetnsRef,
    interfaces: Option<&[String]>,
    live_programs: &BTreeSet<u32>,
    swept: &mut Swept,
) {
    let wanted = interfaces.map(<[String]>::to_vec);
    let live = live_programs.clone();
    let result = netns::run_in(Path::new(&netns.path), move || {
        let names = wanted.unwrap_or_else(interface_names);
        let mut removed = Vec::new();
        let mut kept = 0;
        let mut problems = Vec::new();
        for name in names {
            let filters = match tc::list_filters(&name) {
                Ok(filters) => filters,
                Err(e) => {
                    problems.push(format!("{name}: cannot list filters: {e}"));
                    continue;
                }
            };
            for filter in filters.iter().filter(|f| f.is_tracer_filter()) {
                // Without a program id (an iproute2 that does not show it) the owner is
                // unknown: kept while any run is live.
                let live_owner = filter
                    .program_id
                    .map_or(!live.is_empty(), |id| live.contains(&id));
                if live_owner {
                    kept += 1;
                    continue;
                }
                let what = format!(
                    "{name} {} priority {}",
                    filter.direction.tc_word(),
                    filter.priority
                );
                match tc::remove_filter(&name, filter) {
                    Ok(()) => removed.push(what),
                    Err(e) => problems.push(format!("{what}: {e}")),
                }
            }
        }
        (removed, kept, problems)
    });
    match result {
        Ok((removed, kept, problems)) => {
            let at = |s: String| format!("{}: {s}", netns.path);
            swept.filters.extend(removed.into_iter().map(at));
            swept.problems.extend(problems.into_iter().map(at));
            swept.live += kept;
        }
        Err(e) => swept
            .problems
            .push(format!("cannot enter {}: {e}", netns.path)),
    }
}

/// Removes the clsact qdiscs dead runs created, where nothing is attached to them any more.
fn remove_empty_qdiscs(qdiscs: &BTreeSet<Place>, swept: &mut Swept) {
    for place in qdiscs {
        if !place.netns.still_at_path() {
            continue;
        }
        let interface = place.interface.clone();
        match netns::run_in(Path::new(&place.netns.path), move || {
            tc::remove_clsact_if_empty(&interface)
        }) {
            Ok(Ok(true)) => swept
                .qdiscs
                .push(format!("{}: {}", place.netns.path, place.interface)),
            Ok(Ok(false)) => {}
            Ok(Err(e)) | Err(e) => swept.problems.push(format!(
                "{}: {}: clsact qdisc: {e}",
                place.netns.path, place.interface
            )),
        }
    }
}

/// Interface names in the calling thread's namespace.
fn interface_names() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["-j", "link", "show"]).output() else {
        return Vec::new();
    };
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    json.as_array()
        .map(|links| {
            links
                .iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
