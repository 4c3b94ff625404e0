//! Overlapping TCP data that reads two ways (Ptacek & Newsham, 1998): a sender, or anyone on the
//! path, can send two copies of the same sequence range with different bytes, or a copy with a bad
//! checksum that the receiving host drops but a monitor keeps. [`Prefix`] remembers the first
//! bytes of one direction of a stream as first read, and which of them came in a bad-checksum
//! packet, so that a later copy of the same range can be compared with them.
//!
//! Choices and their cost:
//! - Only stream offsets below [`PREFIX_CAP`] are kept: that is where the names live (ClientHello,
//!   HTTP request headers, CONNECT). Conflicts further on are not seen.
//! - The bytes are kept while the flow lives, but dropped once the direction has sent
//!   [`FORGET_AFTER`] bytes: a retransmission comes within a few round trips, so a bulk transfer
//!   stops paying for its opening bytes. Memory per direction is at most `PREFIX_CAP` bytes plus
//!   two bitmaps of `PREFIX_CAP / 8` bytes (5 KB), allocated as bytes arrive, so at most 10 KB a
//!   flow and about the size of the ClientHello for a TLS check-in.
//! - A good-checksum copy takes over a bad-checksum one (the host kept the good one); otherwise the
//!   first copy stays the primary reading (what most stacks keep) and the second is the
//!   alternative.
//!
//! Invariants: `data`, `filled` and `bad` describe the same offsets; a byte is `bad` only if it
//! is `filled`. Nothing here panics on any offset or length.

/// Stream offsets below this are remembered (per direction).
pub(crate) const PREFIX_CAP: usize = 4096;
/// A direction that has sent this many bytes forgets its prefix.
const FORGET_AFTER: u64 = 64 * 1024;

/// Two copies of the same range that differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clash {
    /// Stream offset of the first differing byte.
    pub offset: usize,
    /// The bytes first seen there, from the first to the last differing byte.
    pub first: Vec<u8>,
    /// The bytes of the copy that just arrived, same range.
    pub second: Vec<u8>,
    pub first_bad: bool,
    pub second_bad: bool,
    /// The second copy replaced the first as the primary reading (it had a good checksum and the
    /// first did not).
    pub second_is_primary: bool,
}

impl Clash {
    /// The bytes of the reading that is not primary.
    pub fn other(&self) -> &[u8] {
        if self.second_is_primary {
            &self.first
        } else {
            &self.second
        }
    }
}

/// The opening bytes of one direction, as first read.
#[derive(Debug, Default)]
pub(crate) struct Prefix {
    /// Bytes at stream offsets `0..data.len()`; bytes not `filled` are zero.
    data: Vec<u8>,
    /// One bit per byte of `data`: some copy of it was seen.
    filled: Vec<u64>,
    /// One bit per byte of `data`: the copy kept came in a bad-checksum packet.
    bad: Vec<u64>,
    /// The direction went past [`FORGET_AFTER`]: nothing is kept any more.
    forgotten: bool,
}

fn bit(map: &[u64], i: usize) -> bool {
    map.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
}

fn set_bit(map: &mut [u64], i: usize, on: bool) {
    if let Some(w) = map.get_mut(i / 64) {
        if on {
            *w |= 1 << (i % 64);
        } else {
            *w &= !(1 << (i % 64));
        }
    }
}

impl Prefix {
    /// Records `bytes` seen at stream `offset` (`bad`: the packet's checksum was wrong) and
    /// returns every run where they differ from a copy seen before.
    pub fn observe(&mut self, offset: u64, bytes: &[u8], bad: bool) -> Vec<Clash> {
        let end = offset.saturating_add(bytes.len() as u64);
        if end > FORGET_AFTER {
            self.forget();
        }
        if self.forgotten || offset >= PREFIX_CAP as u64 {
            return Vec::new();
        }
        if bytes.len() == 1 && offset + 1 == self.data.len() as u64 {
            // A keep-alive probe: BSD and Windows resend the last byte sent, often as garbage
            // (Zeek does not count it either). Not a second reading of the stream.
            return Vec::new();
        }
        let start = offset as usize;
        let end = (end as usize).min(PREFIX_CAP);
        let bytes = &bytes[..end - start];
        if self.data.len() < end {
            self.data.resize(end, 0);
            let words = end.div_ceil(64);
            self.filled.resize(words, 0);
            self.bad.resize(words, 0);
        }
        let clashes = self.compare(start, bytes, bad);
        for (k, &b) in bytes.iter().enumerate() {
            let i = start + k;
            let seen = bit(&self.filled, i);
            // A good copy takes over a bad one; otherwise the first copy stays.
            if !seen || (bit(&self.bad, i) && !bad) {
                self.data[i] = b;
                set_bit(&mut self.filled, i, true);
                set_bit(&mut self.bad, i, bad);
            }
        }
        clashes
    }

    /// Where `bytes` (at `start`) contradict bytes seen before: one [`Clash`] from the first to
    /// the last differing byte, split only where a byte was never seen (so both sides of a clash
    /// are whole readings of the same range).
    fn compare(&self, start: usize, bytes: &[u8], bad: bool) -> Vec<Clash> {
        let mut clashes = Vec::new();
        // First and last differing index (into `bytes`) of the open run.
        let mut run: Option<(usize, usize)> = None;
        for (k, &b) in bytes.iter().enumerate() {
            let i = start + k;
            if !bit(&self.filled, i) {
                if let Some((from, last)) = run.take() {
                    clashes.push(self.clash(start, from..last + 1, bytes, bad));
                }
            } else if self.data[i] != b {
                run = Some(run.map_or((k, k), |(from, _)| (from, k)));
            }
        }
        if let Some((from, last)) = run {
            clashes.push(self.clash(start, from..last + 1, bytes, bad));
        }
        clashes
    }

    fn clash(&self, start: usize, run: std::ops::Range<usize>, bytes: &[u8], bad: bool) -> Clash {
        let at = start + run.start;
        let first_bad = bit(&self.bad, at);
        Clash {
            offset: at,
            first: self.data[at..start + run.end].to_vec(),
            second: bytes[run].to_vec(),
            first_bad,
            second_bad: bad,
            second_is_primary: first_bad && !bad,
        }
    }

    /// The primary reading from offset 0 up to the first byte not seen.
    pub fn reading(&self) -> &[u8] {
        let seen = (0..self.data.len())
            .find(|&i| !bit(&self.filled, i))
            .unwrap_or(self.data.len());
        &self.data[..seen]
    }

    /// The primary reading with `other` in place of the bytes at `offset`: the alternative
    /// reading of a [`Clash`].
    pub fn reading_with(&self, offset: usize, other: &[u8]) -> Vec<u8> {
        let mut reading = self.reading().to_vec();
        if let Some(slot) = reading.get_mut(offset..offset + other.len()) {
            slot.copy_from_slice(other);
        }
        reading
    }

    /// Nothing more will be added: the prefix is full from offset 0, or forgotten.
    pub fn is_complete(&self) -> bool {
        self.forgotten || self.reading().len() >= PREFIX_CAP
    }

    fn forget(&mut self) {
        self.forgotten = true;
        self.data = Vec::new();
        self.filled = Vec::new();
        self.bad = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_twice_is_no_clash() {
        let mut p = Prefix::default();
        assert!(p.observe(0, b"hello world", false).is_empty());
        assert!(p.observe(6, b"world!", false).is_empty());
        assert_eq!(p.reading(), b"hello world!");
    }

    #[test]
    fn different_bytes_in_either_order_clash() {
        let mut p = Prefix::default();
        p.observe(0, b"GET / HTTP/1.1\r\nHost: good.example\r\n", false);
        let c = p.observe(22, b"evil", false);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].offset, &c[0].first[..]), (22, &b"good"[..]));
        assert_eq!(&c[0].second[..], b"evil");
        assert!(!c[0].second_is_primary);
        assert_eq!(c[0].other(), b"evil");
        // First copy stays primary.
        assert!(p.reading().ends_with(b"good.example\r\n"));
        let alt = p.reading_with(c[0].offset, c[0].other());
        assert!(alt.ends_with(b"evil.example\r\n"));
    }

    #[test]
    fn a_good_copy_takes_over_a_bad_one() {
        let mut p = Prefix::default();
        assert!(p.observe(0, b"license", true).is_empty());
        let c = p.observe(0, b"evilxxx", false);
        assert_eq!(c.len(), 1);
        assert!(c[0].first_bad && !c[0].second_bad && c[0].second_is_primary);
        assert_eq!(p.reading(), b"evilxxx");
        assert_eq!(c[0].other(), b"license");
        // A bad copy after a good one clashes but does not take over.
        let c = p.observe(0, b"license", true);
        assert!(c[0].second_bad && !c[0].second_is_primary);
        assert_eq!(p.reading(), b"evilxxx");
    }

    #[test]
    fn a_keep_alive_byte_is_no_clash() {
        let mut p = Prefix::default();
        p.observe(0, b"check-in", false);
        assert!(p.observe(7, b"\0", false).is_empty());
        assert_eq!(p.reading(), b"check-in");
        // One differing byte anywhere else is.
        assert_eq!(p.observe(6, b"\0", false).len(), 1);
    }

    #[test]
    fn separate_runs_and_holes() {
        let mut p = Prefix::default();
        p.observe(0, b"aaaa", false);
        p.observe(8, b"cccc", false);
        assert_eq!(p.reading(), b"aaaa");
        let c = p.observe(2, b"xa____yycc", false);
        let runs: Vec<_> = c.iter().map(|c| (c.offset, c.second.clone())).collect();
        assert_eq!(runs, [(2, b"x".to_vec()), (8, b"yy".to_vec())]);
        // Differences with agreeing bytes between them are one clash.
        let c = p.observe(0, b"zaaz", false);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].offset, &c[0].first[..], &c[0].second[..]),
            (0, &b"aaaa"[..], &b"zaaz"[..])
        );
        assert_eq!(p.reading(), b"aaaa____cccc");
    }

    #[test]
    fn bounded_and_forgotten() {
        let mut p = Prefix::default();
        p.observe(PREFIX_CAP as u64 - 2, b"abcd", false);
        assert_eq!(p.data.len(), PREFIX_CAP);
        assert!(!p.is_complete());
        p.observe(0, &[1; PREFIX_CAP], false);
        assert!(p.is_complete());
        assert!(p.observe(PREFIX_CAP as u64, b"zz", false).is_empty());
        p.observe(FORGET_AFTER, b"z", false);
        assert!(p.data.is_empty() && p.forgotten);
        assert!(p.observe(0, b"anything", false).is_empty());
        assert!(p.observe(u64::MAX, b"x", false).is_empty());
    }
}
