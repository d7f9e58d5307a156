//! Recording, changing and reading responses (DESIGN §5). A low score opens its
//! follow-up in the same transaction (DESIGN §6).

use super::invitations::IssueError;
use super::{Services, require_secret};
use crate::domain::FollowUpId;
use crate::domain::events::{self as event_data, EventType};
use crate::domain::model::FollowUpEntry;
use crate::domain::model::{Page, Principal, Properties, Response, Survey};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, InvitationId, ResponseId, Score, SurveyId, TenantId, input, secrets, time};
use crate::error::{AppError, Result};
use crate::store::{self, PageRequest, customers, events, follow_ups, invitations, responses, surveys};

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
        secrets::fingerprint(&[&target, &score, &self.comment, &store::props_to_json(&self.properties)])
    }
}

impl Services {
    /// Records a response; with an idempotency key a retry returns the first result.
    #[tracing::instrument(skip_all)]
    pub async fn record_response(&self, req: RecordRequest) -> Result<Response> {
        let tenant = match &req.target {
            Target::Token(token) => self.invitation_by_token(token).await?.tenant,
            Target::Direct { principal, .. } => {
                require_secret(principal)?;
                principal.tenant.clone()
            }
        };
        let fingerprint = req.fingerprint();
        if let Some(key) = &req.idempotency_key
            && let Some(first) = responses::row_by_idempotency_key(self.db.conn(), &tenant, key).await?
        {
            return self.replay_record(&tenant, first, &fingerprint).await;
        }
        match self.record_once(&tenant, &req, &fingerprint).await {
            Ok(r) => Ok(r),
            Err(IssueError::Db(e)) if store::is_unique_violation(&e) => {
                // Either a concurrent attempt with the same key won, or the invitation
                // was answered meanwhile: the constraint decided, not a prior check.
                if let Some(key) = &req.idempotency_key
                    && let Some(first) = responses::row_by_idempotency_key(self.db.conn(), &tenant, key).await?
                {
                    return self.replay_record(&tenant, first, &fingerprint).await;
                }
                Err(already_answered())
            }
            Err(IssueError::Db(e)) => Err(e.into()),
            Err(IssueError::App(e)) => Err(e),
        }
    }

    async fn replay_record(&self, tenant: &TenantId, first: responses::Row, fingerprint: &str) -> Result<Response> {
        if first.request_hash.as_deref() != Some(fingerprint) {
            return Err(AppError::AlreadyExists(
                "idempotency_key was already used for a different RecordResponse request".into(),
            ));
        }
        let mut v = responses::hydrate(self.db.conn(), tenant, vec![first]).await?;
        v.pop().ok_or_else(|| AppError::Internal(anyhow::anyhow!("response vanished")))
    }

    async fn record_once(
        &self,
        tenant: &TenantId,
        req: &RecordRequest,
        fingerprint: &str,
    ) -> Result<Response, IssueError> {
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        // Read and check everything before the first write.
        let (survey, invitation, customer_ref) = match &req.target {
            Target::Token(token) => {
                let row = invitations::by_token_hash(&txn, &secrets::hash(token))
                    .await?
                    .ok_or_else(|| AppError::NotFound("invitation (unknown token)".into()))?;
                if row.response_id.is_some() {
                    return Err(already_answered().into());
                }
                if row.expires_at.is_some_and(|e| time::to_micros(now) >= e) {
                    return Err(AppError::FailedPrecondition("the invitation has expired".into()).into());
                }
                let survey = surveys::get(&txn, tenant, &SurveyId(row.survey_id.clone())).await?;
                let customer = customers::external_id(&txn, tenant, &row.customer_id).await?;
                (survey, Some(InvitationId(row.id)), customer)
            }
            Target::Direct { survey, customer, .. } => {
                let survey = surveys::get(&txn, tenant, survey).await?;
                if survey.archived_at.is_some() {
                    return Err(AppError::FailedPrecondition(format!("survey {} is archived", survey.id)).into());
                }
                (survey, None, customer.clone())
            }
        };
        let score = Score::parse(survey.scale, req.score)?;
        let customer = customers::upsert(&txn, tenant, &customer_ref, &Properties::new(), now).await?;

        let id = ResponseId::generate();
        let row = responses::Row {
            id: id.0.clone(),
            tenant_id: tenant.0.clone(),
            survey_id: survey.id.0.clone(),
            customer_id: customer.id.0.clone(),
            invitation_id: invitation.as_ref().map(|i| i.0.clone()),
            kind: survey.scale.kind.as_str().into(),
            score: score.value,
            bucket: score.bucket.as_str().into(),
            scale_max: survey.scale.max,
            comment: req.comment.clone(),
            properties: store::props_to_json(&req.properties),
            idempotency_key: req.idempotency_key.clone(),
            request_hash: Some(fingerprint.to_owned()),
            recorded_at: time::to_micros(now),
            updated_at: time::to_micros(now),
        };
        responses::insert(&txn, row.clone()).await?;
        if let Some(inv) = &invitation {
            invitations::mark_answered(&txn, inv, &id, now).await?;
        }
        let mut props = customer.properties.clone();
        props.extend(req.properties.clone());
        let opened = if survey.follow_up.opens(survey.scale, score.value, &props) {
            Some(open_follow_up(&txn, tenant, &survey, &row, now).await?)
        } else {
            None
        };
        let response = responses::to_domain(row, customer_ref, opened.as_ref().map(|o| o.0.id.clone()))?;
        let mut out = vec![(EventType::ResponseRecorded.as_str(), event_data::response_data(&response))];
        if let Some((row, entry)) = opened {
            let f = follow_ups::to_domain(row, response.clone(), vec![entry])?;
            out.push((EventType::FollowUpOpened.as_str(), event_data::follow_up_data(&f)));
        }
        events::append_all(&txn, tenant, &out, now).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        self.metrics.response_recorded(survey.scale.kind, score.bucket, response.follow_up_id.is_some());
        Ok(response)
    }

    /// Changes a response's comment and properties, and its score within 24 hours.
    #[tracing::instrument(skip_all)]
    pub async fn update_response(&self, target: ResponseRef, change: ResponseChange) -> Result<Response> {
        let now = self.clock.now();
        let (tenant, id) = match target {
            ResponseRef::Id { principal, id } => {
                require_secret(&principal)?;
                (principal.tenant, id)
            }
            ResponseRef::Token(token) => {
                let inv = self.invitation_by_token(&token).await?;
                let id = inv
                    .invitation
                    .response_id
                    .ok_or_else(|| AppError::FailedPrecondition("the invitation has no response yet".into()))?;
                (inv.tenant, id)
            }
        };
        let comment = change.comment.as_deref().map(input::comment).transpose()?;
        let txn = self.db.begin_write().await?;
        let mut row = responses::row_by_id(&txn, &tenant, &id).await?;
        let survey = surveys::get(&txn, &tenant, &SurveyId(row.survey_id.clone())).await?;
        let old_score = row.score;
        if let Some(raw) = change.score
            && raw != row.score
        {
            let recorded = time::from_micros(row.recorded_at);
            if now - recorded > chrono::Duration::hours(SCORE_CHANGE_WINDOW_HOURS) {
                return Err(AppError::FailedPrecondition(format!(
                    "the score can only change within {SCORE_CHANGE_WINDOW_HOURS} hours of recording"
                )));
            }
            let score = Score::parse(survey.scale, Some(raw))?;
            row.score = score.value;
            row.bucket = score.bucket.as_str().into();
        }
        if let Some(c) = comment {
            row.comment = c;
        }
        let props = input::merge(&store::props_from_json(&row.properties), &change.properties);
        row.properties = store::props_to_json(&props);
        row.updated_at = time::to_micros(now);
        responses::save(&txn, row.clone()).await?;

        let customer = customers::external_id(&txn, &tenant, &row.customer_id).await?;
        let existing = follow_ups::row_by_response(&txn, &tenant, &id).await?;
        let mut follow_up_event = None;
        let had_follow_up = existing.is_some();
        let follow_up_id = match existing {
            Some(mut fu) => {
                if row.score != old_score {
                    let under = survey.follow_up.at_or_under(survey.scale, row.score);
                    let mut body = format!("score changed from {old_score} to {}", row.score);
                    if !under {
                        body.push_str("; now above the follow-up threshold");
                    }
                    fu.at_or_under_threshold = under;
                    fu.updated_at = time::to_micros(now);
                    super::follow_ups::system_entry(&txn, &tenant, &fu.id, body, now).await?;
                    follow_ups::save(&txn, fu.clone()).await?;
                }
                // The follow-up shows the latest answer: receivers hear of the change.
                follow_up_event = Some(FollowUpId(fu.id.clone()));
                Some(fu.id)
            }
            None => {
                let cprops = customers::get(&txn, &tenant, &customer).await?.properties;
                let mut all = cprops;
                all.extend(props);
                if row.score != old_score && survey.follow_up.opens(survey.scale, row.score, &all) {
                    let opened = open_follow_up(&txn, &tenant, &survey, &row, now).await?;
                    let fid = opened.0.id.clone();
                    let response = responses::to_domain(row.clone(), customer.clone(), Some(fid.clone()))?;
                    follow_up_opened(&txn, &tenant, opened, &response, now).await?;
                    Some(fid)
                } else {
                    None
                }
            }
        };
        let response = responses::to_domain(row, customer, follow_up_id)?;
        events::append(&txn, &tenant, EventType::ResponseUpdated.as_str(), &event_data::response_data(&response), now)
            .await?;
        if let Some(fid) = follow_up_event {
            let f = follow_ups::get(&txn, &tenant, &fid).await?;
            events::append(&txn, &tenant, EventType::FollowUpUpdated.as_str(), &event_data::follow_up_data(&f), now)
                .await?;
        }
        txn.commit().await?;
        self.bus.outbox_written();
        if !had_follow_up && response.follow_up_id.is_some() {
            self.metrics.follow_up_opened(survey.scale.kind);
        }
        Ok(response)
    }

    pub async fn get_response(&self, p: &Principal, id: &ResponseId) -> Result<Response> {
        require_secret(p)?;
        let row = responses::row_by_id(self.db.conn(), &p.tenant, id).await?;
        let mut v = responses::hydrate(self.db.conn(), &p.tenant, vec![row]).await?;
        v.pop().ok_or_else(|| AppError::NotFound(format!("response {id}")))
    }

    pub async fn list_responses(
        &self,
        p: &Principal,
        mut filter: responses::Filter,
        customer: Option<CustomerRef>,
        page: PageRequest,
    ) -> Result<Page<Response>> {
        require_secret(p)?;
        if let Some(c) = customer {
            match customers::find(self.db.conn(), &p.tenant, &c).await? {
                Some(c) => filter.customer_row = Some(c.id.0),
                None => return Ok(Page { items: Vec::new(), next_page_token: String::new() }),
            }
        }
        responses::list(self.db.conn(), &p.tenant, &filter, &page).await
    }
}

fn already_answered() -> AppError {
    AppError::AlreadyExists("the invitation already has a response; use UpdateResponse to change it".into())
}

/// Opens the follow-up of a low score, inside the response's transaction.
async fn open_follow_up(
    txn: &crate::store::Tx,
    tenant: &TenantId,
    survey: &Survey,
    response: &responses::Row,
    now: Timestamp,
) -> Result<(follow_ups::Row, FollowUpEntry)> {
    let id = crate::domain::FollowUpId::generate().0;
    let at = time::to_micros(now);
    let row = follow_ups::Row {
        id: id.clone(),
        tenant_id: tenant.0.clone(),
        response_id: response.id.clone(),
        survey_id: survey.id.0.clone(),
        customer_id: response.customer_id.clone(),
        status: crate::domain::FollowUpStatus::Open.as_str().into(),
        priority: crate::domain::Priority::Normal.as_str().into(),
        assignee: String::new(),
        due_at: time::to_micros(now + survey.follow_up.sla()),
        overdue_at: None,
        resolution: String::new(),
        at_or_under_threshold: true,
        opened_at: at,
        acknowledged_at: None,
        resolved_at: None,
        dismissed_at: None,
        reopened_at: None,
        updated_at: at,
    };
    follow_ups::insert(txn, row.clone()).await?;
    let entry =
        super::follow_ups::system_entry(txn, tenant, &id, format!("opened by a score of {}", response.score), now)
            .await?;
    Ok((row, entry))
}

/// Appends `follow_up.opened` for a follow-up just opened for `response`.
async fn follow_up_opened(
    txn: &crate::store::Tx,
    tenant: &TenantId,
    opened: (follow_ups::Row, FollowUpEntry),
    response: &Response,
    now: Timestamp,
) -> Result<()> {
    let f = follow_ups::to_domain(opened.0, response.clone(), vec![opened.1])?;
    events::append(txn, tenant, EventType::FollowUpOpened.as_str(), &event_data::follow_up_data(&f), now).await?;
    Ok(())
}
