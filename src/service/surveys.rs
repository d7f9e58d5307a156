//! Creating, reading, changing and archiving surveys.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::oneshot;

use super::batch::BatchQueue;
use super::{Services, require_reader, require_secret};
use crate::domain::listing::PageRequest;
use crate::domain::model::Principal;
use crate::domain::model::{Page, Survey, SurveyDraft, SurveyPatch};
use crate::domain::{SurveyId, SurveyKind, TenantId};
use crate::error::{AppError, Result};
use crate::store::{StoreError, surveys};

/// One `GetSurvey` waiting for its survey (see [`Services::get_survey`]).
#[derive(Debug)]
pub struct SurveyRead {
    tenant: TenantId,
    id: SurveyId,
    reply: oneshot::Sender<Result<Survey>>,
}

/// Most calls one shared read answers.
const MAX_READ_BATCH: usize = 256;
/// Reads in flight at once. One: calls that arrive during a read share the next, so
/// batches grow with the load (`rapport-bench records`, PostgreSQL, c=64: GetSurvey
/// 26 964–27 209 req/s with one, 21 428–22 016 with two).
const READERS: usize = 1;
/// Most `GetSurvey` calls waiting for their read; past it, RESOURCE_EXHAUSTED.
const READ_QUEUE_LIMIT: usize = 10_000;

/// The queue [`Services::survey_reads`] starts with.
pub fn read_queue() -> BatchQueue<SurveyRead> {
    BatchQueue::new(MAX_READ_BATCH, READERS, READ_QUEUE_LIMIT)
}

impl Services {
    #[tracing::instrument(skip_all, fields(tenant = %p.tenant))]
    pub async fn create_survey(&self, p: &Principal, d: SurveyDraft) -> Result<Survey> {
        require_secret(p)?;
        d.follow_up.validate(d.scale)?;
        let now = self.clock.now();
        let s = Survey {
            id: SurveyId::generate(),
            scale: d.scale,
            name: d.name,
            question: d.question,
            low_label: d.low_label,
            high_label: d.high_label,
            policy: d.policy.validate()?,
            follow_up: d.follow_up,
            in_app: d.in_app,
            branding: d.branding,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        surveys::insert(self.db.conn(), &p.tenant, &s).await?;
        Ok(s)
    }

    /// Concurrent calls share their read, as answers share their write
    /// ([`super::batch`]): a lone call reads at once, and calls arriving meanwhile are
    /// read together by the next statement (`id = ANY(…)`), which starts after each of
    /// them arrived, so none sees a survey older than its call.
    pub async fn get_survey(&self, p: &Principal, id: &SurveyId) -> Result<Survey> {
        require_reader(p)?;
        let (reply, answer) = oneshot::channel();
        let read = SurveyRead { tenant: p.tenant.clone(), id: id.clone(), reply };
        self.enqueue(
            &self.survey_reads,
            read,
            "survey reads",
            |svc, batch| async move { svc.read_surveys(batch).await },
        )?;
        answer.await.unwrap_or_else(|_| Err(AppError::Internal(anyhow::anyhow!("the survey read stopped"))))
    }

    /// Reads a batch's surveys, one statement per tenant, and answers each call.
    async fn read_surveys(&self, batch: Vec<SurveyRead>) {
        let mut ids: BTreeMap<&TenantId, Vec<&str>> = BTreeMap::new();
        for r in &batch {
            ids.entry(&r.tenant).or_default().push(r.id.as_str());
        }
        let mut found: HashMap<(&TenantId, String), Survey> = HashMap::new();
        let mut failed: HashMap<&TenantId, StoreError> = HashMap::new();
        for (tenant, mut ids) in ids {
            ids.sort_unstable();
            ids.dedup();
            match surveys::get_many(self.db.conn(), tenant, &ids).await {
                Ok(list) => found.extend(list.into_iter().map(|s| ((tenant, s.id.as_str().to_owned()), s))),
                Err(e) => {
                    failed.insert(tenant, e);
                }
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        for r in &batch {
            answers.push(match failed.get(&r.tenant) {
                Some(e) => Err(e.clone().into()),
                None => found
                    .get(&(&r.tenant, r.id.as_str().to_owned()))
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound(format!("survey {}", r.id)).into()),
            });
        }
        for (r, answer) in batch.into_iter().zip(answers) {
            // A caller that gave up no longer listens.
            let _ = r.reply.send(answer);
        }
    }

    pub async fn list_surveys(
        &self,
        p: &Principal,
        kind: Option<SurveyKind>,
        include_archived: bool,
        page: PageRequest,
    ) -> Result<Page<Survey>> {
        require_reader(p)?;
        Ok(surveys::list(self.db.conn(), &p.tenant, kind, include_archived, &page).await?)
    }

    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, survey = %id))]
    pub async fn update_survey(&self, p: &Principal, id: &SurveyId, patch: SurveyPatch) -> Result<Survey> {
        require_secret(p)?;
        let txn = self.db.begin_write().await?;
        let current = surveys::get(&txn, &p.tenant, id).await?;
        let mut updated = patch.apply(current)?;
        updated.updated_at = self.clock.now();
        surveys::save(&txn, &p.tenant, &updated).await?;
        txn.commit().await?;
        Ok(updated)
    }

    #[tracing::instrument(skip_all, fields(tenant = %p.tenant, survey = %id))]
    pub async fn archive_survey(&self, p: &Principal, id: &SurveyId) -> Result<Survey> {
        require_secret(p)?;
        let txn = self.db.begin_write().await?;
        let mut s = surveys::get(&txn, &p.tenant, id).await?;
        if s.archived_at.is_some() {
            return Err(AppError::FailedPrecondition(format!("survey {id} is already archived")));
        }
        let now = self.clock.now();
        s.archived_at = Some(now);
        s.updated_at = now;
        surveys::save(&txn, &p.tenant, &s).await?;
        txn.commit().await?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::nps_draft as draft;

    #[tokio::test]
    async fn one_shared_read_answers_each_call_with_its_own_tenants_survey() {
        let svc = crate::service::in_memory().await;
        let acme = svc.authenticate(&svc.create_tenant("acme").await.unwrap().secret).await.unwrap();
        let globex = svc.authenticate(&svc.create_tenant("globex").await.unwrap().secret).await.unwrap();
        let a = svc.create_survey(&acme, draft("a")).await.unwrap();
        let g = svc.create_survey(&globex, draft("g")).await.unwrap();

        let asks = [(&acme, &a.id), (&globex, &g.id), (&acme, &g.id), (&acme, &a.id), (&globex, &SurveyId::generate())];
        let (batch, answers): (Vec<_>, Vec<_>) = asks
            .iter()
            .map(|(p, id)| {
                let (reply, answer) = oneshot::channel();
                (SurveyRead { tenant: p.tenant.clone(), id: (*id).clone(), reply }, answer)
            })
            .unzip();
        svc.read_surveys(batch).await;
        let mut got = Vec::new();
        for answer in answers {
            got.push(answer.await.expect("answered").map(|s| s.name));
        }
        assert_eq!(got[0].as_deref().ok(), Some("a"));
        assert_eq!(got[1].as_deref().ok(), Some("g"));
        assert!(matches!(got[2], Err(AppError::NotFound(_))), "another tenant's survey: {:?}", got[2]);
        assert_eq!(got[3].as_deref().ok(), Some("a"), "asked twice, answered twice");
        assert!(matches!(got[4], Err(AppError::NotFound(_))), "unknown: {:?}", got[4]);
    }
}
