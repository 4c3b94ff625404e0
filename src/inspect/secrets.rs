//! Credentials in clear: finding them in payloads (the CREDENTIAL control) and redacting them
//! everywhere text leaves the program.
//!
//! What is found:
//! - a license key candidate: a run of exactly 40 hex digits standing alone as a token (no ASCII
//!   letter or digit on either side; `0x` + 40 hex, an Ethereum address, is therefore not one);
//! - `Authorization: Token X` (Deepgram API key), `Authorization: Bearer X`,
//!   `Authorization: Basic X`, and any `Proxy-Authorization` credentials. Header names match in
//!   any case, also quoted as in JSON or logs (`"authorization": "Bearer X"`);
//! - in DNS names ([`scan_dns_name`]), a key split over consecutive hex labels;
//! - across TCP segment boundaries ([`find_across`] on the seam between two segments).
//!
//! Hand-written, because it is two linear scans (memchr for `:`, a table for hex digits) that no
//! regex crate would make simpler or faster, and because it must not allocate when nothing is
//! found.
//!
//! Invariants:
//! - No function panics on any input.
//! - [`find_secrets`] returns hits in payload order, one per secret: a 40-hex run inside a
//!   header credential is reported once, as that header's kind.
//! - [`redact_text`] is idempotent: redacted output holds nothing it would redact again.

use std::ops::Range;

use sha2::{Digest, Sha256};

/// Hex digits in a license key.
pub const LICENSE_KEY_LEN: usize = 40;
/// Secrets shorter than this (in characters) are redacted to their hash alone.
pub const MIN_SHOWN_LEN: usize = 12;

/// A credential found in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHit {
    /// What kind of credential.
    pub kind: SecretKind,
    /// The secret itself: callers must [`redact`] it before storing or printing it.
    pub value: String,
}

/// Kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// 40 hex digits standing alone as a token (a Deepgram license key or API key secret).
    LicenseKey,
    /// `Authorization: Token X`.
    ApiToken,
    /// `Authorization: Bearer X`.
    Bearer,
    /// `Authorization: Basic X` (base64 of user:password).
    BasicAuth,
    /// `Proxy-Authorization` credentials, any scheme.
    ProxyAuthorization,
}

impl SecretKind {
    /// Stable name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::LicenseKey => "license_key",
            SecretKind::ApiToken => "api_token",
            SecretKind::Bearer => "bearer_token",
            SecretKind::BasicAuth => "basic_auth",
            SecretKind::ProxyAuthorization => "proxy_authorization",
        }
    }
}

/// Scans cleartext bytes (an HTTP header block, any payload) for credentials.
///
/// Linear in the payload; allocates only when something is found.
pub fn find_secrets(payload: &[u8]) -> Vec<SecretHit> {
    spans(payload)
        .into_iter()
        .map(|(kind, range)| SecretHit {
            kind,
            value: String::from_utf8_lossy(&payload[range]).into_owned(),
        })
        .collect()
}

/// Redacted form of a secret: first 4 characters, `...`, last 4 characters, then
/// ` (sha256:` + the first 8 hex digits of SHA-256(secret) + `)`. A secret shorter than
/// [`MIN_SHOWN_LEN`] characters shows only `(sha256:…)`.
pub fn redact(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let hash = hex::encode(&digest[..4]);
    let chars = secret.chars().count();
    if chars < MIN_SHOWN_LEN {
        return format!("(sha256:{hash})");
    }
    let head: String = secret.chars().take(4).collect();
    let tail: String = secret.chars().skip(chars - 4).collect();
    format!("{head}...{tail} (sha256:{hash})")
}

/// Replaces every secret [`find_secrets`] would report in `text` by its [`redact`]ed form.
pub fn redact_text(text: &str) -> String {
    let found = spans(text.as_bytes());
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (_, range) in found {
        // Spans start and end at ASCII bytes, so these are char boundaries; `get` keeps that
        // an assumption rather than a panic.
        let (Some(before), Some(secret)) = (text.get(copied..range.start), text.get(range.clone()))
        else {
            continue;
        };
        out.push_str(before);
        out.push_str(&redact(secret));
        copied = range.end;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Secrets that straddle the boundary between `tail` (the last bytes of the previous segment of
/// a stream) and `head` (the first bytes of the next one): those neither segment shows whole.
///
/// Both slices are short (a few hundred bytes), so a segment costs one small copy, not a second
/// scan of the whole payload.
pub fn find_across(tail: &[u8], head: &[u8]) -> Vec<SecretHit> {
    if tail.is_empty() || head.is_empty() {
        return Vec::new();
    }
    let joined = [tail, head].concat();
    let cut = tail.len();
    spans(&joined)
        .into_iter()
        .filter(|(_, r)| r.start < cut && r.end > cut)
        .map(|(kind, range)| SecretHit {
            kind,
            value: String::from_utf8_lossy(&joined[range]).into_owned(),
        })
        .collect()
}

/// Credentials in a DNS name (a query name, an SNI): a license key as one label, as any
/// [`find_secrets`] hit, or split across consecutive all-hex labels whose digits add up to a key
/// (`f1037f690e1c05405b0a.71b8fc1df3d453b1bcad.example.net`).
///
/// Returns the hits and the name with each of them redacted (the name itself when none).
pub fn scan_dns_name(name: &str) -> (Vec<SecretHit>, String) {
    let mut hits = find_secrets(name.as_bytes());
    let mut redacted = if hits.is_empty() {
        name.to_string()
    } else {
        redact_text(name)
    };
    if let Some((labels, joined)) = split_hex_key(&redacted) {
        let shown = redact(&joined);
        hits.push(SecretHit {
            kind: SecretKind::LicenseKey,
            value: joined,
        });
        redacted.replace_range(labels, &shown);
    }
    (hits, redacted)
}

/// True when [`scan_dns_name`] would find a credential in `name` (without building the redacted
/// name).
pub fn dns_name_has_secret(name: &str) -> bool {
    !spans(name.as_bytes()).is_empty() || split_hex_key(name).is_some()
}

/// The first run of two or more consecutive all-hex labels of `name` holding exactly
/// [`LICENSE_KEY_LEN`] digits: the byte range of those labels and their digits joined.
fn split_hex_key(name: &str) -> Option<(Range<usize>, String)> {
    // The current run of hex labels as (byte start, length), shortened from the front whenever
    // it holds more digits than a key, so a key after a short hex label is still found.
    let mut run: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    for label in name.split('.') {
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_hexdigit()) {
            run.clear();
        } else {
            run.push((at, label.len()));
            let mut digits: usize = run.iter().map(|&(_, len)| len).sum();
            while digits > LICENSE_KEY_LEN {
                digits -= run.remove(0).1;
            }
            if digits == LICENSE_KEY_LEN && run.len() > 1 {
                let range = run[0].0..at + label.len();
                let joined = name[range.clone()].replace('.', "");
                return Some((range, joined));
            }
        }
        at += label.len() + 1;
    }
    None
}

/// True when bytes `range` of `payload` overlap a credential [`find_secrets`] would report, so
/// that a hex dump of them must not be shown.
pub fn overlaps_secret(payload: &[u8], range: Range<usize>) -> bool {
    spans(payload)
        .iter()
        .any(|(_, r)| r.start < range.end && range.start < r.end)
}

/// Every secret in `payload`, in order, without overlaps.
fn spans(payload: &[u8]) -> Vec<(SecretKind, Range<usize>)> {
    let mut found = Vec::new();
    for colon in memchr::memchr_iter(b':', payload) {
        if let Some(hit) = header_credential(payload, colon) {
            found.push(hit);
        }
    }
    let headers = found.len();
    for run in license_keys(payload) {
        let inside_header = found[..headers]
            .iter()
            .any(|(_, r)| r.start <= run.start && run.end <= r.end);
        if !inside_header {
            found.push((SecretKind::LicenseKey, run));
        }
    }
    if headers > 0 && found.len() > headers {
        found.sort_by_key(|(_, r)| r.start);
    }
    found
}

/// The credential of an `Authorization` or `Proxy-Authorization` header whose name ends just
/// before the `:` at `colon` (optionally closed by a quote).
fn header_credential(payload: &[u8], colon: usize) -> Option<(SecretKind, Range<usize>)> {
    let mut name_end = colon;
    if name_end > 0 && matches!(payload[name_end - 1], b'"' | b'\'') {
        name_end -= 1;
    }
    let before = &payload[..name_end];
    let proxy = ends_with_word(before, b"proxy-authorization");
    if !proxy && !ends_with_word(before, b"authorization") {
        return None;
    }
    let mut at = colon + 1;
    at += count(&payload[at..], |b| matches!(b, b' ' | b'\t'));
    at += count(&payload[at..], |b| matches!(b, b'"' | b'\''));
    let scheme_len = count(&payload[at..], |b| b.is_ascii_alphanumeric() || b == b'-');
    let scheme = &payload[at..at + scheme_len];
    let gap = count(&payload[at + scheme_len..], |b| b == b' ');
    let (kind, start) = if gap == 0 {
        // No `scheme credentials` shape: for Proxy-Authorization the whole value is secret.
        (proxy.then_some(SecretKind::ProxyAuthorization)?, at)
    } else {
        let kind = if proxy {
            SecretKind::ProxyAuthorization
        } else if scheme.eq_ignore_ascii_case(b"token") {
            SecretKind::ApiToken
        } else if scheme.eq_ignore_ascii_case(b"bearer") {
            SecretKind::Bearer
        } else if scheme.eq_ignore_ascii_case(b"basic") {
            SecretKind::BasicAuth
        } else {
            return None;
        };
        (kind, at + scheme_len + gap)
    };
    let len = count(&payload[start..], is_token68);
    let credential = &payload[start..start + len];
    // Empty, or already redacted (`abcd...wxyz`): nothing to report.
    if len == 0 || memchr::memmem::find(credential, b"...").is_some() {
        return None;
    }
    Some((kind, start..start + len))
}

/// `haystack` ends with `word` (ASCII case-insensitive) and no header-name character precedes it.
fn ends_with_word(haystack: &[u8], word: &[u8]) -> bool {
    let Some(start) = haystack.len().checked_sub(word.len()) else {
        return false;
    };
    haystack[start..].eq_ignore_ascii_case(word)
        && !start
            .checked_sub(1)
            .is_some_and(|i| haystack[i].is_ascii_alphanumeric() || haystack[i] == b'-')
}

/// RFC 9110 11.2 token68 characters.
fn is_token68(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn count(bytes: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|&&b| pred(b)).count()
}

/// Runs of exactly [`LICENSE_KEY_LEN`] hex digits with no ASCII letter or digit on either side.
fn license_keys(payload: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < payload.len() {
            let start = pos + count(&payload[pos..], |b| !b.is_ascii_hexdigit());
            let len = count(&payload[start..], |b| b.is_ascii_hexdigit());
            let end = start + len;
            pos = end.max(start + 1);
            // A percent-encoded separator (`?key%3D<key>`) glues two hex digits onto the key.
            let escaped = start > 0 && payload[start - 1] == b'%';
            let key_start = if escaped && len == LICENSE_KEY_LEN + 2 {
                start + 2
            } else {
                start
            };
            if end - key_start != LICENSE_KEY_LEN {
                continue;
            }
            let alnum = |i: usize| payload.get(i).is_some_and(u8::is_ascii_alphanumeric);
            let standalone = !start.checked_sub(1).is_some_and(alnum) && !alnum(end);
            if standalone {
                return Some(key_start..end);
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The example license key of Deepgram's self-hosted documentation.
    const KEY: &str = "f1037f690e1c05405b0a71b8fc1df3d453b1bcad";

    fn kinds(payload: &str) -> Vec<(SecretKind, String)> {
        find_secrets(payload.as_bytes())
            .into_iter()
            .map(|h| (h.kind, h.value))
            .collect()
    }

    #[test]
    fn kind_names() {
        assert_eq!(SecretKind::LicenseKey.as_str(), "license_key");
        assert_eq!(SecretKind::ApiToken.as_str(), "api_token");
        assert_eq!(SecretKind::Bearer.as_str(), "bearer_token");
        assert_eq!(SecretKind::BasicAuth.as_str(), "basic_auth");
        assert_eq!(
            SecretKind::ProxyAuthorization.as_str(),
            "proxy_authorization"
        );
    }

    #[test]
    fn license_key_as_a_token() {
        for text in [
            KEY.to_string(),
            format!("[license]\nkey = \"{KEY}\"\n"),
            format!("--license-key {KEY} --port 8443"),
            format!("GET /v1/check?key={KEY}&x=1 HTTP/1.1"),
            format!("{{\"key\":\"{}\"}}", KEY.to_uppercase()),
            format!("license_key={KEY}"),
        ] {
            let hits = find_secrets(text.as_bytes());
            assert_eq!(hits.len(), 1, "{text}");
            assert_eq!(hits[0].kind, SecretKind::LicenseKey);
            assert!(hits[0].value.eq_ignore_ascii_case(KEY));
        }
    }

    #[test]
    fn not_a_license_key() {
        for text in [
            format!("{KEY}0"),
            format!("0{KEY}"),
            format!("0x{KEY}"),
            format!("{KEY}g"),
            format!("sha256:{KEY}{KEY}"),
            KEY[..39].to_string(),
            String::new(),
        ] {
            assert!(find_secrets(text.as_bytes()).is_empty(), "{text}");
        }
    }

    #[test]
    fn authorization_headers() {
        let block = "GET /v1/listen HTTP/1.1\r\nHost: api.deepgram.com\r\n\
authorization: Token 0123abcd\r\nAUTHORIZATION: bearer eyJhbGc.eyJzdWIi.sig-_=\r\n\
Authorization: Basic dXNlcjpwYXNz\r\nProxy-Authorization: Basic cHJveHk6cHc=\r\n\
Authorization: Digest username=\"u\"\r\n\r\n";
        assert_eq!(
            kinds(block),
            [
                (SecretKind::ApiToken, "0123abcd".to_string()),
                (SecretKind::Bearer, "eyJhbGc.eyJzdWIi.sig-_=".to_string()),
                (SecretKind::BasicAuth, "dXNlcjpwYXNz".to_string()),
                (SecretKind::ProxyAuthorization, "cHJveHk6cHc=".to_string()),
            ]
        );
    }

    #[test]
    fn header_lookalikes_are_ignored() {
        for text in [
            "X-Authorization: Token abc",
            "Reauthorization: Token abc",
            "Authorization: Token ",
            "Authorization: Token",
            "Authorization",
            "authorization:",
            ":",
        ] {
            assert!(find_secrets(text.as_bytes()).is_empty(), "{text}");
        }
        // A bare Proxy-Authorization value is still secret.
        assert_eq!(
            kinds("Proxy-Authorization: opaque-value\r\n"),
            [(SecretKind::ProxyAuthorization, "opaque-value".to_string())]
        );
    }

    #[test]
    fn json_and_log_forms() {
        assert_eq!(
            kinds("{\"headers\": {\"Authorization\": \"Token abcdef123456\"}}"),
            [(SecretKind::ApiToken, "abcdef123456".to_string())]
        );
        assert_eq!(
            kinds("authorization='Bearer xyz'"),
            Vec::<(SecretKind, String)>::new(),
            "not a header form"
        );
    }

    #[test]
    fn license_key_in_a_token_header_is_reported_once() {
        let text = format!("Authorization: Token {KEY}\r\nX-Key: {KEY}\r\n");
        assert_eq!(
            kinds(&text),
            [
                (SecretKind::ApiToken, KEY.to_string()),
                (SecretKind::LicenseKey, KEY.to_string()),
            ]
        );
        // Order follows the payload even when a key comes before a header.
        let text = format!("{KEY} Authorization: Bearer abc");
        assert_eq!(kinds(&text)[0].0, SecretKind::LicenseKey);
    }

    #[test]
    fn redaction() {
        let hash = |s: &str| hex::encode(&Sha256::digest(s.as_bytes())[..4]);
        assert_eq!(redact(KEY), format!("f103...bcad (sha256:{})", hash(KEY)));
        assert_eq!(
            redact("abcdefghijkl"),
            format!("abcd...ijkl (sha256:{})", hash("abcdefghijkl"))
        );
        assert_eq!(
            redact("abcdefghijk"),
            format!("(sha256:{})", hash("abcdefghijk"))
        );
        assert_eq!(redact(""), format!("(sha256:{})", hash("")));
        // Characters, not bytes.
        assert!(redact("ééééxxxxxxxxyyyy").starts_with("éééé...yyyy"));
    }

    #[test]
    fn redact_text_replaces_every_secret() {
        let text = format!("key={KEY} Authorization: Bearer abc.def\nok");
        let red = redact_text(&text);
        assert_eq!(
            red,
            format!(
                "key={} Authorization: Bearer {}\nok",
                redact(KEY),
                redact("abc.def")
            )
        );
        assert!(!red.contains(KEY) && !red.contains("abc.def"));
        // Idempotent.
        assert_eq!(redact_text(&red), red);
        assert_eq!(redact_text("nothing here"), "nothing here");
        let long = format!("Authorization: Token {KEY}");
        assert_eq!(redact_text(&redact_text(&long)), redact_text(&long));
    }

    #[test]
    fn percent_encoded_key_in_a_query_string() {
        let text = format!("GET /check?license%3D{KEY}%26x=1 HTTP/1.1");
        assert_eq!(kinds(&text), [(SecretKind::LicenseKey, KEY.to_string())]);
        // 42 digits not after a `%` are not a key.
        assert!(find_secrets(format!("=3D{KEY}").as_bytes()).is_empty());
    }

    #[test]
    fn a_key_split_across_segments_is_found_at_the_seam() {
        let text = format!("GET /check?key={KEY} HTTP/1.1\r\n");
        let (a, b) = text.as_bytes().split_at(30);
        assert!(find_secrets(a).is_empty() || find_secrets(b).is_empty());
        let hits = find_across(&a[a.len() - 20..], &b[..b.len().min(64)]);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].value, KEY);
        // A key wholly inside one side is that side's business.
        assert!(find_across(text.as_bytes(), b" next").is_empty());
        assert!(find_across(b"", text.as_bytes()).is_empty());
    }

    #[test]
    fn keys_in_dns_names() {
        let (hits, red) = scan_dns_name(&format!("{KEY}.lic.example.net"));
        assert_eq!(hits.len(), 1);
        assert_eq!(red, format!("{}.lic.example.net", redact(KEY)));
        let split = format!("{}.{}.x.example.net", &KEY[..20], &KEY[20..]);
        let (hits, red) = scan_dns_name(&split);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].value, KEY);
        assert_eq!(red, format!("{}.x.example.net", redact(KEY)));
        assert!(!red.contains(&KEY[..20]) && !red.contains(&KEY[20..]));
        assert!(dns_name_has_secret(&split));
        // After a short hex label, still found.
        let (hits, _) = scan_dns_name(&format!("ab.{}.{}.x", &KEY[..8], &KEY[8..]));
        assert_eq!(hits.len(), 1);
        // Ordinary names, and hex labels that do not add up to a key, are left alone.
        for name in [
            "license.deepgram.com",
            "1.0.0.127.in-addr.arpa",
            "cafe.beef.example.com",
        ] {
            assert_eq!(scan_dns_name(name), (Vec::new(), name.to_string()));
            assert!(!dns_name_has_secret(name));
        }
    }

    #[test]
    fn overlapping_a_secret() {
        let text = format!("key={KEY};");
        assert!(overlaps_secret(text.as_bytes(), 0..5));
        assert!(!overlaps_secret(text.as_bytes(), 0..4));
        assert!(!overlaps_secret(b"nothing", 0..7));
    }

    proptest! {
        #[test]
        fn dns_scan_never_panics_and_hides_keys(name in "[0-9a-f.]{0,90}") {
            let (hits, red) = scan_dns_name(&name);
            for h in hits {
                prop_assert!(!red.contains(&h.value));
            }
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = find_secrets(&data);
        }

        #[test]
        fn redact_text_hides_and_is_stable(prefix in "[ -~]{0,30}", suffix in "[ -~é]{0,30}") {
            let text = format!("{prefix} Authorization: Token {KEY} {suffix}");
            let red = redact_text(&text);
            prop_assert!(!red.contains(KEY));
            prop_assert_eq!(redact_text(&red), red.clone());
            let _ = redact(&text);
        }

        #[test]
        fn found_values_are_inside_the_payload(text in "[ -~\r\n]{0,200}") {
            for hit in find_secrets(text.as_bytes()) {
                prop_assert!(!hit.value.is_empty());
                prop_assert!(text.contains(&hit.value));
            }
        }
    }
}
