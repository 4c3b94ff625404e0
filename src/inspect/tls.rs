//! TLS: the client's ClientHello (SNI, ALPN, ECH, versions, JA4) and the server's first flight
//! (ServerHello, a cleartext alert), read from one direction's byte stream.
//!
//! Record headers, ClientHello and ServerHello bodies and extension contents are parsed by
//! tls-parser. Two things are written here because tls-parser does not do them:
//! - gathering a handshake message that is split across several records (tls-parser parses one
//!   record at a time; a post-quantum ClientHello is often split, see `tls_record_ch_fragmented`);
//! - walking the extension block one TLV at a time. tls-parser's list parser drops every
//!   extension after the first one whose content it rejects, and its enum does not keep the wire
//!   type code of recognised extensions, while SNI extraction must survive an odd extension and
//!   JA4 needs every type code in wire order. Each extension's content is still decoded by
//!   tls-parser's `parse_tls_client_hello_extension`.
//!
//! Invariants:
//! - No function panics on any input.
//! - A stream parser waits for at most [`MAX_HANDSHAKE_BYTES`] of handshake data, then answers
//!   [`Parse::NotThis`] (or what it has, for the server side).
//! - The ClientHello is read in place when it sits in one record; bytes are copied only to join
//!   fragments from several records.
//! - Strings are kept as sent (SNI is not lower-cased); bytes that are not UTF-8 are replaced with
//!   U+FFFD.

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use tls_parser::{
    parse_tls_client_hello_extension, parse_tls_handshake_client_hello,
    parse_tls_handshake_server_hello, parse_tls_record_header, parse_tls_server_hello_extension,
    SNIType, TlsExtension, MAX_RECORD_LEN,
};

use super::Parse;

/// Largest handshake message (ClientHello or ServerHello) a stream parser waits for, and the most
/// server-side bytes it walks looking for the end of the cleartext handshake.
pub const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;

/// Most client stream bytes walked looking for the ClientHello's last fragment (record headers
/// included).
const MAX_STREAM_BYTES: usize = 2 * MAX_HANDSHAKE_BYTES;

const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;

const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPLICATION_DATA: u8 = 23;

const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const HANDSHAKE_SERVER_HELLO: u8 = 2;

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;

const TLS13: u16 = 0x0304;

/// What a ClientHello tells about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// First `host_name` entry of the server_name extension, exactly as sent.
    pub sni: Option<String>,
    /// ALPN protocol names in the client's order.
    pub alpn: Vec<String>,
    /// The Encrypted Client Hello extension (0xfe0d) is present: `sni` is only the public name.
    pub ech: bool,
    /// A GREASE extension type (RFC 8701) is present (tshark's `grease_ext`).
    pub grease: bool,
    /// The supported_versions extension, GREASE values removed, in the client's order.
    pub supported_versions: Vec<u16>,
    /// The ClientHello's legacy_version field.
    pub legacy_version: u16,
    /// FoxIO JA4 client fingerprint (JA4 only, not the JA4+ family), e.g.
    /// `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub ja4: String,
}

/// What the server's cleartext first flight tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSide {
    /// A ServerHello (or HelloRetryRequest) was seen.
    pub server_hello: bool,
    /// A cleartext alert (level, description) sent before encryption began.
    pub alert: Option<(u8, u8)>,
    /// Negotiated version: the ServerHello's supported_versions selection, else its version.
    pub version: Option<u16>,
}

/// True for the GREASE values of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa).
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// True when `stream` starts like a TLS record (content type 20..=23, version 0x0300..=0x0304).
///
/// A prefix of 1 or 2 bytes answers true when it is consistent with such a header: a client that
/// sends its first byte alone must not slip past SNI inspection. Empty input answers false.
pub fn looks_like_tls(stream: &[u8]) -> bool {
    matches!(stream, [20..=23] | [20..=23, 3] | [20..=23, 3, 0..=4, ..])
}

/// Reads the ClientHello from the client-to-server byte stream, from its first byte.
///
/// The ClientHello may be split across several handshake records and any number of segments.
/// Returns `NeedMore` while the records holding it are incomplete, `NotThis` if the stream does
/// not start with a TLS handshake record holding a ClientHello, if the ClientHello is malformed,
/// or if it is longer than [`MAX_HANDSHAKE_BYTES`].
pub fn parse_client_hello(stream: &[u8]) -> Parse<ClientHello> {
    match first_handshake_message(stream, HANDSHAKE_CLIENT_HELLO) {
        Parse::Done(message) => parse_client_hello_message(&message, false),
        Parse::NeedMore => Parse::NeedMore,
        Parse::NotThis => Parse::NotThis,
    }
}

/// Reads a ClientHello handshake message that is already free of the record layer (e.g. the
/// CRYPTO stream of QUIC Initial packets). `quic` selects the JA4 prefix (`q` instead of `t`).
///
/// Bytes after the message are ignored. `NeedMore` while the message is incomplete; `NotThis` if
/// it is not a ClientHello, is malformed or is longer than [`MAX_HANDSHAKE_BYTES`].
pub fn parse_client_hello_message(handshake: &[u8], quic: bool) -> Parse<ClientHello> {
    let body = match handshake_body(handshake, HANDSHAKE_CLIENT_HELLO) {
        Parse::Done(body) => body,
        Parse::NeedMore => return Parse::NeedMore,
        Parse::NotThis => return Parse::NotThis,
    };
    let Ok((rest, hello)) = parse_tls_handshake_client_hello(body) else {
        return Parse::NotThis;
    };
    // tls-parser makes the extension block optional and leaves it unread when its length is
    // wrong; anything left over means the message is malformed.
    if !rest.is_empty() {
        return Parse::NotThis;
    }
    let Some(extensions) = read_extensions(hello.ext.unwrap_or(&[])) else {
        return Parse::NotThis;
    };
    let ciphers: Vec<u16> = hello
        .ciphers
        .iter()
        .map(|c| c.0)
        .filter(|&c| !is_grease(c))
        .collect();
    let version = extensions
        .supported_versions
        .as_deref()
        .and_then(|v| v.iter().copied().max())
        .unwrap_or(hello.version.0);
    let ja4 = ja4(&Ja4Input {
        quic,
        version,
        has_sni: extensions.types.contains(&EXT_SERVER_NAME),
        ciphers: &ciphers,
        extension_types: &extensions.types,
        first_alpn: extensions.alpn.first().copied(),
        signature_algorithms: &extensions.signature_algorithms,
    });
    Parse::Done(ClientHello {
        sni: extensions.sni.map(lossy),
        alpn: extensions.alpn.iter().map(|p| lossy(p)).collect(),
        ech: extensions.types.contains(&EXT_ENCRYPTED_CLIENT_HELLO),
        grease: extensions.grease,
        supported_versions: extensions.supported_versions.unwrap_or_default(),
        legacy_version: hello.version.0,
        ja4,
    })
}

/// Reads the server-to-client stream from its first byte: the ServerHello and any cleartext
/// alert sent before encryption began.
///
/// `Done` as soon as the answer is known: at an alert, at the first ChangeCipherSpec or
/// application-data record, or right after a TLS 1.3 ServerHello (everything after it is
/// encrypted). For TLS 1.2 and older the server's certificates follow in clear, so this keeps
/// asking for more until the cleartext part ends or [`MAX_HANDSHAKE_BYTES`] have been walked.
/// `NotThis` if the stream does not start with a handshake or alert record, or if its first
/// handshake message is not a ServerHello.
pub fn parse_server_side(stream: &[u8]) -> Parse<ServerSide> {
    let mut out = ServerSide::default();
    let mut handshake: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut pos = 0;
    loop {
        if pos > MAX_HANDSHAKE_BYTES {
            return if out.server_hello {
                Parse::Done(out)
            } else {
                Parse::NotThis
            };
        }
        let record = match next_record(stream.get(pos..).unwrap_or(&[])) {
            Parse::Done(record) => record,
            Parse::NeedMore => return Parse::NeedMore,
            // Garbage after a ServerHello still leaves the ServerHello seen.
            Parse::NotThis if out.server_hello => return Parse::Done(out),
            Parse::NotThis => return Parse::NotThis,
        };
        pos += record.wire_len;
        match record.content_type {
            CONTENT_ALERT => {
                return match record.fragment {
                    [level, description, ..] => {
                        out.alert = Some((*level, *description));
                        Parse::Done(out)
                    }
                    _ if out.server_hello => Parse::Done(out),
                    _ => Parse::NotThis,
                };
            }
            CONTENT_HANDSHAKE if !out.server_hello => {
                append(&mut handshake, record.fragment);
                match handshake_body(&handshake, HANDSHAKE_SERVER_HELLO) {
                    Parse::Done(body) => {
                        out.server_hello = true;
                        out.version = server_hello_version(body);
                        if out.version == Some(TLS13) {
                            return Parse::Done(out);
                        }
                    }
                    Parse::NeedMore => {}
                    Parse::NotThis => return Parse::NotThis,
                }
            }
            CONTENT_HANDSHAKE => {}
            // ChangeCipherSpec or application data: encryption begins (or began).
            _ if out.server_hello => return Parse::Done(out),
            _ => return Parse::NotThis,
        }
    }
}

/// One whole record at the front of a stream.
struct Record<'a> {
    content_type: u8,
    fragment: &'a [u8],
    /// Header plus fragment.
    wire_len: usize,
}

/// Reads the record at the front of `stream`: `NeedMore` if it is incomplete, `NotThis` if its
/// header is not a plausible TLS record header.
fn next_record(stream: &[u8]) -> Parse<Record<'_>> {
    if stream.len() < RECORD_HEADER_LEN {
        // Judge the bytes we have, so garbage is refused without waiting.
        return match stream {
            [] | [20..=23] | [20..=23, 3] => Parse::NeedMore,
            [20..=23, 3, 0..=4, ..] => Parse::NeedMore,
            _ => Parse::NotThis,
        };
    }
    let Ok((rest, header)) = parse_tls_record_header(stream) else {
        return Parse::NotThis;
    };
    let content_type = header.record_type.0;
    let plausible = (CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_APPLICATION_DATA).contains(&content_type)
        && (0x0300..=0x0304).contains(&header.version.0)
        && header.len <= MAX_RECORD_LEN;
    if !plausible {
        return Parse::NotThis;
    }
    let len = usize::from(header.len);
    match rest.get(..len) {
        Some(fragment) => Parse::Done(Record {
            content_type,
            fragment,
            wire_len: RECORD_HEADER_LEN + len,
        }),
        None => Parse::NeedMore,
    }
}

/// Gathers the first handshake message of `stream` (header included), joining the fragments of
/// consecutive handshake records. Borrows when the message sits in one record.
fn first_handshake_message(stream: &[u8], msg_type: u8) -> Parse<Cow<'_, [u8]>> {
    let mut message: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut pos = 0;
    loop {
        // Legitimate senders split at most into 16 KiB records; tiny records in bulk are an
        // attempt to make every call re-walk a large stream.
        if pos > MAX_STREAM_BYTES {
            return Parse::NotThis;
        }
        let record = match next_record(stream.get(pos..).unwrap_or(&[])) {
            Parse::Done(record) => record,
            Parse::NeedMore => return Parse::NeedMore,
            Parse::NotThis => return Parse::NotThis,
        };
        // RFC 8446 5.1: handshake fragments are never empty, and nothing but handshake records
        // may interleave with a handshake message.
        if record.content_type != CONTENT_HANDSHAKE || record.fragment.is_empty() {
            return Parse::NotThis;
        }
        pos += record.wire_len;
        append(&mut message, record.fragment);
        match handshake_body(&message, msg_type) {
            Parse::Done(body) => {
                let len = HANDSHAKE_HEADER_LEN + body.len();
                return Parse::Done(match message {
                    Cow::Borrowed(bytes) => Cow::Borrowed(&bytes[..len]),
                    Cow::Owned(mut bytes) => {
                        bytes.truncate(len);
                        Cow::Owned(bytes)
                    }
                });
            }
            Parse::NeedMore => {}
            Parse::NotThis => return Parse::NotThis,
        }
    }
}

/// Appends a record fragment, borrowing while there is only one.
fn append<'a>(message: &mut Cow<'a, [u8]>, fragment: &'a [u8]) {
    if message.is_empty() {
        *message = Cow::Borrowed(fragment);
    } else {
        message.to_mut().extend_from_slice(fragment);
    }
}

/// The body of the handshake message of type `msg_type` at the front of `handshake`.
fn handshake_body(handshake: &[u8], msg_type: u8) -> Parse<&[u8]> {
    match handshake.first() {
        None => return Parse::NeedMore,
        Some(&t) if t != msg_type => return Parse::NotThis,
        Some(_) => {}
    }
    let [_, a, b, c, body @ ..] = handshake else {
        return Parse::NeedMore;
    };
    let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
    if len > MAX_HANDSHAKE_BYTES {
        return Parse::NotThis;
    }
    match body.get(..len) {
        Some(body) => Parse::Done(body),
        None => Parse::NeedMore,
    }
}

/// The version a ServerHello body selects; the raw version field if tls-parser rejects the body.
fn server_hello_version(body: &[u8]) -> Option<u16> {
    let Ok((_, hello)) = parse_tls_handshake_server_hello(body) else {
        return match body {
            [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        };
    };
    let mut extensions = hello.ext.unwrap_or(&[]);
    while let Ok((rest, extension)) = parse_tls_server_hello_extension(extensions) {
        if let TlsExtension::SupportedVersions(versions) = extension {
            if let Some(selected) = versions.first() {
                return Some(selected.0);
            }
        }
        extensions = rest;
    }
    Some(hello.version.0)
}

/// What the extension block of a ClientHello holds.
#[derive(Default)]
struct Extensions<'a> {
    /// Wire type codes, in order, GREASE removed.
    types: Vec<u16>,
    grease: bool,
    sni: Option<&'a [u8]>,
    alpn: Vec<&'a [u8]>,
    /// `None` when the extension is absent.
    supported_versions: Option<Vec<u16>>,
    signature_algorithms: Vec<u16>,
}

/// Walks the extension block TLV by TLV. `None` if the framing is broken; an extension whose
/// content tls-parser rejects is kept by type and otherwise ignored.
fn read_extensions(mut block: &[u8]) -> Option<Extensions<'_>> {
    let mut out = Extensions::default();
    while !block.is_empty() {
        let [t0, t1, l0, l1, rest @ ..] = block else {
            return None;
        };
        let ext_type = u16::from_be_bytes([*t0, *t1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len {
            return None;
        }
        let (whole, next) = block.split_at(HANDSHAKE_HEADER_LEN + len);
        block = next;
        if is_grease(ext_type) {
            out.grease = true;
            continue;
        }
        out.types.push(ext_type);
        let Ok((_, extension)) = parse_tls_client_hello_extension(whole) else {
            continue;
        };
        match (ext_type, extension) {
            (EXT_SERVER_NAME, TlsExtension::SNI(names)) if out.sni.is_none() => {
                out.sni = names
                    .iter()
                    .find(|(kind, _)| *kind == SNIType::HostName)
                    .map(|(_, name)| *name);
            }
            (EXT_ALPN, TlsExtension::ALPN(protocols)) if out.alpn.is_empty() => {
                out.alpn = protocols;
            }
            (EXT_SUPPORTED_VERSIONS, TlsExtension::SupportedVersions(versions))
                if out.supported_versions.is_none() =>
            {
                out.supported_versions = Some(
                    versions
                        .iter()
                        .map(|v| v.0)
                        .filter(|&v| !is_grease(v))
                        .collect(),
                );
            }
            (EXT_SIGNATURE_ALGORITHMS, TlsExtension::SignatureAlgorithms(algorithms))
                if out.signature_algorithms.is_empty() =>
            {
                out.signature_algorithms =
                    algorithms.into_iter().filter(|&a| !is_grease(a)).collect();
            }
            _ => {}
        }
    }
    Some(out)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fields of a ClientHello that JA4 reads; every list has GREASE removed.
struct Ja4Input<'a> {
    quic: bool,
    /// Highest supported_versions entry, else legacy_version.
    version: u16,
    has_sni: bool,
    ciphers: &'a [u16],
    /// In wire order, including SNI and ALPN.
    extension_types: &'a [u16],
    first_alpn: Option<&'a [u8]>,
    /// In wire order.
    signature_algorithms: &'a [u16],
}

/// FoxIO JA4 (TLS client) per `technical_details/JA4.md` of FoxIO-LLC/ja4: `a_b_c` where `a` is
/// transport, version, SNI flag, cipher and extension counts and ALPN first/last characters, `b`
/// the truncated SHA-256 of the sorted cipher list and `c` that of the sorted extension list
/// (without SNI and ALPN) followed by the signature algorithms in wire order.
fn ja4(input: &Ja4Input<'_>) -> String {
    let mut out = String::with_capacity(36);
    out.push(if input.quic { 'q' } else { 't' });
    out.push_str(match input.version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    });
    out.push(if input.has_sni { 'd' } else { 'i' });
    let _ = write!(
        out,
        "{:02}{:02}",
        input.ciphers.len().min(99),
        input.extension_types.len().min(99)
    );
    push_alpn_code(&mut out, input.first_alpn);
    out.push('_');

    let mut ciphers = input.ciphers.to_vec();
    ciphers.sort_unstable();
    push_hash12(&mut out, &hex_list(&ciphers));
    out.push('_');

    let mut extensions: Vec<u16> = input
        .extension_types
        .iter()
        .copied()
        .filter(|&t| t != EXT_SERVER_NAME && t != EXT_ALPN)
        .collect();
    extensions.sort_unstable();
    let mut list = hex_list(&extensions);
    if !list.is_empty() && !input.signature_algorithms.is_empty() {
        list.push('_');
        list.push_str(&hex_list(input.signature_algorithms));
    }
    push_hash12(&mut out, &list);
    out
}

/// JA4's two ALPN characters: first and last byte of the first protocol if both are ASCII
/// alphanumeric, else first and last hex digit of the whole value; `00` when there is none.
fn push_alpn_code(out: &mut String, alpn: Option<&[u8]>) {
    let Some((&first, rest)) = alpn.and_then(|a| a.split_first()) else {
        out.push_str("00");
        return;
    };
    let last = rest.last().copied().unwrap_or(first);
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        out.push(char::from(first));
        out.push(char::from(last));
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(first >> 4)]));
        out.push(char::from(HEX[usize::from(last & 0x0f)]));
    }
}

/// Comma-separated 4-digit lower-case hex values.
fn hex_list(values: &[u16]) -> String {
    let mut out = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v:04x}");
    }
    out
}

/// First 12 hex digits of SHA-256(`list`), or twelve zeros for an empty list (JA4's rule).
fn push_hash12(out: &mut String, list: &str) {
    if list.is_empty() {
        out.push_str("000000000000");
    } else {
        let digest = Sha256::digest(list.as_bytes());
        out.push_str(&hex::encode(&digest[..6]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Chrome's ClientHello to www.iit.cnr.it (nDPI `chrome.pcap`, frame 4): one record, GREASE.
    const CHROME_CH: &str = "1603010200010001fc0303d77aa0f252cff8ff81a9c82edc42621f8c80d83b0322361c96ae2f2bda7849ce207094dfde2fae965e90337a4b4c5c840b86caabaca5ab87a6e290440145ae762900209a9a130313011302cca9cca8c02bc02fc02cc030c013c014009c009d002f0035010001934a4a000000000013001100000e7777772e6969742e636e722e697400170000ff01000100000a000a00086a6a001d00170018000b00020100002300000010000e000c02683208687474702f312e31000500050100000000000d0012001004030804040105030805050108060601001200000033002b00296a6a000100001d00203af18d95cb86205f04c0a3e2b8c68b9026c6a90ef630fe20a68d31ea2525b648002d00020101002b000b0a6a6a0304030303020301001b00030200024469000500030268326a6a000100001500c50000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    /// Chrome 125 ClientHello with an X25519Kyber768 key share and ECH, 1756 bytes (Zeek
    /// `tls-chrome-1250-tls-x25519-kyber.pcap`, frame 4).
    const KYBER_CH: &str = "16030106d7010006d3030356767d9ae8a843809398310469168e09e8543de551ed52fbd4403dea567ea1c120c72b78a56497f6e8e86debee9ec616ade6851b0ce90cda4658d36cbed28cafed0020eaea130113021303c02bc02fc02cc030cca9cca8c013c014009c009d002f00350100066a6a6a000000230000000d0012001004030804040105030805050108060601000b00020100000a000c000acaca6399001d00170018001b0003020002446900050003026832003304ef04edcaca000100639904c0a2778cd4d2ca31c7120c5b67691a33d480dabe6d387f14cfd82e1aa68547c4180b291697a6c2b16b2b230c64cd97266592673d8443ccc50f4ae894d5aa9e1ad1c0b01a44ae605f27d47311f117b5bc9dfcc762e612771d5668a73462162b9c580770ad417e7b2b8953f50912b67b8b171d6f81615dd94f787a00a8d75a14550c66385437e16a2d43519b9980647520fde07c40388a17d4ae8514bf962313b1da12445a911f5a372e49792bcc62d4ac5f41900aafe02ed634245b492e8d8a06e245a6487678f28c0e0d8c88ad705dee88138e7a31445c9499035b53022abe94802148c8341c3412ea3ed2812c1a841748ca6e2022bd3e8c740c963fb15467360bc90d05c8e99c76b85b3009a8b864714981533bb7ab6c70e3895e20b6dba6ccb7530a091a4998dbbff58902b2b66b9690c98f72c4d01526bce1076762a895045e33881d2b85a7ceb95d38602ec099ad0da92339ab0b4fea051fb8ccf0216b67a02acac71641dc2505e9998f6939dbc63c722539f0226a79e0bc25469b069a8df37340205241fe5676e6e688f04a3fcdd309f4e65f59a31e3183c0c15b7844b2337827a7d7790ff7ecbfdaea624b4402962794f685ccb81534ce7a4f54f28b52261ea40769e1bb668c403fe031b5bfe30c74a56d2b013241130e203b8c805c7106767a1bd1b532d1b22172835adb26caaa95b3ec9b98274a7d434fb3629baefb3aa00184d7bb826ad5975e2b811c81ace1b3050e9a7e5617a25528274fe963dac029c335066d56cd107bc9ace2815235a20d975271762a34d8c6a46b567fb4538b5515b459465021ae269770cc9909434082d73400c180961c0a509536b64e3a6a9df31b66a51d5c1cbf788827cb25bbd8f6159392c5e1ac7607a41199a732e8ebb729f44dcd270f134a578d052537b03547e4787a2680094bb8b6dc16706500d0e455b77b0d61986ecf4b1fd2e1ad46369b5a67375ff762d2f69fb93330a39323a6b713a19620a9b139c1f27254e408749ca078bc44598663a87b4b53d20c9c909564b3131be1cd4167b1fe7b3356b629005a1467c9c5701022c2bca78bc81cc1a15f429329aea223edea8844e200b781990bc026e059377a840264d9570592a07fc7688916c5eb99ba169b8bbe394844f620ebab8c70212108b24ca0121c0a7a7dd6877f90e94b3605699a9c1b4607140901955271172f9cab61ea096790016a92905268799834148d64202ee01beb2886655ab496e4009f263eda3b3bae1086fae7c34a2719a116abb18a9486859b5d93c5d5bb759805ac924c2a5b846c69860789e18b4e800e2de6b4a4a23a2eca54f2f108d8b4584bd04067774e016923c74249b8028767d3a0cc891ecd7130cf185b7d68a2bd0b31d7899a0a215542d474ede686e0c8bc1972be2a97cefa49af93265aa6a3579d527c8ae2a0e2b51ff3971a84dcbaeb4134b4742f3d144c04229dc7e9265ec5cfdde00b513c6b1c81316c71a86385694a250a1e99c2b5954d309a8e2f77300274a7f875bba2f5734ec05f89e83e4093331cb216300748f33c475ac83f35e2c077724fdc77a74e292b409897b0f463a490c37b982d0605afb3c113659181150520f0103ba1ca95fca6adc1581dfe467f0ce70e6ff7246ac6400723080f161c284128e933924a33c10a89bf874c5f11905084253340c1f20fd87d551cf88bf2173add13f3b6a3755dd270f1001d00204518f31c6d02159e6f8ea20bd2e325c9d7ad26f38daade6bf959afa516a26e760010000e000c02683208687474702f312e31002b0007068a8a0304030300170000ff01000100000500050100000000002d00020101fe0d00da000001000102002089384cd8b5a698ff8240d9b5ea186bb1d0e487de252aed9d9a28ea0f0cc2b65800b01a472e144587036684e269b294f7c441d993d311dc5f3d15fa9f4850e07ccaf054be940e418a7e0eced08073992ca532efdef028349c1507e7bfa77813a8ddaf9bca4acd7093216808e24a39541efc9b73ca33561db210809e582aeafe7c3ec256ab6b5f3edfcae2365311105389da11ad6099e8adea371d8f9c0b6107bca00c5bc0ca11369dc4957b80d0f222162e199abdb886d8050c07de1de124d84987eeedca8470250578734ea0526a396dc8160012000000000013001100000e6c68332e676f6f676c652e636f6d4a4a000100";

    /// Firefox 92 ClientHello to apache.org through a CONNECT proxy (nDPI `http_connect.pcap`,
    /// frame 12); its delegated_credentials extension carries signature algorithms too.
    const FIREFOX_CH: &str = "1603010200010001fc03034a6ea55e074860d48cf4debb114f9e2a87d0ef684d0ace78db8d2232369edc6020a412b7151c64c4982418f6b1c211afd960301f87d4deac24ff8caee016b490f00024130113031302c02bc02fcca9cca8c02cc030c00ac009c013c014009c009d002f0035000a0100018f0000000f000d00000a6170616368652e6f726700170000ff01000100000a000e000c001d00170018001901000101000b000201000010000e000c02683208687474702f312e310005000501000000000022000a000804030503060302030033006b0069001d00209d27d5eabed156d7b6dbf4cd85b56c3e9fdbce3527ee5be248dc213fff92d842001700410495d2246ac76142067938358be419c3efc5622890a41409524ecd265ccf266cdbce5ad9895ffff36620b12e9d7214d05fcfda75cd5c532012fee7737b08a1f4df002b00050403040303000d0018001604030503060308040805080604010501060102030201001c000240010015009400000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    /// TLS 1.2 ClientHello without SNI (Zeek `tls1.2.pcap`, frame 4).
    const TLS12_CH: &str = "160301013d01000139030350e731d038d05540f1aa6d49b553450b82a4e09e47f3dd1fee79a65bccd704900000a0c030c02cc028c024c014c00ac022c02100a3009f006b006a0039003800880087c032c02ec02ac026c00fc005009d003d00350084c012c008c01cc01b00160013c00dc003000ac02fc02bc027c023c013c009c01fc01e00a2009e0067004000330032009a009900450044c031c02dc029c025c00ec004009c003c002f009600410007c011c007c00cc002000500040015001200090014001100080006000300ff020100006f000b000403000102000a00340032000e000d0019000b000c00180009000a00160017000800060007001400150004000500120013000100020003000f0010001100230000000d002200200601060206030501050205030401040204030301030203030201020202030101000f000101";

    /// Chrome's TLS 1.3 ServerHello (nDPI `chrome.pcap`, frame 6) then ChangeCipherSpec.
    const CHROME_SH: &str = "160303007a020000760303bde1e9fe06132c1da4440c7a1761fbf245676f09ff1efc082abb5f147115e650207094dfde2fae965e90337a4b4c5c840b86caabaca5ab87a6e290440145ae7629130200002e002b0002030400330024001d0020232131aa29442dc2c135ef23f856e6990d455f6d39b9a991e0710e2daf6a3421140303000101";

    /// A TLS 1.2 ServerHello record (Zeek `tls1.2.pcap`, frame 5, first record).
    const TLS12_SH: &str = "16030300510200004d030352c1f4efa702f42726055d7c63834b4eb00e3646be7abb0e79bf0f8570838d5820fa283db6334ef9973bf89aaa913c784c3d4fd57a954864a5aef82a01aae807cf0004000005ff01000100";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    fn done<T>(p: Parse<T>) -> T {
        match p {
            Parse::Done(v) => v,
            Parse::NeedMore => panic!("NeedMore"),
            Parse::NotThis => panic!("NotThis"),
        }
    }

    /// Re-frames a one-record ClientHello as records of at most `size` bytes of handshake.
    fn split_records(stream: &[u8], size: usize) -> Vec<u8> {
        let handshake = &stream[RECORD_HEADER_LEN..];
        let mut out = Vec::new();
        for chunk in handshake.chunks(size) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn parses_chrome_client_hello() {
        let hello = done(parse_client_hello(&unhex(CHROME_CH)));
        assert_eq!(hello.sni.as_deref(), Some("www.iit.cnr.it"));
        assert_eq!(hello.alpn, ["h2", "http/1.1"]);
        assert!(!hello.ech);
        assert!(hello.grease);
        assert_eq!(hello.supported_versions, [0x0304, 0x0303, 0x0302, 0x0301]);
        assert_eq!(hello.legacy_version, 0x0303);
        // The worked example of FoxIO's JA4 specification is this very ClientHello.
        assert_eq!(hello.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    }

    #[test]
    fn parses_post_quantum_client_hello_across_segments() {
        let stream = unhex(KYBER_CH);
        assert!(stream.len() > 1500);
        // As two 1448-byte-MSS segments arrive.
        assert_eq!(parse_client_hello(&stream[..1448]), Parse::NeedMore);
        let hello = done(parse_client_hello(&stream));
        assert_eq!(hello.sni.as_deref(), Some("lh3.google.com"));
        assert!(hello.ech);
        assert!(hello.grease);
        assert_eq!(hello.supported_versions, [0x0304, 0x0303]);
        // Cross-checked with JA4 computed from tshark's fields for the same frame.
        assert_eq!(hello.ja4, "t13d1516h2_8daaf6152771_02713d6af862");
    }

    #[test]
    fn ja4_reads_signature_algorithms_only_from_their_extension() {
        let hello = done(parse_client_hello(&unhex(FIREFOX_CH)));
        assert_eq!(hello.sni.as_deref(), Some("apache.org"));
        assert!(!hello.grease);
        // Computed by hand from tshark's fields, keeping only extension 13's algorithms (taking
        // delegated_credentials' as well gives ..._0c7b6f6b223f, FoxIO ja4 issue 41).
        assert_eq!(hello.ja4, "t13d1813h2_e8a523a41297_f81080dfc557");
    }

    #[test]
    fn parses_client_hello_without_sni() {
        let stream = unhex(TLS12_CH);
        let hello = done(parse_client_hello(&stream));
        assert_eq!(hello.sni, None);
        assert!(hello.supported_versions.is_empty());
        assert_eq!(hello.legacy_version, 0x0303);
        // Cross-checked with JA4 computed from tshark's fields for the same frame.
        assert_eq!(hello.ja4, "t12i800500_15c493246000_3eafcbe19126");
    }

    #[test]
    fn client_hello_split_across_records_and_segments() {
        let whole = unhex(CHROME_CH);
        let expected = done(parse_client_hello(&whole));
        for size in [1, 3, 100, 511] {
            let stream = split_records(&whole, size);
            assert_eq!(parse_client_hello(&stream), Parse::Done(expected.clone()));
            // Every strict prefix is incomplete, never an answer.
            for cut in [0, 1, 4, 5, 6, stream.len() / 2, stream.len() - 1] {
                assert_eq!(
                    parse_client_hello(&stream[..cut]),
                    Parse::NeedMore,
                    "size {size} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn truncated_client_hello_needs_more() {
        let stream = unhex(CHROME_CH);
        for cut in 0..stream.len() {
            assert_eq!(
                parse_client_hello(&stream[..cut]),
                Parse::NeedMore,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn trailing_bytes_after_client_hello_are_ignored() {
        let mut stream = unhex(CHROME_CH);
        stream.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
        assert!(matches!(parse_client_hello(&stream), Parse::Done(_)));
    }

    #[test]
    fn not_tls_is_not_this() {
        assert_eq!(
            parse_client_hello(b"GET / HTTP/1.1\r\n\r\n"),
            Parse::NotThis
        );
        assert_eq!(parse_client_hello(b"\x16\x02"), Parse::NotThis);
        assert_eq!(parse_client_hello(b"\x16\x03\x07"), Parse::NotThis);
        // Application data first.
        assert_eq!(parse_client_hello(&[23, 3, 3, 0, 1, 0]), Parse::NotThis);
        // A ServerHello where a ClientHello should be.
        assert_eq!(
            parse_client_hello(&[22, 3, 3, 0, 4, 2, 0, 0, 0]),
            Parse::NotThis
        );
    }

    #[test]
    fn bad_lengths_are_not_this() {
        // Record longer than TLS allows.
        assert_eq!(parse_client_hello(&[22, 3, 1, 0x48, 0x01]), Parse::NotThis);
        // Empty handshake record.
        assert_eq!(parse_client_hello(&[22, 3, 1, 0, 0]), Parse::NotThis);
        // A ClientHello in 1-byte records: the walk is capped.
        let mut body = vec![1u8, 0, 0xff, 0xff];
        body.resize(MAX_HANDSHAKE_BYTES, 0);
        let tiny: Vec<u8> = body.iter().flat_map(|&b| [22, 3, 1, 0, 1, b]).collect();
        assert_eq!(parse_client_hello(&tiny), Parse::NotThis);
        assert_eq!(parse_client_hello(&tiny[..6 * 1000]), Parse::NeedMore);
        // Handshake message beyond the cap.
        assert_eq!(
            parse_client_hello(&[22, 3, 1, 0, 4, 1, 0x01, 0x00, 0x01]),
            Parse::NotThis
        );
        // Extension block length one byte short, or one byte long: the message is malformed.
        let stream = unhex(TLS12_CH);
        let at = extensions_length_offset(&stream[RECORD_HEADER_LEN..]) + RECORD_HEADER_LEN;
        for delta in [-1i32, 1] {
            let mut bad = stream.clone();
            let len = u16::from_be_bytes([bad[at], bad[at + 1]]) as i32 + delta;
            bad[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
            assert_eq!(parse_client_hello(&bad), Parse::NotThis, "delta {delta}");
        }
        // Last extension (heartbeat, 1 byte) claiming 2 bytes: TLV runs past its block.
        let mut bad = stream.clone();
        let n = bad.len();
        bad[n - 2] = 2;
        assert_eq!(parse_client_hello(&bad), Parse::NotThis);
        // Cipher suite length longer than the body.
        let mut message = stream[RECORD_HEADER_LEN..].to_vec();
        let at =
            HANDSHAKE_HEADER_LEN + 2 + 32 + 1 + usize::from(message[HANDSHAKE_HEADER_LEN + 34]);
        message[at] = 0xff;
        assert_eq!(parse_client_hello_message(&message, false), Parse::NotThis);
    }

    #[test]
    fn odd_extension_content_keeps_the_rest() {
        // SNI extension whose content tls-parser rejects, then ALPN "h2".
        let mut extensions = vec![0, 0, 0, 1, 0xff];
        extensions.extend_from_slice(&[0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
        let message = hello_message(&[0x1301], &extensions);
        let hello = done(parse_client_hello_message(&message, false));
        assert_eq!(hello.sni, None);
        assert_eq!(hello.alpn, ["h2"]);
        assert!(hello.ja4.starts_with("t12d0102h2_"), "{}", hello.ja4);
    }

    #[test]
    fn keeps_sni_case_and_flags_ech() {
        let mut extensions = vec![0, 0, 0, 14, 0, 12, 0, 0, 9];
        extensions.extend_from_slice(b"Api.Ex.IO");
        extensions.extend_from_slice(&[0xfe, 0x0d, 0, 0]);
        let hello = done(parse_client_hello_message(
            &hello_message(&[0x1301], &extensions),
            true,
        ));
        assert_eq!(hello.sni.as_deref(), Some("Api.Ex.IO"));
        assert!(hello.ech);
        assert!(!hello.grease);
        assert!(hello.ja4.starts_with("q12d010200_"), "{}", hello.ja4);
    }

    /// Offset of the extension block length in a ClientHello handshake message.
    fn extensions_length_offset(message: &[u8]) -> usize {
        let mut at = HANDSHAKE_HEADER_LEN + 2 + 32;
        at += 1 + usize::from(message[at]);
        at += 2 + usize::from(u16::from_be_bytes([message[at], message[at + 1]]));
        at + 1 + usize::from(message[at])
    }

    /// A ClientHello handshake message with the given cipher suites and extension block.
    fn hello_message(ciphers: &[u16], extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.push(0);
        body.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut message = vec![1, 0];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn message_needs_more_and_not_this() {
        assert_eq!(parse_client_hello_message(&[], false), Parse::NeedMore);
        assert_eq!(parse_client_hello_message(&[1, 0], false), Parse::NeedMore);
        assert_eq!(
            parse_client_hello_message(&[1, 0, 0, 9, 3], false),
            Parse::NeedMore
        );
        assert_eq!(
            parse_client_hello_message(&[2, 0, 0, 0], false),
            Parse::NotThis
        );
        // An empty body is not a ClientHello.
        assert_eq!(
            parse_client_hello_message(&[1, 0, 0, 0], false),
            Parse::NotThis
        );
    }

    #[test]
    fn ja4_rules() {
        let input = Ja4Input {
            quic: false,
            version: 0x0304,
            has_sni: true,
            ciphers: &[
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extension_types: &[
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
                0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
            ],
            first_alpn: Some(b"h2"),
            signature_algorithms: &[
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
        };
        assert_eq!(ja4(&input), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        // Without signature algorithms the list ends without an underscore (spec example).
        let no_sigs = Ja4Input {
            signature_algorithms: &[],
            ..input
        };
        assert_eq!(ja4(&no_sigs), "t13d1516h2_8daaf6152771_6d807ffa2a79");
        let empty = Ja4Input {
            quic: true,
            version: 0x7f1c,
            has_sni: false,
            ciphers: &[],
            extension_types: &[],
            first_alpn: None,
            signature_algorithms: &[],
        };
        assert_eq!(ja4(&empty), "q00i000000_000000000000_000000000000");
    }

    #[test]
    fn ja4_alpn_code() {
        let code = |alpn: Option<&[u8]>| {
            let mut s = String::new();
            push_alpn_code(&mut s, alpn);
            s
        };
        assert_eq!(code(None), "00");
        assert_eq!(code(Some(b"")), "00");
        assert_eq!(code(Some(b"h")), "hh");
        assert_eq!(code(Some(b"http/1.1")), "h1");
        assert_eq!(code(Some(&[0xab])), "ab");
        assert_eq!(code(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(code(Some(&[0x30, 0xab])), "3b");
        assert_eq!(code(Some(&[0x30, 0x31, 0xab, 0xcd])), "3d");
        assert_eq!(code(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
    }

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x6a6a));
        assert!(!is_grease(0x1a2a) && !is_grease(0x0304) && !is_grease(0x0a0b));
    }

    #[test]
    fn probe() {
        assert!(looks_like_tls(&[22, 3, 1]));
        assert!(looks_like_tls(&[23, 3, 4, 0, 0]));
        assert!(looks_like_tls(&[22]) && looks_like_tls(&[22, 3]));
        assert!(!looks_like_tls(&[]) && !looks_like_tls(&[22, 2]) && !looks_like_tls(&[19]));
        assert!(!looks_like_tls(&[22, 3, 5]));
        assert!(!looks_like_tls(&[24, 3, 3]));
        assert!(!looks_like_tls(b"GET "));
    }

    #[test]
    fn server_side_tls13() {
        let stream = unhex(CHROME_SH);
        let expected = ServerSide {
            server_hello: true,
            alert: None,
            version: Some(0x0304),
        };
        assert_eq!(parse_server_side(&stream), Parse::Done(expected.clone()));
        // The ServerHello record alone is enough for TLS 1.3.
        assert_eq!(parse_server_side(&stream[..127]), Parse::Done(expected));
        for cut in 0..127 {
            assert_eq!(
                parse_server_side(&stream[..cut]),
                Parse::NeedMore,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn server_side_tls12_waits_for_end_of_cleartext() {
        let hello = unhex(TLS12_SH);
        assert_eq!(parse_server_side(&hello), Parse::NeedMore);
        let seen = ServerSide {
            server_hello: true,
            alert: None,
            version: Some(0x0303),
        };
        let mut ccs = hello.clone();
        ccs.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        assert_eq!(parse_server_side(&ccs), Parse::Done(seen.clone()));
        // bad_certificate in clear after the ServerHello (mutual TLS refused).
        let mut alert = hello.clone();
        alert.extend_from_slice(&[22, 3, 3, 0, 4, 14, 0, 0, 0]);
        alert.extend_from_slice(&[21, 3, 3, 0, 2, 2, 42]);
        assert_eq!(
            parse_server_side(&alert),
            Parse::Done(ServerSide {
                alert: Some((2, 42)),
                ..seen.clone()
            })
        );
        // Garbage after the ServerHello still reports it.
        let mut garbage = hello;
        garbage.extend_from_slice(b"HTTP/1.1");
        assert_eq!(parse_server_side(&garbage), Parse::Done(seen));
    }

    #[test]
    fn server_side_alert_first() {
        assert_eq!(
            parse_server_side(&[21, 3, 3, 0, 2, 2, 40]),
            Parse::Done(ServerSide {
                server_hello: false,
                alert: Some((2, 40)),
                version: None,
            })
        );
        assert_eq!(parse_server_side(&[21, 3, 3, 0, 2, 2]), Parse::NeedMore);
        // An alert record too short to hold an alert.
        assert_eq!(parse_server_side(&[21, 3, 3, 0, 1, 2]), Parse::NotThis);
    }

    #[test]
    fn server_side_not_this() {
        assert_eq!(parse_server_side(b"HTTP/1.1 200 OK\r\n"), Parse::NotThis);
        assert_eq!(parse_server_side(&[23, 3, 3, 0, 1, 0]), Parse::NotThis);
        // A ClientHello where a ServerHello should be.
        assert_eq!(parse_server_side(&unhex(CHROME_CH)), Parse::NotThis);
        assert_eq!(parse_server_side(&[]), Parse::NeedMore);
    }

    #[test]
    fn server_hello_tls_parser_rejects_still_counts() {
        // A draft TLS 1.3 version tls-parser does not know.
        let stream = [22, 3, 3, 0, 6, 2, 0, 0, 2, 0x7f, 0x1c];
        assert_eq!(
            parse_server_side(&stream),
            Parse::NeedMore,
            "not TLS 1.3 by number: keeps reading"
        );
        let mut stream = stream.to_vec();
        stream.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        assert_eq!(
            parse_server_side(&stream),
            Parse::Done(ServerSide {
                server_hello: true,
                alert: None,
                version: Some(0x7f1c),
            })
        );
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_client_hello(&data);
            let _ = parse_client_hello_message(&data, false);
            let _ = parse_server_side(&data);
            let _ = looks_like_tls(&data);
        }

        #[test]
        fn never_panics_on_mutated_hellos(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
            record_size in 1usize..600,
        ) {
            for base in [split_records(&unhex(CHROME_CH), record_size), unhex(CHROME_SH)] {
                let mut data = base;
                for (at, byte) in &edits {
                    let n = data.len();
                    data[at % n] = *byte;
                }
                data.truncate(cut % (data.len() + 1));
                let _ = parse_client_hello(&data);
                let _ = parse_server_side(&data);
                if data.len() > RECORD_HEADER_LEN {
                    let _ = parse_client_hello_message(&data[RECORD_HEADER_LEN..], true);
                }
            }
        }
    }
}
