//! The console (docs/console.md, issue 18): a small page for the people who act on the
//! numbers — trends with their intervals, the follow-up queue, a customer's profile —
//! served by rapport itself at `/console`.
//!
//! Three static files built into the binary (`console/`): no framework, no build
//! step, no external asset, so it works offline. The page is a client of the JSON API
//! like any other: it calls the same `/v1/…` routes with the key the user pastes,
//! which it keeps in the tab's `sessionStorage` only (no cookie, no server session),
//! so every call passes the same authentication, limits and error table, and a
//! read-only key (`rk_read_…`) can change nothing. Its texts are the `console_*` keys
//! of the locale files (`locales/`, and `RAPPORT_LOCALES_DIR`), put into the script
//! when the locales load (`pages.rs`, which holds the script for that).
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles from
//! this origin only (no inline script, no inline style), calls to this origin only,
//! no frames. The script sets every value with `textContent` or an attribute, never
//! as markup: comments are user input.

use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};

const INDEX: &str = include_str!("console/index.html");
const STYLE: &str = include_str!("console/console.css");

/// The policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                       img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn answer(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(HeaderName::from_static("content-security-policy"), HeaderValue::from_static(CSP));
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    h.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    h.insert(HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin"));
    resp
}

/// `GET /console`: the page (its language and content come from the script).
pub async fn index() -> Response {
    answer("text/html; charset=utf-8", "no-store", INDEX)
}

/// `GET /console/console.js`.
pub async fn script() -> Response {
    answer("text/javascript; charset=utf-8", "no-cache", super::pages::console_script())
}

/// `GET /console/console.css`.
pub async fn style() -> Response {
    answer("text/css; charset=utf-8", "no-cache", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    const SCRIPT: &str = super::super::pages::CONSOLE_SCRIPT;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_loads_only_its_own_files() {
        let page = INDEX.to_ascii_lowercase();
        assert!(!page.contains("<style"), "no inline style element");
        assert!(!page.contains(" style="), "no style attribute");
        let handler = page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let name = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name > 0 && rest[name..].starts_with('=')
        });
        assert!(!handler, "no event handler attribute");
        let scripts: Vec<&str> = page.split("<script").skip(1).collect();
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0].starts_with(" src=\"/console/console.js\""), "{}", scripts[0]);
        assert!(!page.contains("http://") && !page.contains("https://"), "no external asset");
        assert!(!SCRIPT.contains("innerHTML") && !SCRIPT.contains("insertAdjacentHTML"), "values go in as text");
        assert!(!SCRIPT.contains("eval(") && !SCRIPT.contains("new Function"));
        assert!(!SCRIPT.contains("localStorage.setItem(KEY") && SCRIPT.contains("sessionStorage"));
        assert!(!CSP.contains("unsafe"));
    }
}
