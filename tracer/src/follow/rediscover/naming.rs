//! The naming rules of a run whose cluster changes (the module doc of [`super`]): a
//! namespace keeps its identity; a Pod has one namespace; anything unknown stays unnamed.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Instant,
};

use super::RETAIN;
use crate::{
    k8s::model::ClusterModel,
    topology::{
        Topology,
        roles::{Host, HostRole},
    },
};

/// A Pod's UID in `model`, or `namespace/name` when the model does not have it.
pub(super) fn uid_of(model: &ClusterModel, namespace: &str, name: &str) -> String {
    model
        .pod(namespace, name)
        .map_or_else(|| format!("{namespace}/{name}"), |p| p.uid.clone())
}

/// Pod UID → namespace cookie, for the Pods of a topology.
pub(super) fn bindings(topology: &Topology, model: &ClusterModel) -> HashMap<String, u64> {
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

/// Applies the naming rules of the module doc to a fresh discovery `live`, against the
/// topology in use (`previous`); returns what the user should be told.
pub(super) fn reconcile(
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
pub(super) fn merge(
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
