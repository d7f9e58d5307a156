//! Webhook rules: the Standard Webhooks signature, which answers are retried, the
//! retry schedule, and which target addresses are refused (docs/webhooks.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::error::{AppError, Result};

/// Prefix of an endpoint's signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` under the decoded secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> Result<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored webhook secret is not base64: {e}")))?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("bad HMAC key: {e}")))?;
    mac.update(format!("{msg_id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// Worth another try: network error, timeout, redirect, 408, 429, 5xx.
    Retry,
    /// Any other 4xx: the receiver refuses; trying again will not help.
    Refused,
}

/// Classifies an HTTP status (`None`: no answer — network error or timeout).
pub fn classify(status: Option<u16>) -> AttemptOutcome {
    match status {
        Some(200..=299) => AttemptOutcome::Delivered,
        None | Some(300..=399) | Some(408) | Some(429) | Some(500..=599) => AttemptOutcome::Retry,
        Some(_) => AttemptOutcome::Refused,
    }
}

/// Delays before each attempt: the first is usually zero (immediately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (docs/webhooks.md).
    fn default() -> Self {
        let s = |secs| Duration::from_secs(secs);
        RetrySchedule(vec![s(0), s(5), s(300), s(1800), s(7200), s(18000), s(36000), s(36000)])
    }
}

impl RetrySchedule {
    /// Parses `0s,5s,5m,30m,2h,5h,10h,10h` (humantime durations, comma-separated).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let v = s
            .split(',')
            .map(|p| humantime::parse_duration(p.trim()).map_err(|e| format!("{p:?}: {e}")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if v.is_empty() {
            return Err("give at least one attempt".into());
        }
        Ok(RetrySchedule(v))
    }

    /// The delay before attempt `n + 1` after `n` attempts, or `None` when they are used up.
    pub fn delay_after(&self, attempts_made: usize) -> Option<Duration> {
        self.0.get(attempts_made).copied()
    }

    pub fn attempts(&self) -> usize {
        self.0.len()
    }
}

/// IPv4 ranges no webhook may target: every entry of the IANA IPv4 Special-Purpose
/// Address Registry (RFC 6890 and its updates), multicast and the reserved class E.
/// `(network, prefix length)`.
pub const SPECIAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata services)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments (DS-Lite, NAT64 discovery…)
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 31, 196, 0), 24), // AS112-v4
    (Ipv4Addr::new(192, 52, 193, 0), 24), // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // deprecated 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(192, 175, 48, 0), 24), // direct delegation AS112 service
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, and the limited broadcast 255.255.255.255
];

/// IPv6 ranges no webhook may target inside the global unicast space `2000::/3` (all
/// the rest is refused anyway): the IANA IPv6 Special-Purpose Address Registry's
/// entries there. `(network, prefix length)`.
pub const SPECIAL_V6: &[(Ipv6Addr, u8)] = &[
    // IETF protocol assignments: Teredo 2001::/32, benchmarking 2001:2::/48, AMT
    // 2001:3::/32, AS112-v6, ORCHID 2001:10::/28, ORCHIDv2 2001:20::/28, drone DETs…
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),     // 6to4 (reaches any IPv4 address)
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // direct delegation AS112 service
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation
];

/// Whether a webhook may not target this address: anything that is not a public
/// unicast address (private, loopback, link-local, documentation, benchmarking,
/// multicast, reserved, every IANA special-purpose range). IPv6 counts only inside the
/// global unicast space `2000::/3`, minus [`SPECIAL_V6`]: that leaves out `::/8`
/// (unspecified, loopback, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and
/// `64:ff9b:1::/48`), `100::/64` (discard), `5f00::/16` (SRv6), ULA `fc00::/7`,
/// link-local `fe80::/10`, site-local `fec0::/10` and multicast `ff00::/8`. The
/// prefixes that carry an IPv4 address to another network (NAT64, 6to4, Teredo) are
/// refused whole, whatever they embed; an IPv4-mapped address (`::ffff:a.b.c.d`,
/// which a socket connects to as IPv4) is judged by its IPv4 address.
///
/// Whether refused targets may be used anyway is the operator's choice
/// (`RAPPORT_WEBHOOK_ALLOW_PRIVATE`), made by the caller.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => SPECIAL_V4.iter().any(|&(net, len)| in_v4(v4, net, len)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            !in_v6(v6, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
                || SPECIAL_V6.iter().any(|&(net, len)| in_v6(v6, net, len))
        }
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn retry_classes() {
        assert_eq!(classify(Some(204)), AttemptOutcome::Delivered);
        for s in [None, Some(302), Some(408), Some(429), Some(500), Some(503)] {
            assert_eq!(classify(s), AttemptOutcome::Retry, "{s:?}");
        }
        for s in [400, 401, 404, 410, 422] {
            assert_eq!(classify(Some(s)), AttemptOutcome::Refused);
        }
    }

    #[test]
    fn the_default_schedule_is_the_design_one() {
        let s = RetrySchedule::default();
        assert_eq!(s, RetrySchedule::parse("0s,5s,5m,30m,2h,5h,10h,10h").unwrap());
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.delay_after(8), None);
    }

    #[test]
    fn private_addresses() {
        for a in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "fd00::1", "0.0.0.0"] {
            assert!(is_private(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34", "1.1.1.1", "2a00:1450:4001::1"] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn every_special_purpose_range_is_refused() {
        let refused = [
            // IPv4 special-purpose registry, multicast and reserved.
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6: IPv4 carried to another network, whatever the IPv4 address.
            "64:ff9b::808:808",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:808:808::1",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "::8.8.8.8",
            "::10.0.0.1",
            "::ffff:0:8.8.8.8",
            // IPv4-mapped: judged by the IPv4 address.
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:198.18.0.1",
            // IPv6 special-purpose registry and what lies outside 2000::/3.
            "::",
            "100::1",
            "100:0:0:1::1",
            "2001:1::1",
            "2001:2::1",
            "2001:3::1",
            "2001:4:112::1",
            "2001:10::1",
            "2001:20::1",
            "2001:30::1",
            "2001:db8::1",
            "2620:4f:8000::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fec0::1",
            "febf::1",
            "ff02::1",
            "ff0e::1",
            "4000::1",
        ];
        for a in refused {
            assert!(is_private(a.parse().unwrap()), "{a} must be refused");
        }
    }
}

#[cfg(test)]
mod properties {
    //! Every address of a special range is refused, in every IPv6 form that can carry it;
    //! addresses of public ranges are not.

    use super::*;
    use proptest::prelude::*;

    /// An address of one of the special IPv4 ranges.
    fn special_v4() -> impl Strategy<Value = Ipv4Addr> {
        (0..SPECIAL_V4.len(), any::<u32>()).prop_map(|(i, host)| {
            let (net, len) = SPECIAL_V4[i];
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            Ipv4Addr::from((u32::from(net) & mask) | (host & !mask))
        })
    }

    /// An address of one of the special IPv6 ranges (listed here independently of
    /// [`SPECIAL_V6`], with those outside `2000::/3`).
    fn special_v6() -> impl Strategy<Value = Ipv6Addr> {
        const RANGES: &[(u128, u8)] = &[
            (0, 96),                                         // IPv4-compatible, ::, ::1
            (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96), // NAT64
            (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // local-use NAT64
            (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard-only
            (0x2001_0000_0000_0000_0000_0000_0000_0000, 32), // Teredo
            (0x2001_0002_0000_0000_0000_0000_0000_0000, 48), // benchmarking
            (0x2001_0010_0000_0000_0000_0000_0000_0000, 28), // ORCHID
            (0x2001_0020_0000_0000_0000_0000_0000_0000, 28), // ORCHIDv2
            (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
            (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 6to4
            (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
            (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local
            (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
            (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local
            (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
        ];
        (0..RANGES.len(), any::<u128>()).prop_map(|(i, host)| {
            let (net, len) = RANGES[i];
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            Ipv6Addr::from((net & mask) | (host & !mask))
        })
    }

    /// Every IPv6 form that carries an IPv4 address: mapped, SIIT-translated,
    /// compatible, NAT64 (well-known and local-use), 6to4 and Teredo (client).
    fn embeddings(v4: Ipv4Addr, noise: u64) -> Vec<Ipv6Addr> {
        let a = u128::from(u32::from(v4));
        let n = u128::from(noise);
        vec![
            v4.to_ipv6_mapped(),
            Ipv6Addr::from(0xffff_0000_0000u128 | a),
            v4.to_ipv6_compatible(),
            Ipv6Addr::from(0x0064_ff9b_0000_0000_0000_0000_0000_0000u128 | a),
            Ipv6Addr::from(0x0064_ff9b_0001_0000_0000_0000_0000_0000u128 | ((n & 0xffff_ffff) << 32) | a),
            Ipv6Addr::from(0x2002_0000_0000_0000_0000_0000_0000_0000u128 | (a << 80) | (n & 0xffff_ffff_ffff)),
            Ipv6Addr::from(
                0x2001_0000_0000_0000_0000_0000_0000_0000u128 | ((n & 0xffff_ffff) << 64) | (!a & 0xffff_ffff),
            ),
        ]
    }

    proptest! {
        #[test]
        fn a_special_ipv4_address_is_refused_in_every_form(v4 in special_v4(), noise in any::<u64>()) {
            prop_assert!(is_private(IpAddr::V4(v4)), "{}", v4);
            for v6 in embeddings(v4, noise) {
                prop_assert!(is_private(IpAddr::V6(v6)), "{} carrying {}", v6, v4);
            }
        }

        #[test]
        fn a_special_ipv6_address_is_refused(v6 in special_v6()) {
            prop_assert!(is_private(IpAddr::V6(v6)), "{}", v6);
        }

        #[test]
        fn public_addresses_are_allowed(
            first in prop::sample::select(vec![1u8, 8, 23, 45, 93, 104, 151, 185, 212]),
            rest in any::<[u8; 3]>(),
            v6_host in any::<u128>(),
        ) {
            let v4 = Ipv4Addr::new(first, rest[0], rest[1], rest[2]);
            prop_assert!(!is_private(IpAddr::V4(v4)), "{}", v4);
            prop_assert!(!is_private(IpAddr::V6(v4.to_ipv6_mapped())), "{}", v4.to_ipv6_mapped());
            // 2600::/12 and 2a00::/12: regional registries' global unicast.
            for net in [0x2600u128 << 112, 0x2a00u128 << 112] {
                let v6 = Ipv6Addr::from(net | (v6_host >> 12));
                prop_assert!(!is_private(IpAddr::V6(v6)), "{}", v6);
            }
        }
    }
}

/// A webhook target, checked: https, or http to a host the operator allows; no
/// credentials in the URL. Whether its addresses are private is checked separately,
/// since that needs DNS.
pub fn parse_url(raw: &str, allow_http_hosts: &[String]) -> Result<url::Url> {
    let bad = |why: &str| AppError::invalid("url", why.to_owned());
    if raw.len() > 2000 {
        return Err(bad("must be at most 2 000 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    let host = url.host_str().ok_or_else(|| bad("needs a host"))?.to_owned();
    match url.scheme() {
        "https" => {}
        "http" if allow_http_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) => {}
        "http" => return Err(bad("must use https (plain http only to hosts the operator allows)")),
        other => {
            return Err(bad(&format!(
                "scheme {:?} is not allowed; use https",
                crate::domain::input::quote_prefix(other)
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(url)
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn https_only_unless_the_host_is_allowed() {
        assert!(parse_url("https://example.com/hook", &[]).is_ok());
        assert!(parse_url("http://example.com/hook", &[]).is_err());
        assert!(parse_url("http://example.com/hook", &["example.com".into()]).is_ok());
        assert!(parse_url("ftp://example.com/", &[]).is_err());
        assert!(parse_url("https://user:pw@example.com/", &[]).is_err());
        assert!(parse_url("not a url", &[]).is_err());
    }
}
