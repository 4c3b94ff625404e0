//! One pass over capture files: source -> decode -> flow (with inspection). Offline commands and
//! the live loop share this code; every decision is taken on packet timestamps.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeStats, Decoder};
use crate::flow::{FlowConfig, FlowRecord, FlowStats, FlowTable};
use crate::names::NameBook;
use crate::source::file::{CaptureFile, MergedReader};
use crate::source::filter::FrameFilter;
use crate::source::{FileFacts, Frame, SourceError};

/// Everything one pass produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassSummary {
    pub inputs: Vec<FileFacts>,
    /// Decoder counters, with the pass's frame-order facts: frames whose time ran backwards
    /// (`time_reversals`, the first one's input and record in `first_time_reversal`) and IP
    /// fragments dropped before reassembly. They sit with the decoder because the live watch
    /// builds its summary from the same decoder without a [`Pass`].
    pub decode: DecodeStats,
    pub flow_stats: FlowStats,
    /// First and last packet time, nanoseconds since the epoch (0 when no packet was read).
    pub first_ts_nanos: i64,
    pub last_ts_nanos: i64,
    /// False when an input stopped short (truncation, corruption) or flows were evicted.
    pub complete: bool,
    /// The BPF expression frames were selected with, if any (as tcpdump's trailing expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Frames the filter excluded (they are in no flow and no count above).
    #[serde(default)]
    pub filtered_frames: u64,
}

/// First and last packet time seen, nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    first: i64,
    last: i64,
}

impl Default for Span {
    fn default() -> Self {
        Span {
            first: i64::MAX,
            last: i64::MIN,
        }
    }
}

impl Span {
    /// Widens the span to cover `ts_nanos`.
    pub fn observe(&mut self, ts_nanos: i64) {
        self.first = self.first.min(ts_nanos);
        self.last = self.last.max(ts_nanos);
    }

    /// First and last time, or `None` before any packet.
    pub fn bounds(&self) -> Option<(i64, i64)> {
        (self.first <= self.last).then_some((self.first, self.last))
    }

    /// The newest packet time, or `None` before any packet.
    pub fn last(&self) -> Option<i64> {
        self.bounds().map(|(_, last)| last)
    }
}

/// One pass over frames: decode, then the flow table (with inspection and naming). The offline
/// commands ([`run_files`]) and the live engine both drive a `Pass`, so a packet is handled by
/// exactly the same code wherever it came from. Finished flows go to the `sink` of each call.
pub struct Pass {
    decoder: Decoder,
    table: FlowTable,
    span: Span,
}

impl Pass {
    /// A pass with an empty flow table.
    pub fn new(config: FlowConfig, names: NameBook) -> Pass {
        Pass {
            decoder: Decoder::new(),
            table: FlowTable::new(config, names),
            span: Span::default(),
        }
    }

    /// Decodes one frame and feeds its packets to the flow table.
    pub fn frame(&mut self, frame: &Frame<'_>, sink: &mut impl FnMut(FlowRecord)) {
        self.span.observe(frame.ts_nanos);
        let table = &mut self.table;
        self.decoder
            .decode(frame, &mut |pkt| table.process(pkt, sink));
    }

    /// Notes a frame left out by a filter: it is in no flow, but it still has its place in input
    /// order (time running backwards is judged over every frame read, and record numbers are
    /// the file's).
    pub fn skip_frame(&mut self, frame: &Frame<'_>) {
        self.decoder.observe_order(frame);
    }

    /// Ends every open flow (end of input).
    pub fn finish(&mut self, sink: &mut impl FnMut(FlowRecord)) {
        self.table.finish(sink);
    }

    /// The flow table, for callers that look at open flows (live evaluation).
    pub fn table(&mut self) -> &mut FlowTable {
        &mut self.table
    }

    /// Decoder counters so far.
    pub fn decode_stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }

    /// First and last packet time so far.
    pub fn span(&self) -> Span {
        self.span
    }

    /// What the pass measured over `span` (the packets' own, or a live watch's wider window).
    /// `inputs_complete` is false when an input stopped short; evicted flows also make the pass
    /// incomplete.
    pub fn summary(
        &self,
        inputs: Vec<FileFacts>,
        span: Span,
        inputs_complete: bool,
    ) -> PassSummary {
        let flow_stats = self.table.stats().clone();
        let (first, last) = span.bounds().unwrap_or((0, 0));
        PassSummary {
            inputs,
            decode: self.decoder.stats().clone(),
            complete: inputs_complete && flow_stats.evicted == 0,
            flow_stats,
            first_ts_nanos: first,
            last_ts_nanos: last,
            filter: None,
            filtered_frames: 0,
        }
    }
}

/// Progress reports during a pass: (bytes read, total bytes).
pub type Progress<'p> = &'p mut dyn FnMut(u64, u64);

/// Reads `paths` as one time-ordered stream and passes every finished flow to `sink`.
///
/// Fails only when an input cannot be opened or is not a capture at all; faults inside a file are
/// warnings in the summary (`complete: false`).
pub fn run_files(
    paths: &[PathBuf],
    config: FlowConfig,
    names: NameBook,
    sink: &mut dyn FnMut(FlowRecord),
    progress: Option<Progress<'_>>,
) -> Result<PassSummary, SourceError> {
    run_files_filtered(paths, config, names, None, sink, progress)
}

/// [`run_files`] keeping only the frames a BPF expression selects.
pub fn run_files_filtered(
    paths: &[PathBuf],
    config: FlowConfig,
    names: NameBook,
    filter: Option<&str>,
    sink: &mut dyn FnMut(FlowRecord),
    mut progress: Option<Progress<'_>>,
) -> Result<PassSummary, SourceError> {
    let mut filter = filter.map(FrameFilter::new).transpose()?;
    let mut filtered_frames = 0u64;
    let files = paths
        .iter()
        .map(|p| CaptureFile::open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let readers = files
        .iter()
        .enumerate()
        .map(|(i, f)| f.reader(i))
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = files.iter().map(|f| f.len() as u64).sum();
    // Hashing a file costs about as much as parsing it: do it on another core meanwhile.
    let hashers: Vec<_> = paths
        .iter()
        .cloned()
        .map(|p| std::thread::spawn(move || crate::source::file::sha256_file(&p)))
        .collect();
    let mut merged = MergedReader::new(readers);
    let mut pass = Pass::new(config, names);
    let mut out = |rec: FlowRecord| sink(rec);
    let mut since_progress = 0u32;
    while let Some(frame) = merged.next() {
        if let Some(f) = filter.as_mut() {
            if !f.matches(&frame)? {
                filtered_frames += 1;
                pass.skip_frame(&frame);
                continue;
            }
        }
        pass.frame(&frame, &mut out);
        since_progress += 1;
        if since_progress == 65_536 {
            since_progress = 0;
            if let Some(report) = progress.as_mut() {
                report(merged.position(), total);
            }
        }
    }
    pass.finish(&mut out);
    if let Some(report) = progress.as_mut() {
        report(total, total);
    }
    let mut inputs = merged.into_facts();
    for (facts, hasher) in inputs.iter_mut().zip(hashers) {
        facts.sha256 = hasher.join().map_err(|_| SourceError::Io {
            path: PathBuf::from(&facts.path),
            source: std::io::Error::other("the hashing thread panicked"),
        })??;
    }
    let inputs_complete = inputs.iter().all(|i| !i.incomplete);
    let mut summary = pass.summary(inputs, pass.span(), inputs_complete);
    summary.filter = filter.map(|f| f.expression().to_string());
    summary.filtered_frames = filtered_frames;
    Ok(summary)
}
