//! The sentences and words that the text, Markdown and HTML reports share: what the verdict rests
//! on, licensing volume against the promise and the budget, the audio bound, durations as a
//! person reads them, and the report time.
//!
//! Invariants: every function here is a function of the audit document alone (and of the
//! report time given), so each format says the same thing in the same words. This module sits
//! below every writer: text, markdown and html import it, it imports none of them.

use crate::audit::{Audit, ControlVerdict, Verdict};
use crate::inspect::secrets::redact_text;
use crate::report::merge::Merged;
use crate::units::{human_bytes, rfc3339};

/// Control ids with a given verdict, in audit order.
pub fn ids_with(audit: &Audit, verdict: ControlVerdict) -> Vec<&str> {
    audit
        .controls
        .iter()
        .filter(|c| c.verdict == verdict)
        .map(|c| c.id.as_str())
        .collect()
}

/// Seconds as a person reads them: `42 s`, `12.5 min`, `3.1 h`.
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.1} s")
    } else if seconds < 5400.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

/// One sentence on what the overall verdict means, lower case, as `analyze` prints it under the
/// verdict (terminal text and Markdown).
pub fn verdict_sentence(audit: &Audit) -> String {
    let l = &audit.licensing;
    let volume = if l.per_minute.is_empty() {
        "no licensing traffic was seen".to_string()
    } else {
        format!(
            "licensing sent at most {} a minute per host (p50 {}) against a promise of a few KB and a budget of {}",
            human_bytes(l.ip_bytes_per_minute.max),
            human_bytes(l.ip_bytes_per_minute.p50),
            human_bytes(audit.policy.licensing.max_egress_bytes_per_minute)
        )
    };
    let why = match audit.verdict {
        Verdict::Compliant => "every control passed".to_string(),
        Verdict::Findings => "no rule was broken, but some observations need a look".to_string(),
        Verdict::Violation => format!(
            "rules broken: {}",
            ids_with(audit, ControlVerdict::Violation).join(", ")
        ),
        Verdict::Inconclusive => "the capture is not complete enough to judge".to_string(),
    };
    format!("{why}; {volume}")
}

/// What the verdict rests on, in one clause.
pub fn verdict_clause(audit: &Audit) -> String {
    match audit.verdict {
        Verdict::Compliant => "Every control passed.".into(),
        Verdict::Findings => format!(
            "No rule was broken; observations to review: {}.",
            ids_with(audit, ControlVerdict::Finding).join(", ")
        ),
        Verdict::Violation => format!(
            "Rules broken: {}.",
            ids_with(audit, ControlVerdict::Violation).join(", ")
        ),
        Verdict::Inconclusive => format!(
            "The capture is not complete enough to judge ({}).",
            ids_with(audit, ControlVerdict::Inconclusive).join(", ")
        ),
    }
}

/// Licensing volume against the promise and the budget.
pub fn volume_sentence(audit: &Audit) -> String {
    let l = &audit.licensing;
    let budget = audit.policy.licensing.max_egress_bytes_per_minute;
    if l.per_minute.is_empty() {
        return "No licensing traffic was seen.".into();
    }
    let s = &l.ip_bytes_per_minute;
    let over = if budget > 0 && s.max > budget {
        format!(
            ", {:.0}\u{d7} the budget",
            (s.max as f64 / budget as f64).max(1.0)
        )
    } else {
        String::new()
    };
    format!(
        "Licensing egress was at most {} per host per minute (median {}){over}, against Deepgram's \
         promise of a few KB and the policy budget of {}.",
        human_bytes(s.max),
        human_bytes(s.p50),
        human_bytes(budget)
    )
}

/// The audio-carrying bound: how much speech the licensing channel could have carried.
pub fn audio_sentence(audit: &Audit) -> String {
    let l = &audit.licensing;
    let Some(b) = l.audio_bound.first() else {
        return "No audio bound was computed (the policy lists no codec rate).".into();
    };
    if l.per_minute.is_empty() {
        return "With no licensing traffic, the licensing channel carried no audio.".into();
    }
    format!(
        "At its p99 minute ({}) the licensing channel could carry at most {} of {} kbit/s speech \
         per minute; its largest minute ({}) at most {}.",
        human_bytes(l.ip_bytes_per_minute.p99),
        human_seconds(b.seconds_per_minute_at_p99),
        b.codec_kbps,
        human_bytes(l.ip_bytes_per_minute.max),
        human_seconds(b.seconds_per_minute_at_max),
    )
}

/// The sentence an auditor needs: the verdict's reason, the volume, and the audio bound.
pub fn auditor_sentence(audit: &Audit) -> String {
    redact_text(&format!(
        "{} {} {}",
        verdict_clause(audit),
        volume_sentence(audit),
        audio_sentence(audit)
    ))
}

/// The report time and how it was chosen: the time given (`--generated-at`), else the end of
/// the latest capture, so that the same audits always give the same report.
pub fn report_time(merged: &Merged, generated_at_nanos: Option<i64>) -> (String, &'static str) {
    match generated_at_nanos {
        Some(t) => (rfc3339(t), "given with --generated-at"),
        None => (
            merged.audit.capture.end.clone(),
            "the end of the latest capture",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_well() {
        assert_eq!(human_seconds(1.04), "1.0 s");
        assert_eq!(human_seconds(2650.0), "44.2 min");
        assert_eq!(human_seconds(36000.0), "10.0 h");
    }
}
