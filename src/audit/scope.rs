//! Scope before policy: which flows can never leave the link (or the site), whatever the policy
//! says. Decided from the IANA registries, not from `[network] internal`, so that an office LAN's
//! ordinary chatter (ARP aside: DHCP, mDNS, LLMNR, SSDP, IGMP/MLD, IPv6 router and neighbour
//! discovery, routing protocols) is never judged as egress.
//!
//! Sources:
//! - IANA IPv4 Special-Purpose Address Registry (RFC 6890): 0.0.0.0/8 "this network" (RFC 791),
//!   127.0.0.0/8 loopback (RFC 1122), 169.254.0.0/16 link-local (RFC 3927), 255.255.255.255
//!   limited broadcast (RFC 919, RFC 8190).
//! - IANA IPv4 Multicast Address Space Registry: 224.0.0.0/24, the Local Network Control Block,
//!   is never forwarded (RFC 5771 section 4); 239.0.0.0/8 is administratively scoped (RFC 2365).
//!   Any multicast sent with TTL 1 cannot pass a router (RFC 1112 section 6.1).
//! - IANA IPv6 Special-Purpose Address Registry (RFC 6890): ::/128 unspecified, ::1/128 loopback,
//!   fe80::/10 link-local unicast (RFC 4291 section 2.5.6).
//! - IPv6 multicast scopes (RFC 4291 section 2.7, RFC 7346): 1 interface-local and 2 link-local
//!   never leave the link; 3 realm-, 4 admin-, 5 site- and 8 organisation-local stay inside the
//!   organisation's routers. A hop limit of 1 keeps any multicast on the link.
//!
//! Directed broadcast (RFC 919) is recognised for the all-ones address of an internal prefix only:
//! the same bits on an external address are an ordinary host there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::flow::FlowRecord;
use crate::policy::Policy;

/// Why a flow stays local; the words the audit prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LocalReason {
    LimitedBroadcast,
    DirectedBroadcast,
    UnspecifiedAddress,
    Loopback,
    LinkLocalUnicast,
    LocalNetworkControlMulticast,
    LinkLocalMulticast,
    SiteScopedMulticast,
    MulticastWithTtl1,
}

impl LocalReason {
    /// One phrase a person reads.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalReason::LimitedBroadcast => "limited broadcast (255.255.255.255)",
            LocalReason::DirectedBroadcast => "broadcast of an internal subnet",
            LocalReason::UnspecifiedAddress => "unspecified address (0.0.0.0, ::)",
            LocalReason::Loopback => "loopback",
            LocalReason::LinkLocalUnicast => "link-local unicast (169.254.0.0/16, fe80::/10)",
            LocalReason::LocalNetworkControlMulticast => {
                "local network control multicast (224.0.0.0/24)"
            }
            LocalReason::LinkLocalMulticast => "interface- or link-local IPv6 multicast",
            LocalReason::SiteScopedMulticast => {
                "administratively or site scoped multicast (239.0.0.0/8, ff03-ff08)"
            }
            LocalReason::MulticastWithTtl1 => "multicast sent with TTL/hop limit 1",
        }
    }
}

/// Why `flow` cannot leave the link or the site, or `None` when it is routed traffic the policy
/// judges. Either endpoint being loopback, unspecified or link-local unicast makes a flow local;
/// broadcast and multicast are judged on the responder (the group or broadcast address).
pub fn local_reason(flow: &FlowRecord, policy: &Policy) -> Option<LocalReason> {
    let site_scope = policy.network.site_scope_is_local;
    let endpoint = |ip: IpAddr| unicast_scope(ip);
    if let Some(reason) = endpoint(flow.orig_h).or_else(|| endpoint(flow.resp_h)) {
        return Some(reason);
    }
    let dst = canonical(flow.resp_h);
    if let Some(reason) = group_scope(dst, site_scope) {
        return Some(reason);
    }
    if is_multicast(dst) && flow.orig_max_ttl <= 1 {
        return Some(LocalReason::MulticastWithTtl1);
    }
    if let IpAddr::V4(v4) = dst {
        if is_internal_broadcast(v4, policy) {
            return Some(LocalReason::DirectedBroadcast);
        }
    }
    None
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Unicast addresses that never leave the host or the link.
fn unicast_scope(ip: IpAddr) -> Option<LocalReason> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.octets()[0] == 0 {
                Some(LocalReason::UnspecifiedAddress)
            } else if v4.is_loopback() {
                Some(LocalReason::Loopback)
            } else if v4.is_link_local() {
                Some(LocalReason::LinkLocalUnicast)
            } else if v4 == Ipv4Addr::BROADCAST {
                Some(LocalReason::LimitedBroadcast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_unspecified() {
                Some(LocalReason::UnspecifiedAddress)
            } else if v6.is_loopback() {
                Some(LocalReason::Loopback)
            } else if is_ipv6_link_local(v6) {
                Some(LocalReason::LinkLocalUnicast)
            } else {
                None
            }
        }
    }
}

fn is_ipv6_link_local(v6: Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

fn is_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// Multicast groups whose scope is the link (or, with `site_scope`, the organisation).
fn group_scope(ip: IpAddr, site_scope: bool) -> Option<LocalReason> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if (a, b, c) == (224, 0, 0) {
                Some(LocalReason::LocalNetworkControlMulticast)
            } else if a == 239 && site_scope {
                Some(LocalReason::SiteScopedMulticast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) if v6.is_multicast() => match v6.segments()[0] & 0x000f {
            1 | 2 => Some(LocalReason::LinkLocalMulticast),
            3..=8 if site_scope => Some(LocalReason::SiteScopedMulticast),
            _ => None,
        },
        IpAddr::V6(_) => None,
    }
}

/// The all-ones host address of one of the policy's internal IPv4 prefixes (a /31 or /32 has no
/// broadcast address, RFC 3021).
fn is_internal_broadcast(v4: Ipv4Addr, policy: &Policy) -> bool {
    policy.network.internal.iter().any(|net| match net {
        ipnet::IpNet::V4(n) => n.prefix_len() <= 30 && n.broadcast() == v4,
        ipnet::IpNet::V6(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(orig: &str, resp: &str, ttl: u8) -> FlowRecord {
        let mut f = crate::flow::record::test_record();
        f.orig_h = orig.parse().expect("address");
        f.resp_h = resp.parse().expect("address");
        f.orig_max_ttl = ttl;
        f
    }

    fn reason(orig: &str, resp: &str, ttl: u8) -> Option<LocalReason> {
        let policy = Policy::from_toml(
            "schema_version = 1\n[network]\ninternal = [\"192.0.2.0/24\", \"10.0.0.0/8\"]\n",
            "test",
        )
        .expect("policy");
        local_reason(&flow(orig, resp, ttl), &policy)
    }

    #[test]
    fn office_lan_chatter_is_local() {
        use LocalReason::*;
        let cases = [
            ("0.0.0.0", "255.255.255.255", 64, UnspecifiedAddress), // DHCP discover
            ("192.0.2.1", "255.255.255.255", 64, LimitedBroadcast), // DHCP reply, Dropbox LAN sync
            (
                "192.0.2.10",
                "224.0.0.251",
                255,
                LocalNetworkControlMulticast,
            ), // mDNS
            ("192.0.2.10", "224.0.0.252", 1, LocalNetworkControlMulticast), // LLMNR
            ("192.0.2.10", "224.0.0.22", 1, LocalNetworkControlMulticast), // IGMPv3 report
            ("192.0.2.10", "239.255.255.250", 1, SiteScopedMulticast), // SSDP
            ("192.0.2.10", "192.0.2.255", 64, DirectedBroadcast),   // NetBIOS name service
            ("fe80::1", "ff02::2", 255, LinkLocalUnicast),          // router solicitation
            ("::", "ff02::1:ff00:1", 255, UnspecifiedAddress),      // DAD neighbour solicitation
            ("2001:db8:1::10", "ff02::fb", 255, LinkLocalMulticast), // mDNS from a global address
            ("2001:db8:1::10", "ff05::1:3", 255, SiteScopedMulticast), // DHCPv6 all servers
            ("192.0.2.10", "127.0.0.53", 64, Loopback),             // systemd-resolved stub
            ("192.0.2.10", "169.254.169.254", 64, LinkLocalUnicast), // cloud metadata
            ("192.0.2.10", "233.252.0.1", 1, MulticastWithTtl1),
            (
                "::ffff:192.0.2.10",
                "::ffff:224.0.0.251",
                255,
                LocalNetworkControlMulticast,
            ),
        ];
        for (orig, resp, ttl, want) in cases {
            assert_eq!(
                reason(orig, resp, ttl),
                Some(want),
                "{orig} -> {resp} ttl {ttl}"
            );
        }
    }

    #[test]
    fn routed_traffic_is_left_to_the_policy() {
        for (orig, resp, ttl) in [
            ("192.0.2.10", "203.0.113.10", 64),
            ("192.0.2.10", "233.252.0.1", 16), // global-scope multicast that may be routed
            ("2001:db8:1::10", "ff0e::1", 64), // global-scope IPv6 multicast
            ("192.0.2.10", "198.51.100.255", 64), // all-ones of an external /24 is a host there
            ("192.0.2.10", "10.0.0.1", 64),
        ] {
            assert_eq!(reason(orig, resp, ttl), None, "{orig} -> {resp} ttl {ttl}");
        }
    }

    #[test]
    fn site_scope_follows_its_key() {
        let policy = Policy::from_toml(
            "schema_version = 1\n[network]\nsite_scope_is_local = false\n",
            "test",
        )
        .expect("policy");
        let f = flow("192.0.2.10", "239.255.255.250", 4);
        assert_eq!(local_reason(&f, &policy), None);
        let f = flow("2001:db8:1::10", "ff05::1:3", 8);
        assert_eq!(local_reason(&f, &policy), None);
        let f = flow("2001:db8:1::10", "ff02::1:3", 8);
        assert_eq!(
            local_reason(&f, &policy),
            Some(LocalReason::LinkLocalMulticast)
        );
    }
}
