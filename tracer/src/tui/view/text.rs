//! Text helpers shared by the panes: display widths, truncation, wrapping, and the short
//! forms of times, addresses and names.

use std::net::Ipv4Addr;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::{
    clock::format_duration,
    journey::model::{Direction, Endpoints, Journey, Named, Verdict},
};

pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// At most `max` columns of `s`, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// At most `max` columns of `s`, cut in the middle (`nginx-te…f5-abcde`): the end of a Pod
/// name tells replicas apart.
pub fn truncate_middle(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    if max < 5 {
        return truncate(s, max);
    }
    let keep = max - 1;
    let tail = keep.div_ceil(2);
    let head = keep - tail;
    // By display width, so wide or multi-byte characters (`→`) are never split.
    let take = |chars: &mut dyn Iterator<Item = char>, room: usize| {
        let mut used = 0;
        chars
            .take_while(|c| {
                used += c.width().unwrap_or(0);
                used <= room
            })
            .collect::<Vec<char>>()
    };
    let start: String = take(&mut s.chars(), head).into_iter().collect();
    let end: String = take(&mut s.chars().rev(), tail).into_iter().rev().collect();
    format!("{start}…{end}")
}

/// `from → to` in at most `cols` columns, shortening the longer name first.
pub fn from_to(from: &str, to: &str, cols: usize) -> String {
    let arrow = " → ";
    let room = cols.saturating_sub(width(arrow));
    let (fw, tw) = (width(from), width(to));
    if fw + tw <= room {
        return format!("{from}{arrow}{to}");
    }
    let half = room / 2;
    let (fmax, tmax) = if fw <= half {
        (fw, room - fw)
    } else if tw <= room - half {
        (room - tw, tw)
    } else {
        (half, room - half)
    };
    format!(
        "{}{arrow}{}",
        truncate_middle(from, fmax),
        truncate_middle(to, tmax)
    )
}

/// Exactly `cols` columns: truncated, then padded with spaces on the right.
pub fn fit(s: &str, cols: usize) -> String {
    let mut out = truncate(s, cols);
    let w = width(&out);
    out.extend(std::iter::repeat_n(' ', cols.saturating_sub(w)));
    out
}

/// Exactly `cols` columns, right-aligned.
pub fn fit_right(s: &str, cols: usize) -> String {
    let t = truncate(s, cols);
    let pad = cols.saturating_sub(width(&t));
    let mut out: String = std::iter::repeat_n(' ', pad).collect();
    out.push_str(&t);
    out
}

/// Word-wraps `s` into lines of at most `cols` columns; words longer than a line are cut.
pub fn wrap(s: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let sep = usize::from(!line.is_empty());
        if width(&line) + sep + width(word) <= cols {
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        let mut rest = word;
        while width(rest) > cols {
            let mut cut = 0;
            let mut used = 0;
            for (i, c) in rest.char_indices() {
                let w = c.width().unwrap_or(0);
                if used + w > cols {
                    break;
                }
                used += w;
                cut = i + c.len_utf8();
            }
            if cut == 0 {
                break;
            }
            lines.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        line.push_str(rest);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `09:41:12.000` from the RFC 3339 `started_at`.
pub fn clock(started_at: &str) -> String {
    started_at
        .get(11..23)
        .filter(|s| s.as_bytes().get(2) == Some(&b':'))
        .map_or_else(|| truncate(started_at, 12), str::to_owned)
}

pub fn duration(ns: u64) -> String {
    format_duration(ns)
}

/// `10.244.102.137:41234`, or just the address for port 0.
pub fn endpoint(ip: Ipv4Addr, port: u16) -> String {
    if port == 0 {
        ip.to_string()
    } else {
        format!("{ip}:{port}")
    }
}

pub fn tuple(e: &Endpoints) -> String {
    format!(
        "{} → {}",
        endpoint(e.src, e.sport),
        endpoint(e.dst, e.dport)
    )
}

/// `default/nettest` → `nettest`.
pub fn short(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// `nettest → svc/nginx-test`, in at most `cols` columns.
pub fn route(j: &Journey, cols: usize) -> String {
    from_to(&label(&j.from), &label(&j.to), cols)
}

pub fn label(n: &Named) -> String {
    let l = n.label();
    if l.is_empty() { "?".to_owned() } else { l }
}

/// A name with its address and node: `nettest (10.244.102.137, cpu2)`.
pub fn named_long(n: &Named) -> String {
    let mut extra = Vec::new();
    if let Some(ip) = n.ip {
        extra.push(ip.to_string());
    }
    if let Some(node) = &n.node {
        extra.push(format!("on {node}"));
    }
    let mut name = match (&n.pod, &n.service) {
        (Some(pod), _) => pod.to_string(),
        (None, Some(svc)) => format!("svc/{svc}"),
        (None, None) => String::new(),
    };
    if name.is_empty() {
        return extra.join(", ");
    }
    if !extra.is_empty() {
        name.push_str(&format!(" ({})", extra.join(", ")));
    }
    name
}

pub fn direction(d: Direction, long: bool) -> &'static str {
    match (d, long) {
        (Direction::Request, true) => "request",
        (Direction::Reply, true) => "reply",
        (Direction::Related, true) => "related",
        (Direction::Request, false) => "req",
        (Direction::Reply, false) => "rep",
        (Direction::Related, false) => "rel",
    }
}

pub fn verdict_symbol(v: Verdict) -> &'static str {
    match v {
        Verdict::Delivered => "✓",
        Verdict::Dropped => "✗",
        Verdict::Incomplete => "?",
    }
}

/// `tcp SYN`, `icmp echo-reply`.
pub fn protocol(j: &Journey) -> String {
    if j.summary.is_empty() {
        j.protocol.to_string()
    } else {
        format!("{} {}", j.protocol, j.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_and_pads() {
        assert_eq!(truncate("nginx-test", 5), "ngin…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit("→→→→→", 3), "→→…");
        assert_eq!(fit_right("7", 3), "  7");
    }

    #[test]
    fn shortens_names_in_the_middle() {
        assert_eq!(
            truncate_middle("nginx-test-7d9c4b6f5-abcde", 15),
            "nginx-t…5-abcde"
        );
        assert_eq!(
            from_to("nginx-test-7d9c4b6f5-abcde", "nettest", 28),
            "nginx-te…6f5-abcde → nettest"
        );
        assert_eq!(from_to("a", "b", 28), "a → b");
        assert_eq!(truncate_middle("a → b → c → d", 9), "a → … → d");
        assert!(width(&truncate_middle("x→→→→→→→→→→y", 7)) <= 7);
        assert!(
            width(&from_to(
                "nginx-test-7d9c4b6f5-abcde",
                "nginx-test-7d9c4b6f5-q7m2x",
                28
            )) <= 28
        );
    }

    #[test]
    fn wraps_words_and_cuts_long_ones() {
        assert_eq!(wrap("a bb ccc", 4), vec!["a bb", "ccc"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), vec![""]);
    }

    #[test]
    fn clock_from_rfc3339() {
        assert_eq!(clock("2026-05-20T09:41:12.123456Z"), "09:41:12.123");
        assert_eq!(clock("garbage"), "garbage");
    }
}
