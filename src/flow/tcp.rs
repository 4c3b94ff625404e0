//! TCP per-connection state with Zeek's semantics: endpoint states (for `conn_state`), history
//! letters, and payload bytes from sequence numbers.
//!
//! Payload bytes are the span of sequence space each side covered (data seen, or acknowledged by the
//! peer without being seen), so a retransmission is never counted twice; the acknowledged-but-unseen
//! part is also reported as `missed_bytes`, as Zeek does.
//!
//! Missed bytes are of two kinds, and the audit treats them differently. Bytes the peer
//! acknowledged were sent, so they are counted as traffic of the minute whose ACK revealed them
//! ([`SegmentEffect::peer_missed`], [`Endpoint::acked_missed`]). Bytes never acknowledged nor seen
//! are loss the capture cannot size or explain ([`Endpoint::unacked_missed`]).

use crate::decode::{tcp_flags, TcpSegment};
use crate::flow::record::ConnState;

/// Zeek's TCP endpoint states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    /// Seen without its SYN (mid-stream).
    Partial,
    Established,
    Closed,
    Reset,
}

/// Largest plausible jump in one step; a bigger one is a bogus sequence or ack number, ignored.
const MAX_SEQ_JUMP: i64 = 1 << 30;
/// Gaps tracked per direction; beyond this the oldest is kept only as a byte count.
const MAX_HOLES: usize = 16;

/// One direction of a TCP connection.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub state: EndpointState,
    /// Sequence number of the first payload byte (ISN + 1, or the first seq seen mid-stream).
    base: Option<u32>,
    /// Bytes of sequence space covered from `base`.
    pub span: u64,
    /// Ranges inside `span` never seen (relative offsets, half-open).
    holes: Vec<(u64, u64)>,
    /// Size of gaps too old to track individually (see `MAX_HOLES`).
    forgotten_missed: u64,
    /// Highest sequence offset any packet of this side announced (pure ACKs included): data
    /// below it is a retransmission, as Zeek judges.
    highest: u64,
    /// Relative offset of this side's FIN, if sent.
    fin_at: Option<u64>,
    retransmits: u64,
    zero_windows: u64,
    /// Relative offset up to which the peer acknowledged this side's data.
    acked: u64,
    /// The part of `forgotten_missed` not yet acknowledged: its positions are forgotten, so an
    /// ACK at or past `forgotten_until` is what shows it was received.
    forgotten_unacked: u64,
    forgotten_until: u64,
    /// Bytes the peer acknowledged that the capture never held (sent, but not seen).
    pub acked_missed: u64,
    /// The Maximum Segment Size this side announced in its SYN.
    mss: Option<u16>,
}

impl Endpoint {
    /// Bytes inside the covered span that were never seen.
    pub fn missed(&self) -> u64 {
        self.forgotten_missed + self.holes.iter().map(|(a, b)| b - a).sum::<u64>()
    }

    /// Relative offset of `seq`, unwrapped around the current span end.
    fn relative(&self, seq: u32) -> Option<i64> {
        let base = self.base?;
        let end = base.wrapping_add(self.span as u32);
        let delta = seq.wrapping_sub(end) as i32 as i64;
        Some(self.span as i64 + delta)
    }

    /// Bytes inside the covered span neither seen nor acknowledged by the peer: loss whose
    /// content and size on the wire the capture cannot tell.
    pub fn unacked_missed(&self) -> u64 {
        let acked = self.acked;
        self.forgotten_unacked
            + self
                .holes
                .iter()
                .map(|&(a, b)| b.saturating_sub(a.max(acked)))
                .sum::<u64>()
    }

    fn add_hole(&mut self, from: u64, to: u64) {
        self.holes.push((from, to));
        if self.holes.len() > MAX_HOLES {
            // The oldest gap is unlikely to be filled now: keep its size, forget its position.
            let (a, b) = self.holes.remove(0);
            self.forgotten_missed += b - a;
            self.forgotten_unacked += b.saturating_sub(a.max(self.acked));
            self.forgotten_until = self.forgotten_until.max(b);
        }
    }

    /// The peer acknowledged this side's stream up to relative offset `to`: returns the bytes of
    /// gaps that this ACK newly shows were received (acknowledged but never seen).
    fn acknowledge(&mut self, to: u64) -> u64 {
        if to <= self.acked {
            return 0;
        }
        let from = self.acked;
        let mut revealed: u64 = self
            .holes
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum();
        if self.forgotten_unacked > 0 && to >= self.forgotten_until {
            revealed += self.forgotten_unacked;
            self.forgotten_unacked = 0;
        }
        self.acked = to;
        self.acked_missed += revealed;
        revealed
    }

    /// Removes `[from, to)` from the holes (late or reordered data filled them).
    fn fill(&mut self, from: u64, to: u64) -> bool {
        let mut filled = false;
        let mut out = Vec::new();
        for &(a, b) in &self.holes {
            if to <= a || from >= b {
                out.push((a, b));
                continue;
            }
            filled = true;
            if a < from {
                out.push((a, from));
            }
            if to < b {
                out.push((to, b));
            }
        }
        self.holes = out;
        filled
    }

    /// Accounts the `len` payload bytes of `seg` (after the SYN's sequence number when `syn`);
    /// returns (was a retransmission, opened a gap).
    fn segment_data(
        &mut self,
        seg: &TcpSegment<'_>,
        syn: bool,
        len: u64,
        effect: &mut SegmentEffect,
    ) -> (bool, bool) {
        if len == 0 {
            return (false, false);
        }
        let data_seq = if syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        match self.relative(data_seq) {
            Some(rel) if rel - (self.span as i64) < MAX_SEQ_JUMP => {
                let (new, retransmit, gap) = self.data(rel, len);
                effect.sender_new = new;
                effect.stream_offset = (rel >= 0).then_some(rel as u64);
                (retransmit, gap)
            }
            _ => (false, false),
        }
    }

    /// Accounts a segment's data `[rel, rel + len)`; returns (new bytes, was a retransmission, opened a gap).
    fn data(&mut self, rel: i64, len: u64) -> (u64, bool, bool) {
        if rel < 0 || len == 0 {
            return (0, rel < 0 && len > 0, false);
        }
        let (from, to) = (rel as u64, rel as u64 + len);
        let mut gap = false;
        let mut new = 0;
        let announced = self.span.max(self.highest);
        let filled = from < self.span && self.fill(from, to.min(self.span));
        if to > self.span {
            if from > self.span {
                self.add_hole(self.span, from);
                gap = true;
            }
            new = to - self.span;
            self.span = to;
        }
        let retransmit = from < announced && !filled;
        self.highest = self.highest.max(to);
        (new, retransmit, gap)
    }
}

/// A TCP connection's state: both endpoints, history, and whether Zeek would have flipped it.
#[derive(Debug, Clone, Default)]
pub struct TcpConn {
    /// `[orig, resp]`.
    pub ep: [Endpoint; 2],
    history: String,
    /// History letters already recorded, per direction (bit = letter index).
    seen: [u32; 2],
}

/// What one segment changed in payload accounting.
#[derive(Debug, Clone, Copy, Default)]
pub struct SegmentEffect {
    /// Payload bytes newly covered in the sender's direction.
    pub sender_new: u64,
    /// Bytes newly covered in the peer's direction by this segment's ACK (acked but unseen).
    pub peer_new: u64,
    /// Bytes of the peer's direction this segment's ACK shows were received but the capture
    /// never held: `peer_new`, and earlier gaps in the peer's stream that the ACK now passes.
    pub peer_missed: u64,
    /// Relative offset of the segment's first payload byte in the sender's stream, if known.
    pub stream_offset: Option<u64>,
    /// The connection is now closed (both FINs, or a RST).
    pub closed: bool,
}

impl TcpConn {
    /// A connection whose history starts with `^` when the originator was chosen against the
    /// first packet's direction.
    pub fn new(flipped: bool) -> Self {
        let mut conn = TcpConn::default();
        if flipped {
            conn.history.push('^');
        }
        conn
    }

    /// The segment size `dir`'s data travels in: the MSS its peer announced (a sender may not
    /// exceed it), else its own SYN's, else None when no SYN option was seen.
    pub fn segment_size(&self, dir: usize) -> Option<u16> {
        self.ep[1 - dir].mss.or(self.ep[dir].mss)
    }

    /// The history string (Zeek letters; upper case for the originator).
    pub fn history(&self) -> &str {
        &self.history
    }

    fn letter(&mut self, dir: usize, letter: char) {
        let bit = 1u32 << (letter as u32 - 'A' as u32);
        if self.seen[dir] & bit == 0 {
            self.seen[dir] |= bit;
            self.history.push(if dir == 0 {
                letter
            } else {
                letter.to_ascii_lowercase()
            });
        }
    }

    /// Zeek repeats some letters as their count reaches 1, 10, 100, ... (`ScaledHistoryEntry`).
    fn scaled_letter(&mut self, dir: usize, letter: char, count: u64) {
        let mut threshold = 1;
        while threshold < count {
            threshold *= 10;
        }
        if threshold == count {
            self.history.push(if dir == 0 {
                letter
            } else {
                letter.to_ascii_lowercase()
            });
        }
    }

    /// Applies one segment sent by `dir` (0 = originator).
    pub fn segment(&mut self, dir: usize, seg: &TcpSegment<'_>) -> SegmentEffect {
        let flags = seg.flags;
        let syn = flags & tcp_flags::SYN != 0;
        let ack = flags & tcp_flags::ACK != 0;
        let fin = flags & tcp_flags::FIN != 0;
        let rst = flags & tcp_flags::RST != 0;
        let len = seg.wire_payload_len as u64;
        let peer = 1 - dir;
        let mut effect = SegmentEffect::default();

        if syn {
            self.letter(dir, if ack { 'H' } else { 'S' });
        }
        if fin {
            self.letter(dir, 'F');
        }
        if rst {
            self.letter(dir, 'R');
        }
        if len > 0 {
            self.letter(dir, 'D');
        } else if ack && !syn && !fin && !rst {
            self.letter(dir, 'A');
        }
        if seg.window == 0 && !syn && !rst {
            self.ep[dir].zero_windows += 1;
            let n = self.ep[dir].zero_windows;
            self.scaled_letter(dir, 'W', n);
        }

        // Sequence accounting.
        let me = &mut self.ep[dir];
        if syn {
            me.mss = seg.mss.or(me.mss);
            if me.base.is_none() || me.span == 0 {
                me.base = Some(seg.seq.wrapping_add(1));
            }
        } else if me.base.is_none() && (len > 0 || !rst) {
            me.base = Some(seg.seq);
        }
        if len == 0 && !syn && !rst {
            if let Some(rel) = me.relative(seg.seq) {
                if rel > 0 && rel - (me.span as i64) < MAX_SEQ_JUMP {
                    me.highest = me.highest.max(rel as u64);
                }
            }
        }
        let (retransmit, gap) = me.segment_data(seg, syn, len, &mut effect);
        if fin {
            if let Some(rel) = me.relative(seg.seq) {
                let at = (rel.max(0) as u64) + len;
                if me.fin_at.is_none() && at >= me.span {
                    me.fin_at = Some(at);
                }
            }
        }
        if retransmit {
            me.retransmits += 1;
            let n = me.retransmits;
            self.scaled_letter(dir, 'T', n);
        }
        if gap {
            self.letter(dir, 'G');
        }

        if ack && !rst {
            self.peer_ack(peer, seg.ack, &mut effect);
        }

        self.update_state(dir, syn, ack, fin, rst, len);
        effect.closed = self.is_closed();
        effect
    }

    /// Applies an ACK number to the `peer`'s stream. An ACK beyond what the peer was seen to send
    /// means the peer's data was missed; one that passes older gaps shows they were received.
    fn peer_ack(&mut self, peer: usize, ack: u32, effect: &mut SegmentEffect) {
        let them = &mut self.ep[peer];
        let Some(rel) = them.relative(ack) else {
            return;
        };
        let fin_adjust = match them.fin_at {
            Some(f) if rel as u64 > f => 1,
            _ => 0,
        };
        let acked = rel - fin_adjust;
        let span = them.span as i64;
        if acked > span && acked - span < MAX_SEQ_JUMP {
            them.add_hole(them.span, acked as u64);
            effect.peer_new = acked as u64 - them.span;
            them.span = acked as u64;
        }
        // A bogus ACK far past the span was ignored above: it reveals nothing either.
        if acked > 0 && acked as u64 <= them.span {
            effect.peer_missed = them.acknowledge(acked as u64);
        }
        if effect.peer_new > 0 {
            self.letter(peer, 'G');
        }
    }

    fn update_state(&mut self, dir: usize, syn: bool, ack: bool, fin: bool, rst: bool, len: u64) {
        use EndpointState::*;
        let peer = 1 - dir;
        let state = self.ep[dir].state;
        if rst {
            self.ep[dir].state = Reset;
            return;
        }
        if state == Reset {
            return;
        }
        if syn {
            if state == Inactive || state == SynSent {
                self.ep[dir].state = if ack { SynAckSent } else { SynSent };
            }
        } else if state == Inactive {
            self.ep[dir].state = Partial;
        } else if ack && (state == SynSent || state == SynAckSent) {
            self.ep[dir].state = Established;
            if self.ep[peer].state == SynAckSent {
                self.ep[peer].state = Established;
            }
        }
        if ack && !syn && self.ep[peer].state == SynAckSent && self.ep[dir].state == Established {
            self.ep[peer].state = Established;
        }
        let _ = len;
        if fin {
            self.ep[dir].state = Closed;
        }
    }

    /// Both sides closed, or one reset.
    pub fn is_closed(&self) -> bool {
        use EndpointState::*;
        let [o, r] = [self.ep[0].state, self.ep[1].state];
        o == Reset || r == Reset || (o == Closed && r == Closed)
    }

    /// True once a three-way handshake (or mid-stream data both ways) was seen.
    pub fn established(&self) -> bool {
        use EndpointState::*;
        self.ep
            .iter()
            .all(|e| matches!(e.state, Established | Closed | Partial))
    }

    /// Zeek's `conn_state` for this connection.
    pub fn conn_state(&self) -> ConnState {
        use EndpointState::*;
        let (os, rs) = (self.ep[0].state, self.ep[1].state);
        let o_inactive = matches!(os, Inactive | Partial);
        let r_inactive = matches!(rs, Inactive | Partial);
        if rs == Reset {
            if matches!(os, SynSent | SynAckSent)
                || (os == Reset && self.ep[0].span == 0 && self.ep[1].span == 0)
            {
                ConnState::REJ
            } else if o_inactive {
                ConnState::RSTRH
            } else {
                ConnState::RSTR
            }
        } else if os == Reset {
            if r_inactive {
                if rsto_s0_history(&self.history) {
                    ConnState::RSTOS0
                } else {
                    ConnState::OTH
                }
            } else {
                ConnState::RSTO
            }
        } else if rs == Closed && os == Closed {
            ConnState::SF
        } else if os == Closed {
            if r_inactive {
                ConnState::SH
            } else {
                ConnState::S2
            }
        } else if rs == Closed {
            if o_inactive {
                ConnState::SHR
            } else {
                ConnState::S3
            }
        } else if os == SynSent && rs == Inactive {
            ConnState::S0
        } else if os == Established && rs == Established {
            ConnState::S1
        } else {
            ConnState::OTH
        }
    }
}

/// Zeek's `/^\^?S[^HAFGIQ]*R.*/` on the history: the originator sent a SYN, then a RST, and
/// nothing from the responder was seen.
fn rsto_s0_history(history: &str) -> bool {
    let h = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = h.strip_prefix('S') else {
        return false;
    };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, len: u32) -> TcpSegment<'static> {
        TcpSegment {
            src_port: 1,
            dst_port: 2,
            seq,
            ack,
            flags,
            window: 1000,
            payload: &[],
            wire_payload_len: len,
            mss: None,
        }
    }
    use tcp_flags::*;

    #[test]
    fn full_handshake_data_and_close_is_sf() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 100, 0, 0));
        c.segment(1, &seg(SYN | ACK, 500, 101, 0));
        c.segment(0, &seg(ACK, 101, 501, 0));
        let e = c.segment(0, &seg(ACK | PSH, 101, 501, 10));
        assert_eq!(e.sender_new, 10);
        assert_eq!(e.stream_offset, Some(0));
        c.segment(1, &seg(ACK, 501, 111, 0));
        c.segment(1, &seg(ACK | PSH, 501, 111, 20));
        c.segment(0, &seg(FIN | ACK, 111, 521, 0));
        let e = c.segment(1, &seg(FIN | ACK, 521, 112, 0));
        assert!(e.closed);
        assert_eq!(c.conn_state(), ConnState::SF);
        assert_eq!(c.history(), "ShADadFf");
        assert_eq!((c.ep[0].span, c.ep[1].span), (10, 20));
    }

    #[test]
    fn retransmission_is_not_counted_twice() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(0, &seg(ACK, 1, 0, 100));
        let again = c.segment(0, &seg(ACK, 1, 0, 100));
        assert_eq!(again.sender_new, 0);
        assert_eq!(c.ep[0].span, 100);
        assert!(c.history().contains('T'));
    }

    #[test]
    fn acked_but_unseen_data_counts_as_missed() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(1, &seg(SYN | ACK, 1000, 1, 0));
        c.segment(0, &seg(ACK, 1, 1001, 0));
        // The originator acknowledges 2902 bytes the capture never saw.
        c.segment(0, &seg(ACK, 1, 1001 + 2902, 0));
        assert_eq!(c.ep[1].span, 2902);
        assert_eq!(c.ep[1].missed(), 2902);
        assert!(c.history().contains('g'));
    }

    #[test]
    fn an_ack_past_a_gap_reveals_it_and_an_unacked_gap_stays_loss() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(1, &seg(SYN | ACK, 1000, 1, 0));
        c.segment(0, &seg(ACK, 1, 1001, 100));
        c.segment(0, &seg(ACK, 201, 1001, 100)); // gap [100, 200)
        assert_eq!(c.ep[0].unacked_missed(), 100);
        // The server acknowledges up to the gap: nothing revealed yet.
        assert_eq!(c.segment(1, &seg(ACK, 1001, 101, 0)).peer_missed, 0);
        // Then past it: the 100 bytes were received, so they were sent.
        let e = c.segment(1, &seg(ACK, 1001, 301, 0));
        assert_eq!((e.peer_new, e.peer_missed), (0, 100));
        assert_eq!((c.ep[0].acked_missed, c.ep[0].unacked_missed()), (100, 0));
        // The same ACK again reveals nothing more.
        assert_eq!(c.segment(1, &seg(ACK, 1001, 301, 0)).peer_missed, 0);
        // Zeek's missed_bytes is unchanged by the distinction.
        assert_eq!(c.ep[0].missed(), 100);
    }

    #[test]
    fn an_ack_beyond_the_span_is_new_and_missed_at_once_and_the_mss_comes_from_the_peer() {
        let mut c = TcpConn::new(false);
        let mut syn = seg(SYN, 0, 0, 0);
        syn.mss = Some(1400);
        c.segment(0, &syn);
        let mut syn_ack = seg(SYN | ACK, 1000, 1, 0);
        syn_ack.mss = Some(1200);
        c.segment(1, &syn_ack);
        let e = c.segment(1, &seg(ACK, 1001, 1 + 5000, 0));
        assert_eq!((e.peer_new, e.peer_missed), (5000, 5000));
        assert_eq!(c.ep[0].unacked_missed(), 0);
        // The originator's segments are bounded by what the responder announced.
        assert_eq!(c.segment_size(0), Some(1200));
        assert_eq!(c.segment_size(1), Some(1400));
    }

    #[test]
    fn forgotten_gaps_are_revealed_by_an_ack_past_their_end() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(1, &seg(SYN | ACK, 1000, 1, 0));
        // 20 gaps of 10 bytes: the oldest ones are kept only as a count.
        for i in 0..20u32 {
            c.segment(0, &seg(ACK, 1 + i * 20 + 10, 1001, 10));
        }
        assert_eq!(c.ep[0].unacked_missed(), 200);
        let e = c.segment(1, &seg(ACK, 1001, 1 + 400, 0));
        assert_eq!(e.peer_missed, 200);
        assert_eq!(c.ep[0].unacked_missed(), 0);
    }

    #[test]
    fn reordered_data_fills_its_gap() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(0, &seg(ACK, 101, 0, 50)); // gap [0, 100)
        assert_eq!(c.ep[0].missed(), 100);
        let e = c.segment(0, &seg(ACK, 1, 0, 100));
        assert_eq!(e.sender_new, 0);
        assert_eq!(c.ep[0].missed(), 0);
        assert_eq!(c.ep[0].span, 150);
    }

    #[test]
    fn syn_answered_by_rst_is_rej_and_unanswered_is_s0() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        assert_eq!(c.conn_state(), ConnState::S0);
        c.segment(1, &seg(RST | ACK, 0, 1, 0));
        assert_eq!(c.conn_state(), ConnState::REJ);
    }

    #[test]
    fn syn_then_own_rst_is_rstos0() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(0, &seg(RST, 1, 0, 0));
        assert_eq!(c.conn_state(), ConnState::RSTOS0);
    }

    #[test]
    fn sequence_wraparound_is_handled() {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, u32::MAX - 10, 0, 0));
        c.segment(0, &seg(ACK, u32::MAX - 9, 0, 100));
        c.segment(0, &seg(ACK, 90, 0, 100));
        assert_eq!(c.ep[0].span, 200);
        assert_eq!(c.ep[0].missed(), 0);
    }
}
