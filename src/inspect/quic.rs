//! QUIC: the client's ClientHello, read from the client's Initial packets of QUIC v1 (RFC 9000,
//! RFC 9001), QUIC v2 (RFC 9369) and drafts 29 to 34.
//!
//! Initial packets are encrypted with keys anyone can derive from the packet's Destination
//! Connection ID, so the ClientHello (and its SNI) can be read passively. Cryptography is
//! `ring`'s: HKDF-SHA256, AES-128-GCM and `ring::aead::quic` header protection. Written here,
//! because no dependency provides them without pulling in a whole QUIC stack: the
//! HKDF-Expand-Label framing (RFC 8446 7.1), the long header layout, QUIC variable-length
//! integers and the few frames an Initial packet may carry (PADDING, PING, ACK, CRYPTO,
//! CONNECTION_CLOSE).
//!
//! Invariants:
//! - No function panics on any input.
//! - The assembler is bounded: at most [`MAX_CRYPTO_BYTES`] of CRYPTO stream, at most
//!   [`MAX_CRYPTO_RANGES`] disjoint pieces of it, at most [`MAX_DATAGRAMS`] datagrams; past any
//!   bound it answers [`Parse::NotThis`] for good.
//! - Packets are decrypted in a scratch buffer the assembler reuses; the caller's datagram is
//!   never modified.
//! - Keys are derived from each Initial packet's own Destination Connection ID, so the Initial a
//!   client sends after a Retry (with a new DCID) decrypts too.

use std::fmt;
use std::ops::Range;

use ring::aead::{self, quic as hp};
use ring::hkdf;

use super::tls::{self, ClientHello};
use super::Parse;

/// Most CRYPTO stream bytes reassembled while waiting for the ClientHello.
pub const MAX_CRYPTO_BYTES: usize = 64 * 1024;
/// Most disjoint pieces of CRYPTO stream held at once.
pub const MAX_CRYPTO_RANGES: usize = 64;
/// Most datagrams fed before giving up.
pub const MAX_DATAGRAMS: u8 = 16;

const VERSION_1: u32 = 0x0000_0001;
const VERSION_2: u32 = 0x6b33_43cf;
const DRAFT_29: u32 = 0xff00_001d;
const DRAFT_32: u32 = 0xff00_0020;
const DRAFT_34: u32 = 0xff00_0022;

/// RFC 9001 5.2.
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
/// RFC 9369 3.3.1.
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// draft-ietf-quic-tls-29 5.2, used up to draft 32.
const SALT_DRAFT_29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];

const MAX_CID_LEN: usize = 20;
const SAMPLE_LEN: usize = 16;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 16;
const IV_LEN: usize = 12;

/// What differs between versions for Initial packets.
struct VersionParams {
    salt: &'static [u8; 20],
    key_label: &'static [u8],
    iv_label: &'static [u8],
    hp_label: &'static [u8],
    /// Long-header packet type bits (0x30 of the first byte) of Initial packets.
    initial_type: u8,
    /// Packet type bits of Retry, which has no Length field.
    retry_type: u8,
}

const PARAMS_V1: VersionParams = VersionParams {
    salt: &SALT_V1,
    key_label: b"quic key",
    iv_label: b"quic iv",
    hp_label: b"quic hp",
    initial_type: 0,
    retry_type: 3,
};

const PARAMS_V2: VersionParams = VersionParams {
    salt: &SALT_V2,
    key_label: b"quicv2 key",
    iv_label: b"quicv2 iv",
    hp_label: b"quicv2 hp",
    initial_type: 1,
    retry_type: 0,
};

const PARAMS_DRAFT_29: VersionParams = VersionParams {
    salt: &SALT_DRAFT_29,
    ..PARAMS_V1
};

fn version_params(version: u32) -> Option<&'static VersionParams> {
    match version {
        VERSION_1 => Some(&PARAMS_V1),
        VERSION_2 => Some(&PARAMS_V2),
        DRAFT_29..=DRAFT_32 => Some(&PARAMS_DRAFT_29),
        // Drafts 33 and 34 already used the RFC 9001 salt.
        0xff00_0021..=DRAFT_34 => Some(&PARAMS_V1),
        _ => None,
    }
}

/// Cheap probe: long header with the fixed bit, a known version (1, 2, drafts 29 to 34) and the
/// Initial packet type. Reads the first 5 bytes only.
pub fn looks_like_quic_initial(datagram: &[u8]) -> bool {
    let [first, v0, v1, v2, v3, ..] = *datagram else {
        return false;
    };
    if first & 0xc0 != 0xc0 {
        return false;
    }
    version_params(u32::from_be_bytes([v0, v1, v2, v3]))
        .is_some_and(|params| (first >> 4) & 3 == params.initial_type)
}

/// Reassembles the client's CRYPTO stream from one flow's client Initial packets (coalesced
/// packets in a datagram, CRYPTO frames out of order and split across several Initials) until it
/// holds the whole ClientHello.
#[derive(Default)]
pub struct QuicClientHelloAssembler {
    /// CRYPTO stream bytes by offset; only the ranges in `have` are meaningful.
    crypto: Vec<u8>,
    /// Received byte ranges of the CRYPTO stream: sorted, disjoint, not touching.
    have: Vec<Range<usize>>,
    datagrams: u8,
    /// Set once the answer is `NotThis`: later calls answer the same without work.
    failed: bool,
    /// Reused buffer for decrypting one packet.
    scratch: Vec<u8>,
    /// Keys of the last DCID seen; a flow's Initials almost always share one.
    keys: Option<InitialKeys>,
}

impl fmt::Debug for QuicClientHelloAssembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicClientHelloAssembler")
            .field(
                "crypto_bytes",
                &self.have.iter().map(|r| r.len()).sum::<usize>(),
            )
            .field("have", &self.have)
            .field("datagrams", &self.datagrams)
            .field("failed", &self.failed)
            .finish()
    }
}

impl QuicClientHelloAssembler {
    /// Feeds one client-to-server UDP payload.
    ///
    /// `Done` once the whole ClientHello is assembled; `NotThis` if this is not QUIC (a v1/v2
    /// long-header Initial), if an Initial fails to decrypt, if the CRYPTO data is not a
    /// ClientHello, or once a bound is passed; `NeedMore` otherwise.
    pub fn feed(&mut self, datagram: &[u8]) -> Parse<ClientHello> {
        if self.failed {
            return Parse::NotThis;
        }
        let result = self.feed_inner(datagram);
        if result == Parse::NotThis {
            self.failed = true;
            self.crypto = Vec::new();
            self.scratch = Vec::new();
        }
        result
    }

    fn feed_inner(&mut self, datagram: &[u8]) -> Parse<ClientHello> {
        self.datagrams = self.datagrams.saturating_add(1);
        if self.datagrams > MAX_DATAGRAMS {
            return Parse::NotThis;
        }
        let first_datagram = self.datagrams == 1;
        let mut rest = datagram;
        let mut initials = 0;
        while let Some(packet) = LongHeader::parse(rest) {
            let Some(bytes) = rest.get(..packet.end) else {
                // Cut short (snaplen or a lying Length): it cannot be authenticated.
                return Parse::NotThis;
            };
            rest = &rest[packet.end..];
            if !packet.initial {
                continue;
            }
            initials += 1;
            if self.open_initial(bytes, &packet).is_none() {
                return Parse::NotThis;
            }
        }
        if initials == 0 {
            // The flow must open with an Initial; later stray datagrams are only skipped.
            return if first_datagram {
                Parse::NotThis
            } else {
                Parse::NeedMore
            };
        }
        match self.have.first() {
            Some(range) if range.start == 0 => {
                tls::parse_client_hello_message(&self.crypto[..range.end], true)
            }
            _ => Parse::NeedMore,
        }
    }

    /// Decrypts one Initial packet and files its CRYPTO frames. `None` if it does not decrypt or
    /// its frames break a bound or the framing.
    fn open_initial(&mut self, packet: &[u8], header: &LongHeader<'_>) -> Option<()> {
        let keys = match &self.keys {
            Some(keys) if keys.version == header.version && keys.dcid() == header.dcid => keys,
            _ => self
                .keys
                .insert(InitialKeys::derive(header.version, header.dcid)?),
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let plain = keys.open(packet, header.pn_offset, &mut scratch);
        let filed = plain.and_then(|range| {
            let mut ok = Some(());
            let frames = read_frames(&scratch[range], |offset, data| {
                if ok.is_some() {
                    ok = self.add_crypto(offset, data);
                }
            });
            frames.and(ok)
        });
        self.scratch = scratch;
        filed
    }

    /// Files one CRYPTO frame. `None` past the byte or range bounds.
    fn add_crypto(&mut self, offset: u64, data: &[u8]) -> Option<()> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(data.len())?;
        if end > MAX_CRYPTO_BYTES {
            return None;
        }
        if data.is_empty() {
            return Some(());
        }
        if self.crypto.len() < end {
            self.crypto.resize(end, 0);
        }
        self.crypto[start..end].copy_from_slice(data);
        // Merge [start, end) into the sorted, disjoint list.
        let first = self.have.partition_point(|r| r.end < start);
        let last = self.have.partition_point(|r| r.start <= end);
        let merged = if first < last {
            self.have[first].start.min(start)..self.have[last - 1].end.max(end)
        } else {
            start..end
        };
        self.have.splice(first..last, [merged]);
        (self.have.len() <= MAX_CRYPTO_RANGES).then_some(())
    }
}

/// The parts of a long-header packet needed to skip or open it.
struct LongHeader<'a> {
    version: u32,
    dcid: &'a [u8],
    initial: bool,
    /// Offset of the (protected) packet number.
    pn_offset: usize,
    /// Offset just past the packet (may exceed the datagram if it was cut short).
    end: usize,
}

impl<'a> LongHeader<'a> {
    /// Reads the long header at the front of `bytes`. `None` for anything else (a short header,
    /// padding after the last packet, an unknown version, a Retry, a broken header).
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader::new(bytes);
        let first = r.u8()?;
        if first & 0xc0 != 0xc0 {
            return None;
        }
        let version = u32::from_be_bytes(r.array()?);
        let params = version_params(version)?;
        let dcid_len = usize::from(r.u8()?);
        let dcid = r.bytes(dcid_len)?;
        let scid_len = usize::from(r.u8()?);
        if dcid.len() > MAX_CID_LEN || scid_len > MAX_CID_LEN {
            return None;
        }
        r.bytes(scid_len)?;
        let packet_type = (first >> 4) & 3;
        if packet_type == params.retry_type {
            return None;
        }
        let initial = packet_type == params.initial_type;
        if initial {
            let token_len = usize::try_from(r.varint()?).ok()?;
            r.bytes(token_len)?;
        }
        let length = usize::try_from(r.varint()?).ok()?;
        let pn_offset = r.pos;
        Some(Self {
            version,
            dcid,
            initial,
            pn_offset,
            end: pn_offset.checked_add(length)?,
        })
    }
}

/// Client Initial keys for one (version, DCID).
struct InitialKeys {
    version: u32,
    dcid: [u8; MAX_CID_LEN],
    dcid_len: usize,
    key: [u8; KEY_LEN],
    iv: [u8; IV_LEN],
    hp: [u8; KEY_LEN],
}

impl InitialKeys {
    /// RFC 9001 5.2 (RFC 9369 3.3 for v2). `None` for an unknown version or a DCID over 20 bytes.
    fn derive(version: u32, dcid: &[u8]) -> Option<Self> {
        let params = version_params(version)?;
        if dcid.len() > MAX_CID_LEN {
            return None;
        }
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, params.salt).extract(dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client)?;
        let client = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &client);
        let mut keys = Self {
            version,
            dcid: [0; MAX_CID_LEN],
            dcid_len: dcid.len(),
            key: [0; KEY_LEN],
            iv: [0; IV_LEN],
            hp: [0; KEY_LEN],
        };
        keys.dcid[..dcid.len()].copy_from_slice(dcid);
        expand_label(&client, params.key_label, &mut keys.key)?;
        expand_label(&client, params.iv_label, &mut keys.iv)?;
        expand_label(&client, params.hp_label, &mut keys.hp)?;
        Some(keys)
    }

    fn dcid(&self) -> &[u8] {
        &self.dcid[..self.dcid_len]
    }

    /// Removes header protection and decrypts `packet` (one whole packet) into `scratch`, laid
    /// out as the unprotected header then the plaintext. Returns the plaintext's range.
    fn open(&self, packet: &[u8], pn_offset: usize, scratch: &mut Vec<u8>) -> Option<Range<usize>> {
        let sample_at = pn_offset.checked_add(4)?;
        let sample = packet.get(sample_at..sample_at.checked_add(SAMPLE_LEN)?)?;
        let hp_key = hp::HeaderProtectionKey::new(&hp::AES_128, &self.hp).ok()?;
        let mask = hp_key.new_mask(sample).ok()?;

        scratch.clear();
        scratch.extend_from_slice(packet);
        let first = scratch.first_mut()?;
        *first ^= mask[0] & 0x0f;
        let pn_len = usize::from(*first & 3) + 1;
        let payload_at = pn_offset + pn_len;
        if packet.len() < payload_at + TAG_LEN {
            return None;
        }
        let mut pn = 0u64;
        for (byte, m) in scratch[pn_offset..payload_at].iter_mut().zip(&mask[1..]) {
            *byte ^= m;
            pn = pn << 8 | u64::from(*byte);
        }
        // The first client Initials are numbered from 0, so the truncated number is the
        // full one (RFC 9000 A.3 with no packet received yet).
        let mut nonce = self.iv;
        for (n, p) in nonce[IV_LEN - 8..].iter_mut().zip(pn.to_be_bytes()) {
            *n ^= p;
        }
        let key =
            aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &self.key).ok()?);
        let (header, payload) = scratch.split_at_mut(payload_at);
        let plain = key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&*header),
                payload,
            )
            .ok()?;
        Some(payload_at..payload_at + plain.len())
    }
}

/// Output length for `ring::hkdf`.
struct OutLen(usize);

impl hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label with an empty context (RFC 8446 7.1), filling `out`.
fn expand_label(secret: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let out_len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(b"tls13 ".len() + label.len()).ok()?];
    let info: [&[u8]; 5] = [&out_len, &label_len, b"tls13 ", label, &[0]];
    secret.expand(&info, OutLen(out.len())).ok()?.fill(out).ok()
}

/// Walks the frames of a decrypted Initial payload, calling `on_crypto(offset, data)` for each
/// CRYPTO frame. `None` if a frame is cut short; frames an Initial may not carry end the walk.
fn read_frames(payload: &[u8], mut on_crypto: impl FnMut(u64, &[u8])) -> Option<()> {
    let mut r = Reader::new(payload);
    while let Some(frame_type) = r.u8() {
        match frame_type {
            // PADDING, PING.
            0x00 | 0x01 => {}
            // ACK, ACK with ECN counts.
            0x02 | 0x03 => {
                r.varint()?; // largest acknowledged
                r.varint()?; // ack delay
                let ranges = r.varint()?;
                r.varint()?; // first range
                for _ in 0..ranges {
                    r.varint()?; // gap
                    r.varint()?; // range length
                }
                if frame_type == 0x03 {
                    for _ in 0..3 {
                        r.varint()?;
                    }
                }
            }
            // CRYPTO.
            0x06 => {
                let offset = r.varint()?;
                let len = usize::try_from(r.varint()?).ok()?;
                on_crypto(offset, r.bytes(len)?);
            }
            // CONNECTION_CLOSE: nothing of interest follows.
            0x1c | 0x1d => return Some(()),
            // Not allowed in an Initial (RFC 9000 12.4): stop reading this packet.
            _ => return Some(()),
        }
    }
    Some(())
}

/// A cursor over bytes; every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    /// A QUIC variable-length integer (RFC 9000 16).
    fn varint(&mut self) -> Option<u64> {
        let first = self.u8()?;
        let extra = (1usize << (first >> 6)) - 1;
        let mut value = u64::from(first & 0x3f);
        for &byte in self.bytes(extra)? {
            value = value << 8 | u64::from(byte);
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 9001 Appendix A.2: the protected client Initial (DCID 8394c8f03e515708, SNI
    /// example.com, ALPN "alpn").
    const RFC9001_CLIENT_INITIAL: &str = "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f3991c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df621230c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c2084dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f89937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c7468449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663ac69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe5896425c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ffef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009ddc324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77fcb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450efc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03adea2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e72404790a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f440591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca06948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f0940054da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd46840647e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241e221af44860018ab0856972e194cd934";

    /// Chromium 115 to api.cirrus-ci.com, QUIC v1 (Zeek
    /// `quic-chromium-115.0.5790.110-api-cirrus-com.pcap`, frame 1).
    const CHROMIUM_V1: &str = "c0000000010895412c47018cdfe8004046006e2385e694b43534cc4506131c629fc029f854dad8927dbf2545a59d323e2d507b2bad115094ecccaa094e76cb0782e728d7cd8153197fe90e58048434b9b3a16cd4581ddf4489d7ba28eea7972516afab349ac3886fbd6c060b11021ea4218be2963df82cb9298c8094e9fe22d3b9c93ca39e13d88a550f8a364f6b7207cbdf854c692922857793d8b942bf08e0ff79140c9156f10acb0505b154ce4ce2b2b1ef4dc7bf55bfa59da71008bef7926851e9e43d25c025287fe4e43064eb21bea4740827e6aea6a2a2e576328cf7dd7099a6b1cb13f80515cf34dc11953bceff3058b3d0185db75cf8ac4856cccc6c523be67edd515a90521994ae829430b2300111a1ca12d74caed8ac0c42c1b42f12ee95e8edf905a3feaae08087c7ddedfd01c079ba4e73c8c46b67fad96bf49d2355c2f98a19832e3ce981d8fb8019bd3769b6ccafbcc75b8eeff0b75a304ccf2b5215a3c1b47df45ae3ce613773390017e19705e96e198fb4365ec07cac463214e38c5d7b43861200dd760baf3508f47b1ed3ef6e6041943a5a8f8384ec7ab84364c118b774f23d48640051236f7b465399b982e5aa793e72bb76c40ec762682caa658967dad360b551cadcf3dce30fbb798d40e844a7de1125c5610b190c40dab8455f7fe41a3716b30754697e1aa522ce1b5f9f4b23487ae43739ed6059881d8a6fa5dc07c0a0de85b766626ea55172d8330719228e44e0e7ba876890f0b2f10752efc2a6a035f0222967c24929148086604350fffa795aa204303385c8bbb31a780b87550f3ed6643d8ca6fe87eb2cedd34d148e01f36475595f21db340cfac48a6dac342310c107fdc9446f0439d65e20c692ddd4385a053bb11330bc9d144300d87a7ba2c7c32ef2437d6580df2ea3b0f8beba4fd541c0c9f0c597fb9386291780bcc69a45e9c1079f55840e552234133882677a430d75d1e48b404975c7abdf3eb76eeebb73d3af9962b45b5071c3096c73a3e90e2c563b7cccb53e95686bbc61db2a5f722d8cbd5d960f29d511c71ab6aa6db57b14218ebbca305a4fff4a050473a3dde6d6a822f238a168df69f4b612b68d7f7dbd80e0ba46be41a91ab062525bbd310af8b54830f2571782b565b6cf9de46efbf0c0a812d211a2095d51af5789ccbc42509f9af182e74aa833897f0665a881cef92692f6a59fd183b67c63f8b1f4765a6a7cbfd6a7126ed6d198923b5ba945337d09653108efe3ab9a4ab77709e196bd4ea5eb5ebcd50c6acd1b12428977e563fc70929269d5339ae66ac2d8d4101e73b313ae29736b614c31dc62f047be12c52b4f3ea96275c7cfd3e4089ed37188be7ece4d94f417b224663d59071779e0e3ae13ad7a6d8bb6f197993de6182571750470b2385dc4a6fee2b4f9408053edc24407b5d4ca1c8d2b246ddb69a45c20c4d43f2129554be3d45d542f8127abe81160f0b46f5ce22c13f59b37e0cbb3f36e765f56bc73ce174f1bbebc46a161aaed714a309245f73de0c5f9beea5201da0a912b30ed0212efe108e18595c56695c07a6934a12b9916dce3ebcd8b690e2dd7eca1a4d9612c4e513dda1dd36876b49fc9808b455d3541988706788c2788011cfd0e0e08251c7ebd4cdff0f0fb06be319bd35c7922477d53d32e8c183880c74eb76d609220df6fd27ea0651589e749ad4e01420ebcc2f3752cbf4a5cb9391156c5ce6114d1739b5ca4f1c2eeb49f544ffe31456c994584d2bd4b";

    /// QUIC v2 client Initial (Zeek `quicv2-http3-443.pcap`, frame 1).
    const ZEEK_V2: &str = "d56b3343cf0cbdf0c5b27927cc667e58d95b0471b8f3f40044caf5352eb624e74dceefcaffb36923edc3b28ad4176bd6a63a7e49f368a475754dd9a580b6b2812a450a22c8b71ebca9ee15157ede7406bf04b5f6340b6cedea74c8cfca8d36cef7c6b92e60184ff192c1f7187adfc30cc3f63900a5a19c841848f3f2fd8dce9e851508ccf4e696b9ceb6ce4180a7f75bab0e7d74d98280f2bc7326e82dd977fb1b6970ea23c561fcbe96ef2423c42bb227100c92fc4c3ccb14a7c8ff0b8e8b35cb419fdea4ccef726caa337211d1a291beb55508885d448b69309f5da8f955705291c1d53d324b0663bb8b13949362acf6d7bedf022e2a83553bbc17e17274cd8b6ca4c0a2b12866bcbc5afcbe3404a16b7af8dec7de1bc34acab2dd2e264dbc04647e6a81a5db87428c072eb04679ad4774a0c00a0416945f9cd495f1b53bc59856b7756c9e5eaeab7f510a83850d3f836d9ce184c637c5f1e8feb03b55c162f02bc2f4a7500b150bd51ef1468f453f3a7c4b73e192dd9e5c254b4610bc365f637fda89598c7767d688721b6f62b91bcf4e3fecf5fd6b9a03803b6c53b862cd25ba83dd16a39c917b27c386c2405b70c8ba8c3a36afedf7860831f5285c2ca55d6ebffafea0599db544aacc9416afb978d8fbbcaec5ef62b9a32a8449b4e69b752e111d00e2163c0a4663cdb34e74e47695f9e68eba6678b90b82f2ff504126f2e7038b79396a31c6a358ee8bb29d2213803a858d96988405bf25455c52b987642e0ec6ba103d6a850d55e9ed130ddca47c78ecd35bd071fec73c8e179d2ba6ff7b7ccf8648c5c92c7b29d80f79014183d89fd3844a433c213e8f6343979a550ec3b8ffe5744c4075d5f6b254a61cd5e08ec0b8bc4a6532f427aa2f8d924ddc9ac2a2e2b6229ed9971a7655b43159896c83d15cc9768372d4841abdfd88a97e90d0335f9531a6694c86389ccb9134857f014138aa02aca4d6e62b7a7119a8cc41f1e8633ed2eed1dc90eef285230c855ec993d4597e401c87141194fca7e000e2bde56fa23dee40297fe1ae95ece055b9f527e9dc3248ce59ab8a3a7f0839806c91c3c56dbd5d423b503e4794d0441cbcf95544cf566d11ec2d9bc02d1d56eecbbd126b8e0a387d5d769aa252318179d8a1e42337cc2c8bab1153bdd849a4892a48ff151da4a47d646e1576e5c361d68aae956f7bfae5c48d158e235c58a3aa901e5773fd09d5eeb49cad86546c151e32b8be80b6735ab3bba1b734609124519b273a7d35988d5a8b80478bda00accef82a3f3645d1d67ed3fa6cc07ba169cb2f2964e870d31ffc96b8b03b062e5053b79410b93753c962a3bcbf9c4d7b2bfd7b76715b66a4d25fd15211fd2a9a65d59beacb02f7d2b29c0dd42a263802a8b3c83578445061daec6ae29911c54f3e088958dfa10e73d8c2256de3e0edf523933886771c13561fb9391ac365f0300546103363f652c72aad16e514001dd87587a6d7de57cea4b94921a970ef3a36c7112e07648bd9d2db67530f34cd81ac5eaba6273a505adea9e458464daa952429882e444f1273b7e257151d683e15054f76c4e5e04247609235872a4aa71df046e62f4b9073c4a65dd92758ee1b97a02456f4ca0742369fdffd3546f4df4a0e0c098f825d777c01688a6d57a2f9077681c0e92789d7505fbcd41411f5d709dc6869e4b15d1926cc75d0a18f5a127def095b4843562abde8c968f23d322c13c40e6b32450f8a6232e19a7824ee4d9261015f46ab7d4c";

    /// QUIC v2 client Initial, coalesced with a second v2 packet (nDPI `quic-v2.pcapng`, frame 1).
    const NDPI_V2: &str = "d66b3343cf080726272642fc2eb20811fffdea452422b832a196c2fa15ec4a99b399b9116eb2c5ef233065423a33ac16db1be7c47541e1dbc9337bc0326b173b40bfcb11d25b647d0e8141c89fd5d4fe0ae06a3a4962392c9e91c2e1b3920ae3f12a7128aed5573623691908c9962a936cabe187e5acf4e4047e6fe88834c87e48cab6336dcf659934dffc133e0b4672e74e81a0d801d41fd6abdb6e04c27d9c831771e2c8fe0e025fe22818a653f609bbf7f500392b83579bdb2ef50507795f7bf7a63c939e9c6b8292d9fafbfd0daff19350ccb31c473981ddcff35e2d44465427a3ce8f5f91da78c35e9479bf6d372b5ac20129844c77052541040d4f2f1567dddd86ebe0b18efcde66d1098ee7a330ec771df5edc99baaa853ef72b0a49b685d976f83600e5bbed12fb1c123e189b90a7585bf3e3bc42ef017d060cb4638a4e693cc9e04916be5ea6bf5f0b46aaa166619dc465a0ddb25b89226216b70dc49014284ee512ca3ba354cdd26fdc3a36e5e41693069e7fa89fb45d8c687802c8362440d78ab2c727e7827af5663be939dd4888ace2214195d0e8861f7dfbcc0c3c886c03ee2424d960192010158c016737b5a6edaf09f13f65d830e476c41a07c7e6badfc1ff2e2a70b0f1ad551ef429e0ef6b0d85b0834c08ffdef70af1745ad61b83381339680ae39b9c92e5cdb8475f5efd7b76b3f7877126431960b60a5a61b3a12ee1e5f1eea7958b16d0c48599bf4f6bee36b3343cf080726272642fc2eb20811fffdea452422b842a36e46d441f8c3f756c608d417943fb77a8fdc13b99403e5bb94d6a809d67cdfbffe00d687862536d8dcbb9a0d94a3aa080c8fe40379d52d3f982a521af9900d8034fb0ae504b28073dc59a189c126ab9fe636588d1034f9dc00ebb01e8729d663404e00f0e38e902af72e2b92387dcab96bea2b445b8f3f6c2bafb3fc01aa152bf874c8d4b3b46bfbf5b6167a139ca4cda71a917762b3013a7b6e7bcb9fe6fc13b3213636dd97389174e56d63302a1fde2f20938e20c7bc6bdfe8890528b53c72f1f346d5a8d964a46f2f49ea554eb3754a8788caeed7fc6e49acd25302f3f8e53b1173264a443e665bc09d3a73f183ed3deb90974a6c993cd0aa6fae24e23fef2e493416d858f981dda4632e306b7544ec9fb65c144baeb456c895baf6e310f611537be8e07e4ebddec383c455fe882539b08fa0073a7e66cc5ee81f836dfec3ef43d77dc30b260ebe17f1c13eb609897cba3648ebe0a7dae509fddfddf290e69d7a25ac5db1920dd5806c6165fe4905fccdd96355636883c977d68d987672c1d96c6efae19bfa7494f89b66d61e0980847448463834485b07515833ed34ae181adfb4ec769836a626d4efa240c6f1f010a1f142c9f948edde0a0840b66c9e248698f456397ed4dc6c3e3ec5bac71812ad41e36531e8ba62faf269cbbce55ae5e3201d443f3504ea9727787ad20ff0b8e73eda0d7c522fd467beec602f7a536da1c248262305d26efe21f17ddb9b5409fe19145aa3df1629d5a381c83035284fc949410a7c1d66e727cd2e96b0c2664754dfa7c7c465be6555e462bf83b9404a4f266b0df00373f8de23b90c28c92a9c33e7a65aa6258cb1d5b26ec1f74c05430d67c0122e19c0f5b066e16727145c0047e77b8113d41e73456795f5c6db66d4caaab7d25c18a72a163d75b9ec4569146cb20de5ac44b365b03452be4c05734b28603c";

    /// Two client Initials whose CRYPTO frames each hold part of one ClientHello (nDPI
    /// `quic_frags_ch_in_multiple_packets.pcapng`, frames 1 and 2).
    const FRAGS_1: &str = "c30000000108e0ea07d1045fdfdf085bb4b299cb9dcac40044b6b9cce1dff4908dedd93e453b7453113bc0dc71a19ab6f09d099af923d83e7f22618b8774a6905bc4a8bd7d3e5787673ec7983bee154d266575e89f813f15350401d38b5addc13264c0e9291b5e816e1d7a4928e473d46c48a274d99240eb8fde91fff12a0bf71eed4c143383638bdd4a42aa30275f5ea9140750f95fd16ea2757b2cd615d6f00507761ee0b1fc88f5e75051448d979ffcfe003078ad51785833aeb739b5d0ef2c876b2c2c57b663230a11e4858643b65b131c01ab4d036950e2a257237d8ada4ca01b8582ed0f016f485314c1bf9b2c049fbcb8d79d4e493e276540cabc39587155a3b85faa4d5b296bf887edcd94bb23e1a5362f2231f441e654c59cd98524c57a3d8b5b01653f6605ce91b08894b005a88b318fb9ffbd038a80259aac950bb48534b026e3eedf51cfc226c7f47fc1436cf1a3304178af87f9fb42d5647f78532e16774b6c4ac00e988c63c703188602d5566ad5b7b4c1471668b4bb0c3001392a06380b7ec9ec0282bef874e2f5c98f5cf7510558189878f19f63d831fad9af3f0d05d2ef871479ab20a1723ffdf72acaa1bff9d127904cb2425f5fe74562c13cd4cea841c2bd351d96a907c74104875274e2dc53fc6eef7db9078804e8c6eb66beb0e8363b0a1ace81cd955b0a317a1b19a38d6b58166c390348c8fccbbfd2740518a9fb0ec626663173edee6deea0c5d6b3f56f929f8dc2b1b44842b85b0a01c66972df2c6df761c694e17fba961669643211ae97c796278d9341381c77ef996ea74d79307291ca51cfcb5ade7e5a8b875afc4c9f8c7e95d403bd7d7ed79f3b095dd7330c0164cd916b36ad1211d6d51277393fb10b78227bab669a731076e5ec78599cf95d89693e7faba31153f4e5c18d11abb12d27cf996f3197a88baee23c42c7da0c9a2ebacfae6e5f0dea20d34e794c475c9c9ca405b0e437b8573695478970ca0cca1aa967c782f7254bde223fa839bca1ec5e7a36a4dee42e14570d2b5ce2b9bea0ca69fad2383be489e2134e0c74dc1da950d296f512eed4f86d6d7519b98d2088f9e03df2a08cc116c1b81a87922fc939ef79a2fab04a9ff637ebde416bb32f86356fceca8ae40e746923c4687f31b0d6d2f188394f821d67f6b1f2475a5175bcbd0677ffac31c47936b1a2d3f45a10298201c21daff2149102cd5aacf5a4bb8b6c960dc25f4b8d001729d43f55062a125efee5315e287ba97b61790ec55f122402156fddc3e809103bd427ecd84fc47b2d5f54a456e653095bd3eb88973b1a85adcb1ef4a4e759b0af075e24043e260a25a4a2a0dd1caf6f010eba4c51fba72515a7f0f88b9975264edb883086e11721b2f8443ac619c3f80ff484b24d58d1cc5cbbbf91f501a2ea402504c271fb0286881a7aa803e9ee5e49808de4f4fdf97a46377f867f83f125f0ec4e3b11632f6925cb5f68f0b786a8723a340a7c2c76adba6f802f4f311541c898ed2c9c469e425402e1b797a5056a4515be8b19fb933ade551cb37f7eaf7aae883039caeecd009f00fe2f3b941c641becb599dc835ec6810c27dc2b76713ffb2865c638afed1009a48a6312b74e77224dbb954f67a68097baa04d7b24568c28bffea0da80de5cbe4a7cb9dcb1eddc39c65737d64069d22694f6c35c468a2972f654df0322ec77e7ef981b6e1f6d25a7c3ebb3b66055420631dfe9592455fe";
    const FRAGS_2: &str = "c80000000108e0ea07d1045fdfdf085bb4b299cb9dcac40044b6743ffa9c06bb24575ed08f4b89eaed25fa82b0f12dfb9efc45a30439c5b1a1c2fef0b23c9ba9627f7907de2e21cdf945001727376c69b2f6a4c5d3e5283f245ba7e87014c3bb0d96f7adab9a5d1b9a0a137bcaffd483cc95d3ce07af120f5708b2b9def98a28d900a7ca483cbe6e3fce76c82c560ee7df4d20e1de3be6a1ccaea8fc91ef02b2d9a9964264532dc8e1618d66b4dfc027b420ba092644f9153bf4a83876fcbdfc154e5379401237d4f827d15fbeeeb43f8631e3ae00ea1f9f42ed4bd4e0dbbff6aa03c674ce981a0770af782cfa08d7fcb8fa17b167c7b5781c1a85c460631acfedd5935ab47e2703c3f62529505bf1a3c4888268155a2fda6cce8c3702a661308d2d7a3ad31e07b5a37f04224fec8d525ff2d285fd1cc9ed4e7f58a6b81292adeb92f21479feda58692cee3e577cdb27529afb33010d06af2a8e27f654fa3af14774edfc0691c395c1ecb010e62822db8ae4d151daf278940836c7a94012b1926f7a39030db63a3263ea95f61a2029a290a58c2f850c16e93bb1f0f26348bfa7cbcbbafb9a770c1dbe735f8b099e892273aefb67e2328951d73325ea90a04008364a0ec356d50590c9551f84501aa19bb69b69466738f534925b029adce9b5186f19d8c6202c1edf189a82a1042a0150c01fffbde6f3d760c4099101414ba485bb021311e997c1ee7805ef29203203ad836539cf8c16c50d1a065279ac375c3aaeffc490a993f7c28e9d6fe46b6dd3f07a50c865b4dd00bea897732b682081c29f3b0b33ea177dcf728f8c3d3a5004841ea7dc674bb761be7f30bba6a58f0ba30e1802ecf88f5acfb11fb2fc442459e1da60b17ff34c09a7dc9beffda9fab6ec65aec3fcfcfdc1d6188f4727ad7621ae0f47607b8f67dc0a0df192e6f6088a165844631b10c6c670580b74e00d95b4eba9ea7ba9e61a22ee5bb38dabb6ff7119800be3dcb3c53909263ee86e99345838378663a8d06d062ae30de43dc32ec77a0807a4b6d81cfd1c9018658f7f539d06b18e67cf3ab1595261f548e773bcc0ba75630098d50985cdd3e949ebed8b32765d8bc527e630df38abd6ac01c43e1b867b680e0f9a106c2a23288dc97807088d7724e429257b616e94408faf1693836e5417519a6b3ab49b1117af4930bfd8f81fc1507de856648234b89c4961e38af3704831bf77b41ea404b5c0d606c0d993cd643f3c28f98fd09dc3aea69ba4436566abc439bfa1293d344305ad8ef128aec87ae6efacf59de960c3749f41a2fa7937384788abb05524b1fddd1ed40e9b535162e5d7d411cad8e26095acb42daebccbfd4aae85949d9f5a7288ecb4308d18fdb9db0782ba274e2b5d9ea712da75114fcd9124b2cfef901aec1af2ffbe981660c9145d1d7932ff2392ad31b16e63629103ff05739a3b79e5af1794ed2aae3a1a3aa1f3069000fd9bd9e70f4e090695c36ecca69c1b869135200293d1a7e347360f9a021c17d105efdb59d3d463891a4819fe43a4dbdada6b951eaf3c473f8dff64d9f0a9c5464b67a4d3115d6b0ca88bba72be3d0655ae029e04e652e2472c74a05d76058285cb2333f2e7131d118919165c4a453e0feafbc699f1c194bed9665f345a61c09ef54b0388a73fd37a350ea0a44b9a7d03078810bc459eebee9ffb360496f3f37e7548420fb069d2e39098151b624b727668b614586f1117db25";

    /// A client Initial cut by a 256-byte snaplen (tcpdump `quic_handshake_truncated.pcap`,
    /// frame 1): the packet claims more bytes than were captured.
    const SNAPLEN_CUT: &str = "c40000000108f71ae16671baa8b70000449e145a8086ee4329e731129452161222028cc4c3168dfbc7532b232f7c1105528474448773a0184879027f4055cd21c1da491812e44ffeedf77c7b60c79a283827152720e9ca42c2deae68c76a6c872c6a16255a7a720a8ceaabc4096abd7da4e2e32604cec414e3710c76f223f7fad95af1728a1be8f6023329a9fb7900784ffe7a9570233f3b4d32767d351428f4501bbef1f1a5595590e38684aed96afc83ca2edd58876cf98cb657c24f3861cf736ae0aa3e12fc2ccd7d29f3";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    fn done(p: Parse<ClientHello>) -> ClientHello {
        match p {
            Parse::Done(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc9001_key_derivation() {
        let keys = InitialKeys::derive(VERSION_1, &unhex("8394c8f03e515708")).expect("keys");
        assert_eq!(hex::encode(keys.key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex::encode(keys.iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex::encode(keys.hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    #[test]
    fn rfc9369_key_derivation() {
        let keys = InitialKeys::derive(VERSION_2, &unhex("8394c8f03e515708")).expect("keys");
        assert_eq!(hex::encode(keys.key), "8b1a0bc121284290a29e0971b5cd045d");
        assert_eq!(hex::encode(keys.iv), "91f73e2351d8fa91660e909f");
        assert_eq!(hex::encode(keys.hp), "45b95e15235d6f45a6b19cbcb0294ba9");
    }

    #[test]
    fn rfc9001_client_initial() {
        let datagram = unhex(RFC9001_CLIENT_INITIAL);
        assert!(looks_like_quic_initial(&datagram));
        let hello = done(QuicClientHelloAssembler::default().feed(&datagram));
        assert_eq!(hello.sni.as_deref(), Some("example.com"));
        assert_eq!(hello.alpn, ["alpn"]);
        assert_eq!(hello.supported_versions, [0x0304]);
        assert!(hello.ja4.starts_with("q13d0211an_"), "{}", hello.ja4);
    }

    #[test]
    fn chromium_v1() {
        let hello = done(QuicClientHelloAssembler::default().feed(&unhex(CHROMIUM_V1)));
        assert_eq!(hello.sni.as_deref(), Some("api.cirrus-ci.com"));
        assert_eq!(hello.alpn, ["h3"]);
        assert!(!hello.grease);
        // Cross-checked with JA4 computed from tshark's fields for the same frame.
        assert_eq!(hello.ja4, "q13d0311h3_55b375c5d22e_3512bcbbc9ec");
    }

    #[test]
    fn quic_v2() {
        let datagram = unhex(NDPI_V2);
        assert!(looks_like_quic_initial(&datagram));
        let hello = done(QuicClientHelloAssembler::default().feed(&datagram));
        assert_eq!(hello.sni.as_deref(), Some("test"));
        // nDPI's expected output for this capture gives the same JA4.
        assert_eq!(hello.ja4, "q13d0310h3_55b375c5d22e_0a3b52e28cea");
        // tshark 4.0 cannot decrypt this one (the AEAD tag vouches for our reading); it has no
        // SNI, as Zeek's ssl.log baseline for the trace says (server_name "-").
        let hello = done(QuicClientHelloAssembler::default().feed(&unhex(ZEEK_V2)));
        assert_eq!(hello.sni, None);
        assert_eq!(hello.alpn, ["h3"]);
        assert!(hello.ja4.starts_with("q13i0310h3_"), "{}", hello.ja4);
    }

    #[test]
    fn crypto_split_across_initials() {
        let mut assembler = QuicClientHelloAssembler::default();
        assert_eq!(assembler.feed(&unhex(FRAGS_1)), Parse::NeedMore);
        let hello = done(assembler.feed(&unhex(FRAGS_2)));
        // No SNI, 18 ALPN names, and the JA4 of nDPI's expected output for this capture.
        assert_eq!(hello.sni, None);
        assert_eq!(hello.alpn.len(), 18);
        assert_eq!(hello.supported_versions, [0x0304, 0x7f1c, 0x7f1b, 0x7f1a]);
        assert_eq!(hello.ja4, "q00i0307h4_55b375c5d22e_af0a630e9e67");
        // Same result when the second Initial arrives first.
        let mut assembler = QuicClientHelloAssembler::default();
        assert_eq!(assembler.feed(&unhex(FRAGS_2)), Parse::NeedMore);
        assert_eq!(assembler.feed(&unhex(FRAGS_1)), Parse::Done(hello));
    }

    #[test]
    fn truncated_or_corrupt_initial_is_not_this() {
        let datagram = unhex(RFC9001_CLIENT_INITIAL);
        for cut in [1, 5, 18, 40, 600, datagram.len() - 1] {
            let mut assembler = QuicClientHelloAssembler::default();
            assert_eq!(
                assembler.feed(&datagram[..cut]),
                Parse::NotThis,
                "cut {cut}"
            );
            // And it stays that way.
            assert_eq!(assembler.feed(&datagram), Parse::NotThis);
        }
        let cut = unhex(SNAPLEN_CUT);
        assert!(looks_like_quic_initial(&cut));
        assert_eq!(
            QuicClientHelloAssembler::default().feed(&cut),
            Parse::NotThis
        );
        let mut corrupt = datagram.clone();
        corrupt[100] ^= 1;
        assert_eq!(
            QuicClientHelloAssembler::default().feed(&corrupt),
            Parse::NotThis
        );
        // A lying Length beyond the datagram.
        let mut long = datagram;
        long[18] = 0x7f;
        assert_eq!(
            QuicClientHelloAssembler::default().feed(&long),
            Parse::NotThis
        );
    }

    #[test]
    fn not_quic_is_not_this() {
        assert_eq!(
            QuicClientHelloAssembler::default().feed(b""),
            Parse::NotThis
        );
        assert_eq!(
            QuicClientHelloAssembler::default().feed(b"\x01\x00dns"),
            Parse::NotThis
        );
        // Unknown version.
        let mut datagram = unhex(RFC9001_CLIENT_INITIAL);
        datagram[4] = 9;
        assert!(!looks_like_quic_initial(&datagram));
        assert_eq!(
            QuicClientHelloAssembler::default().feed(&datagram),
            Parse::NotThis
        );
    }

    #[test]
    fn stray_datagram_after_the_first_is_skipped() {
        let mut assembler = QuicClientHelloAssembler::default();
        assert_eq!(assembler.feed(&unhex(FRAGS_1)), Parse::NeedMore);
        assert_eq!(assembler.feed(b"\x40short header"), Parse::NeedMore);
        assert!(matches!(assembler.feed(&unhex(FRAGS_2)), Parse::Done(_)));
    }

    #[test]
    fn datagram_bound() {
        let mut assembler = QuicClientHelloAssembler::default();
        assert_eq!(assembler.feed(&unhex(FRAGS_1)), Parse::NeedMore);
        for _ in 1..MAX_DATAGRAMS {
            assert_eq!(assembler.feed(b"\x40"), Parse::NeedMore);
        }
        assert_eq!(assembler.feed(&unhex(FRAGS_2)), Parse::NotThis);
    }

    #[test]
    fn probe() {
        assert!(looks_like_quic_initial(&unhex(ZEEK_V2)));
        assert!(looks_like_quic_initial(&[0xc0, 0xff, 0, 0, 0x1d]));
        assert!(looks_like_quic_initial(&[0xc0, 0xff, 0, 0, 0x22]));
        assert!(!looks_like_quic_initial(&[0xc0, 0xff, 0, 0, 0x1c]));
        // v2 Initial type bits are 01; 00 is Retry there.
        assert!(!looks_like_quic_initial(&[0xc0, 0x6b, 0x33, 0x43, 0xcf]));
        // Handshake packet, missing fixed bit, short header, too short.
        assert!(!looks_like_quic_initial(&[0xe0, 0, 0, 0, 1]));
        assert!(!looks_like_quic_initial(&[0x80, 0, 0, 0, 1]));
        assert!(!looks_like_quic_initial(&[0x40, 0, 0, 0, 1]));
        assert!(!looks_like_quic_initial(&[0xc0, 0, 0, 0]));
    }

    #[test]
    fn varints() {
        let read = |b: &[u8]| Reader::new(b).varint();
        // RFC 9000 A.1 examples.
        assert_eq!(
            read(&unhex("c2197c5eff14e88c")),
            Some(151_288_809_941_952_652)
        );
        assert_eq!(read(&unhex("9d7f3e7d")), Some(494_878_333));
        assert_eq!(read(&unhex("7bbd")), Some(15_293));
        assert_eq!(read(&unhex("25")), Some(37));
        assert_eq!(read(&unhex("4025")), Some(37));
        assert_eq!(read(&unhex("c2197c")), None);
        assert_eq!(read(&[]), None);
    }

    #[test]
    fn frames() {
        let mut seen = Vec::new();
        // PADDING, PING, ACK(ECN, one extra range), CRYPTO(offset 5, "abc"), then STREAM: stop.
        let payload = [
            0, 0, 1, 3, 9, 0, 1, 0, 1, 2, 0, 0, 0, 6, 5, 3, b'a', b'b', b'c', 8, 0xff,
        ];
        assert_eq!(
            read_frames(&payload, |o, d| seen.push((o, d.to_vec()))),
            Some(())
        );
        assert_eq!(seen, [(5, b"abc".to_vec())]);
        // CRYPTO cut short, ACK cut short.
        assert_eq!(read_frames(&[6, 0, 4, b'a'], |_, _| {}), None);
        assert_eq!(read_frames(&[2, 1, 0], |_, _| {}), None);
        // CONNECTION_CLOSE ends the walk.
        assert_eq!(
            read_frames(&[0x1c, 6, 0xff, 0xff], |_, _| panic!()),
            Some(())
        );
    }

    #[test]
    fn crypto_ranges_merge_and_bound() {
        let mut a = QuicClientHelloAssembler::default();
        a.add_crypto(10, b"kl").expect("fits");
        a.add_crypto(0, b"ab").expect("fits");
        a.add_crypto(2, b"cdefghij").expect("fits");
        assert_eq!(a.have.len(), 1);
        assert_eq!(a.have[0], 0..12);
        assert_eq!(&a.crypto, b"abcdefghijkl");
        assert_eq!(a.add_crypto(MAX_CRYPTO_BYTES as u64 - 1, b"xy"), None);
        assert_eq!(a.add_crypto(u64::MAX, b"x"), None);
        let mut a = QuicClientHelloAssembler::default();
        for i in 0..MAX_CRYPTO_RANGES {
            a.add_crypto((i * 2) as u64, b"x").expect("within bound");
        }
        assert_eq!(a.add_crypto(1000, b"x"), None);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_datagrams(
            datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1500), 1..4)
        ) {
            let mut assembler = QuicClientHelloAssembler::default();
            for d in &datagrams {
                let _ = looks_like_quic_initial(d);
                let _ = assembler.feed(d);
            }
        }

        #[test]
        fn never_panics_on_mutated_initials(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
        ) {
            let mut datagram = unhex(RFC9001_CLIENT_INITIAL);
            for (at, byte) in &edits {
                let n = datagram.len();
                datagram[at % n] = *byte;
            }
            datagram.truncate(cut % (datagram.len() + 1));
            let _ = QuicClientHelloAssembler::default().feed(&datagram);
        }

        #[test]
        fn never_panics_on_arbitrary_frames(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut a = QuicClientHelloAssembler::default();
            let _ = read_frames(&payload, |o, d| { let _ = a.add_crypto(o, d); });
        }
    }
}
