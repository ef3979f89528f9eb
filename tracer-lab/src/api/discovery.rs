//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>` and
//! `/apis/<group>/<version>`, in the legacy (unaggregated) formats.
//!
//! kubectl 1.32 first asks for aggregated discovery (`Accept:
//! application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,…,application/json`).
//! client-go decides which format it got from the response's `Content-Type`: a plain
//! `application/json` answer is read as `APIVersions`/`APIGroupList`, and the client then
//! fetches each group version's `APIResourceList`, which is what these documents are.

use std::net::SocketAddr;

use k8s_openapi::apimachinery::pkg::{
    apis::meta::v1::{
        APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions,
        GroupVersionForDiscovery, ServerAddressByClientCIDR,
    },
    version::Info,
};

use super::resources::{DISCOVERY_GROUP, Kind};
use crate::spec::KUBERNETES_VERSION;

/// The only version of every served group.
pub const VERSION: &str = "v1";

/// The groups served under `/apis`.
pub const GROUPS: [&str; 1] = [DISCOVERY_GROUP];

/// `/version`, as the seed's `kubectl get --raw /version` showed it.
pub fn version() -> Info {
    let minor = KUBERNETES_VERSION
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .unwrap_or_default();
    Info {
        major: "1".to_owned(),
        minor: minor.to_owned(),
        git_version: KUBERNETES_VERSION.to_owned(),
        git_commit: String::new(),
        git_tree_state: "clean".to_owned(),
        build_date: String::new(),
        go_version: String::new(),
        compiler: "gc".to_owned(),
        platform: format!("linux/{}", super::objects::go_arch(std::env::consts::ARCH)),
        ..Info::default()
    }
}

/// `/api`.
pub fn api_versions(server: SocketAddr) -> APIVersions {
    APIVersions {
        versions: vec![VERSION.to_owned()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_owned(),
            server_address: server.to_string(),
        }],
    }
}

fn group(name: &str) -> APIGroup {
    let version = GroupVersionForDiscovery {
        group_version: format!("{name}/{VERSION}"),
        version: VERSION.to_owned(),
    };
    APIGroup {
        name: name.to_owned(),
        preferred_version: Some(version.clone()),
        versions: vec![version],
        server_address_by_client_cidrs: None,
    }
}

/// `/apis`.
pub fn api_groups() -> APIGroupList {
    APIGroupList {
        groups: GROUPS.into_iter().map(group).collect(),
    }
}

/// `/apis/<name>`, when the lab serves that group.
pub fn api_group(name: &str) -> Option<APIGroup> {
    GROUPS.contains(&name).then(|| group(name))
}

/// `/api/v1` (group "") or `/apis/<group>/v1`.
pub fn resources(group: &str) -> APIResourceList {
    let strings = |s: &[&str]| s.iter().map(|&x| x.to_owned()).collect::<Vec<_>>();
    APIResourceList {
        group_version: if group.is_empty() {
            VERSION.to_owned()
        } else {
            format!("{group}/{VERSION}")
        },
        resources: Kind::in_group(group)
            .map(|kind| APIResource {
                name: kind.plural().to_owned(),
                singular_name: kind.singular().to_owned(),
                namespaced: kind.namespaced(),
                kind: kind.kind().to_owned(),
                verbs: strings(&["get", "list", "watch"]),
                short_names: (!kind.short_names().is_empty()).then(|| strings(kind.short_names())),
                categories: (!kind.categories().is_empty()).then(|| strings(kind.categories())),
                ..APIResource::default()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_v1_lists_the_core_kinds_with_short_names() {
        let list = resources("");
        assert_eq!(list.group_version, "v1");
        let names: Vec<_> = list.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["namespaces", "nodes", "pods", "services", "endpoints"]
        );
        let pods = &list.resources[2];
        assert_eq!(pods.kind, "Pod");
        assert!(pods.namespaced);
        assert_eq!(pods.short_names.as_deref(), Some(&["po".to_owned()][..]));
        assert!(!list.resources[1].namespaced);
        let slices = resources(DISCOVERY_GROUP);
        assert_eq!(slices.group_version, "discovery.k8s.io/v1");
        assert_eq!(slices.resources[0].name, "endpointslices");
    }

    #[test]
    fn version_is_the_seeds() {
        let v = version();
        assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "31"));
        assert_eq!(v.git_version, "v1.31.13");
        let groups = api_groups();
        assert_eq!(groups.groups[0].name, "discovery.k8s.io");
        assert!(api_group("apps").is_none());
    }
}
