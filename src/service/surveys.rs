//! Creating, reading, changing and archiving surveys.

use super::{Services, require_reader, require_secret};
use crate::domain::listing::PageRequest;
use crate::domain::model::Principal;
use crate::domain::model::{Page, Survey, SurveyDraft, SurveyPatch};
use crate::domain::{SurveyId, SurveyKind};
use crate::error::{AppError, Result};
use crate::store::surveys;

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

    pub async fn get_survey(&self, p: &Principal, id: &SurveyId) -> Result<Survey> {
        require_reader(p)?;
        Ok(surveys::get(self.db.conn(), &p.tenant, id).await?)
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
