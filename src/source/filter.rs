//! BPF filters for offline reading (tcpdump's trailing expression): libpcap compiles the
//! expression once per link type and runs it on each frame's bytes, so `dg-audit flows f.pcap tcp
//! port 443` selects exactly what `tcpdump -r f.pcap tcp port 443` would. Hand-rolling a BPF
//! compiler would only reproduce libpcap's, which the live source already links.

use std::collections::HashMap;

use pcap::{BpfProgram, Capture, Linktype};

use super::{Frame, SourceError};

/// A compiled filter expression, per link type.
pub struct FrameFilter {
    expression: String,
    programs: HashMap<u32, BpfProgram>,
}

impl FrameFilter {
    /// Compiles `expression` (for Ethernet first, so a typo is reported before any reading).
    pub fn new(expression: &str) -> Result<Self, SourceError> {
        let mut filter = FrameFilter {
            expression: expression.to_string(),
            programs: HashMap::new(),
        };
        filter.program(1)?;
        Ok(filter)
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    fn program(&mut self, link_type: u32) -> Result<&BpfProgram, SourceError> {
        if !self.programs.contains_key(&link_type) {
            let bad = |message: String| SourceError::BadFilter {
                expression: self.expression.clone(),
                link_type,
                message,
            };
            let dead =
                Capture::dead(Linktype(dlt_of(link_type))).map_err(|e| bad(e.to_string()))?;
            let program = dead
                .compile(&self.expression, true)
                .map_err(|e| bad(e.to_string()))?;
            self.programs.insert(link_type, program);
        }
        Ok(&self.programs[&link_type])
    }

    /// True when the frame passes the filter.
    pub fn matches(&mut self, frame: &Frame<'_>) -> Result<bool, SourceError> {
        Ok(self.program(frame.link_type)?.filter(frame.data))
    }
}

/// libpcap's dead handles take a DLT, while files carry a LINKTYPE; they are the same number for
/// every link type dg-audit decodes except raw IP (LINKTYPE_RAW 101 is DLT_RAW, 12 on Linux).
fn dlt_of(link_type: u32) -> i32 {
    match link_type {
        101 => 12,
        other => other as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame {
            ts_nanos: 0,
            link_type: 101, // raw IP
            data,
            wire_len: data.len() as u32,
            file_index: 0,
            interface: 0,
            has_ts: true,
        }
    }

    #[test]
    fn a_port_filter_selects_by_port() {
        // IPv4 UDP 192.0.2.10:5353 -> 192.0.2.53:53, no payload.
        let mut packet = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 10, 192, 0, 2, 53,
        ];
        packet.extend_from_slice(&[0x14, 0xe9, 0, 53, 0, 8, 0, 0]);
        let mut dns = FrameFilter::new("udp port 53").unwrap();
        let mut https = FrameFilter::new("tcp port 443").unwrap();
        assert!(dns.matches(&frame(&packet)).unwrap());
        assert!(!https.matches(&frame(&packet)).unwrap());
    }

    #[test]
    fn a_bad_expression_is_an_error_naming_it() {
        let err = FrameFilter::new("tcp prot 443").err().expect("rejected");
        assert!(err.to_string().contains("tcp prot 443"), "{err}");
    }
}
