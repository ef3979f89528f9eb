//! `labelSelector` and `fieldSelector` query parameters, parsed and matched as the API
//! server does for the common forms.
//!
//! Labels: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by
//! commas (all must hold). Fields: `path=v`, `path==v`, `path!=v` joined by commas, where
//! the path is a dotted field path such as `metadata.name` or `spec.nodeName`, looked up
//! in the object's JSON (a missing field reads as ""). The real server accepts only a few
//! fields per kind; the lab accepts any, which is a superset.

use std::collections::BTreeMap;

use serde_json::Value;

use super::objects::Object;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0:?}")]
    Requirement(String),
    #[error("unbalanced parentheses in {0:?}")]
    Parentheses(String),
    #[error("invalid field selector: {0:?}")]
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, SelectorError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError::Parentheses(s.to_owned()))?;
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError::Parentheses(s.to_owned()));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn set_of(s: &str, original: &str) -> Result<Vec<String>, SelectorError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| SelectorError::Requirement(original.to_owned()))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn requirement(part: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError::Requirement(part.to_owned());
    let p = part.trim();
    let req = if let Some((k, v)) = p.split_once("!=") {
        Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
    } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
        Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
    } else if let Some(k) = p.strip_prefix('!') {
        Requirement::DoesNotExist(k.trim().to_owned())
    } else if let Some((k, rest)) = p.split_once(" notin ") {
        Requirement::NotIn(k.trim().to_owned(), set_of(rest, part)?)
    } else if let Some((k, rest)) = p.split_once(" in ") {
        Requirement::In(k.trim().to_owned(), set_of(rest, part)?)
    } else {
        Requirement::Exists(p.to_owned())
    };
    let key = match &req {
        Requirement::Equals(k, _)
        | Requirement::NotEquals(k, _)
        | Requirement::In(k, _)
        | Requirement::NotIn(k, _)
        | Requirement::Exists(k)
        | Requirement::DoesNotExist(k) => k,
    };
    if valid_key(key) { Ok(req) } else { Err(bad()) }
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        split_top_level(s)?
            .into_iter()
            .map(requirement)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    path: Vec<String>,
    value: String,
    equal: bool,
}

/// A parsed `fieldSelector`; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldRequirement>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        s.split(',')
            .map(|part| {
                let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                    (f, v, false)
                } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('='))
                {
                    (f, v, true)
                } else {
                    return Err(SelectorError::Field(part.to_owned()));
                };
                let path: Vec<String> = field.trim().split('.').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return Err(SelectorError::Field(part.to_owned()));
                }
                Ok(FieldRequirement {
                    path,
                    value: value.trim().to_owned(),
                    equal,
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The name this selector pins with `metadata.name=…`, if any.
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equal && r.path == ["metadata", "name"])
            .map(|r| r.value.as_str())
    }

    /// This selector and `metadata.name=<name>`.
    pub fn with_name(mut self, name: &str) -> Self {
        self.0.push(FieldRequirement {
            path: vec!["metadata".to_owned(), "name".to_owned()],
            value: name.to_owned(),
            equal: true,
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Matches against the object's JSON form.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|r| {
            let found = r
                .path
                .iter()
                .try_fold(object, |v, segment| v.get(segment.as_str()));
            let text = match found {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (text == r.value) == r.equal
        })
    }
}

/// Which objects a list or watch is about: one namespace or all, and the selectors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn matches(&self, object: &Object) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object.namespace() == ns)
            && self.labels.matches(object.metadata().labels.as_ref())
            && (self.fields.is_empty() || self.fields.matches(&object.to_json()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn label_selectors_match_like_kubernetes() {
        let l = labels(&[("app", "nginx-test"), ("pod-template-hash", "7d9c4b6f5")]);
        let m = |s: &str| LabelSelector::parse(s).expect(s).matches(Some(&l));
        assert!(m(""));
        assert!(m("app=nginx-test"));
        assert!(m("app==nginx-test,pod-template-hash"));
        assert!(!m("app=webapp"));
        assert!(m("app!=webapp"));
        assert!(m("app in (webapp, nginx-test)"));
        assert!(!m("app notin (webapp,nginx-test)"));
        assert!(m("!run"));
        assert!(!m("!app"));
        assert!(!LabelSelector::parse("run").expect("exists").matches(None));
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
        assert!(LabelSelector::parse(")").is_err());
    }

    #[test]
    fn field_selectors_read_the_objects_json() {
        let pod = serde_json::json!({
            "metadata": {"name": "nettest", "namespace": "default"},
            "spec": {"nodeName": "cpu2"},
        });
        let m = |s: &str| FieldSelector::parse(s).expect(s).matches(&pod);
        assert!(m("metadata.name=nettest"));
        assert!(m("metadata.name==nettest,spec.nodeName=cpu2"));
        assert!(!m("spec.nodeName=cpu1"));
        assert!(m("spec.nodeName!=cpu1"));
        assert!(m("status.podIP="));
        assert_eq!(
            FieldSelector::parse("metadata.name=x")
                .expect("parse")
                .name(),
            Some("x")
        );
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("metadata..name=x").is_err());
    }
}
