//! What people see: the hosted survey page `/s/{token}` that email and SMS
//! invitations link to, and the embeddable widget `/widget.js`.
//!
//! The page is minimal server-rendered HTML (no external assets but the tenant's
//! logo) that reads the invitation through the same in-process `GetInvitation` call as
//! the APIs, says in plain words when a link is unknown, expired or already answered,
//! and otherwise hands the question to the widget, which records the score on click
//! (changeable until the comment is sent) and the comment after.
//!
//! Branding comes with the form (`SurveyForm.branding`: the survey's, with the
//! tenant's defaults filled in): a display name and a logo above the question, and an
//! accent colour. Every value is HTML-escaped; the logo is an `<img>` whose origin
//! alone is added to the page's `img-src` (the URL is validated as `https://` when
//! stored, so the policy stays a list of exact origins, not `https:`).
//!
//! Fixed texts come from locale files: `locales/*.json` (English, German, French,
//! Spanish and Arabic) are built in, and `RAPPORT_LOCALES_DIR` may name a directory of
//! more (`<tag>.json`, e.g. `he.json`; a file with a built-in tag replaces it), read
//! once at start. A file may leave keys out (they stay English); `"dir": "rtl"` lays
//! the page and widget out right to left. The page's language is the survey's (else
//! the tenant's), else the best match of the browser's `Accept-Language`, else
//! English; the widget does the same with `navigator.languages`, from the same texts
//! served inside `widget.js`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_LANGUAGE, CONTENT_TYPE, HeaderName, VARY};
use prost::Message as _;
use tonic::Code;

use super::Gateway;
use super::transcode::call_unary;
use crate::domain::model::{Branding, is_language_tag};
use crate::grpc::pb;

/// The widget's source; `__RAPPORT_LOCALES__` is replaced by the texts when served.
const WIDGET_SOURCE: &str = include_str!("widget.js");

/// The built-in locales (`locales/`); English is the fallback for every missing text.
const BUILT_IN: [(&str, &str); 5] = [
    ("en", include_str!("../../locales/en.json")),
    ("de", include_str!("../../locales/de.json")),
    ("fr", include_str!("../../locales/fr.json")),
    ("es", include_str!("../../locales/es.json")),
    ("ar", include_str!("../../locales/ar.json")),
];

/// The texts the widget uses (the rest are the page's).
const WIDGET_KEYS: [&str; 19] = [
    "nps_low",
    "nps_high",
    "csat_low",
    "csat_high",
    "ces_low",
    "ces_high",
    "score_label",
    "close",
    "saving",
    "too_many",
    "closed",
    "save_failed",
    "reason_nps",
    "reason_other",
    "change_hint",
    "send",
    "sending",
    "send_failed",
    "thanks",
];

/// One language's fixed texts.
#[derive(Debug, Clone)]
pub struct Locale {
    /// Its BCP 47 tag, as in the file name.
    pub tag: String,
    pub rtl: bool,
    texts: BTreeMap<String, String>,
    months: Vec<String>,
}

impl Locale {
    /// The text of `key` (every key exists: missing ones are English).
    pub fn text(&self, key: &str) -> &str {
        self.texts.get(key).map(String::as_str).unwrap_or_default()
    }

    fn date(&self, t: chrono::DateTime<chrono::Utc>) -> String {
        use chrono::Datelike as _;
        let month = self.months.get(t.month0() as usize).map(String::as_str).unwrap_or_default();
        self.text("date")
            .replace("{day}", &t.day().to_string())
            .replace("{month}", month)
            .replace("{year}", &t.year().to_string())
    }
}

/// Every locale the server has, by lower-case tag, and the widget and the console's
/// script built with them.
#[derive(Debug)]
pub struct Locales {
    by_tag: BTreeMap<String, Arc<Locale>>,
    widget: String,
    console: String,
}

impl Locales {
    /// The built-in locales, then those of `dir` (which may replace them).
    pub fn load(dir: Option<&std::path::Path>) -> anyhow::Result<Locales> {
        let english = parse("en", BUILT_IN[0].1, None)?;
        let mut by_tag = BTreeMap::new();
        for (tag, json) in BUILT_IN {
            by_tag.insert(tag.to_owned(), Arc::new(parse(tag, json, Some(&english))?));
        }
        if let Some(dir) = dir {
            let entries =
                std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("RAPPORT_LOCALES_DIR {}: {e}", dir.display()))?;
            for entry in entries {
                let path = entry?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let tag = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
                if !is_language_tag(&tag) {
                    anyhow::bail!("locale file {}: the name must be a language tag such as he.json", path.display());
                }
                let json = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("locale file {}: {e}", path.display()))?;
                let locale = parse(&tag, &json, Some(&english))
                    .map_err(|e| anyhow::anyhow!("locale file {}: {e}", path.display()))?;
                by_tag.insert(tag.to_ascii_lowercase(), Arc::new(locale));
            }
        }
        let mut texts = serde_json::Map::new();
        for (tag, l) in &by_tag {
            let mut m = serde_json::Map::new();
            m.insert("tag".into(), l.tag.clone().into());
            m.insert("dir".into(), if l.rtl { "rtl" } else { "ltr" }.into());
            for k in WIDGET_KEYS {
                m.insert(k.into(), l.text(k).into());
            }
            texts.insert(tag.clone(), m.into());
        }
        let json = serde_json::to_string(&serde_json::Value::Object(texts))?;
        let widget = WIDGET_SOURCE.replacen("__RAPPORT_LOCALES__", &json, 1);
        let console = console_script_with(&console_texts(&by_tag))?;
        Ok(Locales { by_tag, widget, console })
    }

    /// The tags, sorted.
    pub fn tags(&self) -> Vec<String> {
        self.by_tag.values().map(|l| l.tag.clone()).collect()
    }

    /// The locale of `tag`: exactly, else by its language (`de-AT` → `de`), else a
    /// regional one of that language (`pt` → `pt-BR`).
    pub fn find(&self, tag: &str) -> Option<&Arc<Locale>> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag.is_empty() {
            return None;
        }
        let primary = tag.split('-').next().unwrap_or_default();
        self.by_tag
            .get(&tag)
            .or_else(|| self.by_tag.get(primary))
            .or_else(|| self.by_tag.iter().find(|(t, _)| t.split('-').next() == Some(primary)).map(|(_, l)| l))
    }

    /// The survey's language if there are texts for it, else the browser's best, else English.
    pub fn choose(&self, survey_language: &str, accept_language: Option<&str>) -> Arc<Locale> {
        self.find(survey_language)
            .or_else(|| accepted(accept_language.unwrap_or_default()).iter().find_map(|t| self.find(t)))
            .or_else(|| self.by_tag.get("en"))
            .cloned()
            .expect("English is built in")
    }
}

/// The console's texts per locale: the `console_*` keys without their prefix, with
/// the tag, the direction and the language's own name.
fn console_texts(by_tag: &BTreeMap<String, Arc<Locale>>) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (tag, l) in by_tag {
        let mut m = serde_json::Map::new();
        m.insert("tag".into(), l.tag.clone().into());
        m.insert("dir".into(), if l.rtl { "rtl" } else { "ltr" }.into());
        m.insert("name".into(), l.text("name").into());
        for (k, v) in &l.texts {
            if let Some(short) = k.strip_prefix("console_") {
                m.insert(short.into(), v.clone().into());
            }
        }
        out.insert(tag.clone(), m.into());
    }
    serde_json::Value::Object(out)
}

/// The language tags of an `Accept-Language` header, most wanted first (at most 20).
fn accepted(header: &str) -> Vec<String> {
    let mut tags: Vec<(u16, usize, String)> = header
        .split(',')
        .take(20)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                .unwrap_or(1.0);
            let q = (q.clamp(0.0, 1.0) * 1000.0) as u16;
            (q > 0 && tag != "*" && is_language_tag(tag)).then(|| (q, i, tag.to_owned()))
        })
        .collect();
    tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|t| t.2).collect()
}

/// A locale file: a JSON object of texts, `dir` (`ltr`/`rtl`) and 12 `months`.
/// Unknown keys are refused (a typo would otherwise go unnoticed); missing ones are
/// taken from `english`.
fn parse(tag: &str, json: &str, english: Option<&Locale>) -> anyhow::Result<Locale> {
    let value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)?;
    let mut locale = english.cloned().unwrap_or(Locale {
        tag: String::new(),
        rtl: false,
        texts: BTreeMap::new(),
        months: Vec::new(),
    });
    locale.tag = tag.to_owned();
    locale.rtl = false;
    for (k, v) in value {
        match (k.as_str(), v) {
            ("dir", serde_json::Value::String(d)) if d == "rtl" || d == "ltr" => locale.rtl = d == "rtl",
            ("dir", _) => anyhow::bail!("\"dir\" must be \"ltr\" or \"rtl\""),
            ("months", serde_json::Value::Array(a)) if a.len() == 12 && a.iter().all(|m| m.is_string()) => {
                locale.months = a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect()
            }
            ("months", _) => anyhow::bail!("\"months\" must be a list of 12 names"),
            (key, serde_json::Value::String(s)) => {
                if english.is_some_and(|e| !e.texts.contains_key(key)) {
                    anyhow::bail!("unknown key {key:?}");
                }
                if s.chars().count() > 1000 {
                    anyhow::bail!("{key:?} is longer than 1 000 characters");
                }
                locale.texts.insert(key.to_owned(), s);
            }
            (key, _) => anyhow::bail!("{key:?} must be a string"),
        }
    }
    Ok(locale)
}

static LOCALES: OnceLock<Locales> = OnceLock::new();

/// Reads the locales (built in, and `RAPPORT_LOCALES_DIR` if set) once; a bad file
/// or directory is an error at start. Returns the tags.
pub fn load_locales() -> anyhow::Result<Vec<String>> {
    if let Some(l) = LOCALES.get() {
        return Ok(l.tags());
    }
    let dir = std::env::var_os("RAPPORT_LOCALES_DIR").filter(|d| !d.is_empty()).map(std::path::PathBuf::from);
    let loaded = Locales::load(dir.as_deref())?;
    let tags = loaded.tags();
    let _ = LOCALES.set(loaded);
    Ok(tags)
}

fn locales() -> &'static Locales {
    LOCALES.get_or_init(|| {
        let dir = std::env::var_os("RAPPORT_LOCALES_DIR").filter(|d| !d.is_empty()).map(std::path::PathBuf::from);
        Locales::load(dir.as_deref())
            .or_else(|e| {
                tracing::error!(error = %e, "locale files not loaded; using the built-in ones");
                Locales::load(None)
            })
            .expect("the built-in locales parse")
    })
}

/// The console's script (`console/console.js`, served by `console.rs`), before its
/// texts are put in.
pub(crate) const CONSOLE_SCRIPT: &str = include_str!("console/console.js");

/// The console's script with the texts of `locales` (a JSON object by tag) in place.
fn console_script_with(locales: &serde_json::Value) -> anyhow::Result<String> {
    let json = serde_json::to_string(locales)?;
    anyhow::ensure!(CONSOLE_SCRIPT.contains("__RAPPORT_CONSOLE_LOCALES__"), "the console script has no locale slot");
    Ok(CONSOLE_SCRIPT.replacen("__RAPPORT_CONSOLE_LOCALES__", &json, 1))
}

/// The console's script with every locale's texts (served by `console.rs`).
pub fn console_script() -> &'static str {
    locales().console.as_str()
}

pub async fn widget() -> Response {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=300"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            // A page on any origin may load the script.
            (HeaderName::from_static("cross-origin-resource-policy"), "cross-origin"),
        ],
        locales().widget.as_str(),
    )
        .into_response()
}

/// What a page shows: status, title, body, and the form's branding when there is one.
struct Page {
    status: StatusCode,
    title: String,
    body: String,
    branding: Branding,
}

impl Page {
    fn plain(status: StatusCode, l: &Locale, key: &str) -> Page {
        Page {
            status,
            title: l.text(&format!("{key}_title")).to_owned(),
            body: format!(
                "<h1>{}</h1><p>{}</p>",
                escape(l.text(&format!("{key}_heading"))),
                escape(l.text(&format!("{key}_body")))
            ),
            branding: Branding::default(),
        }
    }
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
    let accept = req.headers().get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let survey_language = match &found {
        Ok(inv) => inv.form.as_ref().map(|f| f.language.as_str()).unwrap_or_default(),
        Err(_) => "",
    };
    let l = locales().choose(survey_language, accept);
    let page = match found {
        Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => {
            Page::plain(StatusCode::NOT_FOUND, &l, "not_found")
        }
        Err(s) if s.code() == Code::ResourceExhausted => Page::plain(StatusCode::TOO_MANY_REQUESTS, &l, "busy"),
        Err(_) => Page::plain(StatusCode::SERVICE_UNAVAILABLE, &l, "error"),
        Ok(inv) => page_for(&token, inv, &l),
    };
    let b = &page.branding;
    let title =
        if b.display_name.is_empty() { page.title.clone() } else { format!("{} – {}", page.title, b.display_name) };
    let html = format!(
        "<!doctype html>\n<html lang=\"{lang}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>{CSS}{accent}</style></head>\
         <body><main>{brand}{body}</main></body></html>\n",
        lang = escape(&l.tag),
        dir = if l.rtl { "rtl" } else { "ltr" },
        title = escape(&title),
        accent = accent_css(&b.accent_color),
        brand = brand_header(b),
        body = page.body,
    );
    let mut resp = (page.status, Body::from(html)).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, "text/html; charset=utf-8".parse().expect("a valid header"));
    h.insert(CACHE_CONTROL, "no-store".parse().expect("a valid header"));
    h.insert(VARY, "Accept-Language".parse().expect("a valid header"));
    if let Ok(v) = l.tag.parse() {
        h.insert(CONTENT_LANGUAGE, v);
    }
    // The token is in the URL: never send it on as a referrer.
    h.insert(HeaderName::from_static("referrer-policy"), "no-referrer".parse().expect("a valid header"));
    h.insert(HeaderName::from_static("x-content-type-options"), "nosniff".parse().expect("a valid header"));
    // Images: this server, and the logo's origin only (validated https when stored).
    let logo = b.logo_origin().map(|o| format!(" {o}")).unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
         img-src 'self' data:{logo}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    match csp.parse() {
        Ok(v) => h.insert(HeaderName::from_static("content-security-policy"), v),
        // Cannot happen for a validated URL; never serve the page without a policy.
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "invalid logo URL").into_response(),
    };
    resp
}

const CSS: &str = "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;\
background:#f6f7f9}main{max-width:40rem;margin:0 auto;padding:2rem 1rem}h1{font-size:1.4rem;line-height:1.3}\
p{color:#424a53}.brand{display:flex;align-items:center;gap:.75rem;margin:0 0 1.5rem;\
padding-block-end:.75rem;border-block-end:3px solid var(--accent,#0969da)}.brand img{max-height:2.5rem;max-width:10rem}\
.brand span{font-weight:600;font-size:1.1rem}";

/// `--accent` (and a readable text colour on it) for a validated `#rrggbb`, else nothing.
fn accent_css(color: &str) -> String {
    if color.len() != 7 || !color.starts_with('#') || !color[1..].bytes().all(|b| b.is_ascii_hexdigit()) {
        return String::new();
    }
    format!(":root{{--accent:{color};--on-accent:{}}}", on_accent(color))
}

/// White or near-black, whichever contrasts more with `color` (WCAG relative luminance).
fn on_accent(color: &str) -> &'static str {
    let channel = |i: usize| {
        let c = u8::from_str_radix(&color[i..i + 2], 16).unwrap_or(0) as f64 / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    // #1f2328 has a luminance of about 0.016.
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.066 { "#fff" } else { "#1f2328" }
}

/// The logo and the display name above the question, when set.
fn brand_header(b: &Branding) -> String {
    if b.display_name.is_empty() && b.logo_url.is_empty() {
        return String::new();
    }
    let mut out = String::from("<header class=\"brand\">");
    if !b.logo_url.is_empty() && b.logo_origin().is_some() {
        // The name follows as text; alone, the logo carries it.
        let alt = if b.display_name.is_empty() { "Logo" } else { "" };
        out.push_str(&format!("<img src=\"{}\" alt=\"{alt}\">", escape(&b.logo_url)));
    }
    if !b.display_name.is_empty() {
        out.push_str(&format!("<span>{}</span>", escape(&b.display_name)));
    }
    out.push_str("</header>");
    out
}

fn page_for(token: &str, inv: pb::GetInvitationResponse, l: &Locale) -> Page {
    let status = inv.invitation.as_ref().map(|i| i.status()).unwrap_or(pb::InvitationStatus::Unspecified);
    let Some(form) = inv.form else {
        return Page::plain(StatusCode::SERVICE_UNAVAILABLE, l, "error");
    };
    let b = form.branding.clone().unwrap_or_default();
    let branding = Branding {
        display_name: b.display_name,
        accent_color: b.accent_color,
        logo_url: b.logo_url,
        language: form.language.clone(),
    };
    match status {
        pb::InvitationStatus::Answered => Page { branding, ..Page::plain(StatusCode::OK, l, "answered") },
        pb::InvitationStatus::Expired => {
            let when = inv
                .invitation
                .and_then(|i| i.expire_time)
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|t| l.date(t))
                .unwrap_or_else(|| "—".into());
            Page {
                status: StatusCode::GONE,
                title: l.text("expired_title").to_owned(),
                body: format!(
                    "<h1>{}</h1><p>{}</p>",
                    escape(l.text("expired_heading")),
                    escape(&l.text("expired_body").replace("{date}", &when))
                ),
                branding,
            }
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
                 data-min=\"{min}\" data-max=\"{max}\" data-low=\"{low}\" data-high=\"{high}\" \
                 data-lang=\"{lang}\" data-accent=\"{accent}\">\
                 <h1>{q}</h1><noscript><p>{noscript}</p></noscript></div>\
                 <script src=\"/widget.js\" data-token=\"{token}\" data-target=\"rapport-survey\"></script>",
                token = escape(token),
                q = escape(&form.question),
                min = form.scale_min,
                max = form.scale_max,
                low = escape(&form.low_label),
                high = escape(&form.high_label),
                lang = escape(&l.tag),
                accent = escape(&branding.accent_color),
                noscript = escape(l.text("noscript")),
            );
            Page { status: StatusCode::OK, title: l.text("survey_title").to_owned(), body, branding }
        }
    }
}

/// HTML-escapes text for element content and double-quoted attributes (every
/// attribute here is double-quoted, so an apostrophe stays as it is).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_attribute_quotes() {
        assert_eq!(super::escape(r#"<b a="x">'&'</b>"#), "&lt;b a=&quot;x&quot;&gt;'&amp;'&lt;/b&gt;");
    }

    #[test]
    fn every_built_in_locale_has_every_key_and_the_widget_gets_them() {
        let english = parse("en", BUILT_IN[0].1, None).expect("English");
        for (tag, json) in BUILT_IN {
            let raw: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).expect(tag);
            for key in english.texts.keys() {
                assert!(raw.contains_key(key), "{tag}.json lacks {key}");
            }
            assert!(raw.contains_key("months"), "{tag}.json lacks months");
        }
        let all = Locales::load(None).expect("built in");
        assert_eq!(all.tags(), ["ar", "de", "en", "es", "fr"]);
        assert!(!all.widget.contains("__RAPPORT_LOCALES__"));
        assert!(all.widget.contains("\"thanks\":\"Vielen Dank für Ihr Feedback!\""));
        assert!(all.find("ar").expect("Arabic").rtl);
        assert!(!all.console.contains("__RAPPORT_CONSOLE_LOCALES__"));
        assert!(all.console.contains("\"sign_in\":\"Anmelden\""), "the console has the German texts");
    }

    #[test]
    fn the_survey_language_wins_then_the_browser_then_english() {
        let all = Locales::load(None).expect("built in");
        assert_eq!(all.choose("de", Some("fr-FR,fr;q=0.9")).tag, "de");
        assert_eq!(all.choose("", Some("fr-CA,fr;q=0.9,en;q=0.5")).tag, "fr");
        assert_eq!(all.choose("", Some("ja;q=1, es;q=0.8, de;q=0.9")).tag, "de");
        assert_eq!(all.choose("ja", Some("es-MX")).tag, "es", "no Japanese texts: the browser's");
        assert_eq!(all.choose("", Some("*, de;q=0")).tag, "en");
        assert_eq!(all.choose("", None).tag, "en");
        assert_eq!(all.choose("DE-at", None).tag, "de");
    }

    #[test]
    fn a_locale_directory_adds_languages_and_refuses_typos() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("he.json"), r#"{"dir":"rtl","send":"שליחה"}"#).expect("write");
        let all = Locales::load(Some(dir.path())).expect("loads");
        let he = all.find("he-IL").expect("Hebrew");
        assert!(he.rtl);
        assert_eq!(he.text("send"), "שליחה");
        assert_eq!(he.text("thanks"), "Thank you for your feedback!", "missing keys stay English");

        std::fs::write(dir.path().join("it.json"), r#"{"sned":"Invia"}"#).expect("write");
        let err = Locales::load(Some(dir.path())).expect_err("typo").to_string();
        assert!(err.contains("it.json") && err.contains("sned"), "{err}");
        std::fs::remove_file(dir.path().join("it.json")).expect("rm");
        std::fs::write(dir.path().join("not a tag.json"), "{}").expect("write");
        assert!(Locales::load(Some(dir.path())).is_err());
    }

    #[test]
    fn accent_text_is_readable_and_only_hex_colours_reach_the_css() {
        assert_eq!(on_accent("#0969da"), "#fff");
        assert_eq!(on_accent("#ffd33d"), "#1f2328");
        assert_eq!(accent_css("red;}body{display:none"), "");
        assert_eq!(accent_css("#123abc"), ":root{--accent:#123abc;--on-accent:#fff}");
    }

    #[test]
    fn the_brand_header_escapes_every_value() {
        let b = Branding {
            display_name: "<script>alert(1)</script>".into(),
            logo_url: "https://cdn.example.com/logo.png?a=1&b=\"x\"".into(),
            ..Default::default()
        };
        let h = brand_header(&b);
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;") && h.contains("a=1&amp;b=&quot;x&quot;"), "{h}");
    }
}
