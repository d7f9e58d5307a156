//! Recording, changing and reading responses (docs/api.md, "Idempotency"). A low score opens its
//! follow-up in the same transaction (docs/api.md, "Follow-ups").

use super::invitations::IssueError;
use super::{Services, require_reader, require_secret};
use std::collections::{BTreeMap, HashMap};

use tokio::sync::oneshot;
use tracing::Instrument as _;

use super::batch::BatchQueue;
use crate::domain::events::{self as event_data, EventType};
use crate::domain::listing::{PageRequest, ResponseFilter};
use crate::domain::model::{Page, Principal, Properties, Response, Survey};
use crate::domain::stored::{InvitationRecord, NewFollowUp, NewResponse, StoredResponse};
use crate::domain::time::Timestamp;
use crate::domain::{
    CustomerRef, CustomerRowId, FollowUpId, InvitationId, ResponseId, Scale, Score, SurveyId, TenantId, input, secrets,
};
use crate::error::{AppError, Result};
use crate::store::{self, StoreError, customers, events, follow_ups, invitations, responses, surveys};

/// How long after recording a score may still change.
pub const SCORE_CHANGE_WINDOW_HOURS: i64 = 24;

/// Whom a response answers.
#[derive(Debug, Clone)]
pub enum Target {
    /// An invitation, by its token.
    Token(String),
    /// A direct answer by a secret-key caller.
    Direct { principal: Principal, survey: SurveyId, customer: CustomerRef },
}

/// A `RecordResponse` request, parsed (the score is checked against the survey's
/// scale once the survey is known).
#[derive(Debug, Clone)]
pub struct RecordRequest {
    pub target: Target,
    pub score: Option<i32>,
    pub comment: String,
    pub properties: Properties,
    pub idempotency_key: Option<String>,
}

/// An `UpdateResponse` request, parsed.
#[derive(Debug, Clone)]
pub enum ResponseRef {
    Id { principal: Principal, id: ResponseId },
    Token(String),
}

#[derive(Debug, Clone, Default)]
pub struct ResponseChange {
    pub score: Option<i32>,
    pub comment: Option<String>,
    pub properties: Properties,
}

impl RecordRequest {
    fn fingerprint(&self) -> String {
        let target = match &self.target {
            Target::Token(t) => secrets::hash(t),
            Target::Direct { survey, customer, .. } => format!("{survey}/{}", customer.as_str()),
        };
        let score = self.score.map(|s| s.to_string()).unwrap_or_default();
        secrets::fingerprint(&[&target, &score, &self.comment, &input::canonical(&self.properties)])
    }
}

/// One `RecordResponse` waiting in [`Services::records`] for its batch.
#[derive(Debug)]
pub struct PendingRecord {
    tenant: TenantId,
    req: RecordRequest,
    fingerprint: String,
    /// The caller's span: the batch's database work shows up in the caller's trace.
    span: tracing::Span,
    reply: oneshot::Sender<Result<Response, IssueError>>,
}

/// Most answers written in one transaction.
pub const MAX_RECORD_BATCH: usize = 128;

/// Batches written at once, per process. One: while it writes, the next calls gather
/// into the next batch, so batches grow with the load and every round trip to the
/// database serves more answers. (Measured with `rapport-bench records` on PostgreSQL at c=64:
/// one writer 3 113 req/s, two 2 504, three 2 853 — more writers only split the
/// batches.) SQLite has one writer connection anyway.
const RECORD_WRITERS: usize = 1;

/// Most `RecordResponse` calls waiting for their batch, by default
/// (`RAPPORT_RECORD_QUEUE_LIMIT`): 32 full batches.
pub const DEFAULT_RECORD_QUEUE_LIMIT: usize = 32 * MAX_RECORD_BATCH;

/// The queue of [`Services::records`], holding at most `limit` waiting answers.
pub fn record_queue(limit: usize) -> BatchQueue<PendingRecord> {
    BatchQueue::new(MAX_RECORD_BATCH, RECORD_WRITERS, limit)
}

impl Services {
    /// Records a response; with an idempotency key a retry returns the first result.
    #[tracing::instrument(skip_all)]
    pub async fn record_response(&self, req: RecordRequest) -> Result<Response> {
        let tenant = match &req.target {
            // Only the tenant is needed here: the batch reads and checks the rest.
            Target::Token(token) => self.invitation_record_by_token(token).await?.tenant,
            Target::Direct { principal, .. } => {
                require_secret(principal)?;
                principal.tenant.clone()
            }
        };
        let fingerprint = req.fingerprint();
        if let Some(key) = &req.idempotency_key
            && let Some(first) = responses::by_idempotency_key(self.db.conn(), &tenant, key).await?
        {
            return Self::replay_record(first, &fingerprint);
        }
        let idempotency_key = req.idempotency_key.clone();
        let err = match self.record_batched(tenant.clone(), req, fingerprint.clone()).await {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        // An answer can lose to a concurrent attempt in two ways: its insert breaks a
        // unique constraint (same batch, or another writer), or its batch finds the
        // invitation already answered (the first attempt committed just before). Both
        // times the winner has committed: with the same idempotency key, the loser is a
        // retry and gets the winner's result (or ALREADY_EXISTS if its body differs).
        let lost_a_race = match &err {
            IssueError::Store(e) => matches!(e, StoreError::Unique { .. }),
            IssueError::App(AppError::AlreadyExists(_)) => true,
            IssueError::App(_) => false,
        };
        if lost_a_race
            && let Some(key) = &idempotency_key
            && let Some(first) = responses::by_idempotency_key(self.db.conn(), &tenant, key).await?
        {
            return Self::replay_record(first, &fingerprint);
        }
        match err {
            // The invitation was answered meanwhile: the constraint decided, not a prior check.
            IssueError::Store(StoreError::Unique { .. }) => Err(already_answered()),
            IssueError::Store(e) => Err(e.into()),
            IssueError::App(e) => Err(e),
        }
    }

    fn replay_record(first: StoredResponse, fingerprint: &str) -> Result<Response> {
        if first.fingerprint.as_deref() != Some(fingerprint) {
            return Err(AppError::AlreadyExists(
                "idempotency_key was already used for a different RecordResponse request".into(),
            ));
        }
        Ok(first.response)
    }

    /// Queues the answer for the next batch (group commit, see [`super::batch`]) and
    /// waits until its transaction has committed.
    async fn record_batched(
        &self,
        tenant: TenantId,
        req: RecordRequest,
        fingerprint: String,
    ) -> Result<Response, IssueError> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let job = PendingRecord { tenant, req, fingerprint, span, reply };
        self.enqueue(&self.records, job, "answers waiting to be written", |svc, batch| async move {
            svc.write_records(batch).await
        })?;
        answer.await.unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("the response writer stopped")).into()))
    }

    /// Writes one batch and answers each caller. When the batch fails for another
    /// reason than an unreachable database — an answer broke a unique constraint (a
    /// retry racing its first attempt, a second answer to one invitation), or two
    /// batches deadlocked — the transaction has rolled back and each answer is written
    /// again on its own, so only the offending one fails.
    async fn write_records(&self, jobs: Vec<PendingRecord>) {
        // The batch's span is a child of the first caller's and linked from the others';
        // it closes before any caller hears back.
        let span = tracing::info_span!(parent: &jobs[0].span, "write_responses", batch.size = jobs.len());
        for job in &jobs[1..] {
            span.follows_from(&job.span);
        }
        let results = self.write_batch(&jobs).instrument(span).await;
        for (job, result) in jobs.into_iter().zip(results) {
            // A caller that gave up (cancelled) no longer listens; its answer stands.
            let _ = job.reply.send(result);
        }
    }

    async fn write_batch(&self, jobs: &[PendingRecord]) -> Vec<Result<Response, IssueError>> {
        let all: Vec<&PendingRecord> = jobs.iter().collect();
        match self.record_many(&all).await {
            Ok(results) => results.into_iter().map(|r| r.map_err(IssueError::App)).collect(),
            Err(e) if jobs.len() == 1 => vec![Err(e)],
            // Connection trouble: writing the answers one by one would only wait longer.
            Err(IssueError::Store(e)) if e.is_transient() => jobs.iter().map(|_| Err(e.clone().into())).collect(),
            Err(IssueError::App(AppError::Unavailable(m))) => {
                jobs.iter().map(|_| Err(AppError::Unavailable(m.clone()).into())).collect()
            }
            Err(e) => {
                tracing::debug!(error = ?e, "a batch of answers failed; writing them one by one");
                let mut results = Vec::with_capacity(jobs.len());
                for job in jobs {
                    results.push(match self.record_many(&[job]).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| Err(writer_lost())).map_err(IssueError::App),
                        Err(e) => Err(e),
                    });
                }
                results
            }
        }
    }

    /// Records answers in one transaction: everything is read and checked before the
    /// first write, an answer that fails a check gets its own error and writes
    /// nothing, and the others are written with one statement per table.
    async fn record_many(&self, jobs: &[&PendingRecord]) -> Result<Vec<Result<Response>>, IssueError> {
        let now = self.clock.now();
        if let Some(outcomes) = self.record_direct(jobs, now).await? {
            return Ok(self.written(jobs.len(), outcomes));
        }
        // Each step within the batch timeout: a stalled connection fails this batch
        // with UNAVAILABLE instead of holding every answer of the process.
        let db = &self.db;
        let txn = db.begin_batch().await?;
        let targets = db.batch_step("reads", answering(&txn, jobs, now)).await?;
        let Checked { surveys, answers } = db.batch_step("checks", check(&txn, jobs, targets)).await?;
        let customers = db.batch_step("customer upserts", customers_of(&txn, jobs, &answers, now)).await?;
        let outcomes: Vec<Result<Recorded>> = jobs
            .iter()
            .zip(answers)
            .map(|(job, a)| {
                let a = a?;
                let customer = customers.get(&(job.tenant.clone(), a.target.customer.clone())).ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("customer of {:?} vanished", a.target.customer))
                })?;
                plan(job, &a.target, &surveys[&a.survey], a.score, customer, now)
            })
            .collect();
        if outcomes.iter().all(|o| o.is_err()) {
            return Ok(outcomes.into_iter().map(|o| o.map(|r| r.response)).collect());
        }
        db.batch_step("writes", write(&txn, jobs, &outcomes, now)).await?;
        db.batch_step("commit", txn.commit()).await?;
        Ok(self.written(jobs.len(), outcomes))
    }

    /// PostgreSQL, direct answers of one tenant (a lone answer, and most batches): the
    /// batch in two round trips instead of five, and no transaction around them. The
    /// surveys and the customers that exist are read at once on the two batch
    /// connections ([`store::Db::batcher`]);
    /// then customers new to rapport, responses, follow-ups and events are one
    /// statement, atomic on its own (`store::answers::write`). `None` when the batch
    /// is not of that kind, or when that statement fails for anything but an
    /// unreachable database — a customer created or erased between the read and the
    /// write, a unique key taken: nothing of it was written, and [`Self::record_many`]
    /// does the batch again in a transaction, where each case gets its own answer.
    async fn record_direct(
        &self,
        jobs: &[&PendingRecord],
        now: Timestamp,
    ) -> Result<Option<Vec<Result<Recorded>>>, IssueError> {
        let db = &self.db;
        let Some(tenant) = jobs.first().map(|j| &j.tenant) else { return Ok(None) };
        if !db.is_postgres() || jobs.iter().any(|j| &j.tenant != tenant) {
            return Ok(None);
        }
        let mut targets = Vec::with_capacity(jobs.len());
        let mut who: Vec<&CustomerRef> = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Target::Direct { survey, customer, .. } = &job.req.target else { return Ok(None) };
            let customer_ref = Who::External(customer.clone());
            targets.push(Ok(Answering { survey: survey.clone(), customer: customer_ref, invitation: None }));
            who.push(customer);
        }
        let mut externals: Vec<String> = who.iter().map(|c| c.as_str().to_owned()).collect();
        externals.sort_unstable();
        externals.dedup();
        let conn = db.batcher();
        let (checked, existing) = db
            .batch_step("reads", async {
                tokio::try_join!(check(conn, jobs, targets), async {
                    customers::by_externals(conn, tenant, externals).await.map_err(AppError::from)
                })
            })
            .await?;
        let Checked { surveys, answers } = checked;
        let existing: HashMap<&str, &customers::Customer> = existing.iter().map(|c| (c.external.as_str(), c)).collect();
        // Customers new to rapport, for answers that passed their checks only, in
        // CRM-id order (concurrent batches take their locks in one order).
        let mut new_customers: BTreeMap<&str, customers::NewCustomer> = BTreeMap::new();
        for (external, a) in who.iter().zip(&answers) {
            if a.is_ok() && !existing.contains_key(external.as_str()) {
                new_customers.entry(external.as_str()).or_insert_with(|| customers::NewCustomer::of(tenant, external));
            }
        }
        let fresh: HashMap<&str, customers::Customer> =
            new_customers.iter().map(|(external, new)| (*external, new.customer())).collect();
        let outcomes: Vec<Result<Recorded>> = jobs
            .iter()
            .zip(answers)
            .zip(&who)
            .map(|((job, a), external)| {
                let a = a?;
                let customer = existing.get(external.as_str()).copied().or_else(|| fresh.get(external.as_str()));
                let customer = customer.ok_or_else(|| {
                    AppError::Internal(anyhow::anyhow!("customer {:?} of a direct answer vanished", external.as_str()))
                })?;
                plan(job, &a.target, &surveys[&a.survey], a.score, customer, now)
            })
            .collect();
        if outcomes.iter().all(|o| o.is_err()) {
            return Ok(Some(outcomes));
        }
        let new_customers: Vec<customers::NewCustomer> = new_customers.into_values().collect();
        let rows = BatchRows::of(jobs, &outcomes);
        let [(_, events)] = &rows.events.iter().collect::<Vec<_>>()[..] else { return Ok(None) };
        let new: Vec<&NewResponse> = rows.new.iter().map(|(_, r)| *r).collect();
        let opened = rows.opened.get(tenant).map_or(&[][..], Vec::as_slice);
        let written = db.batch_step(
            "writes",
            store::answers::write(db.batcher(), tenant, &new_customers, &new, opened, events, now),
        );
        match written.await {
            Ok(Some(_)) => Ok(Some(outcomes)),
            Ok(None) => Ok(None),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                tracing::debug!(error = ?e, "a batch of direct answers failed as one statement; writing it in a transaction");
                Ok(None)
            }
        }
    }

    /// Counts a committed batch and tells the event fan-out; the callers' answers.
    fn written(&self, jobs: usize, outcomes: Vec<Result<Recorded>>) -> Vec<Result<Response>> {
        if outcomes.iter().any(|o| o.is_ok()) {
            self.bus.outbox_written();
            self.metrics.response_batch_written(jobs);
        }
        for r in outcomes.iter().flatten() {
            self.metrics.response_recorded(r.response.scale.kind, r.response.bucket, r.opened.is_some());
        }
        outcomes.into_iter().map(|o| o.map(|r| r.response)).collect()
    }

    /// Changes a response's comment and properties, and its score within 24 hours. A
    /// changed score is noted on the response's follow-up, or opens one if it is low.
    #[tracing::instrument(skip_all)]
    pub async fn update_response(&self, target: ResponseRef, change: ResponseChange) -> Result<Response> {
        let now = self.clock.now();
        let (tenant, id) = self.response_to_change(target).await?;
        let comment = change.comment.as_deref().map(input::comment).transpose()?;
        let txn = self.db.begin_write().await?;
        let before = responses::get(&txn, &tenant, &id).await?;
        let survey = surveys::get(&txn, &tenant, &before.survey_id).await?;
        let mut response = changed(&before, survey.scale, change.score, comment, &change.properties, now)?;
        responses::save(&txn, &tenant, &response).await?;
        let follow_up = follow_up_after_change(&txn, &tenant, &survey, before.score, &mut response, now).await?;
        announce_change(&txn, &tenant, &response, &follow_up, now).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        if follow_up == AfterChange::Opened {
            self.metrics.follow_up_opened(survey.scale.kind);
        }
        Ok(response)
    }

    /// The tenant and id of the response an `UpdateResponse` names: by id with a secret
    /// key, or as the answer to an invitation by its token.
    async fn response_to_change(&self, target: ResponseRef) -> Result<(TenantId, ResponseId)> {
        match target {
            ResponseRef::Id { principal, id } => {
                require_secret(&principal)?;
                Ok((principal.tenant, id))
            }
            ResponseRef::Token(token) => {
                let inv = self.invitation_by_token(&token).await?;
                let id = inv
                    .invitation
                    .response_id
                    .ok_or_else(|| AppError::FailedPrecondition("the invitation has no response yet".into()))?;
                Ok((inv.tenant, id))
            }
        }
    }

    pub async fn get_response(&self, p: &Principal, id: &ResponseId) -> Result<Response> {
        require_reader(p)?;
        Ok(responses::get(self.db.conn(), &p.tenant, id).await?)
    }

    pub async fn list_responses(
        &self,
        p: &Principal,
        mut filter: ResponseFilter,
        customer: Option<CustomerRef>,
        page: PageRequest,
    ) -> Result<Page<Response>> {
        require_reader(p)?;
        if let Some(c) = customer {
            match customers::find(self.db.conn(), &p.tenant, &c).await? {
                Some(c) => filter.customer_row = Some(c.id.0),
                None => return Ok(Page { items: Vec::new(), next_page_token: String::new() }),
            }
        }
        Ok(responses::list(self.db.conn(), &p.tenant, &filter, &page).await?)
    }
}

/// `before` with `change` applied at `now`: a new score only within
/// [`SCORE_CHANGE_WINDOW_HOURS`] of recording and on the survey's scale, the comment if
/// one is given, the properties laid over the old ones.
fn changed(
    before: &Response,
    scale: Scale,
    score: Option<i32>,
    comment: Option<String>,
    properties: &Properties,
    now: Timestamp,
) -> Result<Response> {
    let mut r = before.clone();
    if let Some(raw) = score
        && raw != before.score
    {
        if now - before.recorded_at > chrono::Duration::hours(SCORE_CHANGE_WINDOW_HOURS) {
            return Err(AppError::FailedPrecondition(format!(
                "the score can only change within {SCORE_CHANGE_WINDOW_HOURS} hours of recording"
            )));
        }
        let score = Score::parse(scale, Some(raw))?;
        r.score = score.value;
        r.bucket = score.bucket;
    }
    if let Some(c) = comment {
        r.comment = c;
    }
    r.properties = input::merge(&before.properties, properties);
    r.updated_at = now;
    Ok(r)
}

/// What a changed response did to its follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterChange {
    /// It has one, which shows the latest answer: receivers hear of the change.
    Updated(FollowUpId),
    /// Its new, low score opened one.
    Opened,
    /// It has none and opened none.
    Nothing,
}

/// The follow-up side of a change: an existing follow-up notes a new score and whether
/// it is still at or under the threshold; without one, a new score that would have
/// opened one opens it now (with its `follow_up.opened` event). Sets the response's
/// follow-up id.
async fn follow_up_after_change(
    txn: &store::Tx,
    tenant: &TenantId,
    survey: &Survey,
    old_score: i32,
    response: &mut Response,
    now: Timestamp,
) -> Result<AfterChange> {
    if let Some(id) = response.follow_up_id.clone() {
        if response.score != old_score {
            let mut state = follow_ups::state(txn, tenant, &id).await?;
            let under = survey.follow_up.at_or_under(survey.scale, response.score);
            let mut body = format!("score changed from {old_score} to {}", response.score);
            if !under {
                body.push_str("; now above the follow-up threshold");
            }
            state.at_or_under_threshold = under;
            state.updated_at = now;
            super::follow_ups::system_entry(txn, tenant, &id, body, now).await?;
            follow_ups::save_state(txn, tenant, &id, &state).await?;
        }
        return Ok(AfterChange::Updated(id));
    }
    let customer = customers::get(txn, tenant, &response.customer).await?;
    let mut props = customer.properties;
    props.extend(response.properties.clone());
    if response.score == old_score || !survey.follow_up.opens(survey.scale, response.score, &props) {
        return Ok(AfterChange::Nothing);
    }
    let opened = NewFollowUp::opened_by(survey, &response.id, &customer.id, response.score, now);
    follow_ups::insert_opened(txn, tenant, std::slice::from_ref(&opened)).await?;
    response.follow_up_id = Some(opened.id.clone());
    let f = opened.follow_up(response.clone());
    events::append(txn, tenant, EventType::FollowUpOpened.as_str(), &event_data::follow_up_data(&f), now).await?;
    Ok(AfterChange::Opened)
}

/// Appends `response.updated`, and `follow_up.updated` for a follow-up that was there.
async fn announce_change(
    txn: &store::Tx,
    tenant: &TenantId,
    response: &Response,
    follow_up: &AfterChange,
    now: Timestamp,
) -> Result<()> {
    events::append(txn, tenant, EventType::ResponseUpdated.as_str(), &event_data::response_data(response), now).await?;
    if let AfterChange::Updated(id) = follow_up {
        let f = follow_ups::get(txn, tenant, id).await?;
        events::append(txn, tenant, EventType::FollowUpUpdated.as_str(), &event_data::follow_up_data(&f), now).await?;
    }
    Ok(())
}

/// Whose answer it is, as the batch looks customers up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    /// An invitation's customer, by rapport's row id.
    Row(CustomerRowId),
    /// A direct answer's customer, by the CRM's id (created on first use).
    External(CustomerRef),
}

/// The survey, customer and invitation an answer is for.
#[derive(Debug)]
struct Answering {
    survey: SurveyId,
    customer: Who,
    invitation: Option<InvitationId>,
}

impl Answering {
    /// An invitation's target, if it can still be answered.
    fn invitation(record: &InvitationRecord, now: Timestamp) -> Result<Self> {
        if record.response_id.is_some() {
            return Err(already_answered());
        }
        if record.expires_at.is_some_and(|e| now >= e) {
            return Err(AppError::FailedPrecondition("the invitation has expired".into()));
        }
        Ok(Answering {
            survey: record.survey_id.clone(),
            customer: Who::Row(record.customer.clone()),
            invitation: Some(record.id.clone()),
        })
    }
}

/// What one checked answer writes.
struct Recorded {
    new: NewResponse,
    /// As the caller and the events see it.
    response: Response,
    opened: Option<NewFollowUp>,
}

/// The response of a checked answer, and the follow-up a low score opens; an erased
/// customer answers nothing (FAILED_PRECONDITION).
fn plan(
    job: &PendingRecord,
    target: &Answering,
    survey: &Survey,
    score: Score,
    customer: &customers::Customer,
    now: Timestamp,
) -> Result<Recorded> {
    if customer.erased_at.is_some() {
        return Err(AppError::FailedPrecondition("the customer has been erased".into()));
    }
    let req = &job.req;
    let new = NewResponse {
        id: ResponseId::generate(),
        survey_id: survey.id.clone(),
        customer: customer.id.clone(),
        invitation_id: target.invitation.clone(),
        scale: survey.scale,
        score,
        comment: req.comment.clone(),
        properties: req.properties.clone(),
        idempotency_key: req.idempotency_key.clone(),
        fingerprint: job.fingerprint.clone(),
        recorded_at: now,
    };
    let mut props = customer.properties.clone();
    props.extend(req.properties.clone());
    let opened = survey
        .follow_up
        .opens(survey.scale, score.value, &props)
        .then(|| NewFollowUp::opened_by(survey, &new.id, &new.customer, score.value, now));
    let response = new.response(customer.external.clone(), opened.as_ref().map(|o| o.id.clone()));
    Ok(Recorded { new, response, opened })
}

/// Whom each answer is for: an invitation's survey and customer (the invitation must
/// still be open), or the caller's direct target.
async fn answering(txn: &store::Tx, jobs: &[&PendingRecord], now: Timestamp) -> Result<Vec<Result<Answering>>> {
    let token_hashes: Vec<Option<String>> = jobs
        .iter()
        .map(|j| match &j.req.target {
            Target::Token(t) => Some(secrets::hash(t)),
            Target::Direct { .. } => None,
        })
        .collect();
    let hashes: Vec<&str> = token_hashes.iter().flatten().map(String::as_str).collect();
    let invitations: HashMap<String, InvitationRecord> = invitations::by_token_hashes(txn, &hashes)
        .await?
        .into_iter()
        .filter_map(|record| record.token_hash.clone().map(|h| (h, record)))
        .collect();
    Ok(jobs
        .iter()
        .zip(&token_hashes)
        .map(|(job, hash)| match &job.req.target {
            Target::Direct { survey, customer, .. } => {
                Ok(Answering { survey: survey.clone(), customer: Who::External(customer.clone()), invitation: None })
            }
            Target::Token(_) => hash
                .as_ref()
                .and_then(|h| invitations.get(h))
                .filter(|record| record.tenant == job.tenant)
                .ok_or_else(|| AppError::NotFound("invitation (unknown token)".into()))
                .and_then(|record| Answering::invitation(record, now)),
        })
        .collect())
}

/// The surveys of a batch and each answer checked against its survey.
struct Checked {
    surveys: HashMap<(TenantId, SurveyId), Survey>,
    answers: Vec<Result<Passed>>,
}

/// An answer that passed its checks.
struct Passed {
    target: Answering,
    /// Its survey's key in [`Checked::surveys`].
    survey: (TenantId, SurveyId),
    score: Score,
}

/// Loads the surveys (one query per tenant) and checks each answer: the survey exists
/// and, for a direct answer, is not archived; the score fits its scale.
async fn check(conn: &impl store::Conn, jobs: &[&PendingRecord], targets: Vec<Result<Answering>>) -> Result<Checked> {
    let mut ids: HashMap<&TenantId, Vec<&str>> = HashMap::new();
    for (job, t) in jobs.iter().zip(&targets) {
        if let Ok(t) = t {
            ids.entry(&job.tenant).or_default().push(t.survey.as_str());
        }
    }
    let mut surveys = HashMap::new();
    for (tenant, mut ids) in ids {
        // Most answers of a batch are to a few surveys: each is asked for once.
        ids.sort_unstable();
        ids.dedup();
        for s in surveys::get_many(conn, tenant, &ids).await? {
            surveys.insert((tenant.clone(), s.id.clone()), s);
        }
    }
    let answers = jobs
        .iter()
        .zip(targets)
        .map(|(job, t)| {
            let t = t?;
            let key = (job.tenant.clone(), t.survey.clone());
            let survey = surveys.get(&key).ok_or_else(|| AppError::NotFound(format!("survey {}", t.survey)))?;
            if t.invitation.is_none() && survey.archived_at.is_some() {
                return Err(AppError::FailedPrecondition(format!("survey {} is archived", survey.id)));
            }
            let score = Score::parse(survey.scale, job.req.score)?;
            Ok(Passed { target: t, survey: key, score })
        })
        .collect();
    Ok(Checked { surveys, answers })
}

/// The customers of the answers that passed their checks, a direct answer's created on
/// first use (in CRM-id order, so concurrent batches take their locks in one order).
async fn customers_of(
    txn: &store::Tx,
    jobs: &[&PendingRecord],
    answers: &[Result<Passed>],
    now: Timestamp,
) -> Result<HashMap<(TenantId, Who), customers::Customer>> {
    let mut by_row: HashMap<&TenantId, Vec<&str>> = HashMap::new();
    let mut by_external: HashMap<&TenantId, Vec<&CustomerRef>> = HashMap::new();
    for (job, a) in jobs.iter().zip(answers) {
        match a.as_ref().map(|a| &a.target.customer) {
            Ok(Who::Row(id)) => by_row.entry(&job.tenant).or_default().push(id.as_str()),
            Ok(Who::External(ext)) => by_external.entry(&job.tenant).or_default().push(ext),
            Err(_) => {}
        }
    }
    let mut found = HashMap::new();
    for (tenant, mut ids) in by_row {
        ids.sort_unstable();
        ids.dedup();
        for c in customers::by_row_ids(txn, tenant, &ids).await? {
            found.insert((tenant.clone(), Who::Row(c.id.clone())), c);
        }
    }
    for (tenant, mut externals) in by_external {
        externals.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        externals.dedup();
        for c in customers::ensure_many(txn, tenant, &externals, now).await? {
            found.insert((tenant.clone(), Who::External(c.external.clone())), c);
        }
    }
    Ok(found)
}

/// What a batch's recorded answers write, by table and tenant.
struct BatchRows<'a> {
    new: Vec<(&'a TenantId, &'a NewResponse)>,
    opened: HashMap<&'a TenantId, Vec<NewFollowUp>>,
    /// Tenants in order: appending events locks each tenant's row (store::events), and
    /// a fixed order keeps a batch of several tenants from deadlocking with another writer.
    events: BTreeMap<&'a TenantId, Vec<(&'static str, serde_json::Value)>>,
    answered: Vec<(&'a TenantId, &'a InvitationId, &'a ResponseId)>,
}

impl<'a> BatchRows<'a> {
    fn of(jobs: &'a [&'a PendingRecord], outcomes: &'a [Result<Recorded>]) -> Self {
        let mut rows =
            BatchRows { new: Vec::new(), opened: HashMap::new(), events: BTreeMap::new(), answered: Vec::new() };
        for (job, o) in jobs.iter().zip(outcomes) {
            let Ok(r) = o else { continue };
            rows.new.push((&job.tenant, &r.new));
            let tenant_events = rows.events.entry(&job.tenant).or_default();
            tenant_events.push((EventType::ResponseRecorded.as_str(), event_data::response_data(&r.response)));
            if let Some(f) = &r.opened {
                let shown = f.follow_up(r.response.clone());
                tenant_events.push((EventType::FollowUpOpened.as_str(), event_data::follow_up_data(&shown)));
                rows.opened.entry(&job.tenant).or_default().push(f.clone());
            }
            if let Some(inv) = &r.response.invitation_id {
                rows.answered.push((&job.tenant, inv, &r.response.id));
            }
        }
        rows
    }
}

/// Writes the recorded answers: responses, invitations answered, follow-ups with their
/// first history lines, and the outbox events, one statement per table and tenant.
async fn write(
    txn: &store::Tx,
    jobs: &[&PendingRecord],
    outcomes: &[Result<Recorded>],
    now: Timestamp,
) -> Result<(), StoreError> {
    let BatchRows { new, opened, events, answered } = BatchRows::of(jobs, outcomes);
    invitations::mark_answered(txn, &answered, now).await?;
    // One tenant (a lone answer, and most batches): on PostgreSQL every table in one
    // statement. Several tenants: table by table, each tenant's counter in order.
    if let [(tenant, tenant_events)] = events.iter().collect::<Vec<_>>()[..] {
        let rows: Vec<&NewResponse> = new.iter().map(|(_, r)| *r).collect();
        let opened = opened.get(tenant).map_or(&[][..], Vec::as_slice);
        if store::answers::write(txn, tenant, &[], &rows, opened, tenant_events, now).await?.is_some() {
            return Ok(());
        }
    }
    responses::insert_many(txn, &new).await?;
    for (tenant, opened) in &opened {
        follow_ups::insert_opened(txn, tenant, opened).await?;
    }
    for (tenant, events) in &events {
        events::append_all(txn, tenant, events, now).await?;
    }
    Ok(())
}

fn writer_lost() -> AppError {
    AppError::Internal(anyhow::anyhow!("the response writer returned no result"))
}

fn already_answered() -> AppError {
    AppError::AlreadyExists("the invitation already has a response; use UpdateResponse to change it".into())
}

#[cfg(test)]
mod tests {
    //! One batch written directly (no timing involved): every answer gets its own
    //! outcome, and a constraint one answer breaks does not cost the others theirs.

    use super::*;

    async fn services() -> (Services, Principal, Survey) {
        let svc = crate::service::in_memory().await;
        let key = svc.create_tenant("acme").await.expect("tenant");
        let principal = svc.authenticate(&key.secret).await.expect("the new key works");
        let survey = svc.create_survey(&principal, crate::service::nps_draft("nps")).await.expect("survey");
        (svc, principal, survey)
    }

    fn job(
        p: &Principal,
        survey: &SurveyId,
        customer: &str,
        score: Option<i32>,
        key: Option<&str>,
    ) -> (PendingRecord, oneshot::Receiver<Result<Response, IssueError>>) {
        let req = RecordRequest {
            target: Target::Direct {
                principal: p.clone(),
                survey: survey.clone(),
                customer: CustomerRef(customer.into()),
            },
            score,
            comment: String::new(),
            properties: Properties::new(),
            idempotency_key: key.map(str::to_owned),
        };
        let (reply, answer) = oneshot::channel();
        let fingerprint = req.fingerprint();
        (PendingRecord { tenant: p.tenant.clone(), req, fingerprint, span: tracing::Span::none(), reply }, answer)
    }

    #[tokio::test]
    async fn each_answer_of_a_batch_gets_its_own_outcome() {
        let (svc, p, survey) = services().await;
        let unknown = SurveyId::generate();
        let specs: Vec<(&str, &SurveyId, Option<i32>)> = vec![
            ("ada", &survey.id, Some(3)),
            ("bob", &survey.id, Some(11)),
            ("cy", &unknown, Some(9)),
            ("ada", &survey.id, Some(10)),
            ("dee", &survey.id, None),
            ("eve", &survey.id, Some(9)),
        ];
        let (jobs, answers): (Vec<_>, Vec<_>) = specs.iter().map(|(c, s, score)| job(&p, s, c, *score, None)).unzip();
        svc.write_records(jobs).await;
        let mut outcomes = Vec::new();
        for a in answers {
            outcomes.push(a.await.expect("answered"));
        }
        let ok: Vec<(String, i32, bool)> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .map(|r| (r.customer.as_str().to_owned(), r.score, r.follow_up_id.is_some()))
            .collect();
        assert_eq!(
            ok,
            vec![("ada".into(), 3, true), ("ada".into(), 10, false), ("eve".into(), 9, false)],
            "the valid answers, in order, one customer twice; only the 3 opened a follow-up"
        );
        assert!(matches!(&outcomes[1], Err(IssueError::App(AppError::InvalidArgument(v))) if v[0].field == "score"));
        assert!(matches!(&outcomes[2], Err(IssueError::App(AppError::NotFound(_)))));
        assert!(matches!(&outcomes[4], Err(IssueError::App(AppError::InvalidArgument(v))) if v[0].field == "score"));

        let page = PageRequest::parse(0, "").unwrap();
        let stored = svc.list_responses(&p, Default::default(), None, page.clone()).await.unwrap().items;
        assert_eq!(stored.len(), 3);
        for refused in ["bob", "cy", "dee"] {
            assert!(
                customers::find(svc.db.conn(), &p.tenant, &CustomerRef(refused.into())).await.unwrap().is_none(),
                "a refused answer creates no customer ({refused})"
            );
        }
    }

    #[tokio::test]
    async fn invitations_answered_in_one_batch_each_point_at_their_own_response() {
        use crate::domain::model::{Channel, IssueOutcome};
        use crate::service::invitations::IssueRequest;
        let (svc, p, survey) = services().await;
        let mut tokens = Vec::new();
        for customer in ["hal", "ivy", "jon"] {
            let req = IssueRequest {
                survey: survey.id.clone(),
                customer: CustomerRef(customer.into()),
                channel: Channel::Email,
                properties: Properties::new(),
                idempotency_key: None,
                force: false,
            };
            match svc.issue_survey(&p, req).await.expect("issued") {
                IssueOutcome::Issued { token, .. } => tokens.push(token),
                other => panic!("not issued: {other:?}"),
            }
        }
        let (jobs, answers): (Vec<_>, Vec<_>) = tokens
            .iter()
            .zip([2, 9, 5])
            .map(|(token, score)| {
                let req = RecordRequest {
                    target: Target::Token(token.clone()),
                    score: Some(score),
                    comment: String::new(),
                    properties: Properties::new(),
                    idempotency_key: None,
                };
                let (reply, answer) = oneshot::channel();
                let fingerprint = req.fingerprint();
                let span = tracing::Span::none();
                (PendingRecord { tenant: p.tenant.clone(), req, fingerprint, span, reply }, answer)
            })
            .unzip();
        svc.write_records(jobs).await;
        for (token, answer) in tokens.iter().zip(answers) {
            let recorded = answer.await.expect("answered").expect("recorded");
            let inv = svc.invitation_by_token(token).await.expect("the invitation");
            assert_eq!(inv.invitation.response_id.as_ref(), Some(&recorded.id), "{}", recorded.customer.as_str());
            assert_eq!(recorded.invitation_id.as_ref(), Some(&inv.invitation.id));
        }
    }

    #[tokio::test]
    async fn concurrent_retries_of_a_token_answer_return_the_first_result() {
        use crate::domain::model::{Channel, IssueOutcome};
        use crate::service::invitations::IssueRequest;
        let (svc, p, survey) = services().await;
        for i in 0..10 {
            let issue = IssueRequest {
                survey: survey.id.clone(),
                customer: CustomerRef(format!("c{i}")),
                channel: Channel::Email,
                properties: Properties::new(),
                idempotency_key: None,
                force: false,
            };
            let IssueOutcome::Issued { token, .. } = svc.issue_survey(&p, issue).await.expect("issued") else {
                panic!("not issued")
            };
            let req = RecordRequest {
                target: Target::Token(token),
                score: Some(5),
                comment: String::new(),
                properties: Properties::new(),
                idempotency_key: Some(format!("k-{i}")),
            };
            let (a, b) = tokio::join!(svc.record_response(req.clone()), svc.record_response(req.clone()));
            let (a, b) = (a.expect("the first"), b.expect("the retry gets the first result"));
            assert_eq!((&a.id, &a.follow_up_id), (&b.id, &b.follow_up_id));
            let other = RecordRequest { score: Some(6), ..req };
            assert!(matches!(svc.record_response(other).await, Err(AppError::AlreadyExists(_))), "another body");
        }
    }

    #[tokio::test]
    async fn a_broken_constraint_fails_only_the_answer_that_broke_it() {
        let (svc, p, survey) = services().await;
        // Two answers with one idempotency key but different scores: the batch's insert
        // breaks the unique key, the answers are written again one by one, the first
        // wins and the second is the conflicting retry it is.
        let specs = [("fay", Some(2), Some("k-1")), ("gus", Some(8), None), ("fay", Some(4), Some("k-1"))];
        let (jobs, answers): (Vec<_>, Vec<_>) =
            specs.iter().map(|(c, score, key)| job(&p, &survey.id, c, *score, *key)).unzip();
        svc.write_records(jobs).await;
        let mut outcomes = Vec::new();
        for a in answers {
            outcomes.push(a.await.expect("answered"));
        }
        assert_eq!(outcomes[0].as_ref().map(|r| r.score).ok(), Some(2));
        assert_eq!(outcomes[1].as_ref().map(|r| r.score).ok(), Some(8));
        assert!(
            matches!(&outcomes[2], Err(IssueError::Store(StoreError::Unique { .. }))),
            "the retry's own insert broke the key: {:?}",
            outcomes[2]
        );
        let page = PageRequest::parse(0, "").unwrap();
        let stored = svc.list_responses(&p, Default::default(), None, page).await.unwrap().items;
        assert_eq!(stored.iter().map(|r| r.score).collect::<Vec<_>>(), vec![8, 2], "newest first");
    }
}
