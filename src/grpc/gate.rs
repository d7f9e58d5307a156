//! The gate in front of the gRPC services, the first thing every call meets (native
//! gRPC, gRPC-Web and the JSON routes alike, since the HTTP gateway calls the same
//! tonic services). Knowing the method from the request path, before any decoding,
//! it
//!
//! - refuses a publishable key on every method it may not call (PERMISSION_DENIED,
//!   [`access`]: one table, every method not in it needs a secret key), so such a
//!   caller learns nothing about its input, and a read-only key on every method but
//!   the Get and List ones and a short list of other reads ([`may_call`]);
//! - applies the rate limits of the calls a web page makes: per publishable key, and
//!   per client address for calls without a key and the token calls. On a token call
//!   a `rk_secret_…` header skips the address limit only when that key authenticated
//!   lately ([`crate::service::keys::VerifiedKeys`]); an unverified one is limited as
//!   no key, then checked so the next call knows;
//! - authenticates the caller, the one place that does (`authenticate`): on a
//!   method that needs a key it puts the [`Principal`] in the request's extensions,
//!   or the reason there is none ([`Refusal`]: UNAUTHENTICATED, PERMISSION_DENIED).
//!   Handlers read it first with [`principal`]; the refusal is answered there, after
//!   the message was decoded, so a caller without a valid key meets the decoding
//!   errors (an oversize or undecodable message) exactly as before. On
//!   `RecordResponse` and `UpdateResponse` the message decides whether a key is needed
//!   (a token needs none), which the gate cannot see: there a key it has not checked
//!   yet is left in the extensions ([`UncheckedKey`]), and [`secret_caller`] checks
//!   it when the handler asks for the secret-key form.
//!
//! As in qdrant's and svix's servers, the caller travels in the extensions: remote
//! callers cannot set them, and the gate removes whatever a caller in process put
//! there.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::server::NamedService;
use tonic::{Request, Status};
use tower_service::Service;

use crate::domain::model::{KeyKind, Principal};
use crate::error::AppError;
use crate::service::in_app::{Credential, RateLimits};
use crate::service::{Services, require_secret};

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
    /// The operator token (`rapport.v1.AdminService`), which the service checks itself:
    /// no tenant's key is looked up, and the caller is limited per address.
    Operator,
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
    if path.starts_with("/rapport.v1.AdminService/") {
        return Access::Operator;
    }
    OPEN_METHODS.iter().find(|(p, _)| *p == path).map_or(Access::Secret, |(_, a)| *a)
}

/// Reads that are not named `Get…`/`List…` but that a read-only key may call all the
/// same: each computes numbers from what is stored and writes nothing (issue 18: the
/// console's "is this change real?" and comment themes). Full paths, so a method of
/// the same name on another service is not let through by accident.
pub const READ_KEY_EXTRA_METHODS: &[&str] =
    &["/rapport.v1.InsightService/CompareSurveyMetrics", "/rapport.v1.InsightService/CommentThemes"];

/// Whether a key of `kind` may call the method at `path` at all (its handler and
/// use-case check again). Read-only keys (`rk_read_…`, issue 18) may call the Get and
/// List methods and the few reads of [`READ_KEY_EXTRA_METHODS`], and nothing else, so
/// a wall display can change nothing: not even the other reads not named so
/// (`CheckEligibility`, `TopPropertyValues`, `WatchEvents`), so that the rule stays
/// one a person can check from the name and one short list.
pub fn may_call(kind: KeyKind, path: &str) -> bool {
    match kind {
        KeyKind::Secret => true,
        KeyKind::Publishable => !matches!(access(path), Access::Secret | Access::Operator),
        // The operator's methods take no tenant's key at all.
        KeyKind::Read if access(path) == Access::Operator => false,
        KeyKind::Read => {
            let method = path.rsplit('/').next().unwrap_or_default();
            READ_KEY_EXTRA_METHODS.contains(&path)
                || ["Get", "List"].iter().any(|verb| {
                    method
                        .strip_prefix(verb)
                        .and_then(|rest| rest.chars().next())
                        .is_some_and(|c| c.is_ascii_uppercase())
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

    /// Lets the call through to the rate limits and authentication, or says why not.
    fn check<B>(&self, req: &http::Request<B>) -> Result<Admitted, AppError> {
        let access = access(req.uri().path());
        let key = bearer(req.headers());
        let mut unverified = false;
        let limited = match key {
            Some(k) if k.starts_with(KeyKind::Publishable.prefix()) => {
                if matches!(access, Access::Secret | Access::Operator) {
                    return Err(AppError::PermissionDenied(
                        "this call needs a secret key; publishable keys may only answer surveys".into(),
                    ));
                }
                Limited::Publishable
            }
            // Read-only keys: see `may_call`. Past it, a key the handler authenticates
            // first; on a token call (GetInvitation) it is no key, limited per address.
            Some(k) if k.starts_with(KeyKind::Read.prefix()) => {
                if !may_call(KeyKind::Read, req.uri().path()) {
                    return Err(crate::service::read_only());
                }
                if access == Access::Secret { Limited::Secret } else { Limited::Anonymous }
            }
            Some(k) if k.starts_with(KeyKind::Secret.prefix()) => match access {
                // Authenticated right after, before anything else.
                Access::Secret | Access::InApp => Limited::Secret,
                // The handler may never look at it: only a key known good skips the
                // address limit.
                // The operator token is checked by the admin service, not here.
                Access::Operator => Limited::Anonymous,
                Access::Token | Access::TokenOrSecret if self.services.key_cache.verified(k) => Limited::Secret,
                Access::Token | Access::TokenOrSecret => {
                    unverified = true;
                    Limited::Anonymous
                }
            },
            _ => Limited::Anonymous,
        };
        let read = may_call(KeyKind::Read, req.uri().path());
        Ok(Admitted { access, key: key.map(str::to_owned), unverified, read, limited, address: self.client_addr(req) })
    }

    /// Applies the rate limits of the call's [`Credential`] (in Redis, when the
    /// replicas share them: hence after `check`, in the call's future).
    async fn limit(&self, call: &Admitted) -> Result<(), AppError> {
        let credential = match call.limited {
            Limited::Secret => Credential::Secret,
            Limited::Publishable => Credential::Publishable(call.key.as_deref().unwrap_or_default()),
            Limited::Anonymous => Credential::None,
        };
        self.limits.admit(credential, call.address).await
    }
}

/// The [`Credential`] of a call, as far as rate limits care, without its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limited {
    Secret,
    Publishable,
    Anonymous,
}

/// A call the gate let through, before authentication.
struct Admitted {
    access: Access,
    /// The bearer credential, if any.
    key: Option<String>,
    /// `key` is a secret key passed as no key, not yet known good.
    unverified: bool,
    /// A Get or List method, which read-only keys may call too.
    read: bool,
    /// Which rate limits it meets.
    limited: Limited,
    /// The client's address, for its rate limit.
    address: Option<IpAddr>,
}

/// Who is calling, as [`authenticate`] found out.
enum Caller {
    /// Authenticated with a key the method accepts.
    Known(Principal),
    /// The method needs a key and this is why the call has none that it accepts.
    Refused(AppError),
    /// A key to check only if the message needs one ([`Access::TokenOrSecret`]).
    Unchecked(String),
    /// No key needed, none checked.
    Anonymous,
}

/// On [`Access::TokenOrSecret`] methods: a key the gate has not checked, in the
/// request's extensions for [`secret_caller`].
#[derive(Debug, Clone)]
pub struct UncheckedKey(String);

/// Why a call to a method that needs a key has no [`Principal`], in the request's
/// extensions for [`principal`].
#[derive(Debug, Clone)]
pub struct Refusal(Status);

/// The one place that authenticates: the caller of a call the gate let through, as
/// its method requires (see [`Access`]).
///
/// Keys are looked up through [`Services::authenticate`], so concurrent calls share
/// one query.
async fn authenticate(services: &Services, call: Admitted) -> Caller {
    let key = call.key;
    let known = |found: Result<Principal, AppError>| found.map_or_else(Caller::Refused, Caller::Known);
    match call.access {
        Access::Secret if call.read => known(reader_key(services, key.as_deref()).await),
        Access::Secret => known(secret_key(services, key.as_deref()).await),
        Access::InApp => match key {
            Some(key) => known(services.authenticate(&key).await),
            None => Caller::Refused(no_key()),
        },
        Access::Operator => Caller::Anonymous,
        Access::Token => {
            if let Some(key) = key.filter(|_| call.unverified) {
                // A good key is remembered (keys::VerifiedKeys); a bad one changes
                // nothing for a call that needs no key.
                let _ = services.authenticate(&key).await;
            }
            Caller::Anonymous
        }
        Access::TokenOrSecret => match key {
            None => Caller::Anonymous,
            // Looked up now, as on a token call; a good one serves the handler too.
            Some(key) if call.unverified => match secret_key(services, Some(&key)).await {
                Ok(p) => Caller::Known(p),
                Err(_) => Caller::Unchecked(key),
            },
            Some(key) => Caller::Unchecked(key),
        },
    }
}

/// The caller behind a secret key: UNAUTHENTICATED without a valid key,
/// PERMISSION_DENIED for a publishable one.
async fn secret_key(services: &Services, key: Option<&str>) -> Result<Principal, AppError> {
    let p = services.authenticate(key.ok_or_else(no_key)?).await?;
    require_secret(&p)?;
    Ok(p)
}

/// The caller of a Get or List method: a secret or a read-only key.
async fn reader_key(services: &Services, key: Option<&str>) -> Result<Principal, AppError> {
    let p = services.authenticate(key.ok_or_else(no_key)?).await?;
    crate::service::require_reader(&p)?;
    Ok(p)
}

fn no_key() -> AppError {
    AppError::Unauthenticated("send an API key as `authorization: Bearer <key>` metadata".into())
}

/// The bearer credential of a request, if any.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The caller the gate authenticated: what a handler of a method that needs a key
/// calls first. The gate's [`Refusal`] if it found no valid key; UNAUTHENTICATED if it
/// left nothing (it always leaves one of the two on such methods).
pub fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    if let Some(p) = req.extensions().get::<Principal>() {
        return Ok(p.clone());
    }
    Err(req.extensions().get::<Refusal>().map_or_else(|| no_key().into(), |r| r.0.clone()))
}

/// On [`Access::TokenOrSecret`] methods, when the message asks for the secret-key
/// form: the caller behind a secret key, checked now if the gate left it unchecked.
/// UNAUTHENTICATED without a valid key, PERMISSION_DENIED for a publishable one.
pub async fn secret_caller<T>(services: &Services, req: &Request<T>) -> Result<Principal, Status> {
    if let Some(p) = req.extensions().get::<Principal>() {
        return Ok(p.clone());
    }
    let key = req.extensions().get::<UncheckedKey>().map(|k| k.0.as_str());
    Ok(secret_key(services, key).await?)
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let admitted = self.gate.check(&req);
        // The clone is ready only once polled; the one polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            // Only the gate says who is calling.
            req.extensions_mut().remove::<Principal>();
            req.extensions_mut().remove::<UncheckedKey>();
            req.extensions_mut().remove::<Refusal>();
            let call = match admitted {
                Ok(call) => call,
                Err(e) => return Ok(Status::from(e).into_http()),
            };
            if let Err(e) = gate.limit(&call).await {
                return Ok(Status::from(e).into_http());
            }
            match authenticate(&gate.services, call).await {
                Caller::Known(p) => {
                    req.extensions_mut().insert(p);
                }
                Caller::Refused(e) => {
                    req.extensions_mut().insert(Refusal(e.into()));
                }
                Caller::Unchecked(key) => {
                    req.extensions_mut().insert(UncheckedKey(key));
                }
                Caller::Anonymous => {}
            }
            inner.call(req).await
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
    use crate::service::in_app::RateLimitSettings;

    const SECRET_METHOD: &str = "/rapport.v1.SurveyService/GetSurvey";
    const IN_APP_METHOD: &str = "/rapport.v1.SurveyService/IssueSurvey";
    const TOKEN_METHOD: &str = "/rapport.v1.SurveyService/GetInvitation";
    const TOKEN_OR_SECRET: &str = "/rapport.v1.SurveyService/RecordResponse";

    /// What a call through the gate came to: the gate's status, or the caller the
    /// service behind it found in the extensions.
    #[derive(Debug, PartialEq)]
    enum Seen {
        /// Answered by the gate.
        Refused(tonic::Code),
        /// A refusal left for the handler.
        Refusal(tonic::Code),
        Principal(String),
        Unchecked,
        Nobody,
    }

    async fn through(gate: &Gate, path: &str, key: Option<&str>, forged: Option<Principal>) -> Seen {
        let behind = tower::service_fn(|req: http::Request<()>| async move {
            let x = req.extensions();
            let seen = match (x.get::<Principal>(), x.get::<UncheckedKey>(), x.get::<Refusal>()) {
                (Some(p), _, _) => format!("principal {}", p.tenant.0),
                (None, Some(_), _) => "unchecked".to_owned(),
                (None, None, Some(r)) => format!("refusal {}", r.0.code() as i32),
                (None, None, None) => "nobody".to_owned(),
            };
            Ok::<_, Infallible>(
                http::Response::builder().header("seen", seen).body(tonic::body::Body::empty()).unwrap(),
            )
        });
        let mut req = http::Request::builder().uri(path);
        if let Some(k) = key {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let mut req = req.body(()).unwrap();
        if let Some(p) = forged {
            req.extensions_mut().insert(p);
        }
        let resp = gate.wrap(behind).call(req).await.unwrap();
        if let Some(status) = Status::from_header_map(resp.headers()) {
            return Seen::Refused(status.code());
        }
        match resp.headers()["seen"].to_str().unwrap() {
            "unchecked" => Seen::Unchecked,
            "nobody" => Seen::Nobody,
            r if r.starts_with("refusal ") => Seen::Refusal(tonic::Code::from(r[8..].parse::<i32>().unwrap())),
            p => Seen::Principal(p.trim_start_matches("principal ").to_owned()),
        }
    }

    #[tokio::test]
    async fn only_the_gate_puts_a_caller_in_the_extensions_and_only_as_the_method_requires() {
        let services = crate::service::in_memory().await;
        let secret = services.create_tenant("acme").await.unwrap().secret;
        let tenant = services.authenticate(&secret).await.unwrap().tenant;
        let publishable = services.create_key("acme", KeyKind::Publishable).await.unwrap().secret;
        let off = RateLimitSettings {
            per_key_per_minute: 0,
            per_key_burst: 0,
            per_address_per_minute: 0,
            per_address_burst: 0,
        };
        let gate = Gate::new(services.clone(), RateLimits::new(off), None);
        let forged =
            Some(Principal { tenant: tenant.clone(), key_id: crate::domain::KeyId("k".into()), kind: KeyKind::Secret });
        let acme = Seen::Principal(tenant.0.clone());

        // A method that needs a secret key: a publishable key is turned away at once;
        // without a valid key the handler answers (after decoding, as it always has).
        assert_eq!(through(&gate, SECRET_METHOD, Some(&secret), None).await, acme);
        let unauthenticated = Seen::Refusal(tonic::Code::Unauthenticated);
        assert_eq!(through(&gate, SECRET_METHOD, None, forged.clone()).await, unauthenticated);
        assert_eq!(through(&gate, SECRET_METHOD, Some("rk_secret_unknown"), None).await, unauthenticated);
        assert_eq!(
            through(&gate, SECRET_METHOD, Some(&publishable), None).await,
            Seen::Refused(tonic::Code::PermissionDenied)
        );
        // IssueSurvey: either kind of key.
        assert_eq!(through(&gate, IN_APP_METHOD, Some(&publishable), None).await, acme);
        assert_eq!(through(&gate, IN_APP_METHOD, Some(&secret), None).await, acme);
        assert_eq!(through(&gate, IN_APP_METHOD, None, forged.clone()).await, unauthenticated);
        assert_eq!(through(&gate, IN_APP_METHOD, Some("rk_pub_unknown"), None).await, unauthenticated);
        // A token method: nobody, whatever was in the extensions.
        assert_eq!(through(&gate, TOKEN_METHOD, None, forged.clone()).await, Seen::Nobody);
        assert_eq!(through(&gate, TOKEN_METHOD, Some(&secret), None).await, Seen::Nobody);
        // Where the message decides: a key is left for the handler to check, unless the
        // gate looked it up anyway (a secret key not known good yet).
        assert_eq!(through(&gate, TOKEN_OR_SECRET, None, forged).await, Seen::Nobody);
        assert_eq!(through(&gate, TOKEN_OR_SECRET, Some(&publishable), None).await, Seen::Unchecked);
        assert_eq!(through(&gate, TOKEN_OR_SECRET, Some("rk_secret_unknown"), None).await, Seen::Unchecked);
        services.key_cache.clear();
        assert_eq!(through(&gate, TOKEN_OR_SECRET, Some(&secret), None).await, acme);
        assert_eq!(through(&gate, TOKEN_OR_SECRET, Some(&secret), None).await, Seen::Unchecked, "known good now");
    }

    #[tokio::test]
    async fn handlers_read_the_caller_and_check_an_unchecked_key_only_for_a_secret_key() {
        let services = crate::service::in_memory().await;
        let secret = services.create_tenant("acme").await.unwrap().secret;
        let publishable = services.create_key("acme", KeyKind::Publishable).await.unwrap().secret;
        let with = |key: Option<&str>| {
            let mut req = Request::new(());
            if let Some(k) = key {
                req.extensions_mut().insert(UncheckedKey(k.to_owned()));
            }
            req
        };
        assert_eq!(principal(&with(None)).unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut refused = with(None);
        refused.extensions_mut().insert(Refusal(Status::permission_denied("no")));
        assert_eq!(principal(&refused).unwrap_err().code(), tonic::Code::PermissionDenied);
        assert_eq!(principal(&with(Some(&secret))).unwrap_err().code(), tonic::Code::Unauthenticated, "unchecked");
        assert_eq!(secret_caller(&services, &with(None)).await.unwrap_err().code(), tonic::Code::Unauthenticated);
        let caller = secret_caller(&services, &with(Some(&secret))).await.expect("a good secret key");
        assert_eq!(caller.kind, KeyKind::Secret);
        let err = secret_caller(&services, &with(Some(&publishable))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let err = secret_caller(&services, &with(Some("rk_pub_unknown"))).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn read_keys_may_call_the_get_and_list_methods_and_the_named_reads_only() {
        let read = |path| may_call(KeyKind::Read, path);
        assert!(read("/rapport.v1.InsightService/CompareSurveyMetrics"));
        assert!(read("/rapport.v1.InsightService/CommentThemes"));
        assert!(!read("/rapport.v1.OtherService/CommentThemes"), "the full path, not the name");
        assert!(!read("/rapport.v1.InsightService/CompareSurveyMetricsX"));
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
