//! GetSurveyMetrics: headline scores, counts, means and their 95 % intervals checked
//! against values worked out by hand (or by a small calculation written here, never by
//! rapport's own functions); time-series buckets; property filters; the invitation
//! funnel; scope by kind; and bad input.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use tonic::{Code, Status};

use crate::helpers::*;

crate::on_both!(
    nps_gives_headline_counts_adjusted_wald_interval_mean_t_interval_and_definition,
    an_nps_interval_past_one_hundred_is_clamped,
    one_detractor_gives_a_wide_nps_interval_not_a_point,
    csat_and_ces_give_percent_good_with_a_wilson_interval_and_the_mean,
    a_survey_without_answers_has_n_zero_no_headline_no_mean_and_zero_counts,
    a_day_series_counts_each_utc_day_of_the_window_including_empty_days,
    week_and_month_series_have_one_point_per_period_clipped_to_the_window,
    the_default_window_is_the_thirty_days_before_now,
    a_property_filter_counts_only_responses_whose_merged_properties_match,
    the_funnel_counts_issued_answered_expired_pending_and_suppressed_by_rule,
    metrics_by_kind_sum_every_survey_of_the_kind_and_refuse_mixed_scales,
    bad_metric_requests_are_invalid_argument_naming_the_field,
);

/// t₀.₉₇₅ with 6, 7 and 9 degrees of freedom, from the printed tables.
const T_975_DF6: f64 = 2.446912;
const T_975_DF7: f64 = 2.364624;
const T_975_DF9: f64 = 2.262157;
const Z: f64 = 1.959963984540054;

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

fn from_ts(t: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let t = t.as_ref().expect("a timestamp");
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single().expect("a valid timestamp")
}

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

#[track_caller]
fn close(actual: f64, expected: f64, tol: f64) {
    assert!((actual - expected).abs() < tol, "{actual} is not within {tol} of {expected}");
}

fn of_survey(id: &str) -> pb::GetSurveyMetricsRequest {
    pb::GetSurveyMetricsRequest {
        scope: Some(pb::get_survey_metrics_request::Scope::SurveyId(id.into())),
        ..Default::default()
    }
}

fn of_kind(kind: pb::SurveyKind) -> pb::GetSurveyMetricsRequest {
    pb::GetSurveyMetricsRequest {
        scope: Some(pb::get_survey_metrics_request::Scope::Kind(kind as i32)),
        ..Default::default()
    }
}

async fn metrics(app: &TestApp, req: pb::GetSurveyMetricsRequest) -> Result<pb::GetSurveyMetricsResponse, Status> {
    app.surveys.clone().get_survey_metrics(req).await.map(|r| r.into_inner())
}

fn summary(m: &pb::GetSurveyMetricsResponse) -> &pb::ScoreSummary {
    m.summary.as_ref().expect("a summary")
}

/// The count of `bucket`, which must be listed.
#[track_caller]
fn count(s: &pb::ScoreSummary, bucket: pb::Bucket) -> i64 {
    s.bucket_counts
        .iter()
        .find(|c| c.bucket == bucket as i32)
        .unwrap_or_else(|| panic!("{bucket:?} is missing from {:?}", s.bucket_counts))
        .count
}

/// Mean and the half width of its t-interval, computed here from the raw scores.
fn mean_and_half_width(scores: &[i32], t: f64) -> (f64, f64) {
    let n = scores.len() as f64;
    let mean = scores.iter().sum::<i32>() as f64 / n;
    let var = scores.iter().map(|&s| (s as f64 - mean) * (s as f64 - mean)).sum::<f64>() / (n - 1.0);
    (mean, t * (var / n).sqrt())
}

/// Adjusted-Wald 95 % interval of an NPS, in points (Rocks 2016): ¾ added to the
/// promoters and to the detractors, 3 to n, then the variance of a difference of two
/// proportions on the adjusted shares, centred on the adjusted difference, clamped.
fn adjusted_wald_nps(promoters: f64, detractors: f64, n: f64) -> (f64, f64) {
    let m = n + 3.0;
    let (p, d) = ((promoters + 0.75) / m, (detractors + 0.75) / m);
    let half = Z * ((p + d - (p - d) * (p - d)) / m).sqrt();
    ((100.0 * (p - d - half)).max(-100.0), (100.0 * (p - d + half)).min(100.0))
}

/// Wilson 95 % interval for k of n, in percent.
fn wilson_percent(k: f64, n: f64) -> (f64, f64) {
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    (100.0 * (centre - half), 100.0 * (centre + half))
}

#[track_caller]
fn assert_interval(ci: &Option<pb::ConfidenceInterval>, lower: f64, upper: f64, tol: f64) {
    let ci = ci.as_ref().expect("an interval");
    close(ci.level, 0.95, 1e-12);
    close(ci.lower, lower, tol);
    close(ci.upper, upper, tol);
}

/// Answers each score directly, one new customer per score.
async fn answer_all(app: &TestApp, survey: &str, prefix: &str, scores: &[i32]) {
    for (i, &score) in scores.iter().enumerate() {
        app.answer(survey, &format!("{prefix}-{i}"), score).await.expect("answer");
    }
}

/// Records `score` for the invitation behind `token`, with response `properties`.
async fn answer_token(app: &TestApp, token: &str, score: i32, properties: &[(&str, &str)]) -> pb::Response {
    app.surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(token.into())),
            score: Some(score),
            properties: props(properties),
            ..Default::default()
        })
        .await
        .expect("answer by token")
        .into_inner()
}

/// Records a direct answer with response `properties`.
async fn answer_with(app: &TestApp, survey: &str, customer: &str, score: i32, properties: &[(&str, &str)]) {
    app.surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Direct(pb::SurveyCustomer {
                survey_id: survey.into(),
                customer_id: customer.into(),
            })),
            score: Some(score),
            properties: props(properties),
            ..Default::default()
        })
        .await
        .expect("direct answer");
}

/// Issues `survey` to `customer`, merging `properties` into the customer.
async fn issue_with(
    app: &TestApp,
    survey: &str,
    customer: &str,
    properties: &[(&str, &str)],
) -> pb::IssueSurveyResponse {
    app.surveys
        .clone()
        .issue_survey(pb::IssueSurveyRequest {
            survey_id: survey.into(),
            customer_id: customer.into(),
            properties: props(properties),
            ..Default::default()
        })
        .await
        .expect("issue")
        .into_inner()
}

fn props(kv: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn nps_gives_headline_counts_adjusted_wald_interval_mean_t_interval_and_definition(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    // 5 promoters, 3 passives, 2 detractors.
    let scores = [10, 9, 9, 10, 9, 7, 8, 8, 3, 6];
    answer_all(&app, &s.id, "c", &scores).await;

    let m = metrics(&app, of_survey(&s.id)).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 10);
    assert_eq!(count(sum, pb::Bucket::Promoter), 5);
    assert_eq!(count(sum, pb::Bucket::Passive), 3);
    assert_eq!(count(sum, pb::Bucket::Detractor), 2);
    assert_eq!(sum.bucket_counts.len(), 3, "only the NPS buckets: {:?}", sum.bucket_counts);
    // p = .5, d = .2: the headline is the plain NPS, 100 (.5 − .2) = 30.
    close(sum.headline.expect("a headline"), 30.0, 1e-9);
    // Adjusted: p̃ = 5.75 / 13, d̃ = 2.75 / 13, centre 3 / 13 (23.08, not 30); variance
    // (8.5 / 13 − 9 / 169) / 13 = 101.5 / 2197, half width 1.96 × 21.494 = 42.13.
    let (lo, hi) = adjusted_wald_nps(5.0, 2.0, 10.0);
    close(lo, -19.0506, 1e-4);
    close(hi, 65.2045, 1e-4);
    assert_interval(&sum.headline_interval, lo, hi, 1e-6);
    // Mean 79 / 10 = 7.9; sample variance 40.9 / 9; t₀.₉₇₅,₉ = 2.262157.
    let (mean, mean_half) = mean_and_half_width(&scores, T_975_DF9);
    close(mean, 7.9, 1e-12);
    close(mean_half, T_975_DF9 * (40.9_f64 / 9.0 / 10.0).sqrt(), 1e-9);
    close(sum.mean.expect("a mean"), 7.9, 1e-9);
    assert_interval(&sum.mean_interval, mean - mean_half, mean + mean_half, 1e-4);

    let d = m.definition.as_ref().expect("a definition");
    assert_eq!(d.kind, pb::SurveyKind::Nps as i32);
    assert_eq!((d.scale_min, d.scale_max), (0, 10));
    let mut ranges: Vec<(i32, i32, i32)> = d.buckets.iter().map(|r| (r.bucket, r.min, r.max)).collect();
    ranges.sort();
    assert_eq!(
        ranges,
        vec![
            (pb::Bucket::Promoter as i32, 9, 10),
            (pb::Bucket::Passive as i32, 7, 8),
            (pb::Bucket::Detractor as i32, 0, 6),
        ]
    );
    assert!(!d.formula.is_empty());
    assert!(d.interval_method.starts_with("adjusted-Wald"), "{}", d.interval_method);
    assert!(d.interval_method.contains("Student t"), "{}", d.interval_method);
    // No interval asked for: no series.
    assert!(m.series.is_empty());
}

async fn an_nps_interval_past_one_hundred_is_clamped(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    // 9 promoters, 1 detractor: NPS 80. Adjusted: p̃ = 9.75 / 13 = .75, d̃ = 1.75 / 13,
    // centre 8 / 13, variance (11.5 / 13 − 64 / 169) / 13 = .038917, so the raw bounds
    // are 22.874 and 100.203: the upper one is clamped to 100.
    answer_all(&app, &s.id, "c", &[10, 10, 10, 9, 9, 9, 9, 9, 9, 2]).await;
    let m = metrics(&app, of_survey(&s.id)).await.unwrap();
    let sum = summary(&m);
    close(sum.headline.unwrap(), 80.0, 1e-9);
    let half = 100.0 * Z * ((11.5 / 13.0 - 64.0 / 169.0) / 13.0_f64).sqrt();
    assert!(800.0 / 13.0 + half > 100.0, "the raw upper bound passes 100");
    close(800.0 / 13.0 - half, 22.8736, 1e-4);
    assert_interval(&sum.headline_interval, 800.0 / 13.0 - half, 100.0, 1e-6);

    // One promoter: no longer a zero-width interval at 100 but a wide one around the
    // adjusted centre 25 (p̃ = 1.75 / 4, d̃ = .75 / 4, variance .140625); it does not
    // even reach the headline. One score: no mean interval.
    let t = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&t.id, "solo", 10).await.unwrap();
    let m = metrics(&app, of_survey(&t.id)).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 1);
    close(sum.headline.unwrap(), 100.0, 1e-9);
    let half = 100.0 * Z * 0.140625_f64.sqrt();
    close(25.0 + half, 98.4986, 1e-4);
    assert_interval(&sum.headline_interval, 25.0 - half, 25.0 + half, 1e-6);
    close(sum.mean.unwrap(), 10.0, 1e-9);
    assert!(sum.mean_interval.is_none(), "a t-interval needs two scores");
}

async fn one_detractor_gives_a_wide_nps_interval_not_a_point(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    // The reported case: one detractor came back as −100 with the interval (−100, −100).
    // Adjusted: p̃ = .75 / 4, d̃ = 1.75 / 4, centre −.25, variance (.625 − .0625) / 4.
    app.answer(&s.id, "d0", 3).await.unwrap();
    let sum = summary(&metrics(&app, of_survey(&s.id)).await.unwrap()).clone();
    assert_eq!(sum.n, 1);
    close(sum.headline.unwrap(), -100.0, 1e-9);
    let (lo, hi) = adjusted_wald_nps(0.0, 1.0, 1.0);
    close(lo, -98.4986, 1e-4);
    close(hi, 48.4986, 1e-4);
    assert_interval(&sum.headline_interval, lo, hi, 1e-6);

    // Five detractors: centre −.625, variance (.8125 − .390625) / 8; the lower bound
    // (−107.5) is clamped to −100, the upper one stays well below 0.
    answer_all(&app, &s.id, "d", &[0, 6, 5, 1]).await;
    let sum = summary(&metrics(&app, of_survey(&s.id)).await.unwrap()).clone();
    assert_eq!(sum.n, 5);
    close(sum.headline.unwrap(), -100.0, 1e-9);
    let half = 100.0 * Z * ((0.8125 - 0.390625) / 8.0_f64).sqrt();
    close(-62.5 + half, -17.4915, 1e-4);
    assert_interval(&sum.headline_interval, -100.0, -62.5 + half, 1e-6);
}

async fn csat_and_ces_give_percent_good_with_a_wilson_interval_and_the_mean(b: Backend) {
    let app = spawn_app(b).await;

    // CSAT 1–5: satisfied = 4–5. 5 of 8 satisfied.
    let csat = app.survey(pb::SurveyKind::Csat, None).await;
    let scores = [5, 5, 4, 4, 4, 3, 2, 1];
    answer_all(&app, &csat.id, "s", &scores).await;
    let m = metrics(&app, of_survey(&csat.id)).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 8);
    assert_eq!(count(sum, pb::Bucket::Satisfied), 5);
    assert_eq!(count(sum, pb::Bucket::Unsatisfied), 3);
    close(sum.headline.unwrap(), 62.5, 1e-9);
    let (lo, hi) = wilson_percent(5.0, 8.0);
    // The textbook value for 5 of 8: ≈ [30.57, 86.32] %.
    close(lo, 30.57, 0.01);
    close(hi, 86.32, 0.01);
    assert_interval(&sum.headline_interval, lo, hi, 1e-6);
    // Mean 28 / 8 = 3.5, t₀.₉₇₅,₇ = 2.364624.
    let (mean, half) = mean_and_half_width(&scores, T_975_DF7);
    close(mean, 3.5, 1e-12);
    close(sum.mean.unwrap(), 3.5, 1e-9);
    assert_interval(&sum.mean_interval, mean - half, mean + half, 1e-4);
    let d = m.definition.as_ref().unwrap();
    assert_eq!((d.kind, d.scale_min, d.scale_max), (pb::SurveyKind::Csat as i32, 1, 5));
    let mut ranges: Vec<(i32, i32, i32)> = d.buckets.iter().map(|r| (r.bucket, r.min, r.max)).collect();
    ranges.sort();
    assert_eq!(ranges, vec![(pb::Bucket::Satisfied as i32, 4, 5), (pb::Bucket::Unsatisfied as i32, 1, 3)]);
    assert!(!d.formula.is_empty());

    // CES 1–7: agree = 5–7. 4 of 7 agree.
    let ces = app.survey(pb::SurveyKind::Ces, None).await;
    let scores = [7, 6, 5, 5, 4, 3, 2];
    answer_all(&app, &ces.id, "e", &scores).await;
    let m = metrics(&app, of_survey(&ces.id)).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 7);
    assert_eq!(count(sum, pb::Bucket::Agree), 4);
    assert_eq!(count(sum, pb::Bucket::NotAgree), 3);
    close(sum.headline.unwrap(), 400.0 / 7.0, 1e-9);
    let (lo, hi) = wilson_percent(4.0, 7.0);
    assert_interval(&sum.headline_interval, lo, hi, 1e-6);
    // Mean 32 / 7, t₀.₉₇₅,₆ = 2.446912.
    let (mean, half) = mean_and_half_width(&scores, T_975_DF6);
    close(mean, 32.0 / 7.0, 1e-12);
    close(sum.mean.unwrap(), 32.0 / 7.0, 1e-9);
    assert_interval(&sum.mean_interval, mean - half, mean + half, 1e-4);
    let d = m.definition.as_ref().unwrap();
    assert_eq!((d.kind, d.scale_min, d.scale_max), (pb::SurveyKind::Ces as i32, 1, 7));
    let mut ranges: Vec<(i32, i32, i32)> = d.buckets.iter().map(|r| (r.bucket, r.min, r.max)).collect();
    ranges.sort();
    assert_eq!(ranges, vec![(pb::Bucket::Agree as i32, 5, 7), (pb::Bucket::NotAgree as i32, 1, 4)]);
}

async fn a_survey_without_answers_has_n_zero_no_headline_no_mean_and_zero_counts(b: Backend) {
    let app = spawn_app(b).await;
    for (kind, buckets) in [
        (pb::SurveyKind::Csat, vec![pb::Bucket::Satisfied, pb::Bucket::Unsatisfied]),
        (pb::SurveyKind::Nps, vec![pb::Bucket::Promoter, pb::Bucket::Passive, pb::Bucket::Detractor]),
    ] {
        let s = app.survey(kind, None).await;
        let m = metrics(&app, of_survey(&s.id)).await.unwrap();
        let sum = summary(&m);
        assert_eq!(sum.n, 0);
        assert_eq!(sum.headline, None);
        assert_eq!(sum.mean, None);
        assert!(sum.headline_interval.is_none());
        assert!(sum.mean_interval.is_none());
        for bucket in buckets {
            assert_eq!(count(sum, bucket), 0);
        }
        let f = m.funnel.as_ref().expect("a funnel");
        assert_eq!((f.issued, f.answered, f.expired, f.pending, f.suppressed), (0, 0, 0, 0, 0));
        assert_eq!(f.response_rate, None, "nothing issued: no rate");
        assert!(m.definition.is_some());
    }
}

/// Moves the server clock to noon (UTC) of the next day and returns that day's midnight.
fn to_noon_of_next_day(app: &TestApp) -> DateTime<Utc> {
    let now = app.clock.now();
    let midnight = Utc.from_utc_datetime(&(now.date_naive() + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap());
    app.clock.advance(midnight + Duration::hours(12) - now);
    midnight
}

async fn a_day_series_counts_each_utc_day_of_the_window_including_empty_days(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let day1 = to_noon_of_next_day(&app);
    // Day 1: 10 and 0 (NPS 0). Day 2: nothing. Day 3: 9, 9, 7 (NPS 66.7).
    answer_all(&app, &s.id, "d1", &[10, 0]).await;
    app.clock.advance(Duration::days(2));
    answer_all(&app, &s.id, "d3", &[9, 9, 7]).await;

    let req = pb::GetSurveyMetricsRequest {
        start_time: Some(ts(day1)),
        end_time: Some(ts(day1 + Duration::days(3))),
        interval: pb::Interval::Day as i32,
        ..of_survey(&s.id)
    };
    let m = metrics(&app, req.clone()).await.unwrap();
    assert_eq!(from_ts(&m.start_time), day1);
    assert_eq!(from_ts(&m.end_time), day1 + Duration::days(3));
    assert_eq!(summary(&m).n, 5);
    assert_eq!(m.series.len(), 3, "one point per day");
    let expected: [(i64, Option<f64>); 3] = [(2, Some(0.0)), (0, None), (3, Some(200.0 / 3.0))];
    for (i, (point, (n, headline))) in m.series.iter().zip(expected).enumerate() {
        assert_eq!(from_ts(&point.start_time), day1 + Duration::days(i as i64));
        assert_eq!(from_ts(&point.end_time), day1 + Duration::days(i as i64 + 1));
        let ps = point.summary.as_ref().unwrap();
        assert_eq!(ps.n, n, "day {}", i + 1);
        match headline {
            Some(h) => close(ps.headline.expect("a headline"), h, 1e-9),
            None => assert_eq!(ps.headline, None, "an empty day has no headline"),
        }
    }
    let day3 = m.series[2].summary.as_ref().unwrap();
    assert_eq!((count(day3, pb::Bucket::Promoter), count(day3, pb::Bucket::Passive)), (2, 1));

    // The same window by ISO week: answers land in the week of their Monday.
    let monday = |d: DateTime<Utc>| d - Duration::days(d.weekday().num_days_from_monday() as i64);
    let mut per_week: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
    *per_week.entry(monday(day1)).or_default() += 2;
    per_week.entry(monday(day1 + Duration::days(1))).or_default();
    *per_week.entry(monday(day1 + Duration::days(2))).or_default() += 3;
    let weeks =
        metrics(&app, pb::GetSurveyMetricsRequest { interval: pb::Interval::Week as i32, ..req }).await.unwrap();
    assert_eq!(weeks.series.len(), per_week.len());
    for (point, (week, n)) in weeks.series.iter().zip(&per_week) {
        assert_eq!(from_ts(&point.start_time), (*week).max(day1), "the first week is clipped to the window");
        assert_eq!(point.summary.as_ref().unwrap().n, *n);
    }
    assert_eq!(from_ts(&weeks.series.last().unwrap().end_time), day1 + Duration::days(3));
}

async fn week_and_month_series_have_one_point_per_period_clipped_to_the_window(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Csat, None).await;
    let ask = |start: DateTime<Utc>, end: DateTime<Utc>, interval: pb::Interval| pb::GetSurveyMetricsRequest {
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
        interval: interval as i32,
        ..of_survey(&s.id)
    };
    let starts_and_ends = |m: &pb::GetSurveyMetricsResponse| -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        m.series.iter().map(|p| (from_ts(&p.start_time), from_ts(&p.end_time))).collect()
    };

    // Wednesday 7 January 2026 to Sunday 1 February 2026: a partial first week (Wed–Sun),
    // three whole weeks, and a last week cut at the Sunday.
    assert_eq!(utc(2026, 1, 7).weekday(), chrono::Weekday::Wed);
    let m = metrics(&app, ask(utc(2026, 1, 7), utc(2026, 2, 1), pb::Interval::Week)).await.unwrap();
    assert_eq!(
        starts_and_ends(&m),
        vec![
            (utc(2026, 1, 7), utc(2026, 1, 12)),
            (utc(2026, 1, 12), utc(2026, 1, 19)),
            (utc(2026, 1, 19), utc(2026, 1, 26)),
            (utc(2026, 1, 26), utc(2026, 2, 1)),
        ]
    );
    assert!(m.series.iter().all(|p| p.summary.as_ref().unwrap().n == 0));

    // 15 January to 10 March 2026 by month: Jan (from the 15th), Feb (whole), Mar (to the 10th).
    let m = metrics(&app, ask(utc(2026, 1, 15), utc(2026, 3, 10), pb::Interval::Month)).await.unwrap();
    assert_eq!(
        starts_and_ends(&m),
        vec![
            (utc(2026, 1, 15), utc(2026, 2, 1)),
            (utc(2026, 2, 1), utc(2026, 3, 1)),
            (utc(2026, 3, 1), utc(2026, 3, 10)),
        ]
    );

    // Across a year end, by month: Nov 20 → Feb 1 is Nov, Dec, Jan.
    let m = metrics(&app, ask(utc(2025, 11, 20), utc(2026, 2, 1), pb::Interval::Month)).await.unwrap();
    assert_eq!(m.series.len(), 3);
    assert_eq!(from_ts(&m.series[1].start_time), utc(2025, 12, 1));
    assert_eq!(from_ts(&m.series[2].start_time), utc(2026, 1, 1));

    // A window of exactly one Monday-to-Monday week is one point.
    assert_eq!(utc(2026, 1, 5).weekday(), chrono::Weekday::Mon);
    let m = metrics(&app, ask(utc(2026, 1, 5), utc(2026, 1, 12), pb::Interval::Week)).await.unwrap();
    assert_eq!(starts_and_ends(&m), vec![(utc(2026, 1, 5), utc(2026, 1, 12))]);
}

async fn the_default_window_is_the_thirty_days_before_now(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    app.answer(&s.id, "old", 10).await.unwrap();
    app.clock.advance(Duration::days(20));
    app.answer(&s.id, "recent", 0).await.unwrap();
    app.clock.advance(Duration::days(15));
    // Now the first answer is 35 days old and the second 15.
    let before = app.clock.now();
    let m = metrics(&app, of_survey(&s.id)).await.unwrap();
    let after = app.clock.now();
    let end = from_ts(&m.end_time);
    assert!(before <= end && end <= after, "end defaults to now");
    assert_eq!(from_ts(&m.start_time), end - Duration::days(30));
    let sum = summary(&m);
    assert_eq!(sum.n, 1);
    assert_eq!(count(sum, pb::Bucket::Detractor), 1);
    close(sum.headline.unwrap(), -100.0, 1e-9);

    // An end alone moves the start with it.
    let end = app.clock.now() - Duration::days(20);
    let m = metrics(&app, pb::GetSurveyMetricsRequest { end_time: Some(ts(end)), ..of_survey(&s.id) }).await.unwrap();
    assert_eq!(from_ts(&m.start_time), end - Duration::days(30));
    let sum = summary(&m);
    assert_eq!((sum.n, count(sum, pb::Bucket::Promoter)), (1, 1), "only the old answer is before the end");
}

async fn a_property_filter_counts_only_responses_whose_merged_properties_match(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    // Enterprise through the customer (IssueSurvey properties), answered by token and directly.
    let inv = issue_with(&app, &s.id, "ent-1", &[("plan", "enterprise"), ("region", "eu")]).await;
    answer_token(&app, &inv.token, 10, &[]).await;
    issue_with(&app, &s.id, "ent-2", &[("plan", "enterprise")]).await;
    answer_with(&app, &s.id, "ent-2", 9, &[]).await;
    // Enterprise through the response's own properties.
    answer_with(&app, &s.id, "ent-3", 3, &[("plan", "enterprise"), ("region", "eu")]).await;
    // A free customer whose response says enterprise: the response's properties win.
    issue_with(&app, &s.id, "upgraded", &[("plan", "free")]).await;
    answer_with(&app, &s.id, "upgraded", 8, &[("plan", "enterprise")]).await;
    // Free, by customer and by response, and one without a plan.
    let inv = issue_with(&app, &s.id, "free-1", &[("plan", "free")]).await;
    answer_token(&app, &inv.token, 0, &[]).await;
    answer_with(&app, &s.id, "free-2", 10, &[("plan", "free")]).await;
    app.answer(&s.id, "unknown", 7).await.unwrap();

    let with_filter = |kv: &[(&str, &str)]| pb::GetSurveyMetricsRequest { filter: props(kv), ..of_survey(&s.id) };
    let all = metrics(&app, of_survey(&s.id)).await.unwrap();
    assert_eq!(summary(&all).n, 7);

    // Enterprise: 10, 9, 3, 8 → 2 promoters, 1 passive, 1 detractor, NPS 25.
    let m = metrics(&app, with_filter(&[("plan", "enterprise")])).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 4);
    assert_eq!(
        (count(sum, pb::Bucket::Promoter), count(sum, pb::Bucket::Passive), count(sum, pb::Bucket::Detractor)),
        (2, 1, 1)
    );
    close(sum.headline.unwrap(), 25.0, 1e-9);
    close(sum.mean.unwrap(), 30.0 / 4.0, 1e-9);

    // Free: 0 and 10 → NPS 0.
    let m = metrics(&app, with_filter(&[("plan", "free")])).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 2);
    close(sum.headline.unwrap(), 0.0, 1e-9);

    // Every key must match: enterprise in the EU is ent-1 (customer) and ent-3 (response).
    let m = metrics(&app, with_filter(&[("plan", "enterprise"), ("region", "eu")])).await.unwrap();
    let sum = summary(&m);
    assert_eq!((sum.n, count(sum, pb::Bucket::Promoter), count(sum, pb::Bucket::Detractor)), (2, 1, 1));

    // No match at all.
    let m = metrics(&app, with_filter(&[("plan", "platinum")])).await.unwrap();
    assert_eq!(summary(&m).n, 0);
    assert_eq!(summary(&m).headline, None);
}

async fn the_funnel_counts_issued_answered_expired_pending_and_suppressed_by_rule(b: Backend) {
    let app = spawn_app(b).await;
    let s = app
        .survey_with(pb::Survey {
            kind: pb::SurveyKind::Nps as i32,
            policy: Some(pb::EligibilityPolicy {
                invitation_expiry_days: Some(1),
                days_after_invitation_this_survey: Some(7),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    let first = app.issue(&s.id, "c1").await;
    let second = app.issue(&s.id, "c2").await;
    let third = app.issue(&s.id, "c3").await;
    assert!(first.issued && second.issued && third.issued);
    answer_token(&app, &first.token, 10, &[]).await;
    answer_token(&app, &second.token, 4, &[]).await;

    // c1 answered: the 90-day response cooldown (the longest) blocks it.
    let again = app.issue(&s.id, "c1").await;
    assert!(!again.issued);
    assert_eq!(again.eligibility.unwrap().rule, pb::EligibilityRule::RespondedThisSurvey as i32);
    // c3 was invited moments ago: the 7-day invitation cooldown blocks it.
    let again = app.issue(&s.id, "c3").await;
    assert!(!again.issued);
    assert_eq!(again.eligibility.unwrap().rule, pb::EligibilityRule::InvitedThisSurvey as i32);

    // Two days later c3's invitation (1 day) has expired; c4's new one is pending.
    app.clock.advance(Duration::days(2));
    let after_expiry = app.clock.now();
    let fourth = app.issue(&s.id, "c4").await;
    assert!(fourth.issued);
    let err = app
        .surveys
        .clone()
        .record_response(pb::RecordResponseRequest {
            target: Some(pb::record_response_request::Target::Token(third.token.clone())),
            score: Some(9),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "an expired invitation cannot be answered: {err:?}");

    let m = metrics(&app, of_survey(&s.id)).await.unwrap();
    let f = m.funnel.as_ref().expect("a funnel");
    assert_eq!(f.issued, 4);
    assert_eq!(f.answered, 2);
    assert_eq!(f.expired, 1);
    assert_eq!(f.pending, 1);
    assert_eq!(f.suppressed, 2);
    let mut by_rule: Vec<(i32, i64)> = f.suppressed_by_rule.iter().map(|r| (r.rule, r.count)).collect();
    by_rule.sort();
    assert_eq!(
        by_rule,
        vec![(pb::EligibilityRule::InvitedThisSurvey as i32, 1), (pb::EligibilityRule::RespondedThisSurvey as i32, 1),]
    );
    close(f.response_rate.expect("a rate"), 2.0 / 4.0, 1e-12);
    // The two token answers are the scores.
    assert_eq!(summary(&m).n, 2);

    // Only invitations created in the window count: from after the expiry, only c4.
    let m = metrics(&app, pb::GetSurveyMetricsRequest { start_time: Some(ts(after_expiry)), ..of_survey(&s.id) })
        .await
        .unwrap();
    let f = m.funnel.as_ref().unwrap();
    assert_eq!((f.issued, f.answered, f.expired, f.pending, f.suppressed), (1, 0, 0, 1, 0));
    close(f.response_rate.unwrap(), 0.0, 1e-12);
}

async fn metrics_by_kind_sum_every_survey_of_the_kind_and_refuse_mixed_scales(b: Backend) {
    let app = spawn_app(b).await;
    let a = app.survey(pb::SurveyKind::Nps, None).await;
    let bb = app.survey(pb::SurveyKind::Nps, None).await;
    let csat = app.survey(pb::SurveyKind::Csat, Some(5)).await;
    answer_all(&app, &a.id, "a", &[10, 9, 0]).await;
    answer_all(&app, &bb.id, "b", &[8, 10]).await;
    answer_all(&app, &csat.id, "c", &[1, 5]).await;
    let inv = app.issue(&a.id, "inv-a").await;
    app.issue(&bb.id, "inv-b").await;
    answer_token(&app, &inv.token, 9, &[]).await;

    // NPS across both surveys: 10, 9, 0, 8, 10, 9 → 4 promoters, 1 passive, 1 detractor → 50.
    let m = metrics(&app, of_kind(pb::SurveyKind::Nps)).await.unwrap();
    let sum = summary(&m);
    assert_eq!(sum.n, 6);
    assert_eq!(
        (count(sum, pb::Bucket::Promoter), count(sum, pb::Bucket::Passive), count(sum, pb::Bucket::Detractor)),
        (4, 1, 1)
    );
    close(sum.headline.unwrap(), 50.0, 1e-9);
    assert_eq!(m.definition.as_ref().unwrap().kind, pb::SurveyKind::Nps as i32);
    let f = m.funnel.as_ref().unwrap();
    assert_eq!((f.issued, f.answered, f.pending), (2, 1, 1));
    close(f.response_rate.unwrap(), 0.5, 1e-12);

    // CSAT alone: one survey on 1–5.
    let m = metrics(&app, of_kind(pb::SurveyKind::Csat)).await.unwrap();
    assert_eq!(summary(&m).n, 2);
    close(summary(&m).headline.unwrap(), 50.0, 1e-9);

    // A second CSAT survey on 1–7: the two cannot be summed.
    app.survey(pb::SurveyKind::Csat, Some(7)).await;
    assert_code(metrics(&app, of_kind(pb::SurveyKind::Csat)).await, Code::FailedPrecondition);
    // Each survey on its own still works.
    assert_eq!(summary(&metrics(&app, of_survey(&csat.id)).await.unwrap()).n, 2);

    // A kind without surveys: nothing, on its default scale.
    let m = metrics(&app, of_kind(pb::SurveyKind::Ces)).await.unwrap();
    assert_eq!(summary(&m).n, 0);
    assert_eq!(m.definition.as_ref().unwrap().scale_max, 7);
}

async fn bad_metric_requests_are_invalid_argument_naming_the_field(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.survey(pb::SurveyKind::Nps, None).await;
    let now = app.clock.now();

    let err = metrics(
        &app,
        pb::GetSurveyMetricsRequest {
            start_time: Some(ts(now)),
            end_time: Some(ts(now - Duration::days(1))),
            ..of_survey(&s.id)
        },
    )
    .await
    .unwrap_err();
    assert_invalid(&err, "start_time");

    let err = metrics(&app, pb::GetSurveyMetricsRequest { scope: None, ..Default::default() }).await.unwrap_err();
    assert_invalid(&err, "scope");

    let five_years = pb::GetSurveyMetricsRequest {
        start_time: Some(ts(now - Duration::days(5 * 365))),
        end_time: Some(ts(now)),
        interval: pb::Interval::Day as i32,
        ..of_survey(&s.id)
    };
    let err = metrics(&app, five_years.clone()).await.unwrap_err();
    assert_invalid(&err, "interval");
    // The same window by week is fine (≈ 261 points).
    let weeks =
        metrics(&app, pb::GetSurveyMetricsRequest { interval: pb::Interval::Week as i32, ..five_years }).await.unwrap();
    assert!((260..=262).contains(&weeks.series.len()), "{}", weeks.series.len());

    let err = metrics(&app, pb::GetSurveyMetricsRequest { interval: 42, ..of_survey(&s.id) }).await.unwrap_err();
    assert_invalid(&err, "interval");
    let err = metrics(&app, of_kind(pb::SurveyKind::Unspecified)).await.unwrap_err();
    assert_invalid(&err, "kind");
    let err = metrics(&app, of_survey("")).await.unwrap_err();
    assert_invalid(&err, "survey_id");
    assert_code(metrics(&app, of_survey(&uuid::Uuid::now_v7().to_string())).await, Code::NotFound);
}
