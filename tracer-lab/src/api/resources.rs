//! The resource types the lab serves and what discovery says about them: kind, plural,
//! short names, group and scope. Everything that routes, lists or describes a resource
//! asks [`Kind`], so discovery and the served paths cannot disagree.

use k8s_openapi::{
    ListableResource, Resource,
    api::{core::v1 as core, discovery::v1 as discovery},
};

/// One served resource type. The order is the order of watch events on a scenario switch
/// (Pods change before the Endpoints derived from them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    Node,
    Pod,
    Service,
    Endpoints,
    EndpointSlice,
}

/// The API group/version of the EndpointSlice API.
pub const DISCOVERY_GROUP: &str = "discovery.k8s.io";

impl Kind {
    pub const ALL: [Self; 6] = [
        Self::Namespace,
        Self::Node,
        Self::Pod,
        Self::Service,
        Self::Endpoints,
        Self::EndpointSlice,
    ];

    /// The API group ("" for the core group).
    pub fn group(self) -> &'static str {
        match self {
            Self::Namespace => core::Namespace::GROUP,
            Self::Node => core::Node::GROUP,
            Self::Pod => core::Pod::GROUP,
            Self::Service => core::Service::GROUP,
            Self::Endpoints => core::Endpoints::GROUP,
            Self::EndpointSlice => discovery::EndpointSlice::GROUP,
        }
    }

    /// `apiVersion` of objects of this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Namespace => core::Namespace::API_VERSION,
            Self::Node => core::Node::API_VERSION,
            Self::Pod => core::Pod::API_VERSION,
            Self::Service => core::Service::API_VERSION,
            Self::Endpoints => core::Endpoints::API_VERSION,
            Self::EndpointSlice => discovery::EndpointSlice::API_VERSION,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Self::Namespace => core::Namespace::KIND,
            Self::Node => core::Node::KIND,
            Self::Pod => core::Pod::KIND,
            Self::Service => core::Service::KIND,
            Self::Endpoints => core::Endpoints::KIND,
            Self::EndpointSlice => discovery::EndpointSlice::KIND,
        }
    }

    pub fn list_kind(self) -> &'static str {
        match self {
            Self::Namespace => core::Namespace::LIST_KIND,
            Self::Node => core::Node::LIST_KIND,
            Self::Pod => core::Pod::LIST_KIND,
            Self::Service => core::Service::LIST_KIND,
            Self::Endpoints => core::Endpoints::LIST_KIND,
            Self::EndpointSlice => discovery::EndpointSlice::LIST_KIND,
        }
    }

    /// The plural name used in URLs (`pods`).
    pub fn plural(self) -> &'static str {
        match self {
            Self::Namespace => core::Namespace::URL_PATH_SEGMENT,
            Self::Node => core::Node::URL_PATH_SEGMENT,
            Self::Pod => core::Pod::URL_PATH_SEGMENT,
            Self::Service => core::Service::URL_PATH_SEGMENT,
            Self::Endpoints => core::Endpoints::URL_PATH_SEGMENT,
            Self::EndpointSlice => discovery::EndpointSlice::URL_PATH_SEGMENT,
        }
    }

    pub fn singular(self) -> &'static str {
        match self {
            Self::Namespace => "namespace",
            Self::Node => "node",
            Self::Pod => "pod",
            Self::Service => "service",
            Self::Endpoints => "endpoints",
            Self::EndpointSlice => "endpointslice",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Self::Namespace | Self::Node)
    }

    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Self::Namespace => &["ns"],
            Self::Node => &["no"],
            Self::Pod => &["po"],
            Self::Service => &["svc"],
            Self::Endpoints => &["ep"],
            Self::EndpointSlice => &[],
        }
    }

    /// Discovery categories (`kubectl get all` lists the `all` category).
    pub fn categories(self) -> &'static [&'static str] {
        match self {
            Self::Pod | Self::Service => &["all"],
            Self::Namespace | Self::Node | Self::Endpoints | Self::EndpointSlice => &[],
        }
    }

    /// The kind served under `group` with URL segment `plural`.
    pub fn from_path(group: &str, plural: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)
    }

    /// The kinds of one API group, in discovery order.
    pub fn in_group(group: &str) -> impl Iterator<Item = Self> + '_ {
        Self::ALL.into_iter().filter(move |k| k.group() == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_kinds_only_in_their_group() {
        assert_eq!(Kind::from_path("", "pods"), Some(Kind::Pod));
        assert_eq!(
            Kind::from_path(DISCOVERY_GROUP, "endpointslices"),
            Some(Kind::EndpointSlice)
        );
        assert_eq!(Kind::from_path("", "endpointslices"), None);
        assert_eq!(Kind::from_path(DISCOVERY_GROUP, "pods"), None);
        assert_eq!(Kind::EndpointSlice.api_version(), "discovery.k8s.io/v1");
        assert_eq!(Kind::Endpoints.list_kind(), "EndpointsList");
    }
}
