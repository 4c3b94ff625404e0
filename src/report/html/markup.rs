//! Small pieces of HTML the page and the charts share: escaping (every string taken from an
//! audit goes through [`text`]), verdict chips and their CSS classes, and numbers and times as
//! the page prints them.

use crate::audit::{ControlVerdict, Verdict};
use crate::inspect::secrets::redact_text;
use crate::units::human_bytes;

/// Redacts, then HTML-escapes, a string taken from an audit.
pub fn text(s: &str) -> String {
    escape(&redact_text(s))
}

/// HTML-escapes a string (text and attribute values alike).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The CSS class of an overall verdict (`style.css` colours it).
pub fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Compliant => "pass",
        Verdict::Findings => "finding",
        Verdict::Violation => "violation",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// The CSS class of a control's verdict.
pub fn control_class(v: ControlVerdict) -> &'static str {
    match v {
        ControlVerdict::Pass => "pass",
        ControlVerdict::NotApplicable => "na",
        ControlVerdict::Finding => "finding",
        ControlVerdict::Inconclusive => "inconclusive",
        ControlVerdict::Violation => "violation",
    }
}

/// A control verdict as a coloured chip.
pub fn chip(v: ControlVerdict) -> String {
    let word = match v {
        ControlVerdict::NotApplicable => "n/a",
        v => v.as_str(),
    };
    format!("<span class=\"chip {}\">{word}</span>", control_class(v))
}

/// An overall verdict as a coloured chip.
pub fn chip_verdict(v: Verdict) -> String {
    format!(
        "<span class=\"chip {}\">{}</span>",
        verdict_class(v),
        v.as_str()
    )
}

/// `5,312,456`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for a table cell: readable, with the exact count beside it past 1000.
pub fn bytes_cell(n: u64) -> String {
    if n < 1000 {
        format!("{n} B")
    } else {
        format!(
            "{} <span class=\"muted\">({} B)</span>",
            human_bytes(n),
            grouped(n)
        )
    }
}

/// `2024-05-01 12:00:05Z` from an RFC 3339 time with microseconds.
pub fn short_time(t: &str) -> String {
    match (t.get(..10), t.get(11..19)) {
        (Some(d), Some(hms)) => format!("{d} {hms}Z"),
        _ => t.to_string(),
    }
}

/// `a, b, c`, or `none`.
pub fn join_or_none<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(text("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn redacts_before_escaping() {
        let key = "f1037f690e1c05405b0a71b8fc1df3d453b1bcad";
        let out = text(&format!("key <{key}>"));
        assert!(!out.contains(key), "{out}");
        assert!(out.contains("f103...bcad"), "{out}");
    }

    #[test]
    fn groups_digits() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(5_312_456), "5,312,456");
    }
}
