//! The detail pane: every field of the hop under the cursor when the path has the focus,
//! or of the selected journey when the list has it.

use ratatui::{
    Frame,
    layout::Rect,
    style::Style,
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph},
};

use super::{Theme, text};
use crate::{
    journey::model::{Hop, HopKind, Journey},
    tui::state::{Focus, State},
};

const LABEL: usize = 10;

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let journey = state.selected_journey();
    let hop_view = state.focus() == Focus::Path;
    let (title, fields) = match journey {
        None => (" Details ".to_owned(), Vec::new()),
        Some(j) if hop_view => {
            let i = state.hop_cursor();
            match j.hops.get(i) {
                Some(hop) => (
                    format!(" Hop {} of {} · {} ", i + 1, j.hops.len(), hop.kind.label()),
                    hop_fields(j, i, hop),
                ),
                None => (" Hop ".to_owned(), Vec::new()),
            }
        }
        Some(j) => (format!(" Journey #{} ", j.id), journey_fields(j)),
    };
    let block = Block::new()
        // Beside the path it needs a left edge; under it, the top rule is enough.
        .borders(if area.x > 0 {
            Borders::TOP | Borders::LEFT
        } else {
            Borders::TOP
        })
        .title(Span::styled(title, theme.title()))
        .border_style(theme.rule());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let w = usize::from(inner.width);
    let mut lines = Vec::new();
    for (label, value, emphasis) in fields {
        let style = match emphasis {
            Emphasis::Plain => theme.text(),
            Emphasis::Drop => theme.dropped(),
            Emphasis::Missing => theme.not_observed(),
            Emphasis::Inferred => theme.inferred(),
        };
        push_field(&mut lines, &label, &value, w, theme.label(), style);
    }
    if lines.is_empty() {
        lines.push(Line::from(Span::styled(" nothing selected", theme.muted())));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

#[derive(Clone, Copy)]
enum Emphasis {
    Plain,
    Drop,
    Missing,
    Inferred,
}

type Field = (String, String, Emphasis);

fn field(label: &str, value: impl AsRef<str>) -> Field {
    (label.to_owned(), value.as_ref().to_owned(), Emphasis::Plain)
}

fn push_field(
    lines: &mut Vec<Line<'static>>,
    label: &str,
    value: &str,
    w: usize,
    label_style: Style,
    style: Style,
) {
    let room = w.saturating_sub(LABEL + 2).max(8);
    for (k, part) in text::wrap(value, room).into_iter().enumerate() {
        let l = if k == 0 { label } else { "" };
        lines.push(Line::from(vec![
            Span::styled(format!(" {}", text::fit(l, LABEL)), label_style),
            Span::raw(" "),
            Span::styled(part, style),
        ]));
    }
}

fn journey_fields(j: &Journey) -> Vec<Field> {
    let observed = j.hops.iter().filter(|h| h.observed).count();
    let mut f = vec![
        (
            "verdict".to_owned(),
            format!("{} {}", text::verdict_symbol(j.verdict), j.verdict.as_str()),
            match j.verdict {
                crate::journey::model::Verdict::Dropped => Emphasis::Drop,
                crate::journey::model::Verdict::Incomplete => Emphasis::Missing,
                crate::journey::model::Verdict::Delivered => Emphasis::Plain,
            },
        ),
        field(
            "packet",
            format!("{} {}", text::protocol(j), text::tuple(&j.original)),
        ),
        field("direction", text::direction(j.direction, true)),
        field("from", text::named_long(&j.from)),
        field("to", text::named_long(&j.to)),
        field("started", j.started_at.clone()),
        field("took", text::duration(j.duration_ns)),
        field(
            "hops",
            format!(
                "{} ({observed} observed, {} inferred or missing)",
                j.hops.len(),
                j.hops.len() - observed
            ),
        ),
        field("length", format!("{} bytes", j.length)),
    ];
    if let Some(d) = &j.drop {
        f.push((
            "drop".to_owned(),
            format!("{} (reason {})", d.reason, d.reason_code),
            Emphasis::Drop,
        ));
        f.push(("hint".to_owned(), d.hint.to_string(), Emphasis::Drop));
    }
    f.push(field("diagnosis", j.diagnosis.clone()));
    f.push(field("id", j.id.to_string()));
    f
}

fn hop_fields(j: &Journey, i: usize, h: &Hop) -> Vec<Field> {
    let (seen, emphasis) = match (h.kind, h.observed) {
        (HopKind::NotObserved, _) => ("no hook saw it (not a drop)", Emphasis::Missing),
        (HopKind::Drop, _) => ("the kernel dropped it", Emphasis::Drop),
        (_, true) => ("observed", Emphasis::Plain),
        (_, false) => ("inferred by tracer", Emphasis::Inferred),
    };
    let mut f = vec![(
        "kind".to_owned(),
        format!("{} · {seen}", h.kind.label()),
        emphasis,
    )];
    // What changed here first: it is why the hop matters; then what tracer knows it from.
    changed(&mut f, h);
    if let Some(from) = &h.inferred_from {
        f.push(("from".to_owned(), from.to_string(), Emphasis::Inferred));
    }
    let delta = i
        .checked_sub(1)
        .and_then(|p| j.hops.get(p))
        .map(|p| h.t_ns.saturating_sub(p.t_ns))
        .filter(|d| *d > 0)
        .map(|d| format!(" (Δ +{})", text::duration(d)))
        .unwrap_or_default();
    f.push(field("time", format!("+{}{delta}", text::duration(h.t_ns))));
    opt(&mut f, "node", h.node.clone());
    opt(
        &mut f,
        "interface",
        h.interface.as_ref().map(|n| match h.ifindex {
            Some(ix) => format!("{n} (ifindex {ix})"),
            None => n.to_string(),
        }),
    );
    opt(&mut f, "peer", h.peer.clone());
    opt(&mut f, "pod", h.pod.clone());
    opt(&mut f, "service", h.service.clone());
    opt(&mut f, "packet", h.packet.as_ref().map(text::tuple));
    let said = h.route.as_ref().is_some_and(|r| r.text == h.note);
    if !h.note.is_empty() && !said {
        f.push(field("note", h.note.clone()));
    }
    f
}

fn opt(f: &mut Vec<Field>, label: &str, v: Option<impl AsRef<str>>) {
    if let Some(v) = v {
        f.push(field(label, v));
    }
}

/// NAT, route, VXLAN and drop fields.
fn changed(f: &mut Vec<Field>, h: &Hop) {
    if let Some(d) = &h.drop {
        f.push((
            "drop".to_owned(),
            format!("{} (reason {})", d.reason, d.reason_code),
            Emphasis::Drop,
        ));
        f.push(("hint".to_owned(), d.hint.to_string(), Emphasis::Drop));
    }
    if let Some(n) = &h.nat {
        f.push(field("before", text::tuple(&n.before)));
        f.push(field("after", text::tuple(&n.after)));
        opt(
            f,
            "service",
            n.service.clone().filter(|s| h.service.as_ref() != Some(s)),
        );
        opt(f, "endpoint", n.endpoint_pod.clone());
        if let (Some(i), Some(t)) = (n.endpoint_index, n.endpoints_total) {
            f.push(field("position", format!("endpoint {i} of {t}")));
        }
        opt(f, "chain", n.chain.clone());
        opt(f, "svc chain", n.service_chain.clone());
        // Labels fit the column (10): the nftables and IPVS mode's own names.
        opt(f, "nft chain", n.nft_chain.clone());
        opt(f, "nft svc", n.nft_service_chain.clone());
        opt(f, "ipvs vs", n.ipvs_virtual_server.clone());
        opt(f, "ipvs rs", n.ipvs_real_server.clone());
        opt(f, "kube-proxy", n.proxy_mode.map(|m| m.name().to_owned()));
        if let Some(ct) = &n.conntrack {
            f.push(field("conntrack", text::tuple(&ct.original)));
            f.push(field("ct reply", text::tuple(&ct.reply)));
        }
    }
    if let Some(r) = &h.route {
        let style = if &*r.kind == "none" {
            Emphasis::Drop
        } else {
            Emphasis::Plain
        };
        f.push(("route".to_owned(), r.text.to_string(), style));
        opt(f, "prefix", r.prefix.clone());
        opt(f, "gateway", r.gateway.map(|g| g.to_string()));
        opt(f, "dev", r.dev.clone());
        let proto = r
            .protocol
            .as_deref()
            .map(|p| format!(", proto {p}"))
            .unwrap_or_default();
        f.push(field("table", format!("{}, {}{proto}", r.table, r.kind)));
        opt(f, "MTU", r.mtu.map(|m| m.to_string()));
    }
    if let Some(e) = &h.encap {
        f.push(field(
            "VXLAN",
            format!("VNI {} on {}, UDP {}", e.vni, e.device, e.udp_port),
        ));
        if let (Some(s), Some(d)) = (e.outer_src, e.outer_dst) {
            f.push(field("outer", format!("{s} → {d}")));
        }
        opt(f, "MTU", e.mtu.map(|m| m.to_string()));
    }
}
