//! Eligibility, issuing invitations, reading them by token, and opt-outs
//! (docs/api.md, "Surveys, eligibility and defaults").

use super::{Services, require_secret};
use crate::domain::eligibility::{self, Eligibility};
use crate::domain::events::{self as event_data, EventType};
use crate::domain::model::{Channel, Invitation, IssueOutcome, Principal, Properties, Survey};
use crate::domain::stored::{InvitationRecord, NewInvitation};
use crate::domain::time::{Timestamp, days};
use crate::domain::{CustomerRef, CustomerRowId, InvitationId, SurveyId, TenantId, input, secrets};
use crate::error::{AppError, Result};
use crate::store::{StoreError, customers, events, invitations, surveys, tenants};

/// Length of the random part of an invitation token (≈ 190 bits).
const TOKEN_CHARS: usize = 32;
const TOKEN_PREFIX: &str = "inv_";

/// An `IssueSurvey` request, parsed.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub survey: SurveyId,
    pub customer: CustomerRef,
    pub channel: Channel,
    pub properties: Properties,
    pub idempotency_key: Option<String>,
    pub force: bool,
}

impl IssueRequest {
    fn fingerprint(&self) -> String {
        secrets::fingerprint(&[
            self.survey.as_str(),
            self.customer.as_str(),
            self.channel.as_str(),
            &input::canonical(&self.properties),
            if self.force { "force" } else { "" },
        ])
    }
}

/// An invitation found by its token, with its tenant and survey.
pub struct TokenInvitation {
    pub tenant: TenantId,
    pub record: InvitationRecord,
    pub invitation: Invitation,
    pub survey: Survey,
}

impl Services {
    /// Eligibility of a customer for a survey now, without issuing anything.
    pub async fn check_eligibility(
        &self,
        p: &Principal,
        survey: &SurveyId,
        customer: &CustomerRef,
    ) -> Result<Eligibility> {
        require_secret(p)?;
        let conn = self.db.conn();
        let s = surveys::get(conn, &p.tenant, survey).await?;
        let policy = s.policy.over(tenants::default_policy(conn, &p.tenant).await?);
        let history = match customers::find(conn, &p.tenant, customer).await? {
            Some(c) => {
                invitations::history(conn, &p.tenant, survey, &c.id, c.unsubscribed_at.is_some(), c.erased_at.is_some())
                    .await?
            }
            None => Default::default(),
        };
        Ok(eligibility::evaluate(policy, history, self.clock.now(), false))
    }

    /// Issues an invitation or records a suppression. Idempotent by key.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, survey = %req.survey))]
    pub async fn issue_survey(&self, p: &Principal, req: IssueRequest) -> Result<IssueOutcome> {
        require_secret(p)?;
        let fingerprint = req.fingerprint();
        if let Some(key) = &req.idempotency_key
            && let Some(existing) = invitations::by_idempotency_key(self.db.conn(), &p.tenant, key).await?
        {
            return self.replay_issue(&p.tenant, existing, &fingerprint).await;
        }
        match self.issue_once(p, &req, &fingerprint).await {
            Err(IssueError::Store(StoreError::Unique { .. })) if req.idempotency_key.is_some() => {
                // A concurrent first attempt with the same key won the race: answer as it did.
                let key = req.idempotency_key.as_deref().unwrap_or_default();
                let existing = invitations::by_idempotency_key(self.db.conn(), &p.tenant, key)
                    .await?
                    .ok_or_else(|| AppError::Internal(anyhow::anyhow!("idempotency row vanished")))?;
                self.replay_issue(&p.tenant, existing, &fingerprint).await
            }
            Err(IssueError::Store(e)) => Err(e.into()),
            Err(IssueError::App(e)) => Err(e),
            Ok(outcome) => Ok(outcome),
        }
    }

    async fn issue_once(
        &self,
        p: &Principal,
        req: &IssueRequest,
        fingerprint: &str,
    ) -> Result<IssueOutcome, IssueError> {
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let survey = surveys::get(&txn, &p.tenant, &req.survey).await?;
        if survey.archived_at.is_some() {
            return Err(AppError::FailedPrecondition(format!("survey {} is archived", survey.id)).into());
        }
        let customer = customers::upsert(&txn, &p.tenant, &req.customer, &req.properties, now).await?;
        let policy = survey.policy.over(tenants::default_policy(&txn, &p.tenant).await?);
        let history = invitations::history(
            &txn,
            &p.tenant,
            &survey.id,
            &customer.id,
            customer.unsubscribed_at.is_some(),
            customer.erased_at.is_some(),
        )
        .await?;
        let decision = eligibility::evaluate(policy, history, now, req.force);
        let id = InvitationId::generate();
        let token = decision.eligible.then(|| secrets::generate(TOKEN_PREFIX, TOKEN_CHARS));
        let new = NewInvitation {
            id: id.clone(),
            survey_id: survey.id.clone(),
            customer: customer.id.clone(),
            channel: req.channel,
            issued: decision.eligible,
            rule: decision.rule,
            next_eligible_at: decision.next_eligible_at,
            forced: decision.forced,
            token_hash: token.as_deref().map(secrets::hash),
            idempotency_key: req.idempotency_key.clone(),
            fingerprint: Some(fingerprint.to_owned()),
            created_at: now,
            expires_at: decision.eligible.then(|| now + days(policy.invitation_expiry_days as i64)),
            answered: None,
        };
        invitations::insert(&txn, &p.tenant, &new).await?;
        let (event_type, data) = match token {
            Some(_) => {
                (EventType::InvitationIssued, event_data::invitation_issued_data(&new.invitation(&req.customer)))
            }
            None => (
                EventType::InvitationSuppressed,
                event_data::invitation_suppressed_data(&id, &survey.id, &req.customer, &decision, now),
            ),
        };
        events::append(&txn, &p.tenant, event_type.as_str(), &data, now).await?;
        txn.commit().await?;
        self.bus.outbox_written();
        Ok(match token {
            Some(token) => {
                IssueOutcome::Issued { invitation: new.invitation(&req.customer), token, eligibility: decision }
            }
            None => IssueOutcome::Suppressed { suppression_id: id, eligibility: decision },
        })
    }

    /// The answer to a retried `IssueSurvey`: the same invitation (with a fresh token,
    /// as only hashes are kept) or the same suppression.
    async fn replay_issue(
        &self,
        tenant: &TenantId,
        first: InvitationRecord,
        fingerprint: &str,
    ) -> Result<IssueOutcome> {
        if first.fingerprint.as_deref() != Some(fingerprint) {
            return Err(AppError::AlreadyExists(
                "idempotency_key was already used for a different IssueSurvey request".into(),
            ));
        }
        let customer = customer_ref(&self.db, tenant, &first.customer).await?;
        let eligibility = first.eligibility();
        if !first.issued {
            return Ok(IssueOutcome::Suppressed { suppression_id: first.id, eligibility });
        }
        let invitation = first.invitation(&customer);
        let token = if invitation.response_id.is_none() {
            let token = secrets::generate(TOKEN_PREFIX, TOKEN_CHARS);
            invitations::set_token_hash(self.db.conn(), tenant, &invitation.id, &secrets::hash(&token)).await?;
            token
        } else {
            String::new()
        };
        Ok(IssueOutcome::Issued { invitation, token, eligibility })
    }

    /// The invitation a token stands for, or `NOT_FOUND`.
    pub async fn invitation_by_token(&self, token: &str) -> Result<TokenInvitation> {
        let record = self.invitation_record_by_token(token).await?;
        let conn = self.db.conn();
        let tenant = record.tenant.clone();
        let customer = customer_ref(&self.db, &tenant, &record.customer).await?;
        let survey = surveys::get(conn, &tenant, &record.survey_id).await?;
        Ok(TokenInvitation { invitation: record.invitation(&customer), tenant, record, survey })
    }

    /// The stored invitation of a token (one query), or `NOT_FOUND`.
    pub(crate) async fn invitation_record_by_token(&self, token: &str) -> Result<InvitationRecord> {
        let not_found = || AppError::NotFound("invitation (unknown token)".into());
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 100 {
            return Err(not_found());
        }
        invitations::by_token_hash(self.db.conn(), &secrets::hash(token)).await?.ok_or_else(not_found)
    }

    /// Sets or clears a customer's opt-out; creates the customer if new.
    pub async fn set_subscription(
        &self,
        p: &Principal,
        customer: &CustomerRef,
        unsubscribed: bool,
    ) -> Result<Option<Timestamp>> {
        require_secret(p)?;
        let now = self.clock.now();
        let txn = self.db.begin_write().await?;
        let c = customers::upsert(&txn, &p.tenant, customer, &Properties::new(), now).await?;
        let at = match (unsubscribed, c.unsubscribed_at) {
            (true, Some(since)) => Some(since),
            (true, None) => Some(now),
            (false, _) => None,
        };
        customers::set_unsubscribed(&txn, &p.tenant, &c.id, at, now).await?;
        txn.commit().await?;
        Ok(at)
    }
}

/// The CRM id of a customer row.
pub(crate) async fn customer_ref(
    db: &crate::store::Db,
    tenant: &TenantId,
    row_id: &CustomerRowId,
) -> Result<CustomerRef> {
    Ok(customers::external_id(db.conn(), tenant, row_id).await?)
}

/// A use-case error that keeps the storage error, to spot a unique violation.
#[derive(Debug)]
pub(crate) enum IssueError {
    Store(StoreError),
    App(AppError),
}

impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        IssueError::Store(e)
    }
}

impl From<AppError> for IssueError {
    fn from(e: AppError) -> Self {
        IssueError::App(e)
    }
}
