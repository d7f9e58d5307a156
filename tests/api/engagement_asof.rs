//! Engagement numbers at a past `as_of` and with a short churn threshold (7 days), in
//! a tenant on America/Los_Angeles across the 1 November 2026 DST change. Every
//! expected number is computed here from the raw events, by the definitions of
//! docs/engagement.md ("Definitions"), never copied from the service: scores and
//! their ranking, churned customers, customers at the start, churn rate and episodes,
//! new customers, DAU/WAU/MAU, cohorts, and the expected lifetime and CLV built on
//! the churn rate. A few of them are also worked out by hand in the comments.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Los_Angeles as LA;

use crate::engagement::*;
use crate::helpers::*;

crate::on_both!(
    numbers_at_a_past_as_of_hold_with_a_short_threshold_across_a_dst_change,
    equal_values_rank_in_customer_id_order_and_ranks_are_row_numbers,
);

/// The tenant's inactivity threshold, half-life and action weights.
const T: i64 = 7;
const HALF_LIFE: f64 = 10.0;
const WEIGHTS: [(&str, f64); 2] = [("post", 2.0), ("like", 1.0)];
const MARGIN: f64 = 1.0;

#[derive(Clone, Copy, Debug)]
enum K {
    Post,
    Like,
    Session,
    Buy(i64),
}

#[derive(Clone, Debug)]
struct Ev {
    who: &'static str,
    at: DateTime<Utc>,
    kind: K,
}

/// A Los Angeles wall-clock time (not ambiguous ones: those are given in UTC).
fn la(m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    LA.with_ymd_and_hms(2026, m, d, h, mi, 0).single().expect("an unambiguous local time").with_timezone(&Utc)
}

/// The tenant's calendar day of an instant.
fn local_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&LA).date_naive()
}

fn date(m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, m, d).unwrap()
}

fn ev(who: &'static str, at: DateTime<Utc>, kind: K) -> Ev {
    Ev { who, at, kind }
}

/// The dataset (local times in Los Angeles; PDT until 1 November 02:00, then PST).
fn dataset() -> Vec<Ev> {
    let mut v = Vec::new();
    // zed and amy: the same actions on the same days (at other hours) — always tied.
    for who in ["zed", "amy"] {
        let h = if who == "zed" { 10 } else { 18 };
        for (m, d) in [(10, 8), (10, 20), (11, 2), (11, 15)] {
            v.push(ev(who, la(m, d, h, 0), K::Post));
        }
    }
    // bob: first seen Oct 25 (two posts), silent until a like on Nov 5.
    v.push(ev("bob", la(10, 25, 9, 0), K::Post));
    v.push(ev("bob", la(10, 25, 9, 30), K::Post));
    v.push(ev("bob", la(11, 5, 12, 0), K::Like));
    // cat: a session every six days (never silent for 7), two purchases; no score.
    for (m, d) in [(10, 10), (10, 16), (10, 22), (10, 28), (11, 3), (11, 9), (11, 15), (11, 19)] {
        v.push(ev("cat", la(m, d, 12, 0), K::Session));
    }
    v.push(ev("cat", la(10, 16, 13, 0), K::Buy(2_500)));
    v.push(ev("cat", la(11, 3, 13, 0), K::Buy(1_500)));
    // dan: a like on Oct 12, the next one on Nov 16.
    v.push(ev("dan", la(10, 12, 8, 0), K::Like));
    v.push(ev("dan", la(11, 16, 8, 0), K::Like));
    // eve: first seen on Nov 14.
    v.push(ev("eve", la(11, 14, 11, 0), K::Post));
    // fay: one post on Oct 1.
    v.push(ev("fay", la(10, 1, 12, 0), K::Post));
    // gus, around the change: 23:30 PDT Oct 31 (06:30 UTC Nov 1) is Oct 31; 00:30 PDT,
    // 01:30 PDT, 01:30 PST (the hour repeats) and 23:30 PST (07:30 UTC Nov 2) are Nov 1.
    v.push(ev("gus", utc(2026, 11, 1, 6, 30), K::Like));
    v.push(ev("gus", utc(2026, 11, 1, 7, 30), K::Post));
    v.push(ev("gus", utc(2026, 11, 1, 8, 30), K::Post));
    v.push(ev("gus", utc(2026, 11, 1, 9, 30), K::Post));
    v.push(ev("gus", utc(2026, 11, 2, 7, 30), K::Like));
    // hal: a post every five days at 20:00 (after 17:00 PDT / 16:00 PST: the next UTC day).
    for i in 0..9 {
        let day = date(10, 9) + Duration::days(5 * i);
        v.push(ev("hal", la(day.month(), day.day(), 20, 0), K::Post));
    }
    // ivy: one session on Nov 3.
    v.push(ev("ivy", la(11, 3, 15, 0), K::Session));
    v
}

// ---------------------------------------------------------------------------------
// The definitions, computed directly from the events.
// ---------------------------------------------------------------------------------

struct Model {
    events: Vec<Ev>,
}

fn weight(k: K) -> f64 {
    let name = match k {
        K::Post => "post",
        K::Like => "like",
        _ => return 0.0,
    };
    WEIGHTS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w).unwrap_or(0.0)
}

impl Model {
    fn customers(&self) -> BTreeSet<&'static str> {
        self.events.iter().map(|e| e.who).collect()
    }

    /// Every active day of a customer (whatever the as-of day).
    fn days(&self, who: &str) -> BTreeSet<NaiveDate> {
        self.events.iter().filter(|e| e.who == who).map(|e| local_day(e.at)).collect()
    }

    fn active_in(&self, who: &str, from: NaiveDate, to: NaiveDate) -> bool {
        self.days(who).range(from..=to).next().is_some()
    }

    /// Σ Wᵢ over the customer's actions up to day `d`, each decayed by 2^(−age / half-life).
    fn score(&self, who: &str, d: NaiveDate) -> f64 {
        self.events
            .iter()
            .filter(|e| e.who == who && local_day(e.at) <= d)
            .map(|e| weight(e.kind) * (-((d - local_day(e.at)).num_days() as f64) / HALF_LIFE).exp2())
            .sum()
    }

    /// The churn days of a customer: d + T for an active day d with no activity in
    /// the T days after it.
    fn churn_days(&self, who: &str) -> Vec<NaiveDate> {
        let days = self.days(who);
        days.iter()
            .map(|d| *d + Duration::days(T))
            .filter(|c| days.range((*c - Duration::days(T) + Duration::days(1))..=*c).next().is_none())
            .collect()
    }

    /// (episodes, churned customers, of them at the start, customers at the start) of
    /// the `w` days ending on `d`.
    fn churn(&self, d: NaiveDate, w: i64) -> (i64, i64, i64, i64) {
        let a = d - Duration::days(w - 1);
        let (mut episodes, mut churned, mut from_start, mut at_start) = (0, 0, 0, 0);
        for who in self.customers() {
            let inside = self.churn_days(who).into_iter().filter(|c| *c >= a && *c <= d).count() as i64;
            let there = self.active_in(who, a - Duration::days(T), a - Duration::days(1));
            episodes += inside;
            churned += (inside > 0) as i64;
            from_start += (inside > 0 && there) as i64;
            at_start += there as i64;
        }
        (episodes, churned, from_start, at_start)
    }

    fn count_active(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        self.customers().into_iter().filter(|w| self.active_in(w, from, to)).count() as i64
    }

    fn first_day(&self, who: &str) -> NaiveDate {
        *self.days(who).iter().next().unwrap()
    }

    /// Cohorts of the six months ending with `d`'s: (YYYY-MM, size, active per month).
    fn cohorts(&self, d: NaiveDate) -> Vec<(String, i64, Vec<i64>)> {
        let month = |x: NaiveDate| x.year() * 12 + x.month0() as i32;
        let last = month(d);
        (last - 5..=last)
            .map(|m| {
                let members: Vec<&str> = self
                    .customers()
                    .into_iter()
                    .filter(|w| self.first_day(w) <= d && month(self.first_day(w)) == m)
                    .collect();
                let active = (m..=last)
                    .map(|x| {
                        members.iter().filter(|w| self.days(w).iter().any(|day| *day <= d && month(*day) == x)).count()
                            as i64
                    })
                    .collect();
                (format!("{:04}-{:02}", m / 12, m % 12 + 1), members.len() as i64, active)
            })
            .collect()
    }

    /// Customers with a positive score on `d`, highest first, equal scores by id.
    fn score_ranking(&self, d: NaiveDate) -> Vec<(&'static str, f64)> {
        let mut v: Vec<(&'static str, f64)> =
            self.customers().into_iter().map(|w| (w, self.score(w, d))).filter(|(_, s)| *s > 0.0).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }

    /// Expected lifetime (months) from the churn rate of the 30 days to `d`.
    fn lifetime(&self, d: NaiveDate) -> f64 {
        let (_, _, from_start, at_start) = self.churn(d, 30);
        if at_start == 0 || from_start == 0 { 60.0 } else { (at_start as f64 / from_start as f64).min(60.0) }
    }

    /// Predicted CLV on `d`: mean order × purchases per month × lifetime × margin.
    fn clv(&self, who: &str, d: NaiveDate) -> f64 {
        let buys: Vec<i64> = self
            .events
            .iter()
            .filter(|e| e.who == who && local_day(e.at) <= d)
            .filter_map(|e| if let K::Buy(a) = e.kind { Some(a) } else { None })
            .collect();
        if buys.is_empty() {
            return 0.0;
        }
        let n = buys.len() as f64;
        let mean = buys.iter().sum::<i64>() as f64 / n;
        let months = (((d - self.first_day(who)).num_days() + 1) as f64 / 30.0).max(1.0);
        mean * (n / months) * self.lifetime(d) * MARGIN
    }
}

// ---------------------------------------------------------------------------------
// Calls.
// ---------------------------------------------------------------------------------

fn to_pb(e: &Ev, id: String) -> pb::ActivityEvent {
    match e.kind {
        K::Post => action(&id, e.who, e.at, "post", &[]),
        K::Like => action(&id, e.who, e.at, "like", &[]),
        K::Session => session(&id, e.who, e.at, 60),
        K::Buy(a) => purchase(&id, e.who, e.at, a),
    }
}

/// The measure's integer `count`, checked against its double `value`.
#[track_caller]
fn count(m: &Option<pb::Measure>) -> i64 {
    let m = m.as_ref().expect("a measure");
    let n = m.count.expect("a count");
    assert_eq!(m.value, Some(n as f64), "value and count say the same");
    n
}

/// Every page of a ranking, `size` at a time.
async fn all_pages(
    c: &mut Engagement,
    mut req: pb::ListTopCustomersRequest,
    size: i32,
) -> Vec<pb::ListTopCustomersResponse> {
    req.page_size = size;
    let mut pages = Vec::new();
    loop {
        let r = c.list_top_customers(req.clone()).await.expect("ranking").into_inner();
        let next = r.next_page_token.clone();
        pages.push(r);
        if next.is_empty() {
            return pages;
        }
        req.page_token = next;
    }
}

fn by_score(as_of: Option<DateTime<Utc>>, ascending: bool, include_zero: bool) -> pb::ListTopCustomersRequest {
    pb::ListTopCustomersRequest {
        ranking: Some(pb::list_top_customers_request::Ranking::EngagementScore(true)),
        as_of: as_of.map(pts),
        include_zero,
        order: if ascending { pb::RankOrder::Ascending } else { pb::RankOrder::Descending } as i32,
        ..Default::default()
    }
}

/// Checks the score ranking on `d` (as of `as_of`) against the model, and each value
/// against the customer's profile at the same `as_of`.
async fn check_score_ranking(c: &mut Engagement, model: &Model, as_of: Option<DateTime<Utc>>, d: NaiveDate) {
    let expected = model.score_ranking(d);
    let pages = all_pages(c, by_score(as_of, false, false), 3).await;
    let got: Vec<pb::RankedCustomer> = pages.iter().flat_map(|p| p.customers.clone()).collect();
    let ids: Vec<&str> = got.iter().map(|x| x.customer_id.as_str()).collect();
    assert_eq!(ids, expected.iter().map(|x| x.0).collect::<Vec<_>>(), "the ranking on {d}");
    for (i, (x, (who, score))) in got.iter().zip(&expected).enumerate() {
        assert_eq!(x.rank, i as i64 + 1, "rank is the row number");
        close(x.value, *score);
        assert_eq!(x.count, None, "a score is not a count");
        let p = profile(c, who, as_of).await;
        close(x.value, val(&p.engagement_score.as_ref().unwrap().score));
    }
    for p in &pages {
        // A score covers all history to as_of: no window.
        assert_eq!((p.window_days, p.start_date.as_str(), p.end_date.as_str()), (0, "", ""));
        assert_eq!(p.as_of_date, d.to_string());
        assert!(p.definition.contains(&d.to_string()), "{}", p.definition);
    }
    // Lowest first with the zeros (by id) ahead of them.
    let mut zeros: Vec<&str> = model.customers().into_iter().filter(|w| model.score(w, d) == 0.0).collect();
    zeros.sort();
    let mut ascending: Vec<(&str, f64)> = expected.clone();
    ascending.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
    let want: Vec<&str> = zeros.iter().copied().chain(ascending.iter().map(|x| x.0)).collect();
    let pages = all_pages(c, by_score(as_of, true, true), 4).await;
    let got: Vec<pb::RankedCustomer> = pages.iter().flat_map(|p| p.customers.clone()).collect();
    assert_eq!(got.iter().map(|x| x.customer_id.as_str()).collect::<Vec<_>>(), want, "ascending on {d}");
    assert_eq!(got.iter().map(|x| x.rank).collect::<Vec<_>>(), (1..=want.len() as i64).collect::<Vec<_>>());
}

/// Checks the org metrics of the `w` days ending on `d` against the model.
async fn check_metrics(c: &mut Engagement, model: &Model, as_of: Option<DateTime<Utc>>, d: NaiveDate, w: i64) {
    let m = metrics(c, w as i32, as_of).await;
    let a = d - Duration::days(w - 1);
    assert_eq!((m.start_date.clone(), m.end_date.clone()), (a.to_string(), d.to_string()));
    let (episodes, churned, from_start, at_start) = model.churn(d, w);
    let at = format!("{w} days to {d}");
    assert_eq!(count(&m.churned_customers), churned, "churned customers, {at}");
    assert_eq!(count(&m.customers_at_start), at_start, "customers at the start, {at}");
    assert_eq!(count(&m.churned_from_start), from_start, "churned from the start, {at}");
    assert_eq!(count(&m.churn_episodes), episodes, "churn episodes, {at}");
    if at_start > 0 {
        close(val(&m.churn_rate), from_start as f64 / at_start as f64);
        assert!(val(&m.churn_rate) <= 1.0);
        close(val(&m.churn_episode_rate), episodes as f64 / at_start as f64);
    } else {
        assert!(unset(&m.churn_rate) && unset(&m.churn_episode_rate));
    }
    let new = model.customers().into_iter().filter(|x| (a..=d).contains(&model.first_day(x))).count() as i64;
    assert_eq!(count(&m.new_customers), new, "new customers, {at}");
    assert_eq!(count(&m.dau), model.count_active(d, d));
    assert_eq!(count(&m.wau), model.count_active(d - Duration::days(6), d));
    assert_eq!(count(&m.mau), model.count_active(d - Duration::days(29), d));
    let cohorts: Vec<(String, i64, Vec<i64>)> =
        m.cohorts.iter().map(|x| (x.month.clone(), x.size, x.active.clone())).collect();
    assert_eq!(cohorts, model.cohorts(d), "cohorts as of {d}");
}

async fn numbers_at_a_past_as_of_hold_with_a_short_threshold_across_a_dst_change(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let now = la(11, 20, 10, 0);
    set_clock(&app, utc(2026, 9, 30, 12, 0));
    configure(
        &mut c,
        pb::ScoringConfig {
            time_zone: "America/Los_Angeles".into(),
            inactivity_days: T as i32,
            half_life_days: HALF_LIFE,
            action_weights: WEIGHTS.iter().map(|(k, w)| (k.to_string(), *w)).collect(),
            profit_margin: MARGIN,
            ..Default::default()
        },
        &["time_zone", "inactivity_days", "half_life_days", "action_weights", "profit_margin"],
    )
    .await;
    // Recorded as it happens: three batches, each at most 21 days after its first event.
    let mut model = Model { events: dataset() };
    model.events.sort_by_key(|e| e.at);
    for (from, clock) in
        [(utc(2026, 9, 1, 0, 0), utc(2026, 10, 21, 0, 0)), (utc(2026, 10, 21, 0, 0), utc(2026, 11, 11, 0, 0))]
            .into_iter()
            .chain([(utc(2026, 11, 11, 0, 0), now)])
    {
        set_clock(&app, clock);
        let batch: Vec<pb::ActivityEvent> = model
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.at >= from && e.at < clock)
            .map(|(i, e)| to_pb(e, format!("{}-{i}", e.who)))
            .collect();
        record_ok(&mut c, batch).await;
    }

    // Eight days back, late in the evening of Nov 12 (already Nov 13 in UTC); and the
    // evening of the DST day itself (already Nov 2 in UTC).
    let nov12 = la(11, 12, 21, 30);
    let nov1 = utc(2026, 11, 2, 7, 45); // 23:45 PST
    assert_eq!((local_day(nov12), local_day(nov1)), (date(11, 12), date(11, 1)));

    // By hand, the 30 days to Nov 12 (Oct 14–Nov 12; the start: active Oct 7–13):
    // at the start zed, amy, cat, dan, hal (5). Churn days in the window: zed and amy
    // Oct 15, Oct 27, Nov 9; bob Nov 1 (DST day) and Nov 12; dan Oct 19; gus Nov 8; ivy
    // Nov 10 — 11 episodes of 6 customers, 3 of whom were there at the start: churn
    // rate 3 / 5 (the episodes over the start would say 220 %). Cohorts: October has
    // 8 customers, 6 of them active in November by the 12th (dan comes back on the
    // 16th); November has ivy only (eve arrives on the 14th).
    let (episodes, churned, from_start, at_start) = model.churn(date(11, 12), 30);
    assert_eq!((episodes, churned, from_start, at_start), (11, 6, 3, 5));
    let m = metrics(&mut c, 30, Some(nov12)).await;
    assert_eq!((count(&m.churn_episodes), count(&m.churned_customers)), (11, 6));
    close(val(&m.churn_rate), 0.6);
    let oct = m.cohorts.iter().find(|x| x.month == "2026-10").unwrap();
    assert_eq!((oct.size, oct.active.clone()), (8, vec![8, 6]));
    let nov = m.cohorts.iter().find(|x| x.month == "2026-11").unwrap();
    assert_eq!((nov.size, nov.active.clone()), (1, vec![1]));

    // Everything, against the model, at both past dates and now; with a window longer
    // than the threshold (counted per customer) and one as long (from the histogram).
    for (as_of, d) in [(Some(nov1), date(11, 1)), (Some(nov12), date(11, 12)), (None, date(11, 20))] {
        for w in [30, 7, 10] {
            check_metrics(&mut c, &model, as_of, d, w).await;
        }
        check_score_ranking(&mut c, &model, as_of, d).await;
        // The expected lifetime and CLV use the churn rate of the 30 days to as_of.
        let p = profile(&mut c, "cat", as_of).await;
        let v = p.value.as_ref().unwrap();
        close(val(&v.expected_lifetime_months), model.lifetime(d));
        close(val(&v.predicted_clv), model.clv("cat", d));
    }
    // By hand: on Nov 12 the rate is 3 / 5, a lifetime of 5 / 3 months; on the DST day
    // (Oct 3–Nov 1, the start Sep 26–Oct 2: fay only, who churned on Oct 8) it is 1.
    close(model.lifetime(date(11, 12)), 5.0 / 3.0);
    close(model.lifetime(date(11, 1)), 1.0);

    // Ranking by an action's count: ties in id order, with the count as an integer.
    let req = pb::ListTopCustomersRequest {
        ranking: Some(pb::list_top_customers_request::Ranking::Action("post".into())),
        window_days: 30,
        as_of: Some(pts(nov12)),
        ..Default::default()
    };
    let pages = all_pages(&mut c, req, 2).await;
    let got: Vec<(String, i64, i64)> = pages
        .iter()
        .flat_map(|p| p.customers.iter().map(|x| (x.customer_id.clone(), x.rank, x.count.expect("a count"))))
        .collect();
    let (a, d) = (date(10, 14), date(11, 12));
    let mut want: Vec<(&str, i64)> = model
        .customers()
        .into_iter()
        .map(|w| {
            let n = model.events.iter().filter(|e| e.who == w && matches!(e.kind, K::Post)).filter(|e| {
                let x = local_day(e.at);
                x >= a && x <= d
            });
            (w, n.count() as i64)
        })
        .filter(|x| x.1 > 0)
        .collect();
    want.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    let want: Vec<(String, i64, i64)> =
        want.iter().enumerate().map(|(i, (w, n))| (w.to_string(), i as i64 + 1, *n)).collect();
    assert_eq!(got, want);
    assert!(pages.iter().all(|p| p.window_days == 30 && p.start_date == "2026-10-14" && p.end_date == "2026-11-12"));

    // An event 22 hours ahead (tomorrow, Nov 21, in Los Angeles) is not in today's
    // scores, nor in the ranking "now".
    let ahead = ev("eve", la(11, 21, 8, 0), K::Post);
    record_ok(&mut c, vec![to_pb(&ahead, "eve-ahead".into())]).await;
    model.events.push(ahead);
    check_score_ranking(&mut c, &model, None, date(11, 20)).await;
    check_metrics(&mut c, &model, None, date(11, 20), 30).await;
    // And a past as_of still ranks on the scores of its day.
    check_score_ranking(&mut c, &model, Some(nov12), date(11, 12)).await;
}

async fn equal_values_rank_in_customer_id_order_and_ranks_are_row_numbers(b: Backend) {
    let app = spawn_app(b).await;
    let mut c = engagement(&app, None);
    let now = utc(2026, 6, 30, 12, 0);
    set_clock(&app, now);
    configure(&mut c, weights(&[("post", 1.0)]), &["action_weights"]).await;
    // Five customers with one post each today, created in reverse id order, and one
    // with two: scores 2, 1, 1, 1, 1, 1.
    let ids = ["e5", "d4", "c3", "b2", "a1"];
    for (i, id) in ids.iter().enumerate() {
        record_ok(&mut c, vec![action(&format!("m{i}"), id, now, "post", &[])]).await;
    }
    record_ok(&mut c, vec![action("top1", "zz", now, "post", &[]), action("top2", "zz", now, "post", &[])]).await;
    let want = ["zz", "a1", "b2", "c3", "d4", "e5"];
    for (ranking, value) in [
        (pb::list_top_customers_request::Ranking::EngagementScore(true), None),
        (pb::list_top_customers_request::Ranking::Action("post".into()), Some(1)),
    ] {
        let req = pb::ListTopCustomersRequest { ranking: Some(ranking), window_days: 7, ..Default::default() };
        let pages = all_pages(&mut c, req.clone(), 2).await;
        let got: Vec<(i64, String)> =
            pages.iter().flat_map(|p| p.customers.iter().map(|x| (x.rank, x.customer_id.clone()))).collect();
        let expect: Vec<(i64, String)> = want.iter().enumerate().map(|(i, w)| (i as i64 + 1, w.to_string())).collect();
        assert_eq!(got, expect, "descending, ties A→Z, ranks 1…6 (row numbers, not 1, 2, 2, …)");
        if let Some(n) = value {
            assert!(pages.iter().flat_map(|p| &p.customers).skip(1).all(|x| x.count == Some(n)));
        }
        // Ascending: ties still A→Z.
        let asc = pb::ListTopCustomersRequest { order: pb::RankOrder::Ascending as i32, ..req };
        let pages = all_pages(&mut c, asc, 4).await;
        let got: Vec<String> = pages.iter().flat_map(|p| p.customers.iter().map(|x| x.customer_id.clone())).collect();
        assert_eq!(got, vec!["a1", "b2", "c3", "d4", "e5", "zz"]);
    }
}
