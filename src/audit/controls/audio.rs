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

#[cfg(test)]
mod tests {
    use super::super::test_support::{classified, flow, licensing, policy, slice, T0};
    use super::*;
    use crate::audit::minutes::{licensing_minutes, stats};
    use crate::audit::{audio_bounds, Timestamp};
    use crate::flow::record::HttpSummary;
    use crate::flow::FlowRecord;

    fn run(flows: &[FlowRecord]) -> ControlResult {
        let p = policy("");
        assert_eq!(p.audio.sustained_upload_bytes_per_minute, 60_000);
        audio(&classified(flows, &p), &p, &Licensing::default())
    }

    #[test]
    fn small_licensing_passes_with_the_speech_bound() {
        let p = policy("");
        let flows = [licensing("CLic", T0, 1500)];
        let c = classified(&flows, &p);
        let per_minute = licensing_minutes(&c);
        let ip = stats(&per_minute, |m| m.egress_ip_bytes);
        let measured = Licensing {
            audio_bound: audio_bounds(&[6.0], &ip),
            ip_bytes_per_minute: ip,
            per_minute,
            ..Licensing::default()
        };
        let r = audio(&c, &p, &measured);
        assert_eq!(r.verdict, ControlVerdict::Pass);
        assert!(r.evidence.is_empty());
        assert_eq!(
            r.summary,
            "no audio-shaped egress; at the measured p99 of 1.5 KB per minute the licensing \
             channel could carry at most 2.0 s of 6 kbit/s speech per minute (max minute 1.5 KB: \
             2.0 s)"
        );
        assert_eq!(
            run(&flows).summary,
            "no audio-shaped egress; no licensing traffic to bound"
        );
    }

    #[test]
    fn a_websocket_to_hosted_transcription_is_a_violation() {
        let mut ws = flow("CWs", T0, Some("api.deepgram.com"));
        ws.orig_bytes = 1_200_000;
        ws.orig_ip_bytes = 1_250_000;
        ws.http = vec![HttpSummary {
            method: "GET".into(),
            target: "/v1/listen".into(),
            host: Some("api.deepgram.com".into()),
            content_length: None,
            websocket: true,
            status: Some(101),
        }];
        let r = run(&[ws]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(r.evidence.len(), 1);
        let e = &r.evidence[0];
        assert_eq!(
            e.what,
            "WebSocket GET /v1/listen to hosted transcription api.deepgram.com (203.0.113.10:443): 1.2 MB uploaded"
        );
        assert_eq!(e.flow_uids, ["CWs"]);
        assert_eq!(e.bytes, Some(1_250_000));
        assert_eq!(e.ts, Some(Timestamp(T0)));
    }

    #[test]
    fn a_licensing_minute_of_exactly_the_threshold_is_audio_sized() {
        // Current rule: `>=` the threshold (policy text says "above"; see the split's report).
        assert_eq!(
            run(&[licensing("CUnder", T0, 59_999)]).verdict,
            ControlVerdict::Pass
        );
        let r = run(&[licensing("CAt", T0, 60_000)]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(
            r.evidence[0].what,
            "60.0 KB of licensing egress to license.deepgram.com (203.0.113.10:443) in the minute \
             from 2023-11-14T22:14:00.000000Z: enough for 2 s of 16 kHz PCM speech"
        );
        assert_eq!(r.evidence[0].flow_uids, ["CAt"]);
        assert_eq!(r.evidence[0].bytes, Some(60_000));
    }

    #[test]
    fn sustained_uploads_need_two_consecutive_minutes_at_the_threshold() {
        let upload = |uid: &str, second_start: i64, second_bytes: u64| {
            let mut f = flow(uid, T0, None);
            let mut a = slice(1_700_000_040, 0);
            a.orig_bytes = 60_000;
            let mut b = slice(second_start, 0);
            b.orig_bytes = second_bytes;
            f.minutes = vec![a, b];
            f.orig_bytes = 60_000 + second_bytes;
            f
        };
        let r = run(&[upload("CSustained", 1_700_000_100, 60_000)]);
        assert_eq!(r.verdict, ControlVerdict::Violation);
        assert_eq!(
            r.evidence[0].what,
            "sustained upload to 203.0.113.10:443: 120.0 KB over 2 minute(s)"
        );
        assert_eq!(r.evidence[0].flow_uids, ["CSustained"]);
        // A minute apart, or one byte short in the second minute: not sustained.
        assert_eq!(
            run(&[upload("CApart", 1_700_000_160, 60_000)]).verdict,
            ControlVerdict::Pass
        );
        assert_eq!(
            run(&[upload("CShort", 1_700_000_100, 59_999)]).verdict,
            ControlVerdict::Pass
        );
    }
}
