//! DNS: messages over UDP, and over TCP with their 2-byte length framing (RFC 1035 4.2.2).
//!
//! Decoding is hickory-proto's (`Message::from_vec`). When hickory rejects a whole message that
//! other tools still read (a record with odd RDATA, an OPT record outside the additional section,
//! a zero-length RDATA in a response), the message is read again with hickory's per-part decoders
//! (`Header`, then each `Query`, then each answer `Record` until the first it rejects), so the
//! header and questions survive. Nothing here decodes DNS wire format by hand, apart from
//! reading the four header counts for a size check.
//!
//! Names are printed as tshark prints `dns.qry.name`: labels joined by dots, no trailing dot, case
//! kept, the root name as `<Root>`. Bytes that are not printable (control characters, invalid
//! UTF-8) are written as `\xHH`; the corpus has none, so that form is not checked against tshark.
//!
//! Invariants:
//! - No function panics on any input.
//! - Header counts are checked against the message size before hickory sees them, so a 12-byte
//!   message claiming 65535 records costs no large allocation.

use std::fmt::Write as _;
use std::net::IpAddr;

use hickory_proto::op::{Header, Message, MessageType, Query};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

/// Bytes in the fixed DNS header.
pub const HEADER_LEN: usize = 12;
/// Smallest question: root name (1) + type (2) + class (2).
const MIN_QUESTION_LEN: usize = 5;
/// Smallest resource record: root name (1) + type, class (4) + TTL (4) + RDLENGTH (2).
const MIN_RECORD_LEN: usize = 11;

/// One DNS message, reduced to what the audit needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction ID.
    pub id: u16,
    /// QR bit: a response.
    pub response: bool,
    /// OPCODE (0 query, 4 notify, 5 update...).
    pub opcode: u8,
    /// RCODE, with the EDNS extended bits when an OPT record carries them.
    pub rcode: u16,
    /// TC bit: the response was truncated (the client should retry over TCP).
    pub truncated: bool,
    /// Question section.
    pub questions: Vec<DnsQuestion>,
    /// Answer section (authority and additional records are not kept).
    pub answers: Vec<DnsAnswer>,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuestion {
    /// As tshark prints it: no trailing dot, case preserved.
    pub name: String,
    /// QTYPE (1 A, 28 AAAA, 5 CNAME, 16 TXT, 65 HTTPS...).
    pub qtype: u16,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Owner name, printed like [`DnsQuestion::name`].
    pub name: String,
    /// TYPE.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// The RDATA the audit uses.
    pub data: DnsData,
}

/// RDATA of an answer, for the types the audit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsData {
    /// A or AAAA.
    Addr(IpAddr),
    /// CNAME target, printed like [`DnsQuestion::name`].
    Cname(String),
    /// TXT: total bytes of its character-strings (tunnelling volume).
    Txt {
        /// Sum of the lengths of the character-strings.
        bytes: usize,
    },
    /// Any other type.
    Other,
}

/// Why a payload is not a readable DNS message.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsError {
    /// Shorter than the 12-byte header.
    #[error("DNS message of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The header was read but not even the first question was.
    #[error("malformed DNS message: {reason}")]
    Malformed {
        /// hickory-proto's reason.
        reason: String,
    },
}

/// Parses one DNS message (a UDP payload, or one TCP message without its length prefix).
pub fn parse_message(payload: &[u8]) -> Result<DnsMessage, DnsError> {
    if payload.len() < HEADER_LEN {
        return Err(DnsError::TooShort { len: payload.len() });
    }
    if counts_fit(payload) {
        if let Ok(message) = Message::from_vec(payload) {
            return Ok(from_message(&message));
        }
    }
    parse_salvage(payload)
}

/// DNS over TCP: splits a stream prefix into 2-byte-length-framed messages.
///
/// Returns the messages (or errors) found and how many bytes were consumed; a partial trailing
/// message is left unconsumed. A zero length prefix is reported as [`DnsError::TooShort`] and
/// skipped.
pub fn split_tcp_messages(stream: &[u8]) -> (Vec<Result<DnsMessage, DnsError>>, usize) {
    let mut messages = Vec::new();
    let mut consumed = 0;
    while let Some([hi, lo, rest @ ..]) = stream.get(consumed..) {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(message) = rest.get(..len) else {
            break;
        };
        messages.push(parse_message(message));
        consumed += 2 + len;
    }
    (messages, consumed)
}

/// Shannon entropy of `label` in bits per character (0 for an empty label). Random-looking
/// labels (base32/base64 tunnels) score near 4 to 5; words score lower.
pub fn label_entropy(label: &str) -> f64 {
    let mut ascii = [0u32; 128];
    let mut other: Vec<(char, u32)> = Vec::new();
    let mut total = 0u32;
    for c in label.chars() {
        total += 1;
        match ascii.get_mut(c as usize) {
            Some(count) => *count += 1,
            None => match other.iter_mut().find(|(k, _)| *k == c) {
                Some((_, count)) => *count += 1,
                None => other.push((c, 1)),
            },
        }
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    ascii
        .iter()
        .copied()
        .chain(other.iter().map(|(_, n)| *n))
        .filter(|&n| n > 0)
        .map(|n| {
            let p = f64::from(n) / total;
            -p * p.log2()
        })
        .sum()
}

/// Whether the header counts could fit in the message at their smallest encodings.
fn counts_fit(payload: &[u8]) -> bool {
    let count = |at: usize| usize::from(u16::from_be_bytes([payload[at], payload[at + 1]]));
    let questions = count(4);
    let records = count(6) + count(8) + count(10);
    questions * MIN_QUESTION_LEN + records * MIN_RECORD_LEN <= payload.len() - HEADER_LEN
}

fn from_message(message: &Message) -> DnsMessage {
    DnsMessage {
        id: message.metadata.id,
        response: message.metadata.message_type == MessageType::Response,
        opcode: u8::from(message.metadata.op_code),
        rcode: u16::from(message.metadata.response_code),
        truncated: message.metadata.truncation,
        questions: message.queries.iter().map(question).collect(),
        answers: message.answers.iter().map(answer).collect(),
    }
}

/// Reads the header, then questions and answers one at a time, keeping what hickory accepts.
fn parse_salvage(payload: &[u8]) -> Result<DnsMessage, DnsError> {
    let mut decoder = BinDecoder::new(payload);
    let header =
        Header::read(&mut decoder).map_err(|_| DnsError::TooShort { len: payload.len() })?;
    let mut out = DnsMessage {
        id: header.metadata.id,
        response: header.metadata.message_type == MessageType::Response,
        opcode: u8::from(header.metadata.op_code),
        rcode: u16::from(header.metadata.response_code),
        truncated: header.metadata.truncation,
        questions: Vec::new(),
        answers: Vec::new(),
    };
    for _ in 0..header.counts.queries {
        match Query::read(&mut decoder) {
            Ok(query) => out.questions.push(question(&query)),
            Err(e) if out.questions.is_empty() => {
                return Err(DnsError::Malformed {
                    reason: e.to_string(),
                })
            }
            // The decoder is lost inside a question: nothing after it can be found.
            Err(_) => return Ok(out),
        }
    }
    for _ in 0..header.counts.answers {
        match Record::read(&mut decoder) {
            Ok(record) => out.answers.push(answer(&record)),
            Err(_) => break,
        }
    }
    Ok(out)
}

fn question(query: &Query) -> DnsQuestion {
    DnsQuestion {
        name: display_name(query.name()),
        qtype: u16::from(query.query_type()),
    }
}

fn answer(record: &Record) -> DnsAnswer {
    let data = match &record.data {
        RData::A(a) => DnsData::Addr(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => DnsData::Addr(IpAddr::V6(aaaa.0)),
        RData::CNAME(cname) => DnsData::Cname(display_name(&cname.0)),
        RData::TXT(txt) => DnsData::Txt {
            bytes: txt.txt_data.iter().map(|s| s.len()).sum(),
        },
        _ => DnsData::Other,
    };
    DnsAnswer {
        name: display_name(&record.name),
        rtype: u16::from(record.record_type()),
        ttl: record.ttl,
        data,
    }
}

/// A name as tshark prints it: labels joined by `.`, no trailing dot, `<Root>` for the root.
/// hickory's own `Display` adds the trailing dot and escapes per RFC 1035 zone-file rules, which
/// tshark does not.
fn display_name(name: &Name) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, label) in name.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_label(&mut out, label);
    }
    if out.is_empty() {
        out.push_str("<Root>");
    }
    out
}

fn push_label(out: &mut String, label: &[u8]) {
    match std::str::from_utf8(label) {
        Ok(text) => {
            for c in text.chars() {
                if c.is_control() {
                    // Controls are ASCII or C1 (U+0080..U+009F); write their code point.
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                } else {
                    out.push(c);
                }
            }
        }
        Err(_) => {
            for &b in label {
                if b.is_ascii_graphic() || b == b' ' {
                    out.push(char::from(b));
                } else {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    /// Query for www.tcpdump.org A (tcpdump `dns_tcp.pcap`), over TCP with its length prefix.
    const TCP_QUERY: &str = "0038431901200001000000000001037777770774637064756d70036f72670000010001000029100000000000000c000a00088f06be7d691442f0";
    /// Its response.
    const TCP_RESPONSE: &str = "00e0431985000001000200020005037777770774637064756d70036f72670000010001c00c000100010000003c0004c08b2e42c00c000100010000003c0004c6c75868c01000020001000151800012036e69630973616e64656c6d616e02636100c0100002000100015180001203736e7308636f6f7065726978036e657400c04d000100010000012c0004d157f912c04d001c00010000012c00102607f0b0000f000000000000babef00dc06b0001000100001c200004616b850fc06b001c000100001c20001026003c0300000000f03c91fffe96e8ef0000291000000000000000";
    /// Response with a two-hop CNAME chain: meta.wikimedia.org -> text.wikimedia.org ->
    /// text.pmtpa.wikimedia.org A 208.80.152.2 (Zeek `wikipedia.pcap`, frame 49).
    const CNAME_RESPONSE: &str = "423a81800001000300030003046d6574610977696b696d65646961036f72670000010001c00c00050001000002d300070474657874c011c0300005000100000251000d047465787405706d747061c011c043000100010000085d0004d0509802c011000200010000c0480006036e7331c011c011000200010000c0480006036e7330c011c011000200010000c0480006036e7332c011c07e000100010000085d0004d0509882c06c000100010000085d0004d050988ec090000100010000085d00045bc6ae04";
    /// AAAA response for www.netbsd.org (Zeek `dns-long-connection.pcap`, frame 10).
    const AAAA_RESPONSE: &str = "f0d48180000100010000000003777777066e6574627364036f726700001c0001c00c001c0001000151800010200104f80004000702e081fffe529a6b";

    /// A hand-made query: id 0xbeef, RD, one question `Ab.Example.com` type TXT.
    fn query(name_labels: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut m = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name_labels {
            m.push(label.len() as u8);
            m.extend_from_slice(label);
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn parses_query() {
        let m = parse_message(&query(&[b"Ab", b"Example", b"com"], 16)).expect("parses");
        assert_eq!(m.id, 0xbeef);
        assert!(!m.response);
        assert_eq!(m.opcode, 0);
        assert_eq!(m.rcode, 0);
        assert!(!m.truncated);
        assert_eq!(
            m.questions,
            [DnsQuestion {
                name: "Ab.Example.com".into(),
                qtype: 16,
            }]
        );
        assert!(m.answers.is_empty());
    }

    #[test]
    fn parses_cname_chain() {
        let m = parse_message(&unhex(CNAME_RESPONSE)).expect("parses");
        assert!(m.response);
        assert_eq!(m.questions[0].name, "meta.wikimedia.org");
        let cnames: Vec<_> = m
            .answers
            .iter()
            .filter_map(|a| match &a.data {
                DnsData::Cname(target) => Some((a.name.as_str(), target.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            cnames,
            [
                ("meta.wikimedia.org", "text.wikimedia.org"),
                ("text.wikimedia.org", "text.pmtpa.wikimedia.org")
            ]
        );
        assert!(m
            .answers
            .iter()
            .any(|a| a.data == DnsData::Addr("208.80.152.2".parse().expect("ip"))));
    }

    #[test]
    fn parses_aaaa() {
        let m = parse_message(&unhex(AAAA_RESPONSE)).expect("parses");
        let addrs: Vec<_> = m
            .answers
            .iter()
            .filter_map(|a| match a.data {
                DnsData::Addr(ip) if a.rtype == 28 => Some(ip.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(addrs, ["2001:4f8:4:7:2e0:81ff:fe52:9a6b"]);
    }

    #[test]
    fn tcp_framing() {
        let mut stream = unhex(TCP_QUERY);
        stream.extend_from_slice(&unhex(TCP_RESPONSE));
        let (messages, consumed) = split_tcp_messages(&stream);
        assert_eq!(consumed, stream.len());
        assert_eq!(messages.len(), 2);
        let query = messages[0].as_ref().expect("query");
        let response = messages[1].as_ref().expect("response");
        assert_eq!(query.questions[0].name, "www.tcpdump.org");
        assert_eq!(response.id, query.id);
        assert!(response.response);
        // A partial trailing message is left for later.
        let cut = stream.len() - 3;
        let (messages, consumed) = split_tcp_messages(&stream[..cut]);
        assert_eq!(messages.len(), 1);
        assert_eq!(consumed, unhex(TCP_QUERY).len());
        assert_eq!(split_tcp_messages(&stream[..1]), (Vec::new(), 0));
        // A zero length is an error and is skipped.
        let (messages, consumed) = split_tcp_messages(&[0, 0, 0]);
        assert_eq!(messages, [Err(DnsError::TooShort { len: 0 })]);
        assert_eq!(consumed, 2);
    }

    #[test]
    fn too_short() {
        assert_eq!(parse_message(&[]), Err(DnsError::TooShort { len: 0 }));
        assert_eq!(parse_message(&[0; 11]), Err(DnsError::TooShort { len: 11 }));
        // A header alone, with no sections, is a message.
        assert!(parse_message(&[0; 12]).is_ok());
    }

    #[test]
    fn truncated_question_is_malformed() {
        let m = query(&[b"example", b"com"], 1);
        for cut in HEADER_LEN + 1..m.len() {
            assert!(
                matches!(parse_message(&m[..cut]), Err(DnsError::Malformed { .. })),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn bad_label_length_is_malformed() {
        let mut m = query(&[b"example", b"com"], 1);
        m[HEADER_LEN] = 0x40; // extended label type, not a length
        assert!(matches!(parse_message(&m), Err(DnsError::Malformed { .. })));
        let mut m = query(&[b"example", b"com"], 1);
        m[HEADER_LEN] = 0xc0; // compression pointer to itself
        m[HEADER_LEN + 1] = HEADER_LEN as u8;
        assert!(matches!(parse_message(&m), Err(DnsError::Malformed { .. })));
    }

    #[test]
    fn hostile_counts_keep_the_question() {
        let mut m = query(&[b"example", b"com"], 1);
        m[6] = 0xff; // 65280 answers claimed
        m[7] = 0x00;
        let parsed = parse_message(&m).expect("header and question survive");
        assert_eq!(parsed.questions[0].name, "example.com");
        assert!(parsed.answers.is_empty());
    }

    #[test]
    fn bad_record_keeps_header_question_and_earlier_answers() {
        let mut m = unhex(CNAME_RESPONSE);
        // Cut inside the last additional record: hickory rejects the message as a whole, but
        // the header, question and all three answers come before the damage.
        m.truncate(m.len() - 2);
        assert!(Message::from_vec(&m).is_err());
        let parsed = parse_message(&m).expect("salvaged");
        let whole = parse_message(&unhex(CNAME_RESPONSE)).expect("parses");
        assert_eq!(whole.answers.len(), 3);
        assert_eq!(parsed, whole);
        // Cut inside the third answer: the first two remain.
        let mut m = unhex(CNAME_RESPONSE);
        m.truncate(HEADER_LEN + 24 + 19 + 25 + 10);
        let parsed = parse_message(&m).expect("salvaged");
        assert_eq!(parsed.answers, whole.answers[..2]);
    }

    #[test]
    fn flags_and_rcode() {
        let mut m = query(&[b"a"], 1);
        m[2] = 0x80 | (5 << 3) | 0x02; // response, opcode 5 (update), TC
        m[3] = 0x03; // NXDOMAIN
        let parsed = parse_message(&m).expect("parses");
        assert!(parsed.response && parsed.truncated);
        assert_eq!((parsed.opcode, parsed.rcode), (5, 3));
    }

    #[test]
    fn names_print_like_tshark() {
        let m = parse_message(&query(&[], 2)).expect("root");
        assert_eq!(m.questions[0].name, "<Root>");
        let m = parse_message(&query(&[b"a b", b"c\x01", b"\xff"], 1)).expect("odd bytes");
        assert_eq!(m.questions[0].name, "a b.c\\x01.\\xff");
        let m = parse_message(&query(&["é".as_bytes()], 1)).expect("utf-8");
        assert_eq!(m.questions[0].name, "é");
    }

    #[test]
    fn entropy() {
        assert_eq!(label_entropy(""), 0.0);
        assert_eq!(label_entropy("aaaa"), 0.0);
        assert!((label_entropy("ab") - 1.0).abs() < 1e-12);
        assert!((label_entropy("abcd") - 2.0).abs() < 1e-12);
        assert!((label_entropy("éa") - 1.0).abs() < 1e-12);
        assert!(label_entropy("mzxw6ytboi4dcnrqgq2tgnbv") > label_entropy("license"));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_message(&data);
            let _ = split_tcp_messages(&data);
        }

        #[test]
        fn never_panics_on_mutated_responses(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut data = unhex(CNAME_RESPONSE);
            for (at, byte) in &edits {
                let n = data.len();
                data[at % n] = *byte;
            }
            data.truncate(cut % (data.len() + 1));
            let _ = parse_message(&data);
        }

        #[test]
        fn entropy_is_bounded(label in ".{0,64}") {
            let e = label_entropy(&label);
            let n = label.chars().count().max(1) as f64;
            prop_assert!(e >= 0.0 && e <= n.log2() + 1e-9);
        }
    }
}
