//! Packet sources: capture files (classic pcap and pcapng) and, later, live interfaces.
//!
//! A source yields [`Frame`]s that borrow the capture buffer; nothing is copied per packet. Faults
//! inside a file never panic: the frames read before the fault are kept, the fault is reported with
//! the file, the record number and the byte offset, and the run is marked incomplete.

pub mod file;
pub mod filter;
pub mod live;

use std::path::PathBuf;

/// One captured frame, borrowed from its source's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Packet time in nanoseconds since the Unix epoch.
    pub ts_nanos: i64,
    /// Link-layer header type (LINKTYPE_* number from the capture).
    pub link_type: u32,
    /// Captured bytes (possibly fewer than `wire_len` when the snaplen cut the packet).
    pub data: &'a [u8],
    /// Length of the packet on the wire.
    pub wire_len: u32,
    /// Index of the input file in the run.
    pub file_index: usize,
    /// pcapng interface id (0 for classic pcap).
    pub interface: u32,
    /// False for pcapng Simple Packet Blocks, which carry no time: `ts_nanos` is the previous frame's.
    pub has_ts: bool,
}

/// Why a source stopped short or could not be read. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: empty file (0 bytes), not a capture")]
    Empty { path: PathBuf },
    #[error("{path}: not a pcap or pcapng capture (first bytes {magic}); give a file written by tcpdump, tshark or dumpcap")]
    NotACapture { path: PathBuf, magic: String },
    #[error("{path}: file header truncated: {len} bytes, a {format} header needs {needed}")]
    TruncatedHeader {
        path: PathBuf,
        format: &'static str,
        len: usize,
        needed: usize,
    },
    #[error("{path}: record {record} at offset {offset} is cut short: it needs {needed} more bytes than the file holds (truncated capture); {record} records before it were read")]
    TruncatedRecord {
        path: PathBuf,
        record: u64,
        offset: u64,
        needed: usize,
    },
    #[error("{path}: {format} major version {major} unsupported (file says version {major}.{minor}); only version 2 is read, as libpcap, tshark and capinfos do")]
    UnsupportedVersion {
        path: PathBuf,
        format: &'static str,
        major: u16,
        minor: u16,
    },
    #[error("filter {expression:?} cannot be used on link type {link_type}: {message}")]
    BadFilter {
        expression: String,
        link_type: u32,
        message: String,
    },
    #[error("{path}: record {record} at offset {offset} is corrupt: {what}; {record} records before it were read")]
    Corrupt {
        path: PathBuf,
        record: u64,
        offset: u64,
        what: String,
    },
}

/// Facts about one input file that reports need (chain of custody, completeness).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FileFacts {
    pub path: String,
    pub size_bytes: u64,
    /// SHA-256 of the whole file, hex (chain of custody).
    pub sha256: String,
    /// `pcap` or `pcapng`.
    pub format: String,
    /// `le` or `be`.
    pub byte_order: String,
    /// Link types seen in headers (LINKTYPE numbers).
    pub link_types: Vec<u32>,
    pub snaplen: u32,
    pub records: u64,
    /// Frames whose captured length is below their wire length (snaplen cut).
    pub truncated_frames: u64,
    /// Frames whose captured length exceeds the declared snaplen (a writer bug; the data is kept).
    pub frames_over_snaplen: u64,
    /// Packets the capturing system dropped, from pcapng interface statistics (ifdrop + osdrop).
    pub capture_drops: u64,
    /// pcapng blocks of types dg-audit does not use, skipped as the format requires.
    pub skipped_blocks: u64,
    /// Warnings (truncation, corruption) with file, record and offset.
    pub warnings: Vec<String>,
    /// True when reading stopped before the end of the file.
    pub incomplete: bool,
}
