//! The API's writes, all on Pods: `POST /api/v1/namespaces/<ns>/pods` creates one (run
//! by the server's runtime), `DELETE …/pods/<name>` stops and removes a created one, and
//! `…/pods/<name>/portforward?ports=N` opens a WebSocket to its port. Everything else is
//! left to [`super::routes`]; the lab's own Pods cannot be deleted.

use super::{
    http::{Request, Response},
    objects::Object,
    portforward::{self, Forward},
    render,
    resources::Kind,
    routes::Reply,
    store::Store,
    workloads::{Refused, Workloads},
};

fn refused(Refused(code, reason, message): Refused) -> Reply {
    Reply::Done(render::status_response(&render::status(
        code, reason, &message, None,
    )))
}

fn pod_json(code: u16, pod: &k8s_openapi::api::core::v1::Pod) -> Reply {
    let mut value = serde_json::to_value(pod).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), "v1".into());
        map.insert("kind".to_owned(), "Pod".into());
    }
    Reply::Done(Response::json(code, &value))
}

/// The node's InternalIP, from the served Node.
fn node_ip(store: &Store, node: &str) -> Option<String> {
    let Object::Node(node) = &*store.get(Kind::Node, "", node)? else {
        return None;
    };
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

/// Answers a write or a port-forward; `None` for what [`super::routes`] serves.
pub fn route(
    request: &Request,
    store: &Store,
    workloads: &Workloads,
    publish: &dyn Fn(),
) -> Option<Reply> {
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    let reply = match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v1", "namespaces", namespace, "pods"]) => {
            if store.get(Kind::Namespace, "", namespace).is_none() {
                return Some(Reply::Done(render::not_found(Kind::Namespace, namespace)));
            }
            match workloads.create(
                namespace,
                &request.body,
                &|node| node_ip(store, node),
                &|name| store.get(Kind::Pod, namespace, name).is_some(),
            ) {
                Ok(pod) => {
                    publish();
                    pod_json(201, &pod)
                }
                Err(refusal) => refused(refusal),
            }
        }
        ("DELETE", ["api", "v1", "namespaces", namespace, "pods", name]) => {
            match workloads.delete(namespace, name) {
                Some(pod) => {
                    publish();
                    pod_json(200, &pod)
                }
                None if store.get(Kind::Pod, namespace, name).is_some() => refused(Refused(
                    405,
                    "MethodNotAllowed",
                    format!(
                        "the lab's own Pod {namespace}/{name} cannot be deleted (tracer lab replace-pod changes it)"
                    ),
                )),
                None => Reply::Done(render::not_found(Kind::Pod, name)),
            }
        }
        (
            "GET" | "POST",
            [
                "api",
                "v1",
                "namespaces",
                namespace,
                "pods",
                name,
                "portforward",
            ],
        ) => {
            if let Err(message) = portforward::check_upgrade(request) {
                return Some(Reply::Done(render::bad_request(&message)));
            }
            let ports: Vec<u16> = request
                .query
                .iter()
                .filter(|(k, _)| k == "ports")
                .flat_map(|(_, v)| v.split(','))
                .filter_map(|p| p.trim().parse().ok())
                .collect();
            let [port] = ports[..] else {
                return Some(Reply::Done(render::bad_request(
                    "the lab forwards exactly one port per request (?ports=N)",
                )));
            };
            if store.get(Kind::Pod, namespace, name).is_none() {
                return Some(Reply::Done(render::not_found(Kind::Pod, name)));
            }
            let target = workloads.serves(namespace, name, port).ok_or_else(|| {
                format!("pod {namespace}/{name} does not serve port {port} (not running, or not one the lab runs)")
            });
            Reply::Forward(Forward { port, target })
        }
        _ => return None,
    };
    Some(reply)
}
