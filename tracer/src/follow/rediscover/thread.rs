//! The rediscovery thread: discovers on request — when forced (the cluster changed) or
//! when the set of network namespaces changed — off the event loop, which keeps draining
//! the ring buffer meanwhile.

use std::{collections::BTreeSet, os::unix::fs::MetadataExt as _, sync::mpsc};

use super::{Found, Request};
use crate::topology::{NamespaceScope, discover};

/// Discovers on request, when forced or when the namespaces changed; ends when the run
/// drops its [`super::Rediscover`].
pub(super) fn discover_on_request(
    requests: &mpsc::Receiver<Request>,
    found: &mpsc::Sender<Found>,
    scope: &NamespaceScope,
    node: Option<&str>,
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
        let topology = crate::follow::discover_topology(&request.model, scope, node);
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
pub(super) fn fingerprint(scope: &NamespaceScope) -> BTreeSet<(u64, u64)> {
    discover::namespace_paths(scope)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}
