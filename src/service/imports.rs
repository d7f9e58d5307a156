//! Imported history (docs/imports.md): survey answers from another tool with their
//! original times, written as if they had been recorded then. Activity events reuse
//! the live path with a longer age limit ([`Services::record_events_within`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::{Services, require_secret};
use crate::domain::events::{self as event_data, EventType};
use crate::domain::model::{Channel, Principal, Properties, Survey};
use crate::domain::stored::{NewFollowUp, NewInvitation, NewResponse};
use crate::domain::time::Timestamp;
use crate::domain::{CustomerRef, InvitationId, ResponseId, Score, SurveyId, TenantId, input, secrets, time};
use crate::error::{AppError, Result};
use crate::store::{customers, events, follow_ups, imports, invitations, responses, surveys, tenants};

/// Most answers in one ImportResponses call.
pub const MAX_IMPORT_BATCH: usize = 1_000;
/// Longest source id of an answer.
pub const MAX_EXTERNAL_ID_CHARS: usize = 200;

/// One answer as the source recorded it, before checks.
#[derive(Debug, Clone, Default)]
pub struct RawImport {
    pub external_id: String,
    pub survey_id: String,
    pub customer_id: String,
    pub score: Option<i32>,
    pub recorded_at: Option<Timestamp>,
    pub invited_at: Option<Timestamp>,
    pub comment: String,
    pub properties: Properties,
}

/// What an import does beyond writing the answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Open the follow-ups low scores would have opened, at the answer's time.
    pub open_follow_ups: bool,
    /// Append `response.recorded` and `follow_up.opened` events.
    pub emit_events: bool,
}

/// What became of one imported answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    Imported {
        response_id: ResponseId,
    },
    /// Imported before; `same`: whether that import said the same (`None` when the id
    /// was repeated within this call).
    Duplicate {
        response_id: Option<ResponseId>,
        same: Option<bool>,
    },
    /// Not imported: the field at fault and why.
    Rejected {
        field: String,
        reason: String,
    },
}

/// An answer that passed the checks of its own fields.
struct Checked {
    index: usize,
    external_id: String,
    survey: SurveyId,
    customer: CustomerRef,
    raw_score: Option<i32>,
    recorded_at: Timestamp,
    invited_at: Option<Timestamp>,
    comment: String,
    properties: Properties,
    fingerprint: String,
}

fn rejected(field: &str, e: AppError) -> ImportOutcome {
    match e {
        AppError::InvalidArgument(v) if !v.is_empty() => {
            ImportOutcome::Rejected { field: v[0].field.clone(), reason: v[0].description.clone() }
        }
        other => ImportOutcome::Rejected { field: field.to_owned(), reason: other.to_string() },
    }
}

/// The checks of one answer that need no database.
fn check(index: usize, raw: RawImport, now: Timestamp) -> std::result::Result<Checked, ImportOutcome> {
    let external_id = input::text("external_id", &raw.external_id, MAX_EXTERNAL_ID_CHARS, true)
        .map_err(|e| rejected("external_id", e))?;
    let survey = SurveyId::parse(&raw.survey_id, "survey_id").map_err(|e| rejected("survey_id", e))?;
    let customer = CustomerRef::parse(&raw.customer_id, "customer_id").map_err(|e| rejected("customer_id", e))?;
    let recorded_at = raw
        .recorded_at
        .ok_or_else(|| ImportOutcome::Rejected { field: "recorded_time".into(), reason: "is required".into() })?;
    if recorded_at > now {
        return Err(ImportOutcome::Rejected {
            field: "recorded_time".into(),
            reason: "is in the future; live answers go through RecordResponse".into(),
        });
    }
    if let Some(invited) = raw.invited_at
        && invited > recorded_at
    {
        return Err(ImportOutcome::Rejected {
            field: "invitation_time".into(),
            reason: "is after recorded_time".into(),
        });
    }
    let comment = input::comment(&raw.comment).map_err(|e| rejected("comment", e))?;
    let properties = input::properties("properties", &raw.properties).map_err(|e| rejected("properties", e))?;
    let fingerprint = secrets::fingerprint(&[
        survey.as_str(),
        customer.as_str(),
        &raw.score.map(|s| s.to_string()).unwrap_or_default(),
        &time::to_micros(recorded_at).to_string(),
        &raw.invited_at.map(|t| time::to_micros(t).to_string()).unwrap_or_default(),
        &comment,
        &input::canonical(&properties),
    ]);
    Ok(Checked {
        index,
        external_id,
        survey,
        customer,
        raw_score: raw.score,
        recorded_at,
        invited_at: raw.invited_at,
        comment,
        properties,
        fingerprint,
    })
}

impl Services {
    /// Imports a batch of historical answers in one transaction: each is imported, a
    /// duplicate of an earlier import, or rejected; the valid ones are kept either way.
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, responses = raw.len()))]
    pub async fn import_responses(
        &self,
        p: &Principal,
        raw: Vec<RawImport>,
        options: ImportOptions,
    ) -> Result<Vec<ImportOutcome>> {
        require_secret(p)?;
        if raw.is_empty() || raw.len() > MAX_IMPORT_BATCH {
            return Err(AppError::invalid(
                "responses",
                format!("send 1 to {MAX_IMPORT_BATCH} answers; got {}", raw.len()),
            ));
        }
        let now = self.clock.now();
        let tenant = &p.tenant;
        let mut outcomes: Vec<Option<ImportOutcome>> = vec![None; raw.len()];
        let mut checked: Vec<Checked> = Vec::with_capacity(raw.len());
        let mut seen: HashSet<String> = HashSet::new();
        for (i, r) in raw.into_iter().enumerate() {
            match check(i, r, now) {
                Err(o) => outcomes[i] = Some(o),
                Ok(c) if !seen.insert(c.external_id.clone()) => {
                    outcomes[i] = Some(ImportOutcome::Duplicate { response_id: None, same: None });
                }
                Ok(c) => checked.push(c),
            }
        }

        let txn = self.db.begin_write().await?;
        // Surveys, and the score on each one's scale.
        let survey_ids: BTreeSet<&str> = checked.iter().map(|c| c.survey.as_str()).collect();
        let survey_list: Vec<&str> = survey_ids.into_iter().collect();
        let found: HashMap<String, Survey> =
            surveys::get_many(&txn, tenant, &survey_list).await?.into_iter().map(|s| (s.id.0.clone(), s)).collect();
        let mut scored: Vec<(Checked, Score)> = Vec::with_capacity(checked.len());
        for c in checked {
            let Some(survey) = found.get(c.survey.as_str()) else {
                outcomes[c.index] =
                    Some(ImportOutcome::Rejected { field: "survey_id".into(), reason: "no such survey".into() });
                continue;
            };
            match Score::parse(survey.scale, c.raw_score) {
                Ok(score) => scored.push((c, score)),
                Err(e) => outcomes[c.index] = Some(rejected("score", e)),
            }
        }

        // Imported before: a duplicate, with whether it said the same.
        let externals: Vec<&str> = scored.iter().map(|(c, _)| c.external_id.as_str()).collect();
        let earlier = imports::existing(&txn, tenant, &externals).await?;
        scored.retain(|(c, _)| match earlier.get(&c.external_id) {
            Some(e) => {
                outcomes[c.index] = Some(ImportOutcome::Duplicate {
                    response_id: Some(e.response_id.clone()),
                    same: Some(e.request_hash == c.fingerprint),
                });
                false
            }
            None => true,
        });

        // Customers, created if new; an erased customer takes no answers.
        let refs: Vec<&CustomerRef> = scored.iter().map(|(c, _)| &c.customer).collect();
        let people: HashMap<String, customers::Customer> = customers::ensure_many(&txn, tenant, &refs, now)
            .await?
            .into_iter()
            .map(|c| (c.external.0.clone(), c))
            .collect();
        let mut planned: Vec<(Checked, Score, &customers::Customer, ResponseId)> = Vec::with_capacity(scored.len());
        for (c, score) in scored {
            let Some(person) = people.get(c.customer.as_str()) else {
                return Err(AppError::Internal(anyhow::anyhow!("customer {:?} was not created", c.customer.0)));
            };
            if person.erased_at.is_some() {
                outcomes[c.index] = Some(ImportOutcome::Rejected {
                    field: "customer_id".into(),
                    reason: "the customer has been erased".into(),
                });
                continue;
            }
            planned.push((c, score, person, ResponseId::generate()));
        }

        // Claim the source ids; one claimed meanwhile by a concurrent import is a
        // duplicate of that import.
        let claims: Vec<(&str, &ResponseId, &str)> =
            planned.iter().map(|(c, _, _, id)| (c.external_id.as_str(), id, c.fingerprint.as_str())).collect();
        let claimed: HashSet<ResponseId> = imports::claim(&txn, tenant, &claims, now).await?.into_iter().collect();
        let lost: Vec<&str> = planned
            .iter()
            .filter(|(_, _, _, id)| !claimed.contains(id))
            .map(|(c, _, _, _)| c.external_id.as_str())
            .collect();
        let winners = imports::existing(&txn, tenant, &lost).await?;
        planned.retain(|(c, _, _, id)| {
            if claimed.contains(id) {
                return true;
            }
            let w = winners.get(&c.external_id);
            outcomes[c.index] = Some(ImportOutcome::Duplicate {
                response_id: w.map(|w| w.response_id.clone()),
                same: w.map(|w| w.request_hash == c.fingerprint),
            });
            false
        });

        // What to write: an answered invitation where the source had one, the response,
        // and, if asked, the follow-up and the events.
        let default_policy = tenants::default_policy(&txn, tenant).await?;
        let mut new_invitations = Vec::new();
        let mut new_responses = Vec::with_capacity(planned.len());
        let mut opened: Vec<NewFollowUp> = Vec::new();
        let mut new_events: Vec<(&str, serde_json::Value)> = Vec::new();
        for (c, score, person, id) in &planned {
            let survey = &found[c.survey.as_str()];
            let invitation_id = c.invited_at.map(|invited| {
                let inv = InvitationId::generate();
                let policy = survey.policy.over(default_policy);
                new_invitations.push(NewInvitation {
                    id: inv.clone(),
                    survey_id: survey.id.clone(),
                    customer: person.id.clone(),
                    channel: Channel::Link,
                    issued: true,
                    rule: None,
                    next_eligible_at: None,
                    forced: false,
                    token_hash: None,
                    idempotency_key: None,
                    fingerprint: None,
                    created_at: invited,
                    expires_at: Some(invited + time::days(i64::from(policy.invitation_expiry_days))),
                    answered: Some((id.clone(), c.recorded_at)),
                });
                inv
            });
            let new = NewResponse {
                id: id.clone(),
                survey_id: survey.id.clone(),
                customer: person.id.clone(),
                invitation_id,
                scale: survey.scale,
                score: *score,
                comment: c.comment.clone(),
                properties: c.properties.clone(),
                idempotency_key: None,
                fingerprint: c.fingerprint.clone(),
                recorded_at: c.recorded_at,
            };
            let mut props = person.properties.clone();
            props.extend(c.properties.clone());
            let follow_up = (options.open_follow_ups && survey.follow_up.opens(survey.scale, score.value, &props))
                .then(|| NewFollowUp::opened_by(survey, &new.id, &new.customer, score.value, c.recorded_at));
            if options.emit_events {
                let response = new.response(person.external.clone(), follow_up.as_ref().map(|f| f.id.clone()));
                new_events.push((EventType::ResponseRecorded.as_str(), event_data::response_data(&response)));
                if let Some(f) = &follow_up {
                    new_events
                        .push((EventType::FollowUpOpened.as_str(), event_data::follow_up_data(&f.follow_up(response))));
                }
            }
            opened.extend(follow_up);
            outcomes[c.index] = Some(ImportOutcome::Imported { response_id: id.clone() });
            new_responses.push(new);
        }
        invitations::insert_many(&txn, tenant, &new_invitations).await?;
        let rows: Vec<(&TenantId, &NewResponse)> = new_responses.iter().map(|r| (tenant, r)).collect();
        responses::insert_many(&txn, &rows).await?;
        follow_ups::insert_opened(&txn, tenant, &opened).await?;
        events::append_all(&txn, tenant, &new_events, now).await?;
        txn.commit().await?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(ImportOutcome::Rejected { field: String::new(), reason: "not processed".into() }))
            .collect())
    }
}
