//! What a response body looks like: content negotiation from the `Accept` header, and the
//! JSON of lists, single objects, watch events and error `Status`es in each form.
//!
//! Three forms are served, chosen by the first acceptable entry of `Accept`:
//! the objects themselves (`application/json`), `meta.k8s.io/v1` Tables
//! (`as=Table;g=meta.k8s.io;v=v1`, kubectl's server-side printing) and metadata only
//! (`as=PartialObjectMetadata[List]`, kube-rs's `metadata_watcher`). Protobuf is never
//! served; a client that also accepts JSON gets JSON, and the Content-Type says so.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{ListMeta, Status, StatusDetails},
    jiff::Timestamp,
};
use serde_json::{Value, json};

use super::{
    http::Response,
    objects::Object,
    resources::Kind,
    store::EventType,
    table::{self, Include},
};

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Object,
    Table(Include),
    Metadata,
}

/// Picks the first entry of `Accept` the lab can serve; anything unrecognised falls
/// back to plain JSON objects.
pub fn negotiate(accept: Option<&str>, include_object: Option<&str>) -> Format {
    for entry in accept.unwrap_or_default().split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(media.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let mut as_ = None;
        let mut group = None;
        let mut version = None;
        for param in parts {
            match param.split_once('=') {
                Some(("as", v)) => as_ = Some(v),
                Some(("g", v)) => group = Some(v),
                Some(("v", v)) => version = Some(v),
                _ => {}
            }
        }
        let meta_v1 = group == Some("meta.k8s.io") && version == Some("v1");
        match as_ {
            None => return Format::Object,
            Some("Table") if meta_v1 => return Format::Table(Include::parse(include_object)),
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") if meta_v1 => {
                return Format::Metadata;
            }
            // Another representation (aggregated discovery, v1beta1 Tables): try the next.
            Some(_) => {}
        }
    }
    Format::Object
}

fn version_of(object: &Object) -> u64 {
    object
        .metadata()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A list response: `<Kind>List`, a Table, or `PartialObjectMetadataList`.
pub fn list<'a>(
    format: Format,
    kind: Kind,
    objects: impl IntoIterator<Item = &'a Object>,
    resource_version: u64,
    now: Timestamp,
) -> Value {
    let metadata = json!({"resourceVersion": resource_version.to_string()});
    match format {
        Format::Object => json!({
            "kind": kind.list_kind(),
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": objects.into_iter().map(Object::to_json).collect::<Vec<_>>(),
        }),
        Format::Table(include) => table::table(kind, objects, resource_version, include, true, now),
        Format::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": objects.into_iter().map(table::partial_metadata).collect::<Vec<_>>(),
        }),
    }
}

/// A single object (a get, or a watch event's object).
pub fn one(format: Format, object: &Object, with_columns: bool, now: Timestamp) -> Value {
    match format {
        Format::Object => object.to_json(),
        Format::Table(include) => table::table(
            object.kind(),
            [object],
            version_of(object),
            include,
            with_columns,
            now,
        ),
        Format::Metadata => table::partial_metadata(object),
    }
}

/// One watch event line's JSON.
pub fn event(
    format: Format,
    kind: EventType,
    object: &Object,
    with_columns: bool,
    now: Timestamp,
) -> Value {
    json!({"type": kind.as_str(), "object": one(format, object, with_columns, now)})
}

/// A `BOOKMARK` event: only the kind and the version the watch has reached, plus
/// `annotations` (`k8s.io/initial-events-end` after the initial events of a streaming list).
pub fn bookmark(
    format: Format,
    kind: Kind,
    resource_version: u64,
    initial_events_end: bool,
) -> Value {
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let (kind_name, api_version) = match format {
        Format::Object => (kind.kind(), kind.api_version()),
        Format::Table(_) | Format::Metadata => ("PartialObjectMetadata", "meta.k8s.io/v1"),
    };
    json!({
        "type": "BOOKMARK",
        "object": {"kind": kind_name, "apiVersion": api_version, "metadata": metadata},
    })
}

/// A `metav1.Status` failure. `details` names the object (`name`, resource `kind`,
/// `group`) for NotFound, as the API server does.
pub fn status(code: u16, reason: &str, message: &str, details: Option<(&str, Kind)>) -> Status {
    Status {
        code: Some(i32::from(code)),
        status: Some("Failure".to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        metadata: ListMeta::default(),
        details: details.map(|(name, kind)| StatusDetails {
            name: Some(name.to_owned()),
            kind: Some(kind.plural().to_owned()),
            group: (!kind.group().is_empty()).then(|| kind.group().to_owned()),
            ..StatusDetails::default()
        }),
    }
}

pub fn status_response(status: &Status) -> Response {
    let code = status
        .code
        .and_then(|c| u16::try_from(c).ok())
        .unwrap_or(500);
    Response::json(code, &serde_json::to_value(status).unwrap_or(Value::Null))
}

pub fn not_found(kind: Kind, name: &str) -> Response {
    status_response(&status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", kind.plural()),
        Some((name, kind)),
    ))
}

pub fn bad_request(message: &str) -> Response {
    status_response(&status(400, "BadRequest", message, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_get_gets_tables_and_discovery_gets_plain_json() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(kubectl_get), None),
            Format::Table(Include::Metadata)
        );
        assert_eq!(
            negotiate(Some(kubectl_get), Some("Object")),
            Format::Table(Include::Object)
        );
        let discovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(discovery), None), Format::Object);
        assert_eq!(negotiate(None, None), Format::Object);
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf, */*"), None),
            Format::Object
        );
        assert_eq!(
            negotiate(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                None
            ),
            Format::Metadata
        );
        assert_eq!(negotiate(Some(";;,=,;as"), None), Format::Object);
    }

    #[test]
    fn not_found_reads_like_the_api_servers() {
        let r = not_found(Kind::Pod, "nope");
        assert_eq!(r.status, 404);
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["reason"], "NotFound");
        assert_eq!(v["message"], "pods \"nope\" not found");
        assert_eq!(v["details"]["kind"], "pods");
        assert_eq!(v["code"], 404);
    }

    #[test]
    fn bookmarks_mark_the_end_of_initial_events() {
        let b = bookmark(Format::Object, Kind::Pod, 42, true);
        assert_eq!(b["type"], "BOOKMARK");
        assert_eq!(b["object"]["kind"], "Pod");
        assert_eq!(b["object"]["metadata"]["resourceVersion"], "42");
        assert_eq!(
            b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
            "true"
        );
    }
}
