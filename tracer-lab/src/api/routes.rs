//! From a request to a reply: which document or resource a path names, list and get
//! against the store, and the parameters of a watch. Pure apart from reading the store,
//! so every path can be tested without a socket.
//!
//! Served paths, for `<gv>` = `api/v1` or `apis/discovery.k8s.io/v1`:
//! `/version`, `/healthz` (`/livez`, `/readyz`), `/api`, `/apis`, `/apis/<group>`,
//! `/<gv>` (discovery), `/<gv>/<plural>` (all namespaces), `/<gv>/<plural>/<name>`
//! (cluster-scoped kinds), `/<gv>/namespaces/<ns>/<plural>[/<name>]`, and the legacy
//! `/<gv>/watch/…` forms. `?watch=true` (or `1`) turns a list into a watch.

use std::{net::SocketAddr, time::Duration};

use serde::Serialize;

use super::{
    discovery,
    http::{Request, Response},
    objects,
    render::{self, Format},
    resources::Kind,
    selector::{FieldSelector, Filter, LabelSelector},
    store::Store,
    watch::{DEFAULT_TIMEOUT, WatchRequest},
};

/// What to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done(Response),
    Watch(WatchRequest),
    /// A WebSocket port-forward to a created Pod ([`super::portforward`]).
    Forward(super::portforward::Forward),
}

pub(super) fn json<T: Serialize>(value: &T) -> Reply {
    Reply::Done(Response::json(
        200,
        &serde_json::to_value(value).unwrap_or_default(),
    ))
}

fn path_not_found(path: &str) -> Reply {
    Reply::Done(render::status_response(&render::status(
        404,
        "NotFound",
        &format!("the server could not find the requested resource ({path})"),
        None,
    )))
}

/// Answers one request.
pub fn route(request: &Request, store: &Store, server: SocketAddr) -> Reply {
    if request.method != "GET" {
        return Reply::Done(render::status_response(&render::status(
            405,
            "MethodNotAllowed",
            &format!(
                "the lab's API is read-only: {} is not allowed",
                request.method
            ),
            None,
        )));
    }
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => json(&discovery::version()),
        ["healthz" | "livez" | "readyz"] => Reply::Done(Response::text(200, "ok")),
        ["api"] => json(&discovery::api_versions(server)),
        ["api", discovery::VERSION] => json(&discovery::resources("")),
        ["apis"] => json(&discovery::api_groups()),
        ["apis", group] => match discovery::api_group(group) {
            Some(g) => json(&g),
            None => path_not_found(&request.path),
        },
        ["apis", group, discovery::VERSION] if discovery::api_group(group).is_some() => {
            json(&discovery::resources(group))
        }
        ["api", discovery::VERSION, rest @ ..] => resource(request, store, "", rest),
        ["apis", group, discovery::VERSION, rest @ ..] if discovery::api_group(group).is_some() => {
            resource(request, store, group, rest)
        }
        _ => path_not_found(&request.path),
    }
}

/// The resource part of a path (after the group version).
fn resource(request: &Request, store: &Store, group: &str, rest: &[&str]) -> Reply {
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, plural, name) = match rest {
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        _ => return path_not_found(&request.path),
    };
    let Some(kind) = Kind::from_path(group, plural) else {
        return path_not_found(&request.path);
    };
    // Namespaced kinds are named only inside a namespace; cluster-scoped ones never are.
    let unscoped_name = namespace.is_none() && name.is_some();
    if (kind.namespaced() && unscoped_name) || (!kind.namespaced() && namespace.is_some()) {
        return path_not_found(&request.path);
    }
    let format = render::negotiate(request.header("accept"), request.param("includeObject"));
    let watch = watch_prefix || matches!(request.param("watch"), Some("true" | "1"));
    match (name, watch) {
        (Some(name), false) => get(store, kind, namespace.unwrap_or_default(), name, format),
        (name, true) => match watch_request(request, kind, namespace, name, format) {
            Ok(w) => Reply::Watch(w),
            Err(message) => Reply::Done(render::bad_request(&message)),
        },
        (None, false) => match filter(request, namespace) {
            Ok(f) => {
                let (version, objects) = store.list(kind);
                let body = render::list(
                    format,
                    kind,
                    objects.iter().map(|o| &**o).filter(|o| f.matches(o)),
                    version,
                    objects::now(),
                );
                Reply::Done(Response::json(200, &body))
            }
            Err(message) => Reply::Done(render::bad_request(&message)),
        },
    }
}

fn get(store: &Store, kind: Kind, namespace: &str, name: &str, format: Format) -> Reply {
    match store.get(kind, namespace, name) {
        Some(object) => Reply::Done(Response::json(
            200,
            &render::one(format, &object, true, objects::now()),
        )),
        None => Reply::Done(render::not_found(kind, name)),
    }
}

fn filter(request: &Request, namespace: Option<&str>) -> Result<Filter, String> {
    let labels = LabelSelector::parse(request.param("labelSelector").unwrap_or_default())
        .map_err(|e| format!("unable to parse labelSelector: {e}"))?;
    let fields = FieldSelector::parse(request.param("fieldSelector").unwrap_or_default())
        .map_err(|e| format!("unable to parse fieldSelector: {e}"))?;
    Ok(Filter {
        namespace: namespace.map(str::to_owned),
        labels,
        fields,
    })
}

fn flag(request: &Request, name: &str) -> bool {
    matches!(request.param(name), Some("true" | "1"))
}

fn watch_request(
    request: &Request,
    kind: Kind,
    namespace: Option<&str>,
    name: Option<&str>,
    format: Format,
) -> Result<WatchRequest, String> {
    let mut filter = filter(request, namespace)?;
    if let Some(name) = name {
        // `/watch/…/<name>` is the old spelling of `fieldSelector=metadata.name=<name>`.
        filter.fields = filter.fields.with_name(name);
    }
    let after = match request.param("resourceVersion") {
        None | Some("" | "0") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| format!("resourceVersion: Invalid value: {v:?}: must be a number"))?,
        ),
    };
    // `sendInitialEvents` overrides the default only when given.
    let initial_events = match request.param("sendInitialEvents") {
        Some("true" | "1") => true,
        Some(_) => false,
        None => after.is_none(),
    };
    let bookmarks = flag(request, "allowWatchBookmarks");
    let timeout = match request.param("timeoutSeconds") {
        None | Some("" | "0") => DEFAULT_TIMEOUT,
        Some(v) => Duration::from_secs(
            v.parse::<u64>()
                .map_err(|_| format!("timeoutSeconds: Invalid value: {v:?}"))?,
        ),
    };
    Ok(WatchRequest {
        kind,
        filter,
        // A streaming list starts from the current state whatever version it names.
        after: if initial_events { None } else { after },
        initial_events,
        bookmarks,
        initial_events_end: initial_events && bookmarks && flag(request, "sendInitialEvents"),
        timeout,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{
            http::read_request,
            objects::{Host, build},
            table::Include,
        },
        spec::{Cluster, Scenario},
    };

    fn store() -> Store {
        let host = Host {
            created: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            kernel_version: "6.8.0".to_owned(),
            os_image: "Linux".to_owned(),
            architecture: "amd64",
        };
        Store::new(build(&Cluster::seed(Scenario::Healthy), &host))
    }

    fn ask(store: &Store, target: &str, accept: &str) -> Reply {
        let raw = format!("GET {target} HTTP/1.1\r\nAccept: {accept}\r\n\r\n");
        let request = read_request(&mut std::io::Cursor::new(raw.into_bytes())).expect("request");
        route(&request, store, SocketAddr::from(([127, 0, 0, 1], 6443)))
    }

    fn body(reply: Reply) -> (u16, serde_json::Value) {
        match reply {
            Reply::Done(r) => (
                r.status,
                serde_json::from_slice(&r.body).unwrap_or_default(),
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn lists_and_gets_in_every_scope() {
        let s = store();
        let (code, all) = body(ask(&s, "/api/v1/pods", "application/json"));
        assert_eq!(code, 200);
        assert_eq!(all["kind"], "PodList");
        assert_eq!(all["items"].as_array().map(Vec::len), Some(6));
        let (_, none) = body(ask(
            &s,
            "/api/v1/namespaces/kube-system/pods",
            "application/json",
        ));
        assert_eq!(none["items"].as_array().map(Vec::len), Some(0));
        let (code, pod) = body(ask(&s, "/api/v1/namespaces/default/pods/nettest", ""));
        assert_eq!(code, 200);
        assert_eq!(pod["status"]["podIP"], "10.244.102.137");
        let (_, nodes) = body(ask(&s, "/api/v1/nodes", ""));
        assert_eq!(nodes["items"].as_array().map(Vec::len), Some(3));
        let (_, node) = body(ask(&s, "/api/v1/nodes/cpu1/", ""));
        assert_eq!(node["kind"], "Node");
        let (_, ns) = body(ask(&s, "/api/v1/namespaces/kube-system", ""));
        assert_eq!(ns["kind"], "Namespace");
        let (_, slices) = body(ask(
            &s,
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
            "",
        ));
        assert_eq!(slices["kind"], "EndpointSliceList");
        assert_eq!(slices["items"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn selectors_filter_lists() {
        let s = store();
        let (_, pods) = body(ask(&s, "/api/v1/pods?labelSelector=app%3Dnginx-test", ""));
        assert_eq!(pods["items"].as_array().map(Vec::len), Some(3));
        let (_, pods) = body(ask(
            &s,
            "/api/v1/pods?fieldSelector=metadata.name%3Dnettest",
            "",
        ));
        assert_eq!(pods["items"][0]["metadata"]["name"], "nettest");
        let (_, pods) = body(ask(&s, "/api/v1/pods?fieldSelector=spec.nodeName=gpu1", ""));
        assert_eq!(pods["items"].as_array().map(Vec::len), Some(2));
        let (code, status) = body(ask(&s, "/api/v1/pods?labelSelector=a%20in%20(b", ""));
        assert_eq!(code, 400);
        assert_eq!(status["reason"], "BadRequest");
    }

    #[test]
    fn unknown_paths_and_names_are_status_404s() {
        let s = store();
        for target in [
            "/",
            "/api/v2",
            "/api/v1/configmaps",
            "/api/v1/endpointslices",
            "/apis/apps/v1",
            "/apis/discovery.k8s.io/v1/pods",
            "/api/v1/pods/nettest",
            "/api/v1/namespaces/default/nodes",
            "/api/v1/namespaces/default/pods/nettest/status",
            "/api/v1/namespaces/default/pods/nope",
        ] {
            let (code, status) = body(ask(&s, target, "application/json"));
            assert_eq!(code, 404, "{target}");
            assert_eq!(status["kind"], "Status", "{target}");
            assert_eq!(status["code"], 404, "{target}");
        }
        let raw = "DELETE /api/v1/namespaces/default/pods/nettest HTTP/1.1\r\n\r\n";
        let request = read_request(&mut std::io::Cursor::new(raw)).expect("request");
        let (code, _) = body(route(&request, &s, SocketAddr::from(([127, 0, 0, 1], 1))));
        assert_eq!(code, 405);
    }

    #[test]
    fn kubectl_gets_tables() {
        let s = store();
        let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        let (_, t) = body(ask(&s, "/api/v1/nodes?limit=500", accept));
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["rows"].as_array().map(Vec::len), Some(3));
        let (_, t) = body(ask(
            &s,
            "/api/v1/namespaces/default/services/webapp",
            accept,
        ));
        assert_eq!(t["rows"][0]["cells"][4], "80:32065/TCP");
    }

    #[test]
    fn watch_parameters() {
        let s = store();
        let Reply::Watch(w) = ask(
            &s,
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5&timeoutSeconds=7&labelSelector=app",
            "application/json;as=Table;v=v1;g=meta.k8s.io",
        ) else {
            panic!("watch");
        };
        assert_eq!(w.after, Some(5));
        assert!(!w.initial_events);
        assert_eq!(w.timeout, Duration::from_secs(7));
        assert_eq!(w.format, Format::Table(Include::Metadata));
        assert_eq!(w.filter.namespace.as_deref(), Some("default"));
        let Reply::Watch(w) = ask(&s, "/api/v1/watch/nodes/cpu1?resourceVersion=0", "") else {
            panic!("legacy watch");
        };
        assert_eq!(w.after, None);
        assert!(w.initial_events);
        assert_eq!(w.filter.fields.name(), Some("cpu1"));
        let Reply::Watch(w) = ask(
            &s,
            "/api/v1/pods?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=3",
            "",
        ) else {
            panic!("streaming list");
        };
        assert!(w.initial_events && w.initial_events_end && w.after.is_none());
        let (code, _) = body(ask(&s, "/api/v1/pods?watch=true&resourceVersion=abc", ""));
        assert_eq!(code, 400);
        let (code, _) = body(ask(&s, "/api/v1/pods?watch=true&timeoutSeconds=-1", ""));
        assert_eq!(code, 400);
    }
}
