//! `analyze`'s terminal text: the verdict first, one line per control, then the evidence that
//! matters. Built only from the audit document; colour only when asked (a terminal).
//!
//! Invariants: every string taken from the audit is redacted before it is written.

use std::io::{self, Write};

use crate::audit::{Audit, ControlResult, ControlVerdict, Verdict};
use crate::inspect::secrets::redact_text;
use crate::report::prose::verdict_sentence;
use crate::units::human_bytes;

/// Evidence lines printed per control in text output.
const TEXT_EVIDENCE_PER_CONTROL: usize = 5;
/// Flow uids printed per evidence line.
const TEXT_UIDS_PER_LINE: usize = 3;

/// ANSI colouring, or none (off a terminal, or NO_COLOR).
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

    fn overall(&self, v: Verdict) -> String {
        let word = v.as_str().to_uppercase();
        match v {
            Verdict::Compliant => self.paint("1;32", &word),
            Verdict::Findings => self.paint("1;33", &word),
            Verdict::Violation => self.paint("1;31", &word),
            Verdict::Inconclusive => self.paint("1;35", &word),
        }
    }
}

/// Writes the terminal report.
pub fn write_text(w: &mut dyn Write, audit: &Audit, color: bool) -> io::Result<()> {
    let style = Style { color };
    write_header(w, audit, &style)?;
    for control in &audit.controls {
        writeln!(
            w,
            "  {:<11} {} {}",
            control.id,
            style.verdict(control.verdict),
            redact_text(&control.summary)
        )?;
    }
    write_evidence(w, audit)
}

/// The verdict, its sentence, the capture and the licensing line.
fn write_header(w: &mut dyn Write, audit: &Audit, style: &Style) -> io::Result<()> {
    writeln!(
        w,
        "dg-audit verdict: {} (exit {})",
        style.overall(audit.verdict),
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
    writeln!(w)
}

/// The first evidence items of every control that did not pass (the JSON has them all).
fn write_evidence(w: &mut dyn Write, audit: &Audit) -> io::Result<()> {
    let noteworthy: Vec<&ControlResult> = audit
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
            writeln!(
                w,
                "    - {}{}",
                redact_text(&e.what),
                uid_list(&e.flow_uids)
            )?;
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

/// ` [uid1 uid2 uid3 ...]`, or nothing for evidence without flows.
fn uid_list(uids: &[String]) -> String {
    if uids.is_empty() {
        return String::new();
    }
    format!(
        " [{}{}]",
        uids.iter()
            .take(TEXT_UIDS_PER_LINE)
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        if uids.len() > TEXT_UIDS_PER_LINE {
            " ..."
        } else {
            ""
        }
    )
}
