//! The gate in front of the gRPC services, the first thing every call meets (native
//! gRPC, gRPC-Web and the JSON routes alike, since the HTTP gateway calls the same
//! tonic services). Knowing the method from the request path, before any decoding
//! or database work, it
//!
//! - refuses a publishable key on every method it may not call (PERMISSION_DENIED,
//!   [`access`]: one table, every method not in it needs a secret key), so such a
//!   caller learns nothing about its input, and a read-only key on every method but
//!   the Get and List ones ([`may_call`]);
//! - applies the rate limits of the calls a web page makes: per publishable key, and
//!   per client address for calls without a key and the token calls. On a token call
//!   a `rk_secret_…` header skips the address limit only when that key authenticated
//!   lately ([`crate::service::keys::VerifiedKeys`]); an unverified one is limited as
//!   no key, then checked so the next call knows.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tower_service::Service;

use super::status;
use crate::domain::model::KeyKind;
use crate::error::AppError;
use crate::service::Services;
use crate::service::in_app::{Credential, RateLimits};

/// The client address of a call, put in the request's extensions by the HTTP gateway
/// (which knows the TCP peer and the trusted proxy header). Remote callers cannot set
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A secret key only (every method not named in [`access`]).
    Secret,
    /// A secret key, or a publishable key for an in-app survey (`IssueSurvey`).
    InApp,
    /// Anyone holding an invitation token; no key needed.
    Token,
    /// An invitation token, or a secret key for the direct form (`RecordResponse`,
    /// `UpdateResponse`).
    TokenOrSecret,
}

/// The methods a publishable key or a token may call; the rest need a secret key.
pub const OPEN_METHODS: &[(&str, Access)] = &[
    ("/rapport.v1.SurveyService/IssueSurvey", Access::InApp),
    ("/rapport.v1.SurveyService/GetInvitation", Access::Token),
    ("/rapport.v1.SurveyService/DismissInvitation", Access::Token),
    ("/rapport.v1.SurveyService/RecordResponse", Access::TokenOrSecret),
    ("/rapport.v1.SurveyService/UpdateResponse", Access::TokenOrSecret),
];

/// Who may call the method at `path` (`/rapport.v1.Service/Method`).
pub fn access(path: &str) -> Access {
    OPEN_METHODS.iter().find(|(p, _)| *p == path).map_or(Access::Secret, |(_, a)| *a)
}

/// Whether a key of `kind` may call the method at `path` at all (its handler and
/// use-case check again). Read-only keys (`rk_read_…`, issue 18) may call the Get and
/// List methods and nothing else, so a wall display can change nothing: not even
/// the reads that are not named so (`CheckEligibility`, `TopPropertyValues`,
/// `WatchEvents`), so that the rule stays one a person can check from the name.
pub fn may_call(kind: KeyKind, path: &str) -> bool {
    match kind {
        KeyKind::Secret => true,
        KeyKind::Publishable => access(path) != Access::Secret,
        KeyKind::Read => {
            let method = path.rsplit('/').next().unwrap_or_default();
            ["Get", "List"].iter().any(|verb| {
                method.strip_prefix(verb).and_then(|rest| rest.chars().next()).is_some_and(|c| c.is_ascii_uppercase())
            })
        }
    }
}

/// Wraps the tonic services: see the module documentation.
#[derive(Clone)]
pub struct Gate {
    limits: Arc<RateLimits>,
    client_ip_header: Option<http::HeaderName>,
    services: Services,
}

impl Gate {
    /// `client_ip_header`: a header set by a trusted proxy (e.g. `x-forwarded-for`)
    /// whose last entry is the client; `None` uses the TCP peer.
    pub fn new(services: Services, limits: RateLimits, client_ip_header: Option<http::HeaderName>) -> Self {
        Gate { limits: Arc::new(limits), client_ip_header, services }
    }

    /// `service` behind this gate.
    pub fn wrap<S>(&self, service: S) -> Gated<S> {
        Gated { gate: self.clone(), inner: service }
    }

    fn client_addr<B>(&self, req: &http::Request<B>) -> Option<IpAddr> {
        if let Some(ClientAddr(a)) = req.extensions().get::<ClientAddr>() {
            return Some(*a);
        }
        if let Some(h) = &self.client_ip_header
            && let Some(ip) = forwarded_ip(req.headers().get(h).and_then(|v| v.to_str().ok()))
        {
            return Some(ip);
        }
        req.extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|i| i.remote_addr())
            .map(|a| bucket_address(a.ip()))
    }

    /// Lets the call through, or says why not. `Ok(Some(key))`: the call passed as
    /// one without a key; `key` is an unverified secret key to look up.
    fn check<B>(&self, req: &http::Request<B>) -> Result<Option<String>, AppError> {
        let access = access(req.uri().path());
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let mut unverified = None;
        let credential = match bearer {
            Some(k) if k.starts_with(KeyKind::Publishable.prefix()) => {
                if access == Access::Secret {
                    return Err(AppError::PermissionDenied(
                        "this call needs a secret key; publishable keys may only answer surveys".into(),
                    ));
                }
                Credential::Publishable(k)
            }
            // Read-only keys: see `may_call`. Past it, a key the handler authenticates
            // first; on a token call (GetInvitation) it is no key, limited per address.
            Some(k) if k.starts_with(KeyKind::Read.prefix()) => {
                if !may_call(KeyKind::Read, req.uri().path()) {
                    return Err(crate::service::read_only());
                }
                if access == Access::Secret { Credential::Secret } else { Credential::None }
            }
            Some(k) if k.starts_with(KeyKind::Secret.prefix()) => match access {
                // The handler authenticates the key before anything else.
                Access::Secret | Access::InApp => Credential::Secret,
                // The handler may never look at it: only a key known good skips the
                // address limit.
                Access::Token | Access::TokenOrSecret if self.services.verified_keys.contains_key(k) => {
                    Credential::Secret
                }
                Access::Token | Access::TokenOrSecret => {
                    unverified = Some(k.to_owned());
                    Credential::None
                }
            },
            _ => Credential::None,
        };
        self.limits.admit(credential, self.client_addr(req))?;
        Ok(unverified)
    }
}

/// A tonic service behind the [`Gate`].
#[derive(Clone)]
pub struct Gated<S> {
    gate: Gate,
    inner: S,
}

impl<S: NamedService> NamedService for Gated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Gated<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let decision = self.gate.check(&req);
        // The clone is ready only once polled; the one polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let services = self.gate.services.clone();
        Box::pin(async move {
            match decision {
                Err(e) => Ok(status(e).into_http()),
                Ok(unverified) => {
                    if let Some(key) = unverified {
                        // A good key is remembered (keys::VerifiedKeys); a bad one
                        // changes nothing for a call that needs no key.
                        let _ = services.authenticate(&key).await;
                    }
                    inner.call(req).await
                }
            }
        })
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
    fn read_keys_may_call_the_get_and_list_methods_only() {
        let read = |path| may_call(KeyKind::Read, path);
        assert!(read("/rapport.v1.SurveyService/GetSurveyMetrics"));
        assert!(read("/rapport.v1.FollowUpService/ListFollowUps"));
        assert!(read("/rapport.v1.SurveyService/GetInvitation"));
        assert!(!read("/rapport.v1.FollowUpService/UpdateFollowUp"));
        assert!(!read("/rapport.v1.SurveyService/CheckEligibility"));
        assert!(!read("/rapport.v1.EventService/WatchEvents"));
        assert!(!read("/rapport.v1.X/Getaway"), "a verb, not a prefix");
        assert!(!read("/rapport.v1.X/Get"));
        assert!(!read("/rapport.v1.X/List"));
        assert!(may_call(KeyKind::Secret, "/rapport.v1.FollowUpService/UpdateFollowUp"));
        assert!(!may_call(KeyKind::Publishable, "/rapport.v1.FollowUpService/ListFollowUps"));
        assert!(may_call(KeyKind::Publishable, "/rapport.v1.SurveyService/IssueSurvey"));
    }

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
