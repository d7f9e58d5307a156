//! The gate in front of the gRPC services: rate limits for the calls a web page makes
//! (publishable keys and invitation tokens), checked before any database work. Native
//! gRPC, gRPC-Web and the JSON routes all pass through it, since the HTTP gateway
//! calls the same tonic services.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::{bearer, status};
use crate::service::in_app::{Credential, RateLimits};

/// The client address of a call, put in the request's extensions by the HTTP gateway
/// (which knows the TCP peer and the trusted proxy header). Remote callers cannot set
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// A tonic interceptor that applies [`RateLimits`].
#[derive(Clone)]
pub struct Gate {
    limits: Arc<RateLimits>,
    client_ip_header: Option<http::HeaderName>,
}

impl Gate {
    /// `client_ip_header`: a header set by a trusted proxy (e.g. `x-forwarded-for`)
    /// whose last entry is the client; `None` uses the TCP peer.
    pub fn new(limits: RateLimits, client_ip_header: Option<http::HeaderName>) -> Self {
        Gate { limits: Arc::new(limits), client_ip_header }
    }

    fn client_addr(&self, req: &Request<()>) -> Option<IpAddr> {
        if let Some(ClientAddr(a)) = req.extensions().get::<ClientAddr>() {
            return Some(*a);
        }
        if let Some(h) = &self.client_ip_header
            && let Some(ip) = forwarded_ip(req.metadata().get(h.as_str()).and_then(|v| v.to_str().ok()))
        {
            return Some(ip);
        }
        req.remote_addr().map(|a| bucket_address(a.ip()))
    }
}

impl Interceptor for Gate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let credential = Credential::from_bearer(bearer(&req));
        self.limits.admit(credential, self.client_addr(&req)).map_err(status)?;
        Ok(req)
    }
}

/// The client named by a proxy header: the last entry of a comma-separated list
/// (`X-Forwarded-For: client, proxy1` as seen by the last, trusted proxy).
pub fn forwarded_ip(value: Option<&str>) -> Option<IpAddr> {
    let last = value?.rsplit(',').next()?.trim();
    let ip = last.parse::<IpAddr>().ok().or_else(|| last.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))?;
    Some(bucket_address(ip))
}

/// The address a bucket is kept for: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64 network, since one host usually holds a whole /64.
pub fn bucket_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_forwarded_entry_is_the_client() {
        assert_eq!(forwarded_ip(Some("203.0.113.9, 198.51.100.7")), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(forwarded_ip(Some(" 203.0.113.9 ")), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(forwarded_ip(Some("203.0.113.9:4711")), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(forwarded_ip(Some("not an address")), None);
        assert_eq!(forwarded_ip(None), None);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            bucket_address("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(bucket_address("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
