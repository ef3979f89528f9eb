//! The selected journey drawn as a path: its diagnosis, then one line per hop — time since
//! the previous hop, a mark, the hop kind, what happened — and indented lines for what
//! changed there (NAT before → after with the kube-proxy chain and "endpoint 2 of 3", the
//! VXLAN outer header, the drop hint). A rule with the node's name separates nodes.
//!
//! Marks: `●` a hook saw the packet; `~` tracer inferred the hop (NAT, route; dim); `?`
//! an expected hop nobody saw (yellow, "not observed" — a gap, never a drop); `✗` the
//! kernel dropped it (red).

use ratatui::{
    Frame,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Theme, text};
use crate::{
    journey::model::{Hop, HopKind, Journey},
    tui::state::{Focus, State},
};

const DELTA: usize = 9;
const KIND: usize = 13;
/// Columns before the "what" text: cursor, delta, space, mark, space, kind, space.
const INDENT: usize = 1 + DELTA + 1 + 1 + 1 + KIND + 1;

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let focused = state.focus() == Focus::Path;
    let journey = state.selected_journey();
    let title = journey.map_or_else(|| " Path ".to_owned(), |j| title(j, state));
    let block = super::pane(title, focused, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(journey) = journey else {
        let hint = Line::from(Span::styled(
            "  select a journey (↑/↓) to see its path",
            theme.muted(),
        ));
        frame.render_widget(Paragraph::new(hint), inner);
        return;
    };
    let w = usize::from(inner.width);
    let h = usize::from(inner.height);
    // The diagnosis: up to three lines in a tall pane, one in a short one.
    let diagnosis_rows = match h {
        0..=9 => 1,
        10..=15 => 2,
        _ => 3,
    };
    let mut lines: Vec<Line<'static>> = diagnosis(journey, w, diagnosis_rows, theme);
    let room = h.saturating_sub(lines.len());
    let cursor = focused.then(|| state.hop_cursor());
    let body = hop_lines(journey, w, cursor, state.stepping(), theme);
    let anchor = cursor.or(state.stepping()).unwrap_or(0);
    let offset = body.scroll_to(anchor, room);
    lines.extend(body.lines.into_iter().skip(offset).take(room));
    frame.render_widget(Paragraph::new(lines), inner);
}

fn title(j: &Journey, state: &State) -> String {
    let observed = j.hops.iter().filter(|h| h.observed).count();
    let mut t = format!(
        " Path #{} · {} · {} hops ({} observed) · {} ",
        j.id,
        text::protocol(j),
        j.hops.len(),
        observed,
        text::duration(j.duration_ns)
    );
    if let Some(step) = state.stepping() {
        t.push_str(&format!(
            "· step {}/{} (. next, Esc all) ",
            step + 1,
            j.hops.len()
        ));
    }
    t
}

/// The diagnosis in at most `rows` lines, ending in `…` when cut.
fn diagnosis(j: &Journey, w: usize, rows: usize, theme: Theme) -> Vec<Line<'static>> {
    let style = theme.verdict(j.verdict);
    let symbol = text::verdict_symbol(j.verdict);
    let cols = w.saturating_sub(1);
    let mut wrapped = text::wrap(&format!("{symbol} {}", j.diagnosis), cols);
    if wrapped.len() > rows {
        wrapped.truncate(rows.max(1));
        if let Some(last) = wrapped.last_mut() {
            *last = text::truncate(&format!("{last} …"), cols);
            if !last.ends_with('…') {
                last.push('…');
            }
        }
    }
    wrapped
        .into_iter()
        .map(|l| Line::from(Span::styled(format!(" {l}"), style)))
        .collect()
}

pub struct HopLines {
    pub lines: Vec<Line<'static>>,
    /// For each hop shown, its first line (its node rule, if it starts a node) and one
    /// past its last.
    spans: Vec<(usize, usize)>,
}

impl HopLines {
    /// The first line to show in `room` lines so that `hop` is on screen with as many hops
    /// before it as fit, starting at a hop (or node rule), never mid-hop.
    pub fn scroll_to(&self, hop: usize, room: usize) -> usize {
        let Some(&(start, end)) = self.spans.get(hop).or(self.spans.last()) else {
            return 0;
        };
        if end <= room {
            return 0;
        }
        self.spans
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s <= start)
            .find(|s| end - s <= room)
            .unwrap_or(start)
    }
}

/// How a hop is drawn: its mark and style.
fn class(hop: &Hop, theme: Theme) -> (&'static str, Style) {
    match hop.kind {
        HopKind::Drop => ("✗", theme.dropped()),
        HopKind::NotObserved => ("?", theme.not_observed()),
        HopKind::RouteDecision if hop.route.as_ref().is_some_and(|r| &*r.kind == "none") => {
            (if hop.observed { "●" } else { "~" }, theme.warning())
        }
        _ if !hop.observed => ("~", theme.inferred()),
        _ => ("●", theme.text()),
    }
}

/// The lines of a journey's hops, `w` columns wide. `cursor` highlights a hop; while
/// stepping, hops after the step are not shown yet.
pub fn hop_lines(
    j: &Journey,
    w: usize,
    cursor: Option<usize>,
    step: Option<usize>,
    theme: Theme,
) -> HopLines {
    let mut lines = Vec::new();
    let mut spans = Vec::new();
    let mut node: Option<&str> = None;
    let what_width = w.saturating_sub(INDENT).max(10);
    let shown = step.map_or(j.hops.len(), |s| (s + 1).min(j.hops.len()));
    for (i, hop) in j.hops.iter().enumerate().take(shown) {
        let start = lines.len();
        if let Some(n) = hop.node.as_deref()
            && node != Some(n)
        {
            node = Some(n);
            let rule = format!("── {n} ");
            let fill = w.saturating_sub(text::width(&rule));
            lines.push(Line::from(Span::styled(
                format!("{rule}{}", "─".repeat(fill)),
                theme.node_rule(),
            )));
        }
        let delta = match i {
            0 => "+0 ns".to_owned(),
            _ => {
                let d = hop.t_ns.saturating_sub(j.hops[i - 1].t_ns);
                if d == 0 {
                    String::new()
                } else {
                    format!("+{}", text::duration(d))
                }
            }
        };
        let (mark, style) = class(hop, theme);
        let highlighted = cursor == Some(i) || (cursor.is_none() && step == Some(i));
        let (what, changes) = describe(hop);
        let mut what_lines = text::wrap(&what, what_width).into_iter();
        let first = what_lines.next().unwrap_or_default();
        let mut spans_first = vec![
            Span::raw(if highlighted { "▶" } else { " " }),
            Span::styled(text::fit_right(&delta, DELTA), theme.muted()),
            Span::raw(" "),
            Span::styled(mark, style),
            Span::raw(" "),
            Span::styled(text::fit(hop.kind.label(), KIND), style),
            Span::raw(" "),
            Span::styled(first, style),
        ];
        if highlighted {
            for s in &mut spans_first {
                s.style = s.style.patch(theme.selected());
            }
        }
        lines.push(Line::from(spans_first));
        let pad = " ".repeat(INDENT);
        for more in what_lines {
            lines.push(Line::from(vec![
                Span::raw(pad.clone()),
                Span::styled(more, style),
            ]));
        }
        for change in changes {
            for l in text::wrap(&change, what_width) {
                lines.push(Line::from(vec![
                    Span::raw(pad.clone()),
                    Span::styled(l, change_style(hop, theme)),
                ]));
            }
        }
        spans.push((start, lines.len()));
    }
    if shown < j.hops.len() {
        lines.push(Line::from(Span::styled(
            format!(
                "  ⋯ {} more hops: . steps on, Esc shows all",
                j.hops.len() - shown
            ),
            theme.muted(),
        )));
    }
    HopLines { lines, spans }
}

fn change_style(hop: &Hop, theme: Theme) -> Style {
    if hop.kind == HopKind::Drop {
        theme.dropped()
    } else {
        theme.change()
    }
}

/// What happened at a hop, in one line, and what changed there.
pub fn describe(h: &Hop) -> (String, Vec<String>) {
    let iface = h.interface.as_deref();
    let pod = h.pod.as_deref().map(text::short);
    let what = match h.kind {
        HopKind::PodEgress => pod.zip(iface).map(|(p, i)| format!("{p} sends via {i}")),
        HopKind::PodDelivery => pod.zip(iface).map(|(p, i)| format!("into {p} via {i}")),
        HopKind::VethCrossing => iface
            .zip(h.peer.as_deref())
            .map(|(i, p)| format!("{i} ⇄ {p}")),
        HopKind::ServiceDnat => h.nat.as_ref().map(|n| {
            let svc = n
                .service
                .as_deref()
                .map_or_else(|| "DNAT".to_owned(), |s| format!("svc/{}", text::short(s)));
            let to = n
                .endpoint_pod
                .as_deref()
                .map_or_else(|| n.after.dst.to_string(), |p| text::short(p).to_owned());
            format!("{svc} → {to}")
        }),
        HopKind::ReplyUndnat => Some(h.service.as_deref().map_or_else(
            || "conntrack: source back to the Service".to_owned(),
            |s| format!("conntrack: source back to svc/{}", text::short(s)),
        )),
        HopKind::Snat => Some("masquerade (source rewritten)".to_owned()),
        HopKind::ReplyUnsnat => Some("conntrack: destination back".to_owned()),
        HopKind::RouteDecision => h.route.as_ref().map(|r| r.text.to_string()),
        HopKind::Encapsulation | HopKind::Decapsulation => h
            .encap
            .as_ref()
            .map(|e| format!("{} VNI {}", e.device, e.vni)),
        HopKind::NodeEgress | HopKind::NodeIngress => {
            let verb = if h.kind == HopKind::NodeEgress {
                "leaves"
            } else {
                "arrives on"
            };
            h.node
                .as_deref()
                .zip(iface)
                .map(|(n, i)| format!("{verb} {n} via {i}"))
        }
        HopKind::Drop => h.drop.as_ref().map(|d| match &d.interface {
            Some(i) => format!("{} at {i}", d.reason),
            None => d.reason.to_string(),
        }),
        HopKind::NotObserved | HopKind::IcmpError | HopKind::LeftTracedScope => None,
    };
    let what = what.filter(|w| !w.is_empty()).unwrap_or_else(|| {
        if h.note.is_empty() {
            h.kind.label().to_owned()
        } else {
            h.note.to_string()
        }
    });
    (what, changes(h))
}

fn changes(h: &Hop) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = &h.nat {
        if n.before.dst != n.after.dst || n.before.dport != n.after.dport {
            out.push(format!(
                "dst {} → {}",
                text::endpoint(n.before.dst, n.before.dport),
                text::endpoint(n.after.dst, n.after.dport)
            ));
        }
        if n.before.src != n.after.src || n.before.sport != n.after.sport {
            out.push(format!(
                "src {} → {}",
                text::endpoint(n.before.src, n.before.sport),
                text::endpoint(n.after.src, n.after.sport)
            ));
        }
        let mut rule = Vec::new();
        if let Some(c) = &n.chain {
            rule.push(c.to_string());
        }
        if let (Some(i), Some(t)) = (n.endpoint_index, n.endpoints_total) {
            rule.push(format!("endpoint {i} of {t}"));
        }
        if !rule.is_empty() {
            out.push(rule.join(" · "));
        }
    }
    if let Some(e) = &h.encap {
        let mut parts = Vec::new();
        if let (Some(s), Some(d)) = (e.outer_src, e.outer_dst) {
            parts.push(format!("outer {s} → {d}"));
        }
        if h.kind == HopKind::NodeEgress || h.kind == HopKind::NodeIngress {
            // On the uplink: the outer header the wire carries.
            parts.push(format!("VXLAN VNI {}", e.vni));
        } else {
            parts.push(format!("UDP {}", e.udp_port));
        }
        if let Some(m) = e.mtu {
            parts.push(format!("MTU {m}"));
        }
        out.push(parts.join(" · "));
    }
    if let Some(d) = &h.drop
        && !d.hint.is_empty()
    {
        out.push(d.hint.to_string());
    }
    out
}
