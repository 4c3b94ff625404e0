//! Application-layer inspectors: probe and parse the opening bytes of a flow (TLS ClientHello and
//! server side, QUIC Initial packets, DNS messages, HTTP/1.x headers) and scan cleartext for
//! credentials.
//!
//! Invariants shared by every parser here:
//! - No parser panics on any input; each has a proptest that feeds it arbitrary bytes.
//! - Parsers borrow the caller's bytes; they copy only what must outlive the call (names, the
//!   owned result) or what cannot be read in place (a TLS handshake message split across records,
//!   QUIC payloads decrypted in place, CRYPTO frames reassembled).
//! - Every wait is capped: a stream parser answers [`Parse::NotThis`] rather than ask for more
//!   than its documented limit, so a hostile peer cannot make a flow buffer without bound.
//! - Stream parsers take the direction's bytes from its first byte, in order; reassembly and
//!   ordering belong to the flow engine.

pub mod dns;
pub mod http;
pub mod quic;
pub mod secrets;
pub mod tls;

/// Outcome of reading a stream prefix that may not yet hold a whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// The message was read.
    Done(T),
    /// The prefix is consistent with the protocol but too short; call again with more bytes.
    NeedMore,
    /// The bytes are not this protocol, are malformed, or exceed the parser's cap: stop trying.
    NotThis,
}

impl<T> Parse<T> {
    /// Applies `f` to a `Done` value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Parse<U> {
        match self {
            Parse::Done(value) => Parse::Done(f(value)),
            Parse::NeedMore => Parse::NeedMore,
            Parse::NotThis => Parse::NotThis,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Parse;

    #[test]
    fn map_keeps_variant() {
        assert_eq!(Parse::Done(2).map(|v| v * 2), Parse::Done(4));
        assert_eq!(Parse::<u8>::NeedMore.map(|v| v * 2), Parse::NeedMore);
        assert_eq!(Parse::<u8>::NotThis.map(|v| v * 2), Parse::NotThis);
    }
}
