//! HTTP/1.x: the request and response header blocks at the front of a stream (Host, CONNECT
//! target, body framing, WebSocket upgrade, status).
//!
//! Header blocks are parsed by httparse. Written here: a cheap probe of the first bytes (so a
//! binary protocol is refused at once instead of after 16 KiB of waiting), the reading of the
//! few header values the audit needs, and a lenient reader for one malformed form httparse
//! rejects but proxies serve and tshark reads: a CONNECT request line with extra tokens or a
//! header line without a colon (open-proxy abuse, Zeek `connect-with-smtp.pcap`). The CONNECT
//! target is strong evidence of where a flow goes, so it is worth keeping.
//!
//! Invariants:
//! - No function panics on any input.
//! - At most [`MAX_HEADER_BYTES`] are examined and at most [`MAX_HEADERS`] headers accepted; a
//!   block larger than either is [`Parse::NotThis`].
//! - Values are kept as sent (the Host header is not lower-cased); bytes that are not UTF-8 are
//!   replaced with U+FFFD.

use super::Parse;

/// Largest header block (request line and headers, blank line included) waited for.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most headers in a block.
pub const MAX_HEADERS: usize = 64;
/// Longest method token the probe accepts (the longest registered method has 17 characters).
const MAX_METHOD_LEN: usize = 24;

/// A request's header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method token as sent (`GET`, `POST`, `CONNECT`...).
    pub method: String,
    /// Request target as sent (origin form `/v1/listen?x=y`, authority form for CONNECT).
    pub target: String,
    /// First Host header value, trimmed.
    pub host: Option<String>,
    /// Content-Length; `None` if absent, not a number, or given twice with different values.
    pub content_length: Option<u64>,
    /// The last transfer coding is `chunked`.
    pub chunked: bool,
    /// An `Upgrade: websocket` header is present.
    pub websocket: bool,
    /// Bytes up to and including the blank line ending the header block.
    pub header_len: usize,
}

/// A response's header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Content-Length, as for [`HttpRequest::content_length`].
    pub content_length: Option<u64>,
    /// The last transfer coding is `chunked`.
    pub chunked: bool,
    /// Bytes up to and including the blank line ending the header block.
    pub header_len: usize,
}

/// Reads the request header block at the front of `stream`.
///
/// `NotThis` if the first bytes are not a method token followed by a space, if httparse rejects
/// the block (not HTTP/1.x, bad bytes, more than [`MAX_HEADERS`] headers), or if no complete
/// block fits in [`MAX_HEADER_BYTES`]; `NeedMore` while the block is incomplete.
pub fn parse_request(stream: &[u8]) -> Parse<HttpRequest> {
    match probe_method(stream) {
        Parse::Done(()) => {}
        Parse::NeedMore => return Parse::NeedMore,
        Parse::NotThis => return Parse::NotThis,
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let header_len = match request.parse(window(stream)) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(stream),
        Err(_) => return lenient_connect(stream),
    };
    let framing = Framing::read(request.headers);
    let websocket = header_values(request.headers, "upgrade")
        .flat_map(|v| v.split(|&b| b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"));
    Parse::Done(HttpRequest {
        method: request.method.unwrap_or_default().to_string(),
        target: request.path.unwrap_or_default().to_string(),
        host: header(request.headers, "host").map(|v| lossy(v.trim_ascii())),
        content_length: framing.content_length,
        chunked: framing.chunked,
        websocket,
        header_len,
    })
}

/// Reads the response header block at the front of `stream`.
///
/// `NotThis` unless the stream starts with `HTTP/1.`, and as for [`parse_request`].
pub fn parse_response(stream: &[u8]) -> Parse<HttpResponse> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = stream.len().min(PREFIX.len());
    if stream[..n] != PREFIX[..n] {
        return Parse::NotThis;
    }
    if n < PREFIX.len() {
        return Parse::NeedMore;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let header_len = match response.parse(window(stream)) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return partial(stream),
        Err(_) => return Parse::NotThis,
    };
    let framing = Framing::read(response.headers);
    Parse::Done(HttpResponse {
        status: response.code.unwrap_or_default(),
        content_length: framing.content_length,
        chunked: framing.chunked,
        header_len,
    })
}

/// For CONNECT: the authority (host, port) of the request target.
///
/// `None` for other methods and for targets that are not `host:port` with a numeric port. An
/// IPv6 literal keeps its brackets, so `format!("{host}:{port}")` gives the authority back.
pub fn connect_authority(req: &HttpRequest) -> Option<(String, u16)> {
    if !req.method.eq_ignore_ascii_case("CONNECT") {
        return None;
    }
    let target = req.target.as_str();
    let (host, port) = if target.starts_with('[') {
        let close = target.find(']')?;
        let (host, rest) = target.split_at(close + 1);
        (host, rest.strip_prefix(':')?)
    } else {
        target.rsplit_once(':')?
    };
    if host.is_empty() || host.contains(['/', '@']) || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// A CONNECT request httparse rejects: `CONNECT target <anything> HTTP/1.x` and a header block
/// ending in a blank line, whatever its lines hold. Only the method, target and length are read.
fn lenient_connect(stream: &[u8]) -> Parse<HttpRequest> {
    let block = window(stream);
    let Some(after_method) = block.strip_prefix(b"CONNECT ") else {
        return Parse::NotThis;
    };
    let Some(line_len) = memchr::memmem::find(after_method, b"\r\n") else {
        return partial(stream);
    };
    let line = &after_method[..line_len];
    let mut tokens = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let (Some(target), Some(version)) = (tokens.next(), tokens.next_back()) else {
        return Parse::NotThis;
    };
    let valid_version = matches!(version, b"HTTP/1.0" | b"HTTP/1.1");
    if !valid_version || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Parse::NotThis;
    }
    let Some(end) = memchr::memmem::find(block, b"\r\n\r\n") else {
        return partial(stream);
    };
    Parse::Done(HttpRequest {
        method: "CONNECT".to_string(),
        target: lossy(target),
        host: None,
        content_length: None,
        chunked: false,
        websocket: false,
        header_len: end + 4,
    })
}

/// `Done` if `stream` starts with a method token and a space; `NeedMore` if it may still.
fn probe_method(stream: &[u8]) -> Parse<()> {
    for (i, &b) in stream.iter().enumerate().take(MAX_METHOD_LEN + 1) {
        if b == b' ' {
            return if i == 0 {
                Parse::NotThis
            } else {
                Parse::Done(())
            };
        }
        if !is_tchar(b) {
            return Parse::NotThis;
        }
    }
    if stream.len() > MAX_METHOD_LEN {
        Parse::NotThis
    } else {
        Parse::NeedMore
    }
}

/// RFC 9110 5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn window(stream: &[u8]) -> &[u8] {
    &stream[..stream.len().min(MAX_HEADER_BYTES)]
}

/// An incomplete block: wait, unless the cap is already reached.
fn partial<T>(stream: &[u8]) -> Parse<T> {
    if stream.len() >= MAX_HEADER_BYTES {
        Parse::NotThis
    } else {
        Parse::NeedMore
    }
}

/// Body framing headers.
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
}

impl Framing {
    fn read(headers: &[httparse::Header<'_>]) -> Self {
        // RFC 9110 8.6: a list of identical values is one value; different values are an error
        // (and a request-smuggling sign), reported as unknown.
        let mut content_length = None;
        let mut conflict = false;
        for value in header_values(headers, "content-length") {
            for part in value.split(|&b| b == b',') {
                match (parse_decimal(part.trim_ascii()), content_length) {
                    (Some(n), None) => content_length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => conflict = true,
                }
            }
        }
        let last_coding = header_values(headers, "transfer-encoding")
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty())
            .last();
        Self {
            content_length: if conflict { None } else { content_length },
            chunked: last_coding.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")),
        }
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn header_values<'h>(
    headers: &'h [httparse::Header<'_>],
    name: &'static str,
) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &'static str) -> Option<&'h [u8]> {
    header_values(headers, name).next()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done<T: std::fmt::Debug>(p: Parse<T>) -> T {
        match p {
            Parse::Done(v) => v,
            other => panic!("{other:?}"),
        }
    }

    /// The CONNECT request of nDPI `http_connect.pcap` (frame 4).
    const CONNECT: &[u8] = b"CONNECT apache.org:443 HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:92.0) Gecko/20100101 Firefox/92.0\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nHost: apache.org:443\r\n\r\n";

    const POST: &[u8] = b"POST /v1/listen?model=nova HTTP/1.1\r\nHost: API.Example.com:8080 \r\n\
Authorization: Token abc\r\nContent-Length: 12\r\n\r\n{\"url\":\"x\"}";

    #[test]
    fn parses_post() {
        let req = done(parse_request(POST));
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/v1/listen?model=nova");
        assert_eq!(req.host.as_deref(), Some("API.Example.com:8080"));
        assert_eq!(req.content_length, Some(12));
        assert!(!req.chunked && !req.websocket);
        assert_eq!(&POST[req.header_len..], b"{\"url\":\"x\"}");
        assert_eq!(connect_authority(&req), None);
    }

    #[test]
    fn parses_connect() {
        let req = done(parse_request(CONNECT));
        assert_eq!(req.method, "CONNECT");
        assert_eq!(req.header_len, CONNECT.len());
        assert_eq!(
            connect_authority(&req),
            Some(("apache.org".to_string(), 443))
        );
    }

    #[test]
    fn lenient_connect_of_open_proxy_abuse() {
        // Zeek `connect-with-smtp.pcap`, frame 4: an extra `/` token and a header without a colon.
        const ABUSE: &[u8] = b"CONNECT mailin03.sul.t-online.de:25 / HTTP/1.0\r\n\
Mozilla 4.0 (compatible; MSIE 5.01; Windows NT 5.0)\r\n\r\nEHLO";
        let req = done(parse_request(ABUSE));
        assert_eq!(req.target, "mailin03.sul.t-online.de:25");
        assert_eq!(&ABUSE[req.header_len..], b"EHLO");
        assert_eq!(
            connect_authority(&req),
            Some(("mailin03.sul.t-online.de".to_string(), 25))
        );
        assert_eq!(parse_request(&ABUSE[..60]), Parse::NeedMore);
        assert_eq!(
            parse_request(b"CONNECT a:1 / HTTP/2.0\r\nx\r\n\r\n"),
            Parse::NotThis
        );
        assert_eq!(
            parse_request(b"CONNECT a:1 / HTTP/1.0\r\nx\r\n"),
            Parse::NeedMore
        );
        assert_eq!(parse_request(b"CONNECT \r\nx\r\n\r\n"), Parse::NotThis);
        // Other methods get no leniency.
        assert_eq!(
            parse_request(b"GET / / HTTP/1.0\r\nx\r\n\r\n"),
            Parse::NotThis
        );
    }

    #[test]
    fn websocket_and_chunked() {
        let req = done(parse_request(
            b"GET /v1/listen HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c, WebSocket\r\n\
Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        ));
        assert!(req.websocket && req.chunked);
        let req = done(parse_request(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ));
        assert!(!req.chunked);
    }

    #[test]
    fn content_length_rules() {
        let cl = |headers: &str| {
            let text = format!("POST / HTTP/1.1\r\n{headers}\r\n");
            done(parse_request(text.as_bytes())).content_length
        };
        assert_eq!(cl(""), None);
        assert_eq!(cl("Content-Length: 0\r\n"), Some(0));
        assert_eq!(cl("Content-Length: 5, 5\r\nContent-Length: 5\r\n"), Some(5));
        assert_eq!(cl("Content-Length: 5\r\nContent-Length: 6\r\n"), None);
        assert_eq!(cl("Content-Length: -1\r\n"), None);
        assert_eq!(cl("Content-Length: +1\r\n"), None);
        assert_eq!(cl("Content-Length: 99999999999999999999999\r\n"), None);
    }

    #[test]
    fn truncated_request_needs_more() {
        for cut in 0..POST.len() - 12 {
            assert_eq!(parse_request(&POST[..cut]), Parse::NeedMore, "cut {cut}");
        }
    }

    #[test]
    fn not_http() {
        assert_eq!(parse_request(b"\x16\x03\x01\x02\x00"), Parse::NotThis);
        assert_eq!(parse_request(b" GET / HTTP/1.1\r\n"), Parse::NotThis);
        assert_eq!(parse_request(b"SSH-2.0-OpenSSH_9.6\r\n"), Parse::NotThis);
        assert_eq!(parse_request(b"EHLO mail.example.com\r\n"), Parse::NotThis);
        assert_eq!(
            parse_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Parse::NotThis
        );
        assert_eq!(parse_request(&[b'A'; MAX_METHOD_LEN + 1]), Parse::NotThis);
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Parse::NotThis
        );
    }

    #[test]
    fn caps() {
        // Too many headers.
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Parse::NotThis);
        // A header block that never ends within the cap.
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(MAX_HEADER_BYTES - 1, b'a');
        assert_eq!(parse_request(&big), Parse::NeedMore);
        big.push(b'a');
        assert_eq!(parse_request(&big), Parse::NotThis);
    }

    #[test]
    fn responses() {
        let resp = done(parse_response(
            b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03",
        ));
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header_len, 39);
        assert_eq!(resp.content_length, None);
        let resp = done(parse_response(
            b"HTTP/1.0 401 Unauthorized\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        ));
        assert_eq!(
            (resp.status, resp.content_length, resp.chunked),
            (401, Some(4), true)
        );
        assert_eq!(parse_response(b""), Parse::NeedMore);
        assert_eq!(parse_response(b"HTTP/1"), Parse::NeedMore);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nServer: x\r\n"),
            Parse::NeedMore
        );
        assert_eq!(parse_response(b"HTTP/2 200\r\n\r\n"), Parse::NotThis);
        assert_eq!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n"), Parse::NotThis);
        assert_eq!(parse_response(b"\x15\x03\x03\x00\x02"), Parse::NotThis);
    }

    #[test]
    fn authorities() {
        let connect = |target: &str| {
            connect_authority(&HttpRequest {
                method: "CONNECT".into(),
                target: target.into(),
                host: None,
                content_length: None,
                chunked: false,
                websocket: false,
                header_len: 0,
            })
        };
        assert_eq!(
            connect("license.deepgram.com:443"),
            Some(("license.deepgram.com".into(), 443))
        );
        assert_eq!(
            connect("[2001:db8::1]:8443"),
            Some(("[2001:db8::1]".into(), 8443))
        );
        assert_eq!(connect("10.0.0.1:80"), Some(("10.0.0.1".into(), 80)));
        for bad in [
            "host",
            "host:",
            ":443",
            "host:99999",
            "host:+1",
            "[::1]",
            "[::1]443",
            "http://h:1/",
            "u@h:1",
        ] {
            assert_eq!(connect(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let _ = parse_request(&data);
            let _ = parse_response(&data);
        }

        #[test]
        fn never_panics_on_requestish_text(text in "(GET|CONNECT|POST) [ -~]{0,40}( HTTP/1\\.[01])?(\r\n[ -~]{0,30}){0,5}(\r\n\r\n)?") {
            if let Parse::Done(req) = parse_request(text.as_bytes()) {
                prop_assert!(req.header_len <= text.len());
                let _ = connect_authority(&req);
            }
            let _ = parse_response(text.as_bytes());
        }
    }
}
