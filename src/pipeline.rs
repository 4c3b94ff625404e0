//! One pass over capture files: source -> decode -> flow (with inspection). Offline commands and
//! the live loop share this code; every decision is taken on packet timestamps.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::decode::{DecodeStats, Decoder};
use crate::flow::{FlowConfig, FlowRecord, FlowStats, FlowTable};
use crate::names::NameBook;
use crate::source::file::{CaptureFile, MergedReader};
use crate::source::filter::FrameFilter;
use crate::source::{FileFacts, SourceError};

/// Everything one pass produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassSummary {
    pub inputs: Vec<FileFacts>,
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
    progress: Option<Progress<'_>>,
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
    let mut decoder = Decoder::new();
    let mut table = FlowTable::new(config, names);
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut out = |rec: FlowRecord| sink(rec);
    let mut progress = progress;
    let mut since_progress = 0u32;
    while let Some(frame) = merged.next() {
        if let Some(f) = filter.as_mut() {
            if !f.matches(&frame)? {
                filtered_frames += 1;
                continue;
            }
        }
        first = first.min(frame.ts_nanos);
        last = last.max(frame.ts_nanos);
        decoder.decode(&frame, &mut |pkt| table.process(pkt, &mut out));
        since_progress += 1;
        if since_progress == 65_536 {
            since_progress = 0;
            if let Some(report) = progress.as_mut() {
                report(merged.position(), total);
            }
        }
    }
    table.finish(&mut out);
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
    let flow_stats = table.stats().clone();
    let complete = inputs.iter().all(|i| !i.incomplete) && flow_stats.evicted == 0;
    let no_packets = first == i64::MAX;
    Ok(PassSummary {
        inputs,
        decode: decoder.stats().clone(),
        flow_stats,
        first_ts_nanos: if no_packets { 0 } else { first },
        last_ts_nanos: if no_packets { 0 } else { last },
        complete,
        filter: filter.map(|f| f.expression().to_string()),
        filtered_frames,
    })
}
