//! Branding and language of the hosted page and the widget: stored per survey and as
//! the tenant's default, validated field by field, filled into `GetInvitation`'s form,
//! and rendered (escaped, with the page's language, direction and image policy).

use serde_json::json;

use crate::helpers::*;
use crate::web::Web;
use rapport::domain::model::Branding;

crate::on_both!(
    branding_and_language_are_stored_changed_and_cleared_with_the_survey,
    bad_branding_is_invalid_argument_naming_the_field_and_changes_nothing,
    the_form_carries_the_survey_branding_over_the_tenant_default,
);

fn brand(name: &str, color: &str, logo: &str) -> Option<pb::Branding> {
    Some(pb::Branding { display_name: name.into(), accent_color: color.into(), logo_url: logo.into() })
}

async fn branding_and_language_are_stored_changed_and_cleared_with_the_survey(b: Backend) {
    let app = spawn_app(b).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            branding: brand("  Acme  ", "#0A7D33", "https://cdn.example.com/acme.svg"),
            language: "de".into(),
            ..Default::default()
        })
        .await;
    let stored = s.branding.clone().expect("branding");
    assert_eq!(stored.display_name, "Acme", "trimmed");
    assert_eq!(stored.accent_color, "#0a7d33", "lower case");
    assert_eq!(stored.logo_url, "https://cdn.example.com/acme.svg");
    assert_eq!(s.language, "de");
    let read = app.surveys.clone().get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.branding, s.branding);
    assert_eq!(read.language, "de");

    // One field by its path; the others stay.
    let changed = app
        .surveys
        .clone()
        .update_survey(pb::UpdateSurveyRequest {
            survey: Some(pb::Survey {
                id: s.id.clone(),
                branding: brand("ignored", "#123456", ""),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["branding.accent_color".into()] }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.branding, brand("Acme", "#123456", "https://cdn.example.com/acme.svg"));
    // The whole message, and the language, cleared with empty values.
    let cleared = app
        .surveys
        .clone()
        .update_survey(pb::UpdateSurveyRequest {
            survey: Some(pb::Survey { id: s.id.clone(), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["branding".into(), "language".into()] }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cleared.branding, Some(pb::Branding::default()));
    assert_eq!(cleared.language, "");
}

async fn bad_branding_is_invalid_argument_naming_the_field_and_changes_nothing(b: Backend) {
    let app = spawn_app(b).await;
    let create = |branding: Option<pb::Branding>, language: &str| {
        let mut c = app.surveys.clone();
        let s = pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            question: "Recommend us?".into(),
            branding,
            language: language.into(),
            ..Default::default()
        };
        async move { c.create_survey(pb::CreateSurveyRequest { survey: Some(s) }).await }
    };
    let long = "x".repeat(20_000);
    for (branding, language, field) in [
        (brand("", "red", ""), "", "survey.branding.accent_color"),
        (brand("", "#12345", ""), "", "survey.branding.accent_color"),
        (brand("", "#12345g", ""), "", "survey.branding.accent_color"),
        (brand("", "", "http://cdn.example.com/a.png"), "", "survey.branding.logo_url"),
        (brand("", "", "javascript:alert(1)"), "", "survey.branding.logo_url"),
        (brand("", "", "https://user:pw@cdn.example.com/a.png"), "", "survey.branding.logo_url"),
        (brand("", "", "https://cdn.example.com/a b.png"), "", "survey.branding.logo_url"),
        (brand("", "", &format!("https://cdn.example.com/{long}")), "", "survey.branding.logo_url"),
        (brand(&long, "", ""), "", "survey.branding.display_name"),
        (brand("Ac\u{0}me", "", ""), "", "survey.branding.display_name"),
        (None, "german", "survey.language"),
        (None, "de_DE", "survey.language"),
        (None, "d", "survey.language"),
        (None, "en-<script>", "survey.language"),
    ] {
        let err = create(branding, language).await.expect_err(field);
        assert_invalid(&err, field);
        assert!(err.message().len() < 1000, "no huge echo: {}", err.message().len());
    }
    let listed = app.surveys.clone().list_surveys(pb::ListSurveysRequest::default()).await.unwrap().into_inner();
    assert!(listed.surveys.is_empty(), "nothing was created");

    // An update with a bad value changes nothing.
    let s = app.survey_with(pb::Survey { kind: pb::SurveyKind::Nps as i32, ..Default::default() }).await;
    let err = app
        .surveys
        .clone()
        .update_survey(pb::UpdateSurveyRequest {
            survey: Some(pb::Survey { id: s.id.clone(), branding: brand("", "#zzzzzz", ""), ..Default::default() }),
            update_mask: Some(prost_types::FieldMask { paths: vec!["branding".into()] }),
        })
        .await
        .expect_err("bad colour");
    assert_invalid(&err, "survey.branding.accent_color");
    let read = app.surveys.clone().get_survey(pb::GetSurveyRequest { id: s.id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.branding, Some(pb::Branding::default()));
    assert_eq!(read.update_time, s.update_time);

    // The tenant's default is checked the same way.
    let bad = app
        .services
        .set_tenant_branding("acme", Branding { logo_url: "ftp://x.example/l.png".into(), ..Default::default() })
        .await
        .expect_err("not https");
    assert!(format!("{bad:?}").contains("logo_url"), "{bad:?}");
    assert_eq!(app.services.tenant_branding("acme").await.unwrap(), Branding::default());
}

async fn the_form_carries_the_survey_branding_over_the_tenant_default(b: Backend) {
    let app = spawn_app(b).await;
    app.services
        .set_tenant_branding(
            "acme",
            Branding {
                display_name: "Acme Inc.".into(),
                accent_color: "#0A7D33".into(),
                logo_url: "https://cdn.example.com/acme.png".into(),
                language: "fr".into(),
            },
        )
        .await
        .unwrap();
    let plain = app.survey(pb::SurveyKind::Nps, None).await;
    let own = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Csat as i32,
            branding: brand("Acme Support", "", ""),
            language: "es".into(),
            ..Default::default()
        })
        .await;
    let form = |token: String| {
        let mut c = app.surveys_as(None);
        async move { c.get_invitation(pb::GetInvitationRequest { token }).await.unwrap().into_inner().form.unwrap() }
    };
    let f = form(app.issue(&plain.id, "c1").await.token).await;
    assert_eq!(f.branding, brand("Acme Inc.", "#0a7d33", "https://cdn.example.com/acme.png"));
    assert_eq!(f.language, "fr");
    let f = form(app.issue(&own.id, "c2").await.token).await;
    assert_eq!(f.branding, brand("Acme Support", "#0a7d33", "https://cdn.example.com/acme.png"), "field by field");
    assert_eq!(f.language, "es");
    // The survey itself keeps only its own values.
    assert_eq!(own.branding, brand("Acme Support", "", ""));
    // Another tenant's forms are not branded by acme.
    let other = app.other_tenant_key().await;
    let globex = app
        .survey_as(
            &other,
            pb::Survey { kind: pb::SurveyKind::Nps as i32, question: "Recommend Globex?".into(), ..Default::default() },
        )
        .await;
    let token = app
        .surveys_as(Some(&other))
        .issue_survey(pb::IssueSurveyRequest { survey_id: globex.id, customer_id: "g1".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .token;
    let f = form(token).await;
    assert_eq!(f.branding, Some(pb::Branding::default()));
    assert_eq!(f.language, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_page_is_branded_escaped_and_in_the_right_language() {
    let app = spawn_app(Backend::Sqlite).await;
    let web = Web::new(&app);
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            branding: brand("<Acme & \"Sons\">", "#ffd33d", "https://cdn.example.com:8443/l.png?v=1&x=<y>"),
            ..Default::default()
        })
        .await;
    let token = app.issue(&s.id, "c1").await.token;
    let page = web.send("GET", &format!("/s/{token}"), None, None, &[("accept-language", "de-CH, fr;q=0.8")]).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<html lang=\"de\" dir=\"ltr\">"), "{}", page.text);
    assert_eq!(page.header("content-language"), Some("de"));
    assert!(page.text.contains("<title>Umfrage – &lt;Acme &amp; &quot;Sons&quot;&gt;</title>"), "{}", page.text);
    assert!(page.text.contains("<span>&lt;Acme &amp; &quot;Sons&quot;&gt;</span>"));
    assert!(!page.text.contains("<Acme"), "never raw");
    assert!(page.text.contains("src=\"https://cdn.example.com:8443/l.png?v=1&amp;x=%3Cy%3E\""), "{}", page.text);
    assert!(page.text.contains("--accent:#ffd33d;--on-accent:#1f2328"), "dark text on a light accent");
    assert!(page.text.contains("data-lang=\"de\""));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' data: https://cdn.example.com:8443;"), "{csp}");
    assert!(!csp.contains("img-src 'self' data: https:;"), "an origin, not every https site");

    // The survey's language wins over the browser's; Arabic is right to left.
    let s = app
        .survey_with(pb::Survey { kind: pb::SurveyKind::Ces as i32, language: "ar".into(), ..Default::default() })
        .await;
    let token = app.issue(&s.id, "c2").await.token;
    let page = web.send("GET", &format!("/s/{token}"), None, None, &[("accept-language", "en-US")]).await;
    assert!(page.text.contains("<html lang=\"ar\" dir=\"rtl\">"), "{}", page.text);
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("img-src 'self' data:;"), "no logo, no other origin: {csp}");

    // The page's own messages follow the browser too.
    let unknown = web.send("GET", "/s/inv_unknown", None, None, &[("accept-language", "es")]).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.text.contains("Este enlace de encuesta no funciona"), "{}", unknown.text);
    let web_fr = web.send("GET", "/s/inv_unknown", None, None, &[("accept-language", "fr-CA")]).await;
    assert!(web_fr.text.contains("lang=\"fr\""));

    // The widget carries every shipped language's texts.
    let js = web.get("/widget.js", None).await;
    for text in ["Thank you for your feedback!", "Vielen Dank", "Merci pour votre avis", "¡Gracias", "شكرًا"] {
        assert!(js.text.contains(text), "{text}");
    }
    assert!(!js.text.contains("__RAPPORT_LOCALES__"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_link_keeps_its_branding_and_the_score_changes_until_the_comment() {
    let app = spawn_app(Backend::Sqlite).await;
    let web = Web::new(&app);
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            branding: brand("Acme", "", ""),
            ..Default::default()
        })
        .await;
    let token = app.issue(&s.id, "c1").await.token;
    let first = web.post(&format!("/v1/invitations/{token}/response"), None, &json!({"score": 3})).await;
    assert_eq!(first.status, 200, "{first:?}");
    // What the widget sends when another score is tapped.
    let changed = web.patch(&format!("/v1/invitations/{token}/response"), None, &json!({"score": 9})).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.json["score"], 9);
    let with_comment =
        web.patch(&format!("/v1/invitations/{token}/response"), None, &json!({"comment": "Fast."})).await;
    assert_eq!(with_comment.json["score"], 9);
    let page = web.send("GET", &format!("/s/{token}"), None, None, &[("accept-language", "fr")]).await;
    assert!(page.text.contains("Vous avez déjà répondu à cette enquête"), "{}", page.text);
    assert!(page.text.contains("<span>Acme</span>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branding_over_json_uses_the_api_mapping_and_names_the_bad_field() {
    let app = spawn_app(Backend::Sqlite).await;
    let web = Web::new(&app);
    let bad = web
        .post(
            "/v1/surveys",
            Some(&app.key),
            &json!({"kind": "SURVEY_KIND_NPS", "question": "Recommend us?", "branding": {"accentColor": "blue"}}),
        )
        .await;
    bad.assert_error(400, 3);
    assert_eq!(bad.violated_fields(), ["survey.branding.accent_color"]);
    let made = web
        .post(
            "/v1/surveys",
            Some(&app.key),
            &json!({
                "kind": "SURVEY_KIND_NPS",
                "question": "Recommend us?",
                "branding": {"displayName": "Acme", "accentColor": "#8250DF"},
                "language": "pt-BR",
            }),
        )
        .await;
    assert_eq!(made.status, 200, "{made:?}");
    assert_eq!(made.json["branding"], json!({"displayName": "Acme", "accentColor": "#8250df"}));
    assert_eq!(made.json["language"], "pt-BR");
    let token = app.issue(made.json["id"].as_str().unwrap(), "c1").await.token;
    // What the widget reads: the form, with the branding and the language.
    let inv = web.get(&format!("/v1/invitations/{token}"), None).await;
    assert_eq!(inv.json["form"]["branding"]["accentColor"], "#8250df");
    assert_eq!(inv.json["form"]["language"], "pt-BR");
    // No Portuguese texts are built in: the page follows the browser, then English.
    let page = web.send("GET", &format!("/s/{token}"), None, None, &[("accept-language", "es")]).await;
    assert!(page.text.contains("<html lang=\"es\""), "{}", page.text);
    let page = web.get(&format!("/s/{token}"), None).await;
    assert!(page.text.contains("<html lang=\"en\""), "{}", page.text);
}
