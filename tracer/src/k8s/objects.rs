//! The raw typed objects a source holds, and the trimming that keeps them lean.
//!
//! Both sources keep the four kinds as `k8s-openapi` objects so they can be written into a
//! recording and read back through the same [`ClusterModel::from_objects`]. Before they are
//! stored, [`Trim`] drops what naming never needs and what dominates memory on real
//! clusters: `managedFields` and annotations on every object, Pod volumes and container
//! environment/probes, and the Node's image list.

use k8s_openapi::{
    api::{
        core::v1::{Node, Pod, Service},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::model::ClusterModel;

/// The raw typed objects currently held (the content of a cluster file, or the watch caches).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ClusterObjects {
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub nodes: Vec<Node>,
}

impl ClusterObjects {
    pub fn model(&self) -> ClusterModel {
        ClusterModel::from_objects(
            &self.pods,
            &self.services,
            &self.endpoint_slices,
            &self.nodes,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && self.services.is_empty()
            && self.endpoint_slices.is_empty()
            && self.nodes.is_empty()
    }

    /// The objects as one `v1` `List`, the shape `kubectl get … -o json` prints and
    /// [`super::file::parse`] reads.
    pub fn to_list_json(&self) -> serde_json::Value {
        let mut items = Vec::with_capacity(
            self.pods.len() + self.services.len() + self.endpoint_slices.len() + self.nodes.len(),
        );
        // Serializing k8s-openapi objects cannot fail (no maps with non-string keys); an
        // object that somehow did would be left out rather than abort a recording.
        items.extend(
            self.pods
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok()),
        );
        items.extend(
            self.services
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok()),
        );
        items.extend(
            self.endpoint_slices
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok()),
        );
        items.extend(
            self.nodes
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok()),
        );
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": { "resourceVersion": "" },
            "items": items,
        })
    }
}

/// Drops the fields naming does not need.
pub trait Trim {
    fn trim(&mut self);
}

fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.annotations = None;
}

impl Trim for Pod {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        if let Some(spec) = self.spec.as_mut() {
            spec.volumes = None;
            spec.affinity = None;
            spec.tolerations = None;
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                c.env = None;
                c.env_from = None;
                c.volume_mounts = None;
                c.volume_devices = None;
                c.liveness_probe = None;
                c.readiness_probe = None;
                c.startup_probe = None;
                c.lifecycle = None;
                c.command = None;
                c.args = None;
            }
        }
    }
}

impl Trim for Service {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
    }
}

impl Trim for EndpointSlice {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
    }
}

impl Trim for Node {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        if let Some(status) = self.status.as_mut() {
            status.images = None;
            status.volumes_attached = None;
            status.volumes_in_use = None;
        }
    }
}
