//! Watch streams: a chunked HTTP response carrying one JSON `WatchEvent` per line.
//!
//! Where a watch starts follows the API server's rules:
//! - no `resourceVersion`, or `"0"`: synthetic `ADDED` events for every current object,
//!   then changes from there;
//! - `resourceVersion=N`: every retained change after N (an `ERROR` event with a 410
//!   `Expired` Status when N is older than the history, so clients relist);
//! - `sendInitialEvents=true` (streaming lists): the current objects as `ADDED`, then,
//!   with `allowWatchBookmarks`, a `BOOKMARK` annotated `k8s.io/initial-events-end`.
//!
//! Selectors are applied to each change the way the watch cache does: an object that
//! starts matching arrives as `ADDED`, one that stops matching as `DELETED`. The stream
//! ends after `timeoutSeconds` (default 30 minutes, as the server's minimum request
//! timeout), when the server stops, or when the client goes away. Tables in a watch carry
//! `columnDefinitions` in the first event only; kubectl reuses them for later rows.

use std::{
    io::{self, Write},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{
    http,
    objects::{self, Object},
    render::{self, Format},
    resources::Kind,
    selector::Filter,
    store::{EventType, Expired, Store},
};

/// The timeout when the client gives none (the API server's `--min-request-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a waiting watch checks that it should go on.
const POLL: Duration = Duration::from_millis(250);
/// How long a watch that asked for bookmarks stays silent before getting one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(60);

/// A parsed watch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    pub kind: Kind,
    pub filter: Filter,
    /// Resume after this version; `None` starts from the current state.
    pub after: Option<u64>,
    /// Send the current objects as `ADDED` first (only when `after` is `None`).
    pub initial_events: bool,
    pub bookmarks: bool,
    /// Close the initial events with an `initial-events-end` bookmark.
    pub initial_events_end: bool,
    pub timeout: Duration,
    pub format: Format,
}

struct Stream<'a, W: Write> {
    out: &'a mut W,
    request: &'a WatchRequest,
    /// Whether the next Table still has to carry the column definitions.
    columns_due: bool,
    last_sent: Instant,
}

impl<W: Write> Stream<'_, W> {
    fn send(&mut self, event: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        http::write_chunk(self.out, &line)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn send_object(&mut self, kind: EventType, object: &Object) -> io::Result<()> {
        let event = render::event(
            self.request.format,
            kind,
            object,
            self.columns_due,
            objects::now(),
        );
        if matches!(self.request.format, Format::Table(_)) {
            self.columns_due = false;
        }
        self.send(&event)
    }

    fn send_bookmark(&mut self, version: u64, initial_events_end: bool) -> io::Result<()> {
        let event = render::bookmark(
            self.request.format,
            self.request.kind,
            version,
            initial_events_end,
        );
        self.send(&event)
    }

    fn send_expired(&mut self, expired: Expired) -> io::Result<()> {
        let status = render::status(410, "Expired", &expired.to_string(), None);
        let event = serde_json::json!({
            "type": "ERROR",
            "object": serde_json::to_value(status).unwrap_or(Value::Null),
        });
        self.send(&event)
    }
}

/// Streams the watch to `out` until it times out or `keep_going` says stop. `out` gets the
/// whole chunked response, head included.
pub fn serve<W: Write>(
    out: &mut W,
    store: &Store,
    request: &WatchRequest,
    keep_going: &dyn Fn() -> bool,
) -> io::Result<()> {
    let deadline = Instant::now().checked_add(request.timeout);
    http::write_chunked_head(out, 200, "application/json")?;
    let mut stream = Stream {
        out,
        request,
        columns_due: true,
        last_sent: Instant::now(),
    };
    let filter = &request.filter;
    let mut position = match request.after {
        Some(version) => version,
        None => {
            let (version, objects) = store.list(request.kind);
            if request.initial_events {
                for object in objects.iter().filter(|o| filter.matches(o)) {
                    stream.send_object(EventType::Added, object)?;
                }
            }
            if request.initial_events_end {
                stream.send_bookmark(version, true)?;
            }
            version
        }
    };
    while keep_going() {
        let remaining = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => POLL,
        };
        if remaining.is_zero() {
            break;
        }
        let (version, events) =
            match store.events_after(request.kind, position, remaining.min(POLL)) {
                Ok(found) => found,
                Err(expired) => {
                    stream.send_expired(expired)?;
                    break;
                }
            };
        for event in events {
            let now_matches = filter.matches(&event.object);
            let was_matching = event.previous.as_deref().is_some_and(|p| filter.matches(p));
            match (event.kind, was_matching, now_matches) {
                (EventType::Added, _, true) => {
                    stream.send_object(EventType::Added, &event.object)?
                }
                (EventType::Modified, true, true) => {
                    stream.send_object(EventType::Modified, &event.object)?;
                }
                (EventType::Modified, false, true) => {
                    stream.send_object(EventType::Added, &event.object)?
                }
                (EventType::Modified, true, false) => {
                    // Left the selection: its last matching state, at this event's version.
                    if let Some(previous) = event.previous.as_deref() {
                        let mut gone = previous.clone();
                        gone.metadata_mut().resource_version = Some(event.version.to_string());
                        stream.send_object(EventType::Deleted, &gone)?;
                    }
                }
                (EventType::Deleted, _, true) => {
                    stream.send_object(EventType::Deleted, &event.object)?
                }
                _ => {}
            }
        }
        position = version;
        if request.bookmarks && stream.last_sent.elapsed() >= BOOKMARK_EVERY {
            stream.send_bookmark(position, false)?;
        }
    }
    http::write_last_chunk(stream.out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        api::{
            objects::{Host, build},
            selector::FieldSelector,
        },
        spec::{Cluster, Scenario},
    };

    fn host() -> Host {
        Host {
            created: k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            kernel_version: "6.8.0".to_owned(),
            os_image: "Linux".to_owned(),
            architecture: "amd64",
        }
    }

    fn store(s: Scenario) -> Store {
        Store::new(build(&Cluster::seed(s), &host()))
    }

    fn request(after: Option<u64>) -> WatchRequest {
        WatchRequest {
            kind: Kind::Pod,
            filter: Filter::default(),
            after,
            initial_events: after.is_none(),
            bookmarks: false,
            initial_events_end: false,
            timeout: Duration::from_millis(300),
            format: Format::Object,
        }
    }

    /// The JSON lines of a chunked body.
    fn lines(raw: &[u8]) -> Vec<Value> {
        let text = String::from_utf8_lossy(raw);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        assert!(body.ends_with("0\r\n\r\n"), "stream is terminated");
        body.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_default())
            .collect()
    }

    #[test]
    fn without_a_version_the_current_objects_come_as_added() {
        let store = store(Scenario::Healthy);
        let mut out = Vec::new();
        serve(&mut out, &store, &request(None), &|| true).expect("writes");
        let events = lines(&out);
        assert_eq!(events.len(), 6);
        assert!(
            events
                .iter()
                .all(|e| e["type"] == "ADDED" && e["object"]["kind"] == "Pod")
        );
    }

    #[test]
    fn resuming_replays_changes_and_selectors_turn_them_into_deletes() {
        let store = Arc::new(store(Scenario::Healthy));
        let start = store.version();
        store.replace(build(&Cluster::seed(Scenario::NoEndpoints), &host()));
        let mut out = Vec::new();
        serve(&mut out, &store, &request(Some(start)), &|| true).expect("writes");
        let events = lines(&out);
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e["type"] == "MODIFIED"));
        assert_eq!(
            events[0]["object"]["status"]["containerStatuses"][0]["ready"],
            false
        );

        // A watch of ready Pods only sees them leave.
        let mut ready_only = request(Some(start));
        ready_only.kind = Kind::EndpointSlice;
        ready_only.filter.fields = FieldSelector::parse("addressType=IPv4").expect("parse");
        let mut out = Vec::new();
        serve(&mut out, &store, &ready_only, &|| true).expect("writes");
        assert_eq!(lines(&out).len(), 1);

        let mut by_name = request(Some(start));
        by_name.filter.fields =
            FieldSelector::parse("metadata.name!=nginx-test-7d9c4b6f5-abcde").expect("parse");
        let mut out = Vec::new();
        serve(&mut out, &store, &by_name, &|| true).expect("writes");
        assert_eq!(lines(&out).len(), 2);
    }

    #[test]
    fn tables_carry_columns_only_in_the_first_event() {
        let store = store(Scenario::Healthy);
        let mut r = request(None);
        r.format = Format::Table(crate::api::table::Include::Metadata);
        let mut out = Vec::new();
        serve(&mut out, &store, &r, &|| true).expect("writes");
        let events = lines(&out);
        assert_eq!(events[0]["object"]["kind"], "Table");
        assert!(events[0]["object"]["columnDefinitions"].is_array());
        assert!(events[1]["object"]["columnDefinitions"].is_null());
        assert_eq!(
            events[1]["object"]["rows"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn streaming_lists_end_their_initial_events_with_a_bookmark() {
        let store = store(Scenario::Healthy);
        let mut r = request(None);
        r.bookmarks = true;
        r.initial_events_end = true;
        let mut out = Vec::new();
        serve(&mut out, &store, &r, &|| true).expect("writes");
        let events = lines(&out);
        assert_eq!(events.len(), 7);
        assert_eq!(events[6]["type"], "BOOKMARK");
    }

    #[test]
    fn versions_older_than_the_history_are_expired() {
        let store = Store::with_history(build(&Cluster::seed(Scenario::Healthy), &host()), 4);
        let mut out = Vec::new();
        serve(&mut out, &store, &request(Some(1)), &|| true).expect("writes");
        let events = lines(&out);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["type"], "ERROR");
        assert_eq!(events[0]["object"]["code"], 410);
        assert_eq!(events[0]["object"]["reason"], "Expired");
    }

    #[test]
    fn the_stream_stops_when_told() {
        let store = store(Scenario::Healthy);
        let mut r = request(Some(0));
        r.timeout = Duration::from_secs(3600);
        let started = Instant::now();
        let mut out = Vec::new();
        serve(&mut out, &store, &r, &|| {
            started.elapsed() < Duration::from_millis(100)
        })
        .expect("writes");
        assert!(started.elapsed() < Duration::from_secs(5));
        // Version 0 predates nothing here: all six Pods were added after it.
        assert_eq!(lines(&out).len(), 6);
    }
}
