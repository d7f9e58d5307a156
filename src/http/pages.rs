//! What people see: the hosted survey page `/s/{token}` that email and SMS
//! invitations link to, and the embeddable widget `/widget.js`.
//!
//! The page is minimal server-rendered HTML (no external assets) that reads the
//! invitation through the same in-process `GetInvitation` call as the APIs, says in
//! plain words when a link is unknown, expired or already answered, and otherwise
//! hands the question to the widget, which records the score on click and the
//! comment after.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use prost::Message as _;
use tonic::Code;

use super::Gateway;
use super::transcode::call_unary;
use crate::grpc::pb;

/// The widget, served as is (no build step). Its size is stated in the README.
pub const WIDGET_JS: &str = include_str!("widget.js");

pub async fn widget() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            // A page on any origin may load the script.
            (HeaderName::from_static("cross-origin-resource-policy"), "cross-origin"),
        ],
        WIDGET_JS,
    )
        .into_response()
}

pub async fn hosted(State(gw): State<Gateway>, Path(token): Path<String>, req: Request) -> Response {
    let message = pb::GetInvitationRequest { token: token.clone() }.encode_to_vec();
    let reply = call_unary(
        gw.0.grpc.clone(),
        "/rapport.v1.SurveyService/GetInvitation",
        message,
        &http::HeaderMap::new(),
        req.extensions(),
    )
    .await;
    let found = reply.and_then(|b| {
        pb::GetInvitationResponse::decode(b).map_err(|_| tonic::Status::internal("undecodable invitation"))
    });
    let (status, title, body) = match found {
        Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => (
            StatusCode::NOT_FOUND,
            "Survey link not found",
            "<h1>This survey link doesn't work</h1>\
             <p>We couldn't find a survey for this link. Please check that the whole link was copied. \
             If you were sent a newer link, use that one instead.</p>"
                .to_owned(),
        ),
        Err(s) if s.code() == Code::ResourceExhausted => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "<h1>Please wait a moment</h1><p>Too many requests came from your network. Try again in a minute.</p>"
                .to_owned(),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Survey unavailable",
            "<h1>Something went wrong on our side</h1><p>The survey can't be shown right now. \
             Please try the link again later.</p>"
                .to_owned(),
        ),
        Ok(inv) => page_for(&token, inv),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>{CSS}</style></head>\
         <body><main>{body}</main></body></html>\n",
        title = escape(title),
    );
    let mut resp = (status, Body::from(html)).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, "text/html; charset=utf-8".parse().expect("a valid header"));
    h.insert(CACHE_CONTROL, "no-store".parse().expect("a valid header"));
    // The token is in the URL: never send it on as a referrer.
    h.insert(HeaderName::from_static("referrer-policy"), "no-referrer".parse().expect("a valid header"));
    h.insert(HeaderName::from_static("x-content-type-options"), "nosniff".parse().expect("a valid header"));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            .parse()
            .expect("a valid header"),
    );
    resp
}

const CSS: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;\
background:#f6f7f9}main{max-width:40rem;margin:0 auto;padding:2rem 1rem}h1{font-size:1.4rem;line-height:1.3}\
p{color:#424a53}";

fn page_for(token: &str, inv: pb::GetInvitationResponse) -> (StatusCode, &'static str, String) {
    let status = inv.invitation.as_ref().map(|i| i.status()).unwrap_or(pb::InvitationStatus::Unspecified);
    let Some(form) = inv.form else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Survey unavailable", "<h1>The survey can't be shown</h1>".into());
    };
    match status {
        pb::InvitationStatus::Answered => (
            StatusCode::OK,
            "Thank you",
            "<h1>You've already answered this survey</h1><p>Thank you for your feedback! \
             Each survey link can be answered once, so there is nothing more to do here.</p>"
                .into(),
        ),
        pb::InvitationStatus::Expired => {
            let when = inv
                .invitation
                .and_then(|i| i.expire_time)
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| format!(" on {}", t.format("%-d %B %Y")))
                .unwrap_or_default();
            (
                StatusCode::GONE,
                "Survey link expired",
                format!(
                    "<h1>This survey link has expired</h1><p>Survey links only work for a limited time, \
                     and this one expired{when}. Thank you for wanting to answer all the same.</p>"
                ),
            )
        }
        // Pending, or dismissed in an app but still answerable from the link.
        _ => {
            let kind = match pb::SurveyKind::try_from(form.kind) {
                Ok(pb::SurveyKind::Nps) => "NPS",
                Ok(pb::SurveyKind::Csat) => "CSAT",
                Ok(pb::SurveyKind::Ces) => "CES",
                _ => "",
            };
            let body = format!(
                "<div id=\"rapport-survey\" data-token=\"{token}\" data-kind=\"{kind}\" data-question=\"{q}\" \
                 data-min=\"{min}\" data-max=\"{max}\" data-low=\"{low}\" data-high=\"{high}\">\
                 <h1>{q}</h1><noscript><p>Please turn on JavaScript to answer this survey.</p></noscript></div>\
                 <script src=\"/widget.js\" data-token=\"{token}\" data-target=\"rapport-survey\"></script>",
                token = escape(token),
                q = escape(&form.question),
                min = form.scale_min,
                max = form.scale_max,
                low = escape(&form.low_label),
                high = escape(&form.high_label),
            );
            (StatusCode::OK, "Survey", body)
        }
    }
}

/// HTML-escapes text for element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escaping_neutralises_markup_and_attribute_quotes() {
        assert_eq!(super::escape(r#"<b a="x">'&'</b>"#), "&lt;b a=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;");
    }
}
