//! Pods created through the API (`POST …/pods`), as `tracer follow --agents` creates its
//! agent Pods: each is run by a [`Runtime`] (the lab's runs tracer's agent as a process,
//! see [`crate::agent_runtime`]), its status follows the process (Pending, Running and
//! Ready once it serves its port, Succeeded or Failed when it ends), its
//! `activeDeadlineSeconds` ends it as the kubelet would, and `DELETE` stops it and
//! removes the object. The lab's own Pods stay read-only.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1 as core,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
};

use super::{
    objects::{self, Object},
    resources::Kind,
};

/// Runs the containers of created Pods.
pub trait Runtime: Send + Sync {
    /// Starts `pod`'s container; an error is the Pod's failure message.
    fn start(&self, pod: &core::Pod) -> Result<Box<dyn Container>, String>;
}

/// One running container.
pub trait Container: Send {
    /// Where the container serves `port`, once it does.
    fn serves(&mut self, port: u16) -> Option<SocketAddr>;
    /// Whether it is ready (serves every port it declares).
    fn ready(&mut self) -> bool;
    /// `Some(success)` once it has ended.
    fn exited(&mut self) -> Option<bool>;
    /// Ends it: asked to stop, then killed after a grace period; returns once it ended.
    fn stop(&mut self);
    /// Asks it to stop and returns at once; [`Container::exited`] kills it once its grace
    /// period has passed.
    fn terminate(&mut self);
    /// What it said last (its termination message, as `FallbackToLogsOnError` gives it).
    fn last_words(&self) -> String;
}

struct Workload {
    pod: core::Pod,
    container: Option<Box<dyn Container>>,
    started: Instant,
}

/// The Pods created through the API, by namespace and name.
pub struct Workloads {
    runtime: Option<Box<dyn Runtime>>,
    pods: Mutex<BTreeMap<(String, String), Workload>>,
    created: Mutex<u64>,
}

/// Why a create or delete was refused: an HTTP status, its reason and a message.
#[derive(Debug)]
pub struct Refused(pub u16, pub &'static str, pub String);

impl Workloads {
    pub fn new(runtime: Option<Box<dyn Runtime>>) -> Self {
        Self {
            runtime,
            pods: Mutex::new(BTreeMap::new()),
            created: Mutex::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<(String, String), Workload>> {
        self.pods.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The created Pods as served objects.
    pub fn objects(&self) -> Vec<Object> {
        self.lock()
            .values()
            .map(|w| Object::Pod(w.pod.clone()))
            .collect()
    }

    /// Creates `body` (a Pod) in `namespace` on the node `node_ip` names, and starts it.
    pub fn create(
        &self,
        namespace: &str,
        body: &[u8],
        node_ip: &dyn Fn(&str) -> Option<String>,
        taken: &dyn Fn(&str) -> bool,
    ) -> Result<core::Pod, Refused> {
        let mut pod: core::Pod = serde_json::from_slice(body)
            .map_err(|e| Refused(400, "BadRequest", format!("not a Pod: {e}")))?;
        let Some(runtime) = &self.runtime else {
            return Err(Refused(
                405,
                "MethodNotAllowed",
                "this lab API runs no Pods".to_owned(),
            ));
        };
        let name = match (&pod.metadata.name, &pod.metadata.generate_name) {
            (Some(name), _) if !name.is_empty() => name.clone(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                let mut created = self.created.lock().unwrap_or_else(PoisonError::into_inner);
                *created += 1;
                format!(
                    "{prefix}{:05x}",
                    (u64::from(std::process::id()) << 16 | *created) & 0xFFFFF
                )
            }
            _ => {
                return Err(Refused(
                    422,
                    "Invalid",
                    "metadata.name or metadata.generateName is required".to_owned(),
                ));
            }
        };
        let spec = pod
            .spec
            .as_ref()
            .ok_or_else(|| Refused(422, "Invalid", "spec is required".to_owned()))?;
        let node = spec.node_name.clone().unwrap_or_default();
        let Some(host_ip) = node_ip(&node) else {
            return Err(Refused(
                422,
                "Invalid",
                format!(
                    "spec.nodeName {node:?} is not a node of this lab (the lab schedules nothing)"
                ),
            ));
        };
        if spec.containers.len() != 1 {
            return Err(Refused(
                422,
                "Invalid",
                "the lab runs Pods of one container".to_owned(),
            ));
        }
        let key = (namespace.to_owned(), name.clone());
        // Held from the check to the insert: two creates of one name cannot both pass.
        let mut pods = self.lock();
        if taken(&name) || pods.contains_key(&key) {
            return Err(Refused(
                409,
                "AlreadyExists",
                format!("pods \"{name}\" already exists"),
            ));
        }
        let now = objects::now();
        pod.metadata = ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            uid: Some(objects::uid(Kind::Pod, namespace, &name)),
            creation_timestamp: Some(Time(now)),
            resource_version: None,
            ..pod.metadata
        };
        let host_network = spec.host_network == Some(true);
        let container_name = spec.containers[0].name.clone();
        let image = spec.containers[0].image.clone().unwrap_or_default();
        let mut status = core::PodStatus {
            phase: Some("Pending".to_owned()),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![core::HostIP {
                ip: host_ip.clone(),
            }]),
            pod_ip: host_network.then(|| host_ip.clone()),
            pod_ips: host_network.then(|| vec![core::PodIP { ip: host_ip }]),
            start_time: Some(Time(now)),
            qos_class: Some("BestEffort".to_owned()),
            ..core::PodStatus::default()
        };
        let container = match runtime.start(&pod) {
            Ok(container) => Some(container),
            Err(message) => {
                status.phase = Some("Failed".to_owned());
                status.reason = Some("StartError".to_owned());
                status.message = Some(message);
                None
            }
        };
        status.container_statuses = Some(vec![core::ContainerStatus {
            name: container_name,
            image,
            ..core::ContainerStatus::default()
        }]);
        pod.status = Some(status);
        let served = pod.clone();
        pods.insert(
            key,
            Workload {
                pod,
                container,
                started: Instant::now(),
            },
        );
        Ok(served)
    }

    /// Stops and removes a created Pod; `None` when there is none of that name.
    /// The container is stopped afterwards, as the kubelet does once the API server has
    /// answered: a Pod may delete itself without waiting for its own end.
    pub fn delete(&self, namespace: &str, name: &str) -> Option<core::Pod> {
        let key = (namespace.to_owned(), name.to_owned());
        let workload = self.lock().remove(&key)?;
        if let Some(mut container) = workload.container {
            // Asked at once; waited for (and killed if need be) on a thread of its own.
            container.terminate();
            let stopping = std::thread::Builder::new()
                .name("lab-pod-stop".to_owned())
                .spawn(move || container.stop());
            if let Err(e) = stopping {
                eprintln!("lab API: cannot wait for Pod {namespace}/{name} to stop: {e}");
            }
        }
        Some(workload.pod)
    }

    /// Where a created Pod serves `port`.
    pub fn serves(&self, namespace: &str, name: &str, port: u16) -> Option<SocketAddr> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().get_mut(&key)?.container.as_mut()?.serves(port)
    }

    /// Brings every Pod's status up to date with its container, and ends those past their
    /// `activeDeadlineSeconds`. Returns whether anything changed.
    pub fn refresh(&self) -> bool {
        let mut changed = false;
        for workload in self.lock().values_mut() {
            changed |= workload.refresh();
        }
        changed
    }

    /// Stops every container (the server is stopping), outside the lock.
    pub fn stop_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        for mut workload in all.into_values() {
            if let Some(container) = &mut workload.container {
                container.stop();
            }
        }
    }
}

impl Workload {
    fn refresh(&mut self) -> bool {
        let Some(container) = &mut self.container else {
            return false;
        };
        let before = self.pod.status.clone();
        let deadline = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        let status = self.pod.status.get_or_insert_with(Default::default);
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return false;
        }
        if let Some(deadline) = deadline
            && self.started.elapsed() >= deadline
        {
            // Not waited for here (the lock is held): `exited` kills it after its grace.
            container.terminate();
            status.phase = Some("Failed".to_owned());
            status.reason = Some("DeadlineExceeded".to_owned());
            status.message = Some(format!(
                "Pod was active on the node longer than the specified deadline ({} s)",
                deadline.as_secs()
            ));
            set_ready(status, false);
            return true;
        }
        match container.exited() {
            Some(success) => {
                status.phase = Some(if success { "Succeeded" } else { "Failed" }.to_owned());
                set_ready(status, false);
                if let Some(c) = status
                    .container_statuses
                    .as_mut()
                    .and_then(|c| c.first_mut())
                {
                    c.state = Some(core::ContainerState {
                        terminated: Some(core::ContainerStateTerminated {
                            exit_code: i32::from(!success),
                            reason: Some(if success { "Completed" } else { "Error" }.to_owned()),
                            message: (!success)
                                .then(|| container.last_words())
                                .filter(|m| !m.is_empty()),
                            finished_at: Some(Time(objects::now())),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
            }
            None => {
                status.phase = Some("Running".to_owned());
                let ready = container.ready();
                set_ready(status, ready);
                if let Some(c) = status
                    .container_statuses
                    .as_mut()
                    .and_then(|c| c.first_mut())
                    && c.state.is_none()
                {
                    c.started = Some(true);
                    c.state = Some(core::ContainerState {
                        running: Some(core::ContainerStateRunning {
                            started_at: Some(Time(objects::now())),
                        }),
                        ..Default::default()
                    });
                }
            }
        }
        self.pod.status != before
    }
}

fn set_ready(status: &mut core::PodStatus, ready: bool) {
    let value = if ready { "True" } else { "False" };
    status.conditions = Some(
        ["Ready", "ContainersReady"]
            .into_iter()
            .map(|kind| core::PodCondition {
                type_: kind.to_owned(),
                status: value.to_owned(),
                ..Default::default()
            })
            .collect(),
    );
    if let Some(c) = status
        .container_statuses
        .as_mut()
        .and_then(|c| c.first_mut())
    {
        c.ready = ready;
    }
}
