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
//! `kind` into typed objects, each turned at once into the rows the model keeps (and
//! dropped): the file is read as a stream, so memory follows what naming needs, not the
//! file's size. Other kinds (Endpoints, Events, …) are skipped.
//!
//! Errors name the file and, for JSON syntax, the line and column; for an object of a known
//! kind that does not have that kind's shape, its position, kind and name.

use std::path::{Path, PathBuf};

use serde::{
    Deserialize, Deserializer,
    de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value};

use super::{
    lean::{LeanItem, LeanNode, LeanPod, LeanService, LeanSlice},
    model::{ModelRows, RowsBuilder},
};

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
    #[error("the cluster file {}, line {line}, column {column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the cluster file {}: lists nested more than {MAX_NESTING} deep", path.display())]
    TooDeep { path: PathBuf },
    #[error("the cluster file {} holds no Pods, Services, EndpointSlices or Nodes (make it with `{HOW_TO_MAKE}`)", path.display())]
    Empty { path: PathBuf },
}

/// Reads the cluster file at `path`. Objects are read one at a time, and only the rows naming
/// needs are kept: a 140 MB file of 50,000 Pods loads in about a second and peaks at the
/// file's size plus tens of MB (reading it from memory is twice as fast as streaming it).
pub fn read(path: &Path) -> Result<ModelRows, FileError> {
    let bytes = std::fs::read(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    rows(
        serde_json::Deserializer::from_slice(&bytes).into_iter::<Document>(),
        path,
    )
}

/// Parses cluster-file text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<ModelRows, FileError> {
    rows(
        serde_json::Deserializer::from_str(text).into_iter::<Document>(),
        path,
    )
}

fn rows<'de, R: serde_json::de::Read<'de>>(
    documents: serde_json::StreamDeserializer<'de, R, Document>,
    path: &Path,
) -> Result<ModelRows, FileError> {
    let mut rows = RowsBuilder::default();
    for (n, document) in documents.enumerate() {
        let document = document.map_err(|e| {
            if e.is_io() {
                FileError::Read {
                    path: path.to_owned(),
                    source: std::io::Error::other(e.to_string()),
                }
            } else if e.is_data() {
                // JSON, but an object of a known kind with a field of the wrong shape.
                FileError::Invalid {
                    path: path.to_owned(),
                    line: e.line(),
                    column: e.column(),
                    message: syntax_message(&e),
                }
            } else {
                FileError::Syntax {
                    path: path.to_owned(),
                    line: e.line(),
                    column: e.column(),
                    message: syntax_message(&e),
                }
            }
        })?;
        if let Some(failure) = document.failure {
            return Err(failure.error(path, n + 1));
        }
        rows.merge(document.rows);
    }
    if rows.is_empty() {
        return Err(FileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(rows.finish())
}

/// serde_json's message without its trailing " at line L column C" (we print our own).
fn syntax_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// What one JSON document of the file held: rows, or why it is not a cluster file.
#[derive(Default)]
struct Document {
    rows: RowsBuilder,
    failure: Option<Failure>,
}

/// A document that is JSON but not what a cluster file holds; `what` says where in it.
enum Failure {
    NotAnObject(String),
    BadObject {
        what: String,
        kind: String,
        message: String,
    },
    TooDeep,
}

impl Failure {
    fn error(self, path: &Path, document: usize) -> FileError {
        let path = path.to_owned();
        let at = |what: String| format!("document {document}{what}");
        match self {
            Self::NotAnObject(what) => FileError::NotAnObject {
                path,
                what: at(what),
            },
            Self::BadObject {
                what,
                kind,
                message,
            } => FileError::BadObject {
                path,
                what: at(what),
                kind,
                message,
            },
            Self::TooDeep => FileError::TooDeep { path },
        }
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut document = Document::default();
        deserializer.deserialize_any(Walk {
            document: &mut document,
            implied: None,
            depth: 0,
            what: String::new(),
        })?;
        Ok(document)
    }
}

/// Visits one value of a document as it is read: a list's items are taken one at a time
/// (an item that names its own kind at once; one that does not once the list's kind is
/// known), any other object whole.
struct Walk<'a> {
    document: &'a mut Document,
    /// The kind a typed list implies for its items (`PodList` → `Pod`).
    implied: Option<String>,
    depth: usize,
    /// Where this value is, for messages (", item 3").
    what: String,
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object or list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            i += 1;
            let item = Walk {
                document: &mut *self.document,
                implied: self.implied.clone(),
                depth: self.depth + 1,
                what: format!("{}, item {i}", self.what),
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_NESTING {
            self.document.failure.get_or_insert(Failure::TooDeep);
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let mut fields = Map::new();
        let mut kindless = Vec::new();
        let mut listed = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                listed = true;
                map.next_value_seed(Items {
                    document: &mut *self.document,
                    kindless: &mut kindless,
                    depth: self.depth,
                    what: &self.what,
                })?;
            } else {
                let value: Value = map.next_value()?;
                fields.insert(key, value);
            }
        }
        if self.document.failure.is_some() {
            return Ok(());
        }
        let kind = fields
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or(self.implied);
        let document = self.document;
        match kind {
            Some(kind) if listed && kind.ends_with("List") => {
                let implied = kind.strip_suffix("List").filter(|k| !k.is_empty());
                for (what, item) in kindless {
                    match implied {
                        Some(implied) => object(document, Json::Text(&item), implied, &what),
                        None => {
                            document.failure =
                                Some(Failure::NotAnObject(format!("{what} (it has no \"kind\")")));
                        }
                    }
                }
            }
            Some(kind) => object(document, Json::Map(fields), &kind, &self.what),
            None => {
                document.failure = Some(Failure::NotAnObject(format!(
                    "{} (it has no \"kind\")",
                    self.what
                )));
            }
        }
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.not_an_object()
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.not_an_object()
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.not_an_object()
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.not_an_object()
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.not_an_object()
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.not_an_object()
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Walk<'_> {
    fn not_an_object<E>(self) -> Result<(), E> {
        self.document
            .failure
            .get_or_insert(Failure::NotAnObject(self.what));
        Ok(())
    }
}

/// A list's `items`, read one at a time.
struct Items<'a> {
    document: &'a mut Document,
    /// Items without a kind of their own, kept (as text) until the list's kind is read.
    kindless: &'a mut Vec<(String, String)>,
    depth: usize,
    what: &'a str,
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            i += 1;
            let what = if self.what.is_empty() {
                format!("item {i}")
            } else {
                format!("{}, item {i}", self.what)
            };
            // Each item is read in one pass into the lean form of its kind (a field of the
            // wrong shape is an error at its line and column).
            let item = seq.next_element::<LeanItem>()?;
            let Some(item) = item else {
                return Ok(());
            };
            if self.document.failure.is_some() {
                continue;
            }
            let rows = &mut self.document.rows;
            match item {
                LeanItem::Pod(p) => rows.pod(&p.into_k8s()),
                LeanItem::Service(s) => rows.service(&s.into_k8s()),
                LeanItem::Slice(s) => rows.slice(&s.into_k8s()),
                LeanItem::Node(n) => rows.node(&n.into_k8s()),
                LeanItem::List(items) => {
                    for (j, value) in items.into_iter().enumerate() {
                        let what = format!("{what}, item {}", j + 1);
                        walk_value(self.document, value, None, self.depth + 2, &what);
                    }
                }
                LeanItem::Other => {}
                LeanItem::Kindless(text) => self.kindless.push((what, text)),
            }
        }
    }
}

/// One value already read whole: a list (kind `List`/`…List`, or an array) or an object.
fn walk_value(
    document: &mut Document,
    value: Value,
    implied: Option<&str>,
    depth: usize,
    what: &str,
) {
    if document.failure.is_some() {
        return;
    }
    if depth > MAX_NESTING {
        document.failure = Some(Failure::TooDeep);
        return;
    }
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                walk_value(
                    document,
                    item,
                    None,
                    depth + 1,
                    &format!("{what}, item {}", i + 1),
                );
            }
        }
        Value::Object(mut map) => {
            let kind = map
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| implied.map(str::to_owned));
            match (kind, map.remove("items")) {
                (Some(kind), Some(Value::Array(items))) if kind.ends_with("List") => {
                    let implied = kind.strip_suffix("List").filter(|k| !k.is_empty());
                    for (i, item) in items.into_iter().enumerate() {
                        let what = format!("{what}, item {}", i + 1);
                        walk_value(document, item, implied, depth + 1, &what);
                    }
                }
                (Some(kind), items) => {
                    if let Some(items) = items {
                        map.insert("items".to_owned(), items);
                    }
                    object(document, Json::Map(map), &kind, what);
                }
                (None, _) => {
                    document.failure =
                        Some(Failure::NotAnObject(format!("{what} (it has no \"kind\")")));
                }
            }
        }
        _ => document.failure = Some(Failure::NotAnObject(what.to_owned())),
    }
}

/// An object's JSON: its text, or a map already read.
enum Json<'a> {
    Text(&'a str),
    Map(Map<String, Value>),
}

/// An object of one of the four kinds becomes rows; other kinds are skipped.
fn object(document: &mut Document, json: Json<'_>, kind: &str, what: &str) {
    let rows = &mut document.rows;
    let result = match kind {
        "Pod" => lean(json, kind, what).map(|p: LeanPod| rows.pod(&p.into_k8s())),
        "Service" => lean(json, kind, what).map(|s: LeanService| rows.service(&s.into_k8s())),
        "EndpointSlice" => lean(json, kind, what).map(|s: LeanSlice| rows.slice(&s.into_k8s())),
        "Node" => lean(json, kind, what).map(|n: LeanNode| rows.node(&n.into_k8s())),
        _ => Ok(()),
    };
    if let Err(failure) = result {
        document.failure = Some(failure);
    }
}

/// Reads the fields naming needs of an object of `kind`.
fn lean<T: DeserializeOwned>(json: Json<'_>, kind: &str, what: &str) -> Result<T, Failure> {
    let (read, name) = match json {
        Json::Text(text) => (
            serde_json::from_str::<T>(text),
            serde_json::from_str::<NameOf>(text)
                .map(|n| n.describe())
                .unwrap_or_default(),
        ),
        Json::Map(map) => {
            let name = object_name(&map);
            (serde_json::from_value::<T>(Value::Object(map)), name)
        }
    };
    read.map_err(|e| Failure::BadObject {
        what: format!("{what} ({kind} {name})"),
        kind: kind.to_owned(),
        message: e.to_string(),
    })
}

/// An object's name, for messages.
#[derive(Deserialize, Default)]
#[serde(default)]
struct NameOf {
    metadata: NameMeta,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NameMeta {
    name: Option<String>,
    namespace: Option<String>,
}

impl NameOf {
    fn describe(self) -> String {
        match (self.metadata.namespace, self.metadata.name) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name,
            _ => "without a name".to_owned(),
        }
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

    fn parse_str(text: &str) -> Result<ModelRows, FileError> {
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
        let rows = parse_str(&text).unwrap();
        assert_eq!(rows.pods.len(), 1);
        assert_eq!(rows.nodes.len(), 1);
        assert_eq!(rows.services.len(), 1);
        let model = crate::k8s::ClusterModel::from_rows(rows);
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
        let rows = parse_str(
            &text.replace(
                "[{\"apiVersion\"",
                "[{\"kind\":\"Service\",\"metadata\":{\"name\":\"s\",\"namespace\":\"default\"},\"spec\":{\"clusterIP\":\"10.96.0.9\",\"ports\":[{\"port\":80}]}},{\"apiVersion\"",
            ),
        )
        .unwrap();
        assert_eq!(
            rows.services[0].endpoints.len(),
            1,
            "the v1beta1 slice's endpoint"
        );
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
        let text = r#"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p","namespace":"ns"},"status":{"podIP":5}}]}"#;
        let err = parse_str(text).unwrap_err().to_string();
        assert!(err.contains("snap.json, line 1, column"), "{err}");
        assert!(err.contains("invalid type: integer `5`"), "{err}");
        // One given as a single object is named.
        let text =
            r#"{"kind":"Pod","metadata":{"name":"p","namespace":"ns"},"status":{"podIP":5}}"#;
        let err = parse_str(text).unwrap_err().to_string();
        assert!(err.contains("(Pod ns/p) is not a valid Pod"), "{err}");
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
