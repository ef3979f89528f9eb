//! The versioned object store behind the API: current objects plus a bounded history of
//! change events, as etcd and the API server's watch cache keep them.
//!
//! One counter versions everything, as etcd's revision does: each change takes the next
//! number, which becomes the object's `metadata.resourceVersion` and the event's version;
//! a list reports the counter as the list's `resourceVersion`. A watch that starts at
//! version *n* replays the retained events after *n* and then waits on the condition
//! variable for more. Events older than the retained window are gone ("compacted"), and a
//! watch asking for them gets `410 Expired`, which makes clients relist, as they do
//! against a real cluster.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use super::{objects::Object, resources::Kind};

/// How many change events are kept for watches that resume from a resourceVersion.
const HISTORY: usize = 4096;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change. `object` is the new state (for `Deleted`, the last state, stamped with the
/// deletion's version); `previous` is the state before, so a filtered watch can tell an
/// object that moved into or out of its selector.
#[derive(Debug, Clone)]
pub struct Event {
    pub version: u64,
    pub kind: EventType,
    pub object: Arc<Object>,
    pub previous: Option<Arc<Object>>,
}

/// `(kind, namespace, name)`; namespace is "" for cluster-scoped objects.
type Key = (Kind, String, String);

fn key(object: &Object) -> Key {
    (
        object.kind(),
        object.namespace().to_owned(),
        object.name().to_owned(),
    )
}

#[derive(Debug, Default)]
struct State {
    version: u64,
    objects: BTreeMap<Key, Arc<Object>>,
    history: VecDeque<Event>,
    /// Versions up to this one are no longer in `history`.
    compacted: u64,
}

/// The watch asked for versions that are no longer retained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct Expired {
    pub requested: u64,
    pub oldest: u64,
}

#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    changed: Condvar,
    /// How many events `history` keeps.
    retained: usize,
}

impl Store {
    pub fn new(objects: Vec<Object>) -> Self {
        Self::with_history(objects, HISTORY)
    }

    /// A store that keeps only the last `retained` events.
    pub fn with_history(objects: Vec<Object>, retained: usize) -> Self {
        let store = Self {
            state: Mutex::default(),
            changed: Condvar::new(),
            retained,
        };
        store.replace(objects);
        store
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `objects` the served set, recording an event for each object added, changed
    /// or removed. Returns how many events that made.
    pub fn replace(&self, objects: Vec<Object>) -> usize {
        let mut state = self.lock();
        let mut next: BTreeMap<Key, Object> = objects.into_iter().map(|o| (key(&o), o)).collect();
        let mut changes = Vec::new();
        for (k, old) in &state.objects {
            match next.remove(k) {
                None => changes.push((EventType::Deleted, (**old).clone(), Some(old.clone()))),
                Some(mut new) => {
                    // Compare with the version the stored copy carries.
                    new.metadata_mut().resource_version = old.metadata().resource_version.clone();
                    if new != **old {
                        changes.push((EventType::Modified, new, Some(old.clone())));
                    }
                }
            }
        }
        changes.extend(next.into_values().map(|o| (EventType::Added, o, None)));
        // Events go out in kind order (Pods before the Endpoints derived from them).
        changes.sort_by_key(|(_, o, _)| key(o));
        let count = changes.len();
        for (kind, mut object, previous) in changes {
            state.version += 1;
            let version = state.version;
            object.metadata_mut().resource_version = Some(version.to_string());
            let object = Arc::new(object);
            let k = key(&object);
            match kind {
                EventType::Deleted => {
                    state.objects.remove(&k);
                }
                EventType::Added | EventType::Modified => {
                    state.objects.insert(k, object.clone());
                }
            }
            state.history.push_back(Event {
                version,
                kind,
                object,
                previous,
            });
            while state.history.len() > self.retained {
                if let Some(dropped) = state.history.pop_front() {
                    state.compacted = dropped.version;
                }
            }
        }
        drop(state);
        if count > 0 {
            self.changed.notify_all();
        }
        count
    }

    /// The current version and every object of `kind`, in key order.
    pub fn list(&self, kind: Kind) -> (u64, Vec<Arc<Object>>) {
        let state = self.lock();
        let objects = state
            .objects
            .iter()
            .filter(|((k, _, _), _)| *k == kind)
            .map(|(_, o)| o.clone())
            .collect();
        (state.version, objects)
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Object>> {
        self.lock()
            .objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The events of `kind` after version `after`, and the version they bring a watcher
    /// up to. Waits up to `wait` for one when there is none yet.
    pub fn events_after(
        &self,
        kind: Kind,
        after: u64,
        wait: Duration,
    ) -> Result<(u64, Vec<Event>), Expired> {
        let mut state = self.lock();
        if state.version <= after && !wait.is_zero() {
            state = self
                .changed
                .wait_timeout_while(state, wait, |s| s.version <= after)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
        if after < state.compacted {
            return Err(Expired {
                requested: after,
                oldest: state.compacted + 1,
            });
        }
        let events = state
            .history
            .iter()
            .filter(|e| e.version > after && e.object.kind() == kind)
            .cloned()
            .collect();
        Ok((state.version.max(after), events))
    }

    /// Wakes every waiting watcher (the server is stopping).
    pub fn wake_all(&self) {
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::objects::{self, Host},
        spec::{Cluster, Scenario},
    };

    fn host() -> Host {
        Host {
            created: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            kernel_version: "6.8.0".to_owned(),
            os_image: "Linux".to_owned(),
            architecture: "amd64",
        }
    }

    fn build(s: Scenario) -> Vec<Object> {
        objects::build(&Cluster::seed(s), &host())
    }

    #[test]
    fn a_scenario_switch_records_exactly_what_changed() {
        let store = Store::new(build(Scenario::Healthy));
        let start = store.version();
        assert_eq!(
            start,
            u64::try_from(build(Scenario::Healthy).len()).unwrap_or(0)
        );
        // The same objects again change nothing.
        assert_eq!(store.replace(build(Scenario::Healthy)), 0);

        assert_eq!(store.replace(build(Scenario::NoEndpoints)), 5);
        let (version, pods) = store
            .events_after(Kind::Pod, start, Duration::ZERO)
            .expect("retained");
        assert_eq!(version, start + 5);
        let names: Vec<_> = pods.iter().map(|e| e.object.name().to_owned()).collect();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|n| n.starts_with("nginx-test-")));
        assert!(pods.iter().all(|e| e.kind == EventType::Modified));
        let versions: Vec<_> = pods.iter().map(|e| e.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        let stamped = pods[0].object.metadata().resource_version.clone();
        assert_eq!(stamped, Some(pods[0].version.to_string()));
        let (_, slices) = store
            .events_after(Kind::EndpointSlice, start, Duration::ZERO)
            .expect("retained");
        assert_eq!(slices.len(), 1);
        let (_, endpoints) = store
            .events_after(Kind::Endpoints, start, Duration::ZERO)
            .expect("retained");
        assert_eq!(endpoints.len(), 1);
    }

    #[test]
    fn removed_objects_are_deleted_with_their_last_state() {
        let store = Store::new(build(Scenario::Healthy));
        let start = store.version();
        let mut fewer = build(Scenario::Healthy);
        fewer.retain(|o| o.name() != "nettest");
        assert_eq!(store.replace(fewer), 1);
        let (_, events) = store
            .events_after(Kind::Pod, start, Duration::ZERO)
            .expect("retained");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventType::Deleted);
        assert_eq!(events[0].object.name(), "nettest");
        assert!(store.get(Kind::Pod, "default", "nettest").is_none());
    }

    #[test]
    fn waiting_returns_when_something_changes_or_times_out() {
        let store = Arc::new(Store::new(build(Scenario::Healthy)));
        let start = store.version();
        let (v, events) = store
            .events_after(Kind::Pod, start, Duration::from_millis(20))
            .expect("retained");
        assert_eq!((v, events.len()), (start, 0));
        let writer = {
            let store = store.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                store.replace(build(Scenario::NoEndpoints));
            })
        };
        let (_, events) = store
            .events_after(Kind::Pod, start, Duration::from_secs(10))
            .expect("retained");
        assert_eq!(events.len(), 3);
        writer.join().expect("writer");
    }
    #[test]
    fn a_replaced_pod_is_deleted_and_its_successor_added_with_endpoints_modified() {
        let cluster = Cluster::seed(Scenario::Healthy);
        let rollout = cluster
            .rollout("nginx-test-7d9c4b6f5-abcde", true, "store", 0)
            .unwrap();
        let store = Store::new(objects::build(&cluster, &host()));
        let start = store.version();
        let after = cluster.with_changes(&rollout.changes);
        assert_eq!(store.replace(objects::build(&after, &host())), 4);
        let (_, pods) = store
            .events_after(Kind::Pod, start, Duration::ZERO)
            .expect("retained");
        let mut seen: Vec<_> = pods
            .iter()
            .map(|e| (e.kind, e.object.name().to_owned()))
            .collect();
        seen.sort_by_key(|(_, name)| name.clone());
        let mut expected = vec![
            (EventType::Deleted, rollout.old.name.clone()),
            (EventType::Added, rollout.new.name.clone()),
        ];
        expected.sort_by_key(|(_, name)| name.clone());
        assert_eq!(seen, expected);
        for kind in [Kind::Endpoints, Kind::EndpointSlice] {
            let (_, events) = store
                .events_after(kind, start, Duration::ZERO)
                .expect("retained");
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].kind, EventType::Modified);
        }
    }
}
