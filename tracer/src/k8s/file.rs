//! The offline cluster file: what `kubectl` prints, read without the API.
//!
//! Make one with
//!
//! ```text
//! kubectl get pods,services,endpointslices,nodes -A -o json > cluster.json
//! ```
//!
//! That prints one `v1` `List` whose `items` mix the four kinds, each with its `kind` and
//! `apiVersion`. Also accepted: several such documents one after another (e.g. one
//! `kubectl get` per kind appended to the same file), typed lists (`PodList`, whose items
//! may omit `kind`), a JSON array of objects, or a single object. Items are dispatched by
//! `kind` into typed objects; other kinds (Endpoints, Events, …) are skipped. Each object is
//! trimmed like the watch caches' (see [`super::objects`]).
//!
//! Errors name the file and, for JSON syntax, the line and column; for an object of a known
//! kind that does not have that kind's shape, its position, kind and name.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::objects::{ClusterObjects, Trim};

/// How to make a cluster file, for error messages.
pub const HOW_TO_MAKE: &str = "kubectl get pods,services,endpointslices,nodes -A -o json";

/// Lists inside lists deeper than this are refused.
const MAX_NESTING: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the cluster file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the cluster file {} is not JSON: {message} at line {line}, column {column} (make it with `{HOW_TO_MAKE}`)", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the cluster file {}: {what} is not a Kubernetes object or list (make it with `{HOW_TO_MAKE}`)", path.display())]
    NotAnObject { path: PathBuf, what: String },
    #[error("the cluster file {}: {what} is not a valid {kind}: {message}", path.display())]
    BadObject {
        path: PathBuf,
        what: String,
        kind: String,
        message: String,
    },
    #[error("the cluster file {}: lists nested more than {MAX_NESTING} deep", path.display())]
    TooDeep { path: PathBuf },
    #[error("the cluster file {} holds no Pods, Services, EndpointSlices or Nodes (make it with `{HOW_TO_MAKE}`)", path.display())]
    Empty { path: PathBuf },
}

/// Reads and parses the cluster file at `path`.
pub fn read(path: &Path) -> Result<ClusterObjects, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses cluster-file text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<ClusterObjects, FileError> {
    let mut reader = Reader {
        path,
        objects: ClusterObjects::default(),
    };
    let documents = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (n, document) in documents.enumerate() {
        let document = document.map_err(|e| FileError::Syntax {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: syntax_message(&e),
        })?;
        reader.value(document, &format!("document {}", n + 1), None, 0)?;
    }
    if reader.objects.is_empty() {
        return Err(FileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(reader.objects)
}

/// serde_json's message without its trailing " at line L column C" (we print our own).
fn syntax_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

struct Reader<'a> {
    path: &'a Path,
    objects: ClusterObjects,
}

impl Reader<'_> {
    /// One JSON value: a list (kind `List`/`…List`, or an array) or an object.
    /// `item_kind` is the kind implied by a typed list (`PodList` → `Pod`).
    fn value(
        &mut self,
        value: Value,
        what: &str,
        item_kind: Option<&str>,
        depth: usize,
    ) -> Result<(), FileError> {
        if depth > MAX_NESTING {
            return Err(FileError::TooDeep {
                path: self.path.to_owned(),
            });
        }
        match value {
            Value::Array(items) => self.items(items, what, None, depth),
            Value::Object(mut map) => {
                let kind = map
                    .get("kind")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or_else(|| item_kind.map(str::to_owned));
                match (kind, map.remove("items")) {
                    (Some(kind), Some(Value::Array(items))) if kind.ends_with("List") => {
                        let implied = kind.strip_suffix("List").filter(|k| !k.is_empty());
                        self.items(items, what, implied, depth)
                    }
                    (Some(kind), items) => {
                        if let Some(items) = items {
                            map.insert("items".to_owned(), items);
                        }
                        self.object(map, &kind, what)
                    }
                    (None, _) => Err(FileError::NotAnObject {
                        path: self.path.to_owned(),
                        what: format!("{what} (it has no \"kind\")"),
                    }),
                }
            }
            _ => Err(FileError::NotAnObject {
                path: self.path.to_owned(),
                what: what.to_owned(),
            }),
        }
    }

    fn items(
        &mut self,
        items: Vec<Value>,
        what: &str,
        implied: Option<&str>,
        depth: usize,
    ) -> Result<(), FileError> {
        for (i, item) in items.into_iter().enumerate() {
            self.value(item, &format!("{what}, item {}", i + 1), implied, depth + 1)?;
        }
        Ok(())
    }

    fn object(&mut self, map: Map<String, Value>, kind: &str, what: &str) -> Result<(), FileError> {
        match kind {
            "Pod" => self.objects.pods.push(self.typed(map, kind, what)?),
            "Service" => self.objects.services.push(self.typed(map, kind, what)?),
            "EndpointSlice" => self
                .objects
                .endpoint_slices
                .push(self.typed(map, kind, what)?),
            "Node" => self.objects.nodes.push(self.typed(map, kind, what)?),
            _ => {}
        }
        Ok(())
    }

    fn typed<T: DeserializeOwned + Trim>(
        &self,
        mut map: Map<String, Value>,
        kind: &str,
        what: &str,
    ) -> Result<T, FileError> {
        let name = object_name(&map);
        // The kind is already decided; k8s-openapi would refuse an older apiVersion
        // (discovery.k8s.io/v1beta1) whose fields we read the same way.
        map.remove("apiVersion");
        map.insert("kind".to_owned(), Value::String(kind.to_owned()));
        let mut object: T =
            serde_json::from_value(Value::Object(map)).map_err(|e| FileError::BadObject {
                path: self.path.to_owned(),
                what: format!("{what} ({kind} {name})"),
                kind: kind.to_owned(),
                message: e.to_string(),
            })?;
        object.trim();
        Ok(object)
    }
}

/// `namespace/name` (or `name`) of a raw object, for messages.
fn object_name(map: &Map<String, Value>) -> String {
    let meta = map.get("metadata");
    let field = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => "without a name".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<ClusterObjects, FileError> {
        parse(text, Path::new("snap.json"))
    }

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"default","managedFields":[{"manager":"x"}],"annotations":{"k":"v"}},"status":{"podIP":"10.0.0.1","phase":"Running"}}"#;
    const NODE: &str = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.0.1"}],"images":[{"names":["big"]}]}}"#;

    #[test]
    fn mixed_list_concatenated_documents_and_single_objects() {
        let text = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{POD},{{"apiVersion":"v1","kind":"Endpoints","metadata":{{"name":"skip"}}}}]}}
            {NODE}
            {{"apiVersion":"v1","kind":"ServiceList","items":[{{"metadata":{{"name":"s","namespace":"default"}},"spec":{{"clusterIP":"10.96.0.10","ports":[{{"port":53,"protocol":"UDP"}}]}}}}]}}"#
        );
        let objects = parse_str(&text).unwrap();
        assert_eq!(objects.pods.len(), 1);
        assert_eq!(objects.nodes.len(), 1);
        assert_eq!(objects.services.len(), 1);
        assert!(objects.pods[0].metadata.managed_fields.is_none());
        assert!(objects.pods[0].metadata.annotations.is_none());
        assert!(objects.nodes[0].status.as_ref().unwrap().images.is_none());
        let model = objects.model();
        assert_eq!(
            model.pod_by_ip("10.0.0.1".parse().unwrap()).unwrap().name,
            "a"
        );
        assert_eq!(
            model
                .service_by_cluster_ip("10.96.0.10".parse().unwrap())
                .unwrap()
                .name,
            "s"
        );
    }

    #[test]
    fn array_and_v1beta1_slices_are_accepted() {
        let text = r#"[{"apiVersion":"discovery.k8s.io/v1beta1","kind":"EndpointSlice","metadata":{"name":"s-1","namespace":"default","labels":{"kubernetes.io/service-name":"s"}},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"]}],"ports":[{"port":80}]}]"#;
        let objects = parse_str(text).unwrap();
        assert_eq!(objects.endpoint_slices.len(), 1);
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse_str("{\n  \"kind\": \"List\",\n  \"items\": [,]\n}").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, FileError::Syntax { line: 3, .. }), "{text}");
        assert!(text.contains("snap.json"), "{text}");
        assert!(text.contains("line 3, column"), "{text}");
    }

    #[test]
    fn yaml_is_refused_with_the_command_to_use() {
        let text = parse_str("apiVersion: v1\nkind: List\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("is not JSON"), "{text}");
        assert!(text.contains("-o json"), "{text}");
    }

    #[test]
    fn malformed_object_names_kind_name_and_position() {
        let text = r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","namespace":"ns"},"spec":{"containers":"nope"}}]}"#;
        let err = parse_str(text).unwrap_err().to_string();
        assert!(err.contains("document 1, item 1 (Pod ns/p)"), "{err}");
        assert!(err.contains("not a valid Pod"), "{err}");
    }

    #[test]
    fn empty_and_kindless_inputs_are_refused() {
        assert!(matches!(
            parse_str("").unwrap_err(),
            FileError::Empty { .. }
        ));
        assert!(matches!(
            parse_str(r#"{"kind":"List","items":[]}"#).unwrap_err(),
            FileError::Empty { .. }
        ));
        assert!(matches!(
            parse_str(r#"{"metadata":{}}"#).unwrap_err(),
            FileError::NotAnObject { .. }
        ));
        assert!(matches!(
            parse_str("42").unwrap_err(),
            FileError::NotAnObject { .. }
        ));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = read(Path::new("/nonexistent/cluster.json")).unwrap_err();
        assert!(matches!(err, FileError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/cluster.json"));
    }
}
