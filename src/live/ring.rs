//! The evidence ring: a rotating set of classic pcap files (`-w DIR`) holding the packets behind
//! each alert, bounded in file size and count like tcpdump's `-C`/`-W`.
//!
//! Invariants:
//! - Files are named `dg-audit-<run start, UTC>-<sequence>.pcap`; a run never overwrites another
//!   run's files, and only deletes its own oldest file when the count limit is reached.
//! - Every file is a valid capture at all times after a [`Ring::flush`] (libpcap's `Savefile`).
//! - A write fault (full disk, removed directory) is reported once as an error and stops the ring;
//!   it never stops capture or measurement.
//! - Records longer than 65535 bytes are cut to 65535, the snaplen libpcap writes in the header of
//!   a file made without a live handle, so every file reads back cleanly.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use pcap::{Capture, Dead, Linktype, Packet, PacketHeader, Precision, Savefile};

use crate::source::Frame;
use crate::units::NANOS;

const FILE_HEADER_BYTES: u64 = 24;
const RECORD_HEADER_BYTES: u64 = 16;
const MAX_RECORD: u32 = 65_535;

/// Ring limits.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Directory of the ring files (created if missing).
    pub dir: PathBuf,
    /// Rotate once a file reaches this many bytes.
    pub file_bytes: u64,
    /// Keep at most this many files of this run.
    pub files: usize,
    /// libpcap link type written in each file's header.
    pub link_type: u32,
}

/// A fault of the ring; the message says which file and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    #[error("evidence ring {dir}: cannot create the directory: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("evidence ring {path}: cannot open for writing: {message}")]
    Open { path: PathBuf, message: String },
    #[error("evidence ring {path}: write failed: {message}; the ring is stopped, capture and measurement go on")]
    Write { path: PathBuf, message: String },
}

/// One file of the ring and the packet times it holds.
#[derive(Debug, Clone)]
pub struct RingFile {
    /// Where the file is.
    pub path: PathBuf,
    /// Packet time of its first record, nanoseconds since the epoch.
    pub first_ts: i64,
    /// Packet time of its last record, nanoseconds since the epoch.
    pub last_ts: i64,
    /// Its size, header included.
    pub bytes: u64,
    /// Packets in it.
    pub records: u64,
}

/// The ring.
pub struct Ring {
    config: RingConfig,
    dead: Capture<Dead>,
    current: Option<Savefile>,
    files: VecDeque<RingFile>,
    run_id: String,
    seq: u64,
    stopped: bool,
}

fn run_id(now_nanos: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(now_nanos.max(0) as u64);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

impl Ring {
    /// Creates the directory if needed and opens the first file, so a bad `-w` fails at start.
    pub fn new(config: RingConfig, now_nanos: i64) -> Result<Ring, RingError> {
        std::fs::create_dir_all(&config.dir).map_err(|source| RingError::Dir {
            dir: config.dir.clone(),
            source,
        })?;
        let dead =
            Capture::dead_with_precision(Linktype(config.link_type as i32), Precision::Micro)
                .map_err(|e| RingError::Open {
                    path: config.dir.clone(),
                    message: e.to_string(),
                })?;
        let mut ring = Ring {
            config,
            dead,
            current: None,
            files: VecDeque::new(),
            run_id: run_id(now_nanos),
            seq: 0,
            stopped: false,
        };
        ring.open_next()?;
        Ok(ring)
    }

    fn open_next(&mut self) -> Result<(), RingError> {
        self.seq += 1;
        let path = self
            .config
            .dir
            .join(format!("dg-audit-{}-{:05}.pcap", self.run_id, self.seq));
        let file = self.dead.savefile(&path).map_err(|e| RingError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.current = Some(file);
        self.files.push_back(RingFile {
            path,
            first_ts: i64::MAX,
            last_ts: i64::MIN,
            bytes: FILE_HEADER_BYTES,
            records: 0,
        });
        while self.files.len() > self.config.files.max(1) {
            if let Some(old) = self.files.pop_front() {
                // Already gone (an operator cleaned up) is fine: the limit is what matters.
                let _ = std::fs::remove_file(&old.path);
            }
        }
        Ok(())
    }

    /// True once a fault stopped the ring.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Appends one frame, rotating first when the current file is full.
    pub fn write(&mut self, frame: &Frame<'_>) -> Result<(), RingError> {
        if self.stopped {
            return Ok(());
        }
        let caplen = (frame.data.len() as u32).min(MAX_RECORD);
        let need = RECORD_HEADER_BYTES + caplen as u64;
        let full = self.files.back().is_some_and(|f| {
            f.records > 0 && f.bytes + need > self.config.file_bytes.max(FILE_HEADER_BYTES + need)
        });
        if full {
            self.flush()?;
            self.current = None;
            if let Err(e) = self.open_next() {
                self.stopped = true;
                return Err(e);
            }
        }
        let Some(file) = self.current.as_mut() else {
            return Ok(());
        };
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: frame.ts_nanos.div_euclid(NANOS) as libc::time_t,
                tv_usec: (frame.ts_nanos.rem_euclid(NANOS) / 1_000) as libc::suseconds_t,
            },
            caplen,
            len: frame.wire_len.max(caplen),
        };
        file.write(&Packet {
            header: &header,
            data: &frame.data[..caplen as usize],
        });
        if let Some(meta) = self.files.back_mut() {
            meta.first_ts = meta.first_ts.min(frame.ts_nanos);
            meta.last_ts = meta.last_ts.max(frame.ts_nanos);
            meta.bytes += need;
            meta.records += 1;
        }
        Ok(())
    }

    /// Pushes buffered records to disk; a failure (full disk) stops the ring.
    pub fn flush(&mut self) -> Result<(), RingError> {
        if self.stopped {
            return Ok(());
        }
        let path = self.current_path().unwrap_or_default();
        let Some(file) = self.current.as_mut() else {
            return Ok(());
        };
        // libpcap's writes go through stdio and report nothing; a flush only reports what was
        // still buffered. The file's length on disk tells whether every record got there.
        let expected = self.files.back().map_or(0, |f| f.bytes);
        let failure = match file.flush() {
            Err(e) => Some(e.to_string()),
            Ok(()) => match std::fs::metadata(&path) {
                Err(e) => Some(e.to_string()),
                Ok(m) if m.len() < expected => Some(format!(
                    "only {} of {expected} bytes reached the disk ({})",
                    m.len(),
                    free_space_hint(&self.config.dir)
                )),
                Ok(_) => None,
            },
        };
        if let Some(message) = failure {
            self.stopped = true;
            self.current = None;
            return Err(RingError::Write { path, message });
        }
        Ok(())
    }

    fn current_path(&self) -> Option<PathBuf> {
        self.files.back().map(|f| f.path.clone())
    }

    /// Files (paths) holding packets between two packet times, oldest first.
    pub fn files_between(&self, from: i64, to: i64) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.records > 0 && f.first_ts <= to && f.last_ts >= from)
            .map(|f| f.path.display().to_string())
            .collect()
    }

    /// The files of this run still on disk.
    pub fn files(&self) -> impl Iterator<Item = &RingFile> {
        self.files.iter()
    }

    /// The ring directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }
}

/// Why writes fall short, as far as the file system tells.
fn free_space_hint(dir: &Path) -> String {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(st) if st.blocks_available() == 0 => "no space left on the device".into(),
        Ok(_) => "an I/O error, or the file was removed or replaced".into(),
        Err(e) => format!("the directory is unusable: {e}"),
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: i64, data: &[u8]) -> Frame<'_> {
        Frame {
            ts_nanos: ts,
            link_type: 1,
            data,
            wire_len: data.len() as u32,
            file_index: 0,
            interface: 0,
            has_ts: true,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dg-audit-ring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn rotates_by_size_and_keeps_the_count() {
        let dir = tmpdir("rotate");
        let mut ring = Ring::new(
            RingConfig {
                dir: dir.clone(),
                file_bytes: 24 + 3 * (16 + 100),
                files: 2,
                link_type: 1,
            },
            1_700_000_000_000_000_000,
        )
        .expect("ring opens");
        let data = [0u8; 100];
        for i in 0..10 {
            ring.write(&frame(1_700_000_000_000_000_000 + i * NANOS, &data))
                .expect("write");
        }
        ring.flush().expect("flush");
        let names: Vec<_> = ring.files().map(|f| f.path.clone()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let on_disk = std::fs::read_dir(&dir).expect("dir").count();
        assert_eq!(on_disk, 2);
        // 10 records, 3 per file: files 4 (9th record: ts +9 s) are kept with files 3.
        let last = ring.files_between(1_700_000_009_000_000_000, 1_700_000_009_000_000_000);
        assert_eq!(last.len(), 1);
        assert!(last[0].ends_with("-00004.pcap"), "{last:?}");
        // Each kept file reads back with libpcap.
        for f in ring.files() {
            let mut cap = Capture::from_file(&f.path).expect("pcap reads back");
            let mut n = 0;
            while cap.next_packet().is_ok() {
                n += 1;
            }
            assert_eq!(n, f.records);
        }
        drop(ring);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_disk_stops_the_ring_with_an_error() {
        let dir = tmpdir("full");
        std::fs::create_dir_all(&dir).expect("dir");
        // The second file of the ring is /dev/full: writing it fails like a full disk.
        std::os::unix::fs::symlink(
            "/dev/full",
            dir.join("dg-audit-19700101T000000Z-00002.pcap"),
        )
        .expect("symlink");
        let mut ring = Ring::new(
            RingConfig {
                dir: dir.clone(),
                file_bytes: 24 + 2 * (16 + 1500),
                files: 5,
                link_type: 1,
            },
            0,
        )
        .expect("ring opens");
        let data = [0u8; 1500];
        let mut failure = None;
        for i in 0..10 {
            if let Err(e) = ring.write(&frame(i, &data)) {
                failure = Some(e);
                break;
            }
        }
        let err = match failure {
            Some(e) => e,
            None => ring.flush().expect_err("a full disk is reported"),
        };
        assert!(err.to_string().contains("ring is stopped"), "{err}");
        assert!(err.to_string().contains("-00002.pcap"), "{err}");
        assert!(ring.stopped());
        ring.write(&frame(200, &data))
            .expect("writes after a fault are ignored");
        ring.flush().expect("a stopped ring flushes nothing");
        // The first file is intact and readable.
        let first = dir.join("dg-audit-19700101T000000Z-00001.pcap");
        let mut cap = Capture::from_file(&first).expect("first file reads back");
        assert!(cap.next_packet().is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
