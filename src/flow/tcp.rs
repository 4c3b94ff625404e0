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
    /// The state before the last change (Zeek's `TCP_Endpoint::prev_state`).
    prev_state: EndpointState,
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
    /// Zeek's content gaps: bytes the peer acknowledged while the capture did not hold them, on
    /// a cleanly established connection (the sum of `content_gap` lengths, Zeek's
    /// `missed_bytes`). Never decreases: a hole filled after the ACK passed it stays a gap.
    gap_bytes: u64,
    /// Content gaps reported (Zeek's `gap_cnt`, for the scaled `G` history letter).
    gaps: u64,
}

impl Endpoint {
    /// Zeek's `missed_bytes` for this side: content gaps, the bytes an ACK showed were sent
    /// while the capture never held them (TCP_Reassembler.cc: `AckReceived` -> `TrimToSeq` ->
    /// `Undelivered` -> `Gap`, and `conn/main.zeek` adds each `content_gap` length). A hole
    /// filled by a retransmission or a reordered segment before an ACK passed it was never a
    /// gap, and a hole nothing acknowledged is not one either (it is `unacked_missed`).
    pub fn missed(&self) -> u64 {
        self.gap_bytes
    }

    /// Bytes inside the covered span never seen, acknowledged or not.
    pub fn holes_total(&self) -> u64 {
        self.forgotten_missed + self.holes.iter().map(|(a, b)| b - a).sum::<u64>()
    }

    /// Zeek's `is_clean` (TCP_Reassembler.cc): established, or closed after being established.
    fn is_clean(&self) -> bool {
        self.state == EndpointState::Established
            || (self.state == EndpointState::Closed
                && self.prev_state == EndpointState::Established)
    }

    fn set_state(&mut self, state: EndpointState) {
        self.prev_state = self.state;
        self.state = state;
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
    fn acknowledge(&mut self, to: u64) -> (u64, u64) {
        if to <= self.acked {
            return (0, 0);
        }
        let from = self.acked;
        let (mut revealed, mut pieces) = (0, 0);
        for &(a, b) in &self.holes {
            let n = b.min(to).saturating_sub(a.max(from));
            if n > 0 {
                revealed += n;
                pieces += 1;
            }
        }
        if self.forgotten_unacked > 0 && to >= self.forgotten_until {
            revealed += self.forgotten_unacked;
            pieces += 1;
            self.forgotten_unacked = 0;
        }
        self.acked = to;
        self.acked_missed += revealed;
        (revealed, pieces)
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
        (syn, cut): (bool, bool),
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
                let (new, retransmit, gap) = if cut {
                    self.unseen_data(rel, len)
                } else {
                    self.data(rel, len)
                };
                effect.sender_new = new;
                effect.stream_offset = (rel >= 0).then_some(rel as u64);
                (retransmit, gap)
            }
            _ => (false, false),
        }
    }

    /// Accounts a segment whose payload the snaplen cut: its sequence space counts (Zeek's
    /// sizes come from sequence numbers), but Zeek never hands it to the reassembler
    /// (TCP_Endpoint::DataSent: `caplen >= len` or weird `truncated_tcp_payload`; and
    /// TCPSessionAdapter::DeliverPacket passes data only when `remaining >= len`), so the range
    /// stays a hole that becomes a content gap (`G`, `missed_bytes`) once the peer acknowledges it.
    fn unseen_data(&mut self, rel: i64, len: u64) -> (u64, bool, bool) {
        if rel < 0 || len == 0 {
            return (0, rel < 0 && len > 0, false);
        }
        let (from, to) = (rel as u64, rel as u64 + len);
        let retransmit = from < self.span.max(self.highest);
        let mut new = 0;
        if to > self.span {
            self.add_hole(self.span, to);
            new = to - self.span;
            self.span = to;
        }
        self.highest = self.highest.max(to);
        (new, retransmit, new > 0)
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

    /// Applies one segment sent by `dir` (0 = originator), its payload wholly captured.
    pub fn segment(&mut self, dir: usize, seg: &TcpSegment<'_>) -> SegmentEffect {
        self.segment_captured(dir, seg, false)
    }

    /// Applies one segment sent by `dir`; `cut` when the snaplen cut its payload (see
    /// [`Endpoint::unseen_data`]).
    pub fn segment_captured(
        &mut self,
        dir: usize,
        seg: &TcpSegment<'_>,
        cut: bool,
    ) -> SegmentEffect {
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
        // A hole opened here is not yet a gap: Zeek's reassembler waits for the data, and only
        // an ACK past it makes it one (see `peer_ack`).
        let (retransmit, _opened_hole) = me.segment_data(seg, (syn, cut), len, &mut effect);
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
        // As TCPSessionAdapter::DeliverPacket: the state machine first, then the ACK, so that
        // whether a gap counts depends on the state this segment left.
        self.update_state(dir, syn, ack, fin, rst, len);
        if ack && !rst {
            self.peer_ack(peer, seg.ack, &mut effect);
        }
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
        let mut pieces = 0;
        if acked > 0 && acked as u64 <= them.span {
            (effect.peer_missed, pieces) = them.acknowledge(acked as u64);
        }
        // TCP_Reassembler::Gap: a content gap is recorded (history `G`, scaled as the count
        // reaches 1, 10, 100, ...; `content_gap` adding to `missed_bytes`) only while both
        // endpoints are established or closing cleanly (`established_or_cleanly_closing`;
        // `report_gaps_for_partial` is F by default), so a partial connection reports none.
        if effect.peer_missed > 0 && self.ep[0].is_clean() && self.ep[1].is_clean() {
            self.ep[peer].gap_bytes += effect.peer_missed;
            for _ in 0..pieces {
                self.ep[peer].gaps += 1;
                let n = self.ep[peer].gaps;
                self.scaled_letter(peer, 'G', n);
            }
        }
    }

    /// Zeek's endpoint state machine (TCPSessionAdapter.cc `UpdateStateMachine` and its
    /// `Update*State` helpers), without the role flip of a SYN/SYN-ACK reversal.
    fn update_state(&mut self, dir: usize, syn: bool, ack: bool, fin: bool, rst: bool, len: u64) {
        use EndpointState::*;
        let peer = 1 - dir;
        let is_orig = dir == 0;
        match self.ep[dir].state {
            Inactive => {
                // UpdateInactiveState.
                if syn {
                    if is_orig {
                        self.ep[dir].set_state(if ack { SynAckSent } else { SynSent });
                    } else {
                        // The responder's SYN (normally a SYN-ACK) establishes it, and the
                        // originator too if it had sent its SYN: a SYN-ACK seen first, or a
                        // SYN-ACK with no ACK after it, is S1 in Zeek.
                        if self.ep[peer].state == SynSent {
                            self.ep[peer].set_state(Established);
                        }
                        self.ep[dir].set_state(Established);
                    }
                }
                if fin {
                    self.ep[dir].set_state(Closed);
                }
                if rst {
                    self.ep[dir].set_state(Reset);
                }
                if self.ep[dir].state == Inactive {
                    if !is_orig && len == 0 && self.ep[0].state == SynSent {
                        // An ACK of the SYN before the SYN-ACK: not a partial connection.
                    } else if ack && self.ep[peer].state == Established {
                        // The SYN was missed but the SYN-ACK seen: establish, not partial.
                        self.ep[dir].set_state(Established);
                    } else {
                        self.ep[dir].set_state(Partial);
                    }
                }
            }
            SynSent | SynAckSent => {
                // UpdateSYN_SentState.
                if fin {
                    self.ep[dir].set_state(Closed);
                }
                if rst {
                    self.ep[dir].set_state(Reset);
                }
            }
            Established | Partial => {
                // UpdateEstablishedState.
                if syn && !ack && self.ep[dir].state == Partial && self.ep[peer].state == Inactive {
                    self.ep[dir].set_state(SynSent);
                }
                if fin && !rst {
                    self.ep[dir].set_state(Closed);
                    // "The peer sent a FIN followed by a RST. Turn it back into CLOSED state,
                    // because this was actually normal termination."
                    if self.ep[peer].state == Reset && self.ep[peer].prev_state == Closed {
                        self.ep[peer].set_state(Closed);
                    }
                }
                if rst {
                    self.ep[dir].set_state(Reset);
                }
            }
            Closed => {
                // UpdateClosedState: "If our peer was also closed, then don't change our state
                // now on a RST, since this connection has already seen a FIN exchange" (SF).
                if rst && self.ep[peer].state != Closed {
                    self.ep[dir].set_state(Reset);
                }
            }
            Reset => {}
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
        c.segment(0, &seg(ACK, 101, 0, 50)); // hole [0, 100)
        assert_eq!(c.ep[0].holes_total(), 100);
        let e = c.segment(0, &seg(ACK, 1, 0, 100));
        assert_eq!(e.sender_new, 0);
        assert_eq!((c.ep[0].holes_total(), c.ep[0].missed()), (0, 0));
        assert_eq!(c.ep[0].span, 150);
    }

    fn handshake() -> TcpConn {
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(1, &seg(SYN | ACK, 1000, 1, 0));
        c.segment(0, &seg(ACK, 1, 1001, 0));
        c
    }

    /// zeek-tls-hrr.pcap's shape: the server's second segment arrives before its first, the
    /// client acknowledges the whole, and the first arrives late (a hole filled, never a gap).
    #[test]
    fn a_hole_filled_by_a_reordered_or_retransmitted_segment_is_no_gap() {
        let mut c = handshake();
        c.segment(1, &seg(ACK, 1001 + 1368, 1, 100)); // hole [0, 1368)
        c.segment(1, &seg(ACK | PSH, 1001, 1, 1368)); // fills it
        c.segment(0, &seg(ACK, 1, 1001 + 1468, 0));
        assert_eq!(c.ep[1].missed(), 0);
        assert_eq!(c.history(), "ShAd");
        // A retransmission filling a hole after the peer's duplicate ACKs stopped below it.
        c.segment(1, &seg(ACK, 1001 + 1468 + 500, 1, 100)); // hole [1468, 1968)
        c.segment(0, &seg(ACK, 1, 1001 + 1468, 0));
        c.segment(1, &seg(ACK, 1001 + 1468, 1, 500));
        c.segment(0, &seg(ACK, 1, 1001 + 2068, 0));
        assert_eq!(c.ep[1].missed(), 0);
        assert!(!c.history().contains(['g', 'G']), "{}", c.history());
        // An ACK past a hole still open is Zeek's content gap, and it stays one once filled.
        c.segment(1, &seg(ACK, 1001 + 2068 + 10, 1, 10)); // hole [2068, 2078)
        c.segment(0, &seg(ACK, 1, 1001 + 2088, 0));
        c.segment(1, &seg(ACK, 1001 + 2068, 1, 10));
        assert_eq!(c.ep[1].missed(), 10);
        assert!(c.history().ends_with('g'), "{}", c.history());
    }

    #[test]
    fn segments_larger_than_the_mtu_are_data_not_gaps() {
        // A host capture sees what the stack handed the NIC (TSO/GSO): 64000 bytes at once.
        let mut c = handshake();
        c.segment(0, &seg(ACK | PSH, 1, 1001, 64000));
        c.segment(0, &seg(ACK | PSH, 64001, 1001, 2896));
        c.segment(1, &seg(ACK, 1001, 1 + 66896, 0));
        assert_eq!((c.ep[0].span, c.ep[0].missed()), (66896, 0));
        assert_eq!(c.history(), "ShADa");
    }

    #[test]
    fn payload_cut_by_the_snaplen_is_a_gap_once_acknowledged() {
        let mut c = handshake();
        let e = c.segment_captured(0, &seg(ACK | PSH, 1, 1001, 1448), true);
        // Its sequence space counts (orig_bytes) but it is not yet missed.
        assert_eq!((e.sender_new, c.ep[0].missed()), (1448, 0));
        c.segment(1, &seg(ACK, 1001, 1 + 1448, 0));
        assert_eq!((c.ep[0].span, c.ep[0].missed()), (1448, 1448));
        assert_eq!(c.history(), "ShADaG");
        assert_eq!(c.ep[0].unacked_missed(), 0);
    }

    #[test]
    fn a_rst_after_both_fins_keeps_sf() {
        for rst_from in [0, 1] {
            let mut c = handshake();
            c.segment(0, &seg(FIN | ACK, 1, 1001, 0));
            c.segment(1, &seg(FIN | ACK, 1001, 2, 0));
            c.segment(
                rst_from,
                &seg(RST, if rst_from == 0 { 2 } else { 1002 }, 0, 0),
            );
            assert_eq!(c.conn_state(), ConnState::SF, "RST from {rst_from}");
        }
        // A FIN, the same side's RST, then the peer's FIN: Zeek turns the RST back into a close.
        let mut c = handshake();
        c.segment(0, &seg(FIN | ACK, 1, 1001, 0));
        c.segment(0, &seg(RST, 2, 0, 0));
        assert_eq!(c.conn_state(), ConnState::RSTO);
        c.segment(1, &seg(FIN | ACK, 1001, 2, 0));
        assert_eq!(c.conn_state(), ConnState::SF);
        // One FIN then the peer's RST is still RSTR.
        let mut c = handshake();
        c.segment(0, &seg(FIN | ACK, 1, 1001, 0));
        c.segment(1, &seg(RST, 1001, 0, 0));
        assert_eq!(c.conn_state(), ConnState::RSTR);
    }

    #[test]
    fn a_syn_ack_seen_first_is_s1_flipped() {
        // The table flips the roles (the SYN-ACK came from a likely server port).
        let mut c = TcpConn::new(true);
        c.segment(1, &seg(SYN | ACK, 1000, 1, 0));
        c.segment(0, &seg(ACK, 1, 1001, 0));
        c.segment(0, &seg(ACK | PSH, 1, 1001, 10));
        c.segment(1, &seg(ACK, 1001, 11, 0));
        assert_eq!(c.conn_state(), ConnState::S1);
        assert_eq!(c.history(), "^hADa");
        // A SYN answered by a SYN-ACK and nothing more is S1 too (both established).
        let mut c = TcpConn::new(false);
        c.segment(0, &seg(SYN, 0, 0, 0));
        c.segment(1, &seg(SYN | ACK, 1000, 1, 0));
        assert_eq!(c.conn_state(), ConnState::S1);
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
