//! AUDIO: no audio-shaped egress.
//!
//! The point of self-hosting is that audio stays inside. Audio leaving would look like one of:
//! any upload to hosted transcription; a WebSocket or a `/listen` request in clear (the streaming
//! transcription API); a licensing minute big enough to be speech
//! (`sustained_upload_bytes_per_minute` IP bytes or more: the licensing channel has no reason to
//! carry that even once); or any egress flow uploading at least that many payload bytes in two
//! consecutive minutes. The summary bounds how much speech the measured licensing bytes could
//! carry, so a pass says how little could have left.

use super::{destination_label, flow_evidence, result};
use crate::audit::classify::{Classified, Direction, FlowClass};
use crate::audit::{speech_seconds, ControlId, ControlResult, ControlVerdict, Evidence, Licensing};
use crate::policy::Policy;
use crate::units::{human_bytes, rfc3339, NANOS};

/// Runs AUDIO over the classified flows and the licensing measures.
pub(super) fn audio(
    flows: &[Classified<'_>],
    policy: &Policy,
    licensing: &Licensing,
) -> ControlResult {
    let rule = "No audio-shaped egress (sustained uploads, WebSocket or POST to a transcription endpoint); the licensing channel's capacity for speech is bounded from measured bytes.";
    let threshold = policy.audio.sustained_upload_bytes_per_minute;
    let evidence: Vec<_> = flows
        .iter()
        .filter(|c| c.direction == Direction::Egress || c.class != FlowClass::NotEgress)
        .filter_map(|c| audio_shape(c, threshold))
        .collect();
    let bound = speech_bound(licensing);
    if evidence.is_empty() {
        result(
            ControlId::Audio,
            rule,
            ControlVerdict::Pass,
            format!("no audio-shaped egress; {bound}"),
            evidence,
        )
    } else {
        result(
            ControlId::Audio,
            rule,
            ControlVerdict::Violation,
            format!("{} audio-shaped egress flow(s); {bound}", evidence.len()),
            evidence,
        )
    }
}

/// The first audio shape one egress flow has, as evidence (at most one line per flow).
fn audio_shape(c: &Classified<'_>, threshold: u64) -> Option<Evidence> {
    let f = c.flow;
    if c.class == FlowClass::HostedTranscription && f.orig_bytes > 0 {
        let how = match f.http.first() {
            Some(h) if h.websocket => format!("WebSocket {} {}", h.method, h.target),
            Some(h) => format!("{} {}", h.method, h.target),
            None => "TLS session".into(),
        };
        return Some(flow_evidence(
            c,
            format!(
                "{how} to hosted transcription {}: {} uploaded",
                destination_label(c),
                human_bytes(f.orig_bytes)
            ),
        ));
    }
    if let Some(h) = f
        .http
        .iter()
        .find(|h| h.websocket || h.target.contains("/listen"))
    {
        return Some(flow_evidence(
            c,
            format!(
                "{} {} in clear to {} (a transcription endpoint)",
                h.method,
                h.target,
                destination_label(c)
            ),
        ));
    }
    // The licensing channel has no reason to carry an audio-sized minute, even once.
    if c.is_licensing_egress() {
        if let Some(m) = f.minutes.iter().find(|m| m.orig_ip_bytes >= threshold) {
            let pcm = speech_seconds(m.orig_ip_bytes, 256.0);
            return Some(flow_evidence(
                c,
                format!(
                    "{} of licensing egress to {} in the minute from {}: enough for {pcm:.0} s of 16 kHz PCM speech",
                    human_bytes(m.orig_ip_bytes),
                    destination_label(c),
                    rfc3339(m.start * NANOS)
                ),
            ));
        }
    }
    let sustained = f.minutes.windows(2).any(|w| {
        w[1].start == w[0].start + 60
            && w[0].orig_bytes >= threshold
            && w[1].orig_bytes >= threshold
    });
    sustained.then(|| {
        flow_evidence(
            c,
            format!(
                "sustained upload to {}: {} over {} minute(s)",
                destination_label(c),
                human_bytes(f.orig_bytes),
                f.minutes.len()
            ),
        )
    })
}

/// How much speech a minute the measured licensing bytes could carry, in words.
fn speech_bound(licensing: &Licensing) -> String {
    match (licensing.audio_bound.first(), licensing.per_minute.is_empty()) {
        (Some(b), false) => format!(
            "at the measured p99 of {} per minute the licensing channel could carry at most {:.1} s of {} kbit/s speech per minute (max minute {}: {:.1} s)",
            human_bytes(licensing.ip_bytes_per_minute.p99),
            b.seconds_per_minute_at_p99,
            b.codec_kbps,
            human_bytes(licensing.ip_bytes_per_minute.max),
            speech_seconds(licensing.ip_bytes_per_minute.max, b.codec_kbps),
        ),
        _ => "no licensing traffic to bound".into(),
    }
}
