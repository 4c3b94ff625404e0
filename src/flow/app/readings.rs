//! The names one reading of a stream's opening bytes gives (SNI, HTTP Host, CONNECT target), and
//! the record of a conflict between two readings.
//!
//! When two copies of the same bytes differ, the flow's parsers have read only one of them; this
//! module reads both again from the kept prefix (see [`super::overlap`]) so that the names of the
//! other reading are not lost. It runs only when a conflict is found, never per packet.

use super::overlap::Clash;
use crate::flow::record::StreamConflict;
use crate::inspect::http;
use crate::inspect::secrets;
use crate::inspect::tls::{self, ClientHello};
use crate::inspect::Parse;

/// Requests read from one reading before giving up (as the live parser's cap).
const MAX_REQUESTS: usize = 16;
/// Bytes shown in hex for each side of a conflict.
const HEX_SHOWN: usize = 12;

/// What one reading of the originator's opening bytes names.
#[derive(Debug, Default)]
pub(super) struct Names {
    /// The ClientHello, at the stream start or after a CONNECT request.
    pub hello: Option<ClientHello>,
    /// Host header of each request read, in order.
    pub hosts: Vec<Option<String>>,
    /// `host:port` of a CONNECT request.
    pub connect: Option<String>,
    /// The reading did not end inside a message: more bytes would not change these names.
    pub whole: bool,
}

/// Reads `reading` (a direction's bytes from offset 0) as the live parsers would: HTTP requests
/// one after another (bodies skipped by Content-Length), and a ClientHello at the start or after
/// a CONNECT.
pub(super) fn names_in(reading: &[u8]) -> Names {
    let mut names = Names {
        whole: true,
        ..Names::default()
    };
    let mut at = 0usize;
    for _ in 0..MAX_REQUESTS {
        let Some(view) = reading.get(at..).filter(|v| !v.is_empty()) else {
            break;
        };
        if tls::looks_like_tls(view) {
            match tls::parse_client_hello(view) {
                Parse::Done(hello) => names.hello = Some(hello),
                Parse::NeedMore => names.whole = false,
                Parse::NotThis => {}
            }
            break;
        }
        let req = match http::parse_request(view) {
            Parse::Done(req) => req,
            Parse::NeedMore => {
                names.whole = false;
                break;
            }
            Parse::NotThis => break,
        };
        names.hosts.push(req.host.clone());
        at = at.saturating_add(req.header_len);
        if req.method.eq_ignore_ascii_case("CONNECT") {
            names.connect = http::connect_authority(&req).map(|(h, p)| format!("{h}:{p}"));
            continue;
        }
        if req.chunked {
            break;
        }
        let body = usize::try_from(req.content_length.unwrap_or(0)).unwrap_or(usize::MAX);
        at = at.saturating_add(body);
    }
    names
}

/// The record of `clash` in direction `dir`. The hex of a side is withheld when its bytes overlap
/// a credential in that reading (`primary` or `other`, each a reading from offset 0), or when the
/// reading does not reach the conflict, so no output shows a credential in hex.
pub(super) fn conflict_record(
    dir: usize,
    clash: &Clash,
    primary: &[u8],
    other: &[u8],
) -> StreamConflict {
    let range = clash.offset..clash.offset + clash.first.len();
    let (first_reading, second_reading) = if clash.second_is_primary {
        (other, primary)
    } else {
        (primary, other)
    };
    let shown = |bytes: &[u8], reading: &[u8]| {
        if reading.len() < range.end || secrets::overlaps_secret(reading, range.clone()) {
            "(redacted)".to_string()
        } else {
            short_hex(bytes)
        }
    };
    StreamConflict {
        direction: if dir == 0 { "orig" } else { "resp" }.to_string(),
        offset: clash.offset as u64,
        len: clash.first.len() as u64,
        first_hex: shown(&clash.first, first_reading),
        second_hex: shown(&clash.second, second_reading),
        first_bad_checksum: clash.first_bad,
        second_bad_checksum: clash.second_bad,
    }
}

/// Hex of the first [`HEX_SHOWN`] bytes, `...` when there are more.
fn short_hex(bytes: &[u8]) -> String {
    let mut s = hex::encode(&bytes[..bytes.len().min(HEX_SHOWN)]);
    if bytes.len() > HEX_SHOWN {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_requests_and_connect() {
        let r = b"GET / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\nHost: b.example\r\n\r\nCONNECT c.example:443 HTTP/1.1\r\nHost: c.example:443\r\n\r\n\x16";
        let n = names_in(r);
        assert_eq!(
            n.hosts,
            [
                Some("a.example".to_string()),
                Some("b.example".to_string()),
                Some("c.example:443".to_string())
            ]
        );
        assert_eq!(n.connect.as_deref(), Some("c.example:443"));
        assert!(n.hello.is_none());
        // The CONNECT is followed by one byte of a TLS record: more bytes could name more.
        assert!(!n.whole);
        assert!(names_in(&r[..r.len() - 1]).whole);
        assert!(names_in(b"").hosts.is_empty());
        assert!(names_in(b"\x00\x01garbage").hosts.is_empty());
    }

    #[test]
    fn hex_is_short_and_withheld_over_a_secret() {
        assert_eq!(short_hex(b"abc"), "616263");
        assert_eq!(short_hex(&[0u8; 13]), format!("{}...", "00".repeat(12)));
        let key = "f1037f690e1c05405b0a71b8fc1df3d453b1bcad";
        let primary = format!("k={key}\n");
        let other = format!("k=z{}\n", &key[1..]);
        let clash = Clash {
            offset: 2,
            first: key.as_bytes()[..1].to_vec(),
            second: b"z".to_vec(),
            first_bad: false,
            second_bad: true,
            second_is_primary: false,
        };
        let rec = conflict_record(0, &clash, primary.as_bytes(), other.as_bytes());
        assert_eq!(rec.first_hex, "(redacted)");
        assert_eq!(rec.second_hex, "7a");
        assert_eq!((rec.offset, rec.len), (2, 1));
        assert!(!rec.first_bad_checksum && rec.second_bad_checksum);
    }
}
