//! The audit for people: terminal text (verdict first, one line per control, then the evidence that
//! matters) and Markdown for a ticket or a wiki. Both are built only from the `Audit` document.

use std::io::{self, Write};

use crate::audit::{Audit, ControlVerdict, Verdict};
use crate::inspect::secrets::redact_text;
use crate::units::human_bytes;

/// Evidence lines printed per control in text output.
const TEXT_EVIDENCE_PER_CONTROL: usize = 5;

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn verdict(&self, v: ControlVerdict) -> String {
        let word = format!("{:<14}", v.as_str());
        match v {
            ControlVerdict::Pass => self.paint("32", &word),
            ControlVerdict::NotApplicable => self.paint("2", &word),
            ControlVerdict::Finding => self.paint("33", &word),
            ControlVerdict::Inconclusive => self.paint("35", &word),
            ControlVerdict::Violation => self.paint("1;31", &word),
        }
    }
}

/// One sentence on what the overall verdict means.
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
        Verdict::Violation => {
            let ids: Vec<_> = audit
                .controls
                .iter()
                .filter(|c| c.verdict == ControlVerdict::Violation)
                .map(|c| c.id.as_str())
                .collect();
            format!("rules broken: {}", ids.join(", "))
        }
        Verdict::Inconclusive => "the capture is not complete enough to judge".to_string(),
    };
    format!("{why}; {volume}")
}

/// Writes the terminal report.
pub fn write_text(w: &mut dyn Write, audit: &Audit, color: bool) -> io::Result<()> {
    let style = Style { color };
    let verdict = audit.verdict.as_str().to_uppercase();
    let painted = match audit.verdict {
        Verdict::Compliant => style.paint("1;32", &verdict),
        Verdict::Findings => style.paint("1;33", &verdict),
        Verdict::Violation => style.paint("1;31", &verdict),
        Verdict::Inconclusive => style.paint("1;35", &verdict),
    };
    writeln!(
        w,
        "dg-audit verdict: {painted} (exit {})",
        audit.verdict.exit_code()
    )?;
    writeln!(w, "  {}", redact_text(&verdict_sentence(audit)))?;
    let c = &audit.capture;
    let files: Vec<_> = audit.inputs.iter().map(|i| i.path.as_str()).collect();
    writeln!(
        w,
        "  {} | {} .. {} ({:.0} s) | {} packets | policy sha256:{}",
        files.join(", "),
        c.start,
        c.end,
        c.duration_seconds,
        c.packets,
        audit
            .policy_sha256
            .get(..12)
            .unwrap_or(&audit.policy_sha256)
    )?;
    let l = &audit.licensing;
    if !l.per_minute.is_empty() {
        writeln!(
            w,
            "  licensing: {} connection(s) from {} ({}), {} egress, pattern {}",
            l.connections,
            l.sources.join(", "),
            l.sources.len(),
            human_bytes(l.egress_ip_bytes),
            l.pattern
        )?;
    }
    writeln!(w)?;
    for control in &audit.controls {
        writeln!(
            w,
            "  {:<11} {} {}",
            control.id,
            style.verdict(control.verdict),
            redact_text(&control.summary)
        )?;
    }
    let noteworthy: Vec<_> = audit
        .controls
        .iter()
        .filter(|c| {
            matches!(
                c.verdict,
                ControlVerdict::Violation | ControlVerdict::Finding | ControlVerdict::Inconclusive
            ) && !c.evidence.is_empty()
        })
        .collect();
    if !noteworthy.is_empty() {
        writeln!(w)?;
        writeln!(w, "Evidence:")?;
    }
    for control in noteworthy {
        writeln!(w, "  {} ({}):", control.id, control.verdict.as_str())?;
        for e in control.evidence.iter().take(TEXT_EVIDENCE_PER_CONTROL) {
            let uids = if e.flow_uids.is_empty() {
                String::new()
            } else {
                format!(
                    " [{}{}]",
                    e.flow_uids
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                    if e.flow_uids.len() > 3 { " ..." } else { "" }
                )
            };
            writeln!(w, "    - {}{}", redact_text(&e.what), uids)?;
        }
        let more = control
            .evidence
            .len()
            .saturating_sub(TEXT_EVIDENCE_PER_CONTROL) as u64
            + control.evidence_omitted;
        if more > 0 {
            writeln!(w, "    ... and {more} more (see --format json)")?;
        }
    }
    Ok(())
}

/// Writes the audit as Markdown.
pub fn write_markdown(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    writeln!(w, "# dg-audit: {}", audit.verdict.as_str())?;
    writeln!(w)?;
    writeln!(w, "{}", redact_text(&verdict_sentence(audit)))?;
    writeln!(w)?;
    let c = &audit.capture;
    writeln!(w, "| | |\n|---|---|")?;
    writeln!(
        w,
        "| Period | {} .. {} ({:.0} s) |",
        c.start, c.end, c.duration_seconds
    )?;
    writeln!(
        w,
        "| Packets | {} ({} drops, {} truncated) |",
        c.packets, c.capture_drops, c.truncated_frames
    )?;
    for input in &audit.inputs {
        writeln!(w, "| Input | `{}` sha256 `{}` |", input.path, input.sha256)?;
    }
    writeln!(w, "| Policy | sha256 `{}` |", audit.policy_sha256)?;
    writeln!(w, "| Tool | {} {} |", audit.tool.name, audit.tool.version)?;
    writeln!(w)?;
    writeln!(w, "## Controls\n")?;
    writeln!(w, "| Control | Verdict | Summary |\n|---|---|---|")?;
    for control in &audit.controls {
        writeln!(
            w,
            "| {} | {} | {} |",
            control.id,
            control.verdict.as_str(),
            redact_text(&control.summary).replace('|', "\\|")
        )?;
    }
    for control in audit.controls.iter().filter(|c| !c.evidence.is_empty()) {
        writeln!(w, "\n### {} ({})\n", control.id, control.verdict.as_str())?;
        writeln!(w, "{}\n", control.rule)?;
        for e in &control.evidence {
            let when = e.ts.map(|t| format!("{t}: ")).unwrap_or_default();
            let uids = if e.flow_uids.is_empty() {
                String::new()
            } else {
                format!(
                    " (flows {})",
                    e.flow_uids
                        .iter()
                        .take(5)
                        .map(|u| format!("`{u}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            writeln!(w, "- {when}{}{uids}", redact_text(&e.what))?;
        }
        if control.evidence_omitted > 0 {
            writeln!(w, "- ... and {} more", control.evidence_omitted)?;
        }
    }
    let l = &audit.licensing;
    if !l.per_minute.is_empty() {
        writeln!(w, "\n## Licensing per minute\n")?;
        writeln!(w, "| Minute | Source | Egress IP bytes | Egress payload bytes | Connections |\n|---|---|---|---|---|")?;
        for m in &l.per_minute {
            writeln!(
                w,
                "| {} | {} | {} | {} | {} |",
                m.start, m.source, m.egress_ip_bytes, m.egress_payload_bytes, m.connections
            )?;
        }
    }
    Ok(())
}
