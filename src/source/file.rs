//! Capture files: classic pcap (both byte orders, microsecond and nanosecond magic, the modified
//! "Kuznetzov" format) and pcapng (any number of sections and interfaces, EPB/SPB/obsolete PB, ISB
//! drop counters). The file is memory-mapped and parsed in place with pcap-parser's block
//! functions, so every [`Frame`] borrows the mapping: no per-packet copy and no read buffer to refill.
//!
//! Hostile input never panics: time arithmetic is checked. A frame whose time falls outside
//! +-2^62 ns of the epoch ([`MAX_ABS_TS_NANOS`]: a timestamp of 2^63 units, an `if_tsoffset` that
//! overflows), so that differences of frame times always fit i64 downstream, is kept with
//! the previous frame's time and a warning naming the file and record (the interface description
//! block for the offset); its bytes still count. An interface option running past its block is a
//! warning naming the block. Classic pcap other than major version 2 is refused, as libpcap does.
//!
//! Pages already parsed are handed back to the kernel as the cursor moves on, so resident memory
//! stays flat however large the file is.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use pcap_parser::pcap::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified};
use pcap_parser::pcapng::{build_ts_resolution, Block};
use pcap_parser::{parse_block_be, parse_block_le, parse_pcap_header, PcapError};

use super::{FileFacts, Frame, SourceError};

use crate::units::NANOS;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_OBSOLETE_PACKET_BLOCK: u32 = 0x0000_0002;
/// libpcap refuses records larger than this (its MAXIMUM_SNAPLEN); a larger caplen means the
/// record header is garbage, not a big packet.
const MAX_PLAUSIBLE_CAPLEN: u32 = 262_144;
/// Frame times are kept within +-2^62 ns of the epoch (years 1824 to 2116), so that the difference
/// of any two frame times, and a time plus any timeout, fits i64 everywhere downstream.
pub const MAX_ABS_TS_NANOS: i64 = (1 << 62) - 1;
/// How much parsed data to keep mapped before releasing it.
const RELEASE_CHUNK: usize = 32 << 20;

/// An opened, memory-mapped capture file (or bytes already in memory, see
/// [`CaptureFile::from_bytes`]).
pub struct CaptureFile {
    path: PathBuf,
    map: Backing,
}

/// Where a capture's bytes live.
enum Backing {
    Map(Mmap),
    /// Bytes handed in by the caller (fuzzing, tests): nothing to give back to the kernel.
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Backing::Map(map) => map,
            Backing::Owned(bytes) => bytes,
        }
    }
}

impl CaptureFile {
    /// Opens and maps `path`. An empty file is an error: it cannot be a capture.
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let io = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(SourceError::Empty {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: the mapping is read-only and private; dg-audit never writes it. A capture file
        // that another process truncates while we read it can raise SIGBUS, as with every
        // mmap-based reader (tcpdump's libpcap reads instead); captures being analysed are
        // expected to be finished files. Live capture does not use this path.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(CaptureFile {
            path: path.to_path_buf(),
            map: Backing::Map(map),
        })
    }

    /// A capture held in memory, read exactly as a file at `path` would be (the path only names
    /// it in messages). Used by the fuzz harness, which tries millions of inputs.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, SourceError> {
        if bytes.is_empty() {
            return Err(SourceError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(CaptureFile {
            path: path.to_path_buf(),
            map: Backing::Owned(bytes),
        })
    }

    /// The file's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: empty files are refused by [`CaptureFile::open`].
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Reads the file header and returns a reader positioned on the first record.
    pub fn reader(&self, file_index: usize) -> Result<FileReader<'_>, SourceError> {
        FileReader::new(self, file_index)
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
    offset_secs: i64,
}

enum Layout {
    Pcap {
        big_endian: bool,
        nanos: bool,
        modified: bool,
        link_type: u32,
        snaplen: u32,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
        /// Latest cumulative drop counters per interface id, from ISBs.
        drops: Vec<u64>,
    },
}

/// Cursor over the records of one capture file.
pub struct FileReader<'a> {
    file: &'a CaptureFile,
    data: &'a [u8],
    pos: usize,
    released: usize,
    layout: Layout,
    file_index: usize,
    last_ts: i64,
    facts: FileFacts,
    done: bool,
    /// Frames whose time overflowed i64 nanoseconds (each kept the previous frame's time).
    time_overflows: u64,
}

impl<'a> FileReader<'a> {
    fn new(file: &'a CaptureFile, file_index: usize) -> Result<Self, SourceError> {
        let data: &[u8] = &file.map;
        let path = &file.path;
        let magic = |n: usize| hex::encode(&data[..data.len().min(n)]);
        if data.len() < 4 {
            return Err(SourceError::TruncatedHeader {
                path: path.clone(),
                format: "capture",
                len: data.len(),
                needed: 24,
            });
        }
        let first = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let mut facts = FileFacts {
            path: path.display().to_string(),
            size_bytes: data.len() as u64,
            ..FileFacts::default()
        };
        let (layout, pos) = match first {
            PCAPNG_SHB => {
                facts.format = "pcapng".into();
                (
                    Layout::Pcapng {
                        big_endian: false,
                        interfaces: Vec::new(),
                        drops: Vec::new(),
                    },
                    0,
                )
            }
            0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34 | 0xd4c3_b2a1 | 0x4d3c_b2a1 | 0x34cd_b2a1 => {
                if data.len() < 24 {
                    return Err(SourceError::TruncatedHeader {
                        path: path.clone(),
                        format: "pcap",
                        len: data.len(),
                        needed: 24,
                    });
                }
                let (_, header) =
                    parse_pcap_header(data).map_err(|_| SourceError::NotACapture {
                        path: path.clone(),
                        magic: magic(8),
                    })?;
                if header.version_major != 2 {
                    // libpcap, tshark and capinfos refuse these too: version 1 files predate the
                    // current record layout, and other numbers are not pcap at all.
                    return Err(SourceError::UnsupportedVersion {
                        path: path.clone(),
                        format: "pcap",
                        major: header.version_major,
                        minor: header.version_minor,
                    });
                }
                facts.format = "pcap".into();
                // The upper bits carry the FCS length (libpcap pcap-common.h: LT_LINKTYPE(x) is
                // x & 0x03FFFFFF; LT_FCS_LENGTH_PRESENT / LT_FCS_LENGTH in bits 26-31).
                let link_type = (header.network.0 as u32) & 0x03FF_FFFF;
                facts.link_types.push(link_type);
                facts.snaplen = header.snaplen;
                (
                    Layout::Pcap {
                        big_endian: header.is_bigendian(),
                        nanos: header.is_nanosecond_precision(),
                        modified: header.is_modified_format(),
                        link_type,
                        snaplen: header.snaplen,
                    },
                    24,
                )
            }
            _ => {
                return Err(SourceError::NotACapture {
                    path: path.clone(),
                    magic: magic(8),
                })
            }
        };
        facts.byte_order = match &layout {
            Layout::Pcap { big_endian, .. } if *big_endian => "be".into(),
            _ => "le".into(),
        };
        let mut reader = FileReader {
            file,
            data,
            pos,
            released: 0,
            layout,
            file_index,
            last_ts: 0,
            facts,
            done: false,
            time_overflows: 0,
        };
        // A pcapng file whose first section header is unreadable is not a capture we can use.
        if let Layout::Pcapng { .. } = reader.layout {
            reader.read_section_header()?;
        }
        Ok(reader)
    }

    /// What was learnt about the file so far (final once [`FileReader::next_frame`] returned None).
    pub fn facts(&self) -> &FileFacts {
        &self.facts
    }

    /// Takes the facts out (call once the reader is exhausted).
    pub fn into_facts(mut self) -> FileFacts {
        if let Layout::Pcapng { drops, .. } = &self.layout {
            self.facts.capture_drops = drops.iter().fold(0u64, |a, d| a.saturating_add(*d));
        }
        if self.time_overflows > 1 {
            self.warn(format!(
                "{}: {} frames in all had a time outside the range dg-audit represents (years 1824 to 2116); each kept the previous frame's time",
                self.file.path.display(),
                self.time_overflows
            ));
        }
        self.facts
    }

    /// Bytes of the file consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Records a warning that does not stop reading.
    fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.facts.warnings.push(msg);
    }

    /// Stops reading after a fault: the fault becomes a warning and the file is marked incomplete.
    fn fail(&mut self, err: SourceError) -> Option<Frame<'a>> {
        tracing::warn!("{err}");
        self.facts.warnings.push(err.to_string());
        self.facts.incomplete = true;
        self.done = true;
        None
    }

    fn truncated(&self, needed: usize) -> SourceError {
        SourceError::TruncatedRecord {
            path: self.file.path.clone(),
            record: self.facts.records,
            offset: self.pos as u64,
            needed,
        }
    }

    fn corrupt(&self, what: String) -> SourceError {
        SourceError::Corrupt {
            path: self.file.path.clone(),
            record: self.facts.records,
            offset: self.pos as u64,
            what,
        }
    }

    /// Returns the next frame, or None at the end of the file or after a fault (see `facts()`).
    pub fn next_frame(&mut self) -> Option<Frame<'a>> {
        self.release_consumed();
        loop {
            if self.done || self.pos >= self.data.len() {
                self.done = true;
                return None;
            }
            let result = match self.layout {
                Layout::Pcap { .. } => self.next_pcap(),
                Layout::Pcapng { .. } => self.next_pcapng(),
            };
            match result {
                Ok(Some(frame)) => {
                    self.facts.records += 1;
                    if (frame.data.len() as u64) < frame.wire_len as u64 {
                        self.facts.truncated_frames += 1;
                    }
                    return Some(frame);
                }
                Ok(None) => continue, // a non-packet block
                Err(err) => return self.fail(err),
            }
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Frame<'a>>, SourceError> {
        let Layout::Pcap {
            big_endian,
            nanos,
            modified,
            link_type,
            snaplen,
        } = self.layout
        else {
            unreachable!("next_pcap is only called on pcap layouts")
        };
        let rest = &self.data[self.pos..];
        let parsed = if modified {
            parse_pcap_frame_modified(rest)
        } else if big_endian {
            parse_pcap_frame_be(rest)
        } else {
            parse_pcap_frame(rest)
        };
        // Check the header's caplen before trusting the parser's Incomplete: garbage after a valid
        // prefix usually shows up as an absurd caplen, which is corruption, not truncation.
        let header_len = if modified { 24 } else { 16 };
        if rest.len() >= header_len {
            let caplen_bytes = [rest[8], rest[9], rest[10], rest[11]];
            let caplen = if big_endian {
                u32::from_be_bytes(caplen_bytes)
            } else {
                u32::from_le_bytes(caplen_bytes)
            };
            if caplen > MAX_PLAUSIBLE_CAPLEN.max(snaplen) {
                return Err(self.corrupt(format!(
                    "captured length {caplen} exceeds the snaplen {snaplen} and any real packet (garbage record header?)"
                )));
            }
        }
        match parsed {
            Ok((remaining, block)) => {
                // u32 seconds times 1e9 plus a u32 fraction always fits i64; checked anyway so a
                // change of field types cannot turn into a silent wrap.
                let ts_frac = if nanos {
                    Some(i64::from(block.ts_usec))
                } else {
                    i64::from(block.ts_usec).checked_mul(1_000)
                };
                let ts_nanos = i64::from(block.ts_sec)
                    .checked_mul(NANOS)
                    .zip(ts_frac)
                    .and_then(|(s, f)| s.checked_add(f));
                let ts_nanos = match ts_nanos.filter(|t| t.abs() <= MAX_ABS_TS_NANOS) {
                    Some(ts) => ts,
                    None => self.time_overflow(block.ts_sec as u64),
                };
                if snaplen > 0 && block.caplen > snaplen {
                    self.note_over_snaplen(block.caplen, snaplen);
                }
                self.pos = self.data.len() - remaining.len();
                self.last_ts = ts_nanos;
                Ok(Some(Frame {
                    ts_nanos,
                    link_type,
                    data: block.data,
                    wire_len: block.origlen.max(block.caplen),
                    file_index: self.file_index,
                    interface: 0,
                    has_ts: true,
                }))
            }
            Err(nom::Err::Incomplete(needed)) => Err(self.truncated(needed_bytes(needed, rest))),
            Err(e) => Err(self.corrupt(describe(e))),
        }
    }

    fn note_over_snaplen(&mut self, caplen: u32, snaplen: u32) {
        if self.facts.frames_over_snaplen == 0 {
            let msg = format!(
                "{}: record {} at offset {}: captured length {caplen} is larger than the file's snaplen {snaplen}; the data is kept",
                self.file.path.display(),
                self.facts.records,
                self.pos
            );
            tracing::warn!("{msg}");
            self.facts.warnings.push(msg);
        }
        self.facts.frames_over_snaplen += 1;
    }

    fn read_section_header(&mut self) -> Result<(), SourceError> {
        let rest = &self.data[self.pos..];
        match pcap_parser::pcapng::parse_sectionheaderblock(rest) {
            Ok((remaining, shb)) => {
                if shb.major_version != 1 {
                    return Err(self.corrupt(format!(
                        "pcapng section version {}.{} is not 1.x",
                        shb.major_version, shb.minor_version
                    )));
                }
                let be = shb.big_endian();
                if let Layout::Pcapng {
                    big_endian,
                    interfaces,
                    drops,
                } = &mut self.layout
                {
                    *big_endian = be;
                    interfaces.clear();
                    drops.clear();
                }
                if self.pos == 0 && be {
                    self.facts.byte_order = "be".into();
                }
                self.pos = self.data.len() - remaining.len();
                Ok(())
            }
            Err(nom::Err::Incomplete(needed)) => Err(self.truncated(needed_bytes(needed, rest))),
            Err(e) => Err(self.corrupt(format!("bad section header block: {}", describe(e)))),
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'a>>, SourceError> {
        let rest = &self.data[self.pos..];
        if rest.len() < 12 {
            return Err(self.truncated(12 - rest.len()));
        }
        let block_type = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if block_type == PCAPNG_SHB {
            self.read_section_header()?;
            return Ok(None);
        }
        let Layout::Pcapng { big_endian, .. } = self.layout else {
            unreachable!("next_pcapng is only called on pcapng layouts")
        };
        let len_bytes = [rest[4], rest[5], rest[6], rest[7]];
        let block_len = if big_endian {
            u32::from_be_bytes(len_bytes)
        } else {
            u32::from_le_bytes(len_bytes)
        } as usize;
        if block_len < 12 || block_len % 4 != 0 {
            return Err(self.corrupt(format!(
                "pcapng block length {block_len} is not a multiple of 4 of at least 12"
            )));
        }
        if block_len > rest.len() {
            return Err(self.truncated(block_len - rest.len()));
        }
        let parsed = if big_endian {
            parse_block_be(rest)
        } else {
            parse_block_le(rest)
        };
        let block = match parsed {
            Ok((_, block)) => block,
            Err(nom::Err::Incomplete(needed)) => {
                return Err(self.truncated(needed_bytes(needed, rest)))
            }
            Err(e) => return Err(self.corrupt(describe(e))),
        };
        let frame = self.pcapng_block(block, big_endian)?;
        self.pos += block_len;
        Ok(frame)
    }

    fn pcapng_block(
        &mut self,
        block: Block<'a>,
        big_endian: bool,
    ) -> Result<Option<Frame<'a>>, SourceError> {
        match block {
            Block::InterfaceDescription(idb) => {
                self.check_idb_options(big_endian);
                if idb
                    .if_tsoffset
                    .checked_mul(NANOS)
                    .is_none_or(|o| o.abs() > MAX_ABS_TS_NANOS)
                {
                    let msg = format!(
                        "{}: interface description block at offset {} (interface {}): time offset {} s is outside the range dg-audit represents (years 1824 to 2116); frames on this interface keep the previous frame's time",
                        self.file.path.display(),
                        self.pos,
                        self.interface_count(),
                        idb.if_tsoffset
                    );
                    self.warn(msg);
                }
                let units_per_sec = match build_ts_resolution(idb.if_tsresol) {
                    Some(units) if units > 0 => units,
                    _ => {
                        return Err(self.corrupt(format!(
                            "interface timestamp resolution code {:#04x} is not usable",
                            idb.if_tsresol
                        )))
                    }
                };
                let link_type = idb.linktype.0 as u32;
                if !self.facts.link_types.contains(&link_type) {
                    self.facts.link_types.push(link_type);
                }
                self.facts.snaplen = self.facts.snaplen.max(idb.snaplen);
                if let Layout::Pcapng {
                    interfaces, drops, ..
                } = &mut self.layout
                {
                    interfaces.push(Interface {
                        link_type,
                        snaplen: idb.snaplen,
                        units_per_sec,
                        offset_secs: idb.if_tsoffset,
                    });
                    drops.push(0);
                }
                Ok(None)
            }
            Block::EnhancedPacket(epb) => {
                let iface = self.interface(epb.if_id)?;
                let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let caplen = (epb.caplen as usize).min(epb.data.len());
                self.packet(iface, epb.if_id, ts, &epb.data[..caplen], epb.origlen, true)
            }
            Block::SimplePacket(spb) => {
                let iface = self.interface(0)?;
                let mut caplen = (spb.origlen as usize).min(spb.data.len());
                if iface.snaplen > 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                self.packet(iface, 0, 0, &spb.data[..caplen], spb.origlen, false)
            }
            Block::InterfaceStatistics(isb) => {
                // Both counters are u64 straight from the file: saturate, never wrap.
                let dropped = isb
                    .isb_ifdrop()
                    .and_then(Result::ok)
                    .unwrap_or(0)
                    .saturating_add(isb.isb_osdrop().and_then(Result::ok).unwrap_or(0));
                if let Layout::Pcapng { drops, .. } = &mut self.layout {
                    if let Some(slot) = drops.get_mut(isb.if_id as usize) {
                        // Counters are cumulative since capture start: keep the latest.
                        *slot = (*slot).max(dropped);
                    }
                }
                Ok(None)
            }
            Block::Unknown(unknown) if unknown.block_type == PCAPNG_OBSOLETE_PACKET_BLOCK => {
                self.obsolete_packet_block(unknown.data, big_endian)
            }
            _ => {
                self.facts.skipped_blocks += 1;
                Ok(None)
            }
        }
    }

    /// The pre-1.0 Packet Block (type 2), still written by old tools; pcap-parser leaves it raw.
    /// Layout: interface id (u16), drops (u16), ts high, ts low, caplen, origlen, data.
    fn obsolete_packet_block(
        &mut self,
        body: &'a [u8],
        big_endian: bool,
    ) -> Result<Option<Frame<'a>>, SourceError> {
        if body.len() < 20 {
            return Err(self.corrupt("obsolete packet block shorter than its header".into()));
        }
        let u16_at = |i: usize| {
            let b = [body[i], body[i + 1]];
            if big_endian {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        };
        let u32_at = |i: usize| {
            let b = [body[i], body[i + 1], body[i + 2], body[i + 3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let if_id = u16_at(0) as u32;
        let iface = self.interface(if_id)?;
        let ts = ((u32_at(4) as u64) << 32) | u32_at(8) as u64;
        let caplen = (u32_at(12) as usize).min(body.len() - 20);
        let origlen = u32_at(16);
        self.packet(iface, if_id, ts, &body[20..20 + caplen], origlen, true)
    }

    fn interface(&self, if_id: u32) -> Result<Interface, SourceError> {
        let Layout::Pcapng { interfaces, .. } = &self.layout else {
            unreachable!("interfaces exist only in pcapng")
        };
        interfaces.get(if_id as usize).copied().ok_or_else(|| {
            self.corrupt(format!(
                "packet refers to interface {if_id}, but the section describes {} interface(s)",
                interfaces.len()
            ))
        })
    }

    fn packet(
        &mut self,
        iface: Interface,
        if_id: u32,
        ts_units: u64,
        data: &'a [u8],
        origlen: u32,
        has_ts: bool,
    ) -> Result<Option<Frame<'a>>, SourceError> {
        let ts_nanos = if has_ts {
            // u64 units times 1e9 fits u128; the result, the offset and their sum may not fit i64
            // (a timestamp >= 2^63 ns, or an absurd if_tsoffset): checked, never wrapped.
            let nanos = ts_units as u128 * NANOS as u128 / iface.units_per_sec.max(1) as u128;
            let ts = i64::try_from(nanos)
                .ok()
                .zip(iface.offset_secs.checked_mul(NANOS))
                .and_then(|(t, off)| t.checked_add(off))
                .filter(|t| t.abs() <= MAX_ABS_TS_NANOS);
            match ts {
                Some(ts) => {
                    self.last_ts = ts;
                    ts
                }
                None => self.time_overflow(ts_units),
            }
        } else {
            self.last_ts
        };
        if iface.snaplen > 0 && data.len() > iface.snaplen as usize {
            self.note_over_snaplen(data.len() as u32, iface.snaplen);
        }
        Ok(Some(Frame {
            ts_nanos,
            link_type: iface.link_type,
            data,
            wire_len: origlen.max(data.len() as u32),
            file_index: self.file_index,
            interface: if_id,
            has_ts,
        }))
    }

    /// A frame whose time cannot be represented: warn (first one per file in full, the total at
    /// the end) and keep the frame with the previous frame's time, so its bytes still count.
    fn time_overflow(&mut self, raw: u64) -> i64 {
        self.time_overflows += 1;
        if self.time_overflows == 1 {
            let msg = format!(
                "{}: record {} at offset {}: timestamp {raw} (raw units) plus the interface offset is outside the range dg-audit represents (years 1824 to 2116); the frame keeps the previous frame's time",
                self.file.path.display(),
                self.facts.records,
                self.pos
            );
            self.warn(msg);
        }
        self.last_ts
    }

    fn interface_count(&self) -> usize {
        match &self.layout {
            Layout::Pcapng { interfaces, .. } => interfaces.len(),
            Layout::Pcap { .. } => 0,
        }
    }

    /// pcap-parser stops reading an interface's options at the first one that runs past the
    /// block and keeps the rest silently; walk them here so that damage is a warning.
    fn check_idb_options(&mut self, big_endian: bool) {
        let rest = &self.data[self.pos..];
        let u32_at = |b: &[u8], i: usize| {
            let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
            if big_endian {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        };
        let u16_at = |b: &[u8], i: usize| {
            let v = [b[i], b[i + 1]];
            if big_endian {
                u16::from_be_bytes(v)
            } else {
                u16::from_le_bytes(v)
            }
        };
        if rest.len() < 8 {
            return;
        }
        let block_len = (u32_at(rest, 4) as usize).min(rest.len());
        // Options sit between the 16-byte fixed part and the trailing length.
        if block_len < 20 {
            return;
        }
        let opts = &rest[16..block_len - 4];
        let mut at = 0usize;
        while at < opts.len() {
            if opts.len() - at < 4 {
                let msg = format!(
                    "{}: interface description block at offset {} (interface {}): {} stray byte(s) after its options, too short for an option header; ignored",
                    self.file.path.display(),
                    self.pos,
                    self.interface_count(),
                    opts.len() - at
                );
                self.warn(msg);
                return;
            }
            let code = u16_at(opts, at);
            let len = u16_at(opts, at + 2) as usize;
            if code == 0 {
                return; // opt_endofopt
            }
            let padded = (len + 3) & !3;
            if padded > opts.len() - at - 4 {
                let msg = format!(
                    "{}: interface description block at offset {} (interface {}): option {code} of length {len} runs past the end of the block ({} byte(s) left); it and any later options are ignored",
                    self.file.path.display(),
                    self.pos,
                    self.interface_count(),
                    opts.len() - at - 4
                );
                self.warn(msg);
                return;
            }
            at += 4 + padded;
        }
    }

    /// Gives parsed pages back to the kernel so resident memory does not grow with the file.
    fn release_consumed(&mut self) {
        if self.pos < self.released + RELEASE_CHUNK {
            return;
        }
        let page = 4096;
        let end = self.pos / page * page;
        let start = self.released;
        if end > start {
            // SAFETY: the mapping is private and read-only, so dropped pages are re-read from the
            // file if touched again; frames already returned stay valid byte-for-byte.
            #[cfg(unix)]
            if let Backing::Map(map) = &self.file.map {
                unsafe {
                    let _ = map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    );
                }
            }
            self.released = end;
        }
    }
}

fn needed_bytes(needed: nom::Needed, rest: &[u8]) -> usize {
    match needed {
        nom::Needed::Size(n) => n.get(),
        nom::Needed::Unknown => rest.len().max(1),
    }
}

fn describe(e: nom::Err<PcapError<&[u8]>>) -> String {
    match e {
        nom::Err::Error(err) | nom::Err::Failure(err) => match err {
            PcapError::NomError(_, kind) => format!("unparsable block ({kind:?})"),
            PcapError::HeaderNotRecognized => "header not recognized".into(),
            other => format!("{:?}", other.to_owned_vec()),
        },
        nom::Err::Incomplete(_) => "incomplete".into(),
    }
}

/// Several files read as one stream in packet-time order (a k-way merge on the next frame of each).
pub struct MergedReader<'a> {
    readers: Vec<FileReader<'a>>,
    heads: Vec<Option<Frame<'a>>>,
}

impl<'a> MergedReader<'a> {
    /// Merges the given readers.
    pub fn new(mut readers: Vec<FileReader<'a>>) -> Self {
        let heads = readers.iter_mut().map(|r| r.next_frame()).collect();
        MergedReader { readers, heads }
    }

    /// Bytes consumed over all files.
    pub fn position(&self) -> u64 {
        self.readers.iter().map(|r| r.position() as u64).sum()
    }

    /// Facts of every file, in input order (final once exhausted).
    pub fn into_facts(self) -> Vec<FileFacts> {
        self.readers
            .into_iter()
            .map(FileReader::into_facts)
            .collect()
    }
}

impl<'a> Iterator for MergedReader<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let next = if self.heads.len() == 1 {
            0
        } else {
            self.heads
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|f| (f.ts_nanos, i)))
                .min()?
                .1
        };
        let frame = self.heads[next].take()?;
        self.heads[next] = self.readers[next].next_frame();
        Some(frame)
    }
}

/// SHA-256 of a whole file (chain of custody), read with plain buffered reads so it can run on
/// another core beside the parsing pass without adding to the mapping's resident pages.
pub fn sha256_file(path: &Path) -> Result<String, SourceError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let io = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
