//! Webhook rules: the Standard Webhooks signature, which answers are retried, the
//! retry schedule, and which target addresses are refused (DESIGN §7).

use std::net::IpAddr;
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
    /// Immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (DESIGN §7).
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

/// Whether an address is private, loopback, link-local or otherwise not on the public
/// internet (webhook targets there are refused unless the operator allows them).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // CGNAT
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
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
        for a in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_private(a.parse().unwrap()), "{a}");
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
        other => return Err(bad(&format!("scheme {other:?} is not allowed; use https"))),
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
