//! What the insight use-cases read from storage, as plain records: the answers of a
//! sample, comments in batches, respondents' latest answers, the contacts of
//! accounts, and which customers' activity to read. How they are laid out in rows is
//! `store::insight`'s business.

use crate::domain::model::Properties;
use crate::domain::time::Timestamp;
use crate::domain::{Bucket, CustomerRef, CustomerRowId, ResponseId, SurveyId};

/// One response of a sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleAnswer {
    pub id: ResponseId,
    pub score: i32,
    /// The response's properties over the customer's (only when asked for).
    pub properties: Properties,
}

/// One non-empty comment.
#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    pub id: ResponseId,
    pub survey_id: SurveyId,
    pub comment: String,
    pub recorded_at: Timestamp,
    /// The response's properties over the customer's.
    pub properties: Properties,
}

impl Comment {
    /// Where a batch that ended with this comment stops.
    pub fn position(&self) -> CommentPosition {
        CommentPosition { recorded_at: self.recorded_at, id: self.id.clone() }
    }
}

/// A place in the comments' order (newest first, ties by id, higher first): the next
/// batch starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentPosition {
    pub recorded_at: Timestamp,
    pub id: ResponseId,
}

/// One answer of a respondent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RespondentAnswer {
    /// The customer's row (rapport's id).
    pub customer: CustomerRowId,
    pub bucket: Bucket,
    pub at: Timestamp,
}

/// A contact of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRecord {
    /// The customer's row (rapport's id).
    pub row: CustomerRowId,
    /// The CRM id.
    pub customer: CustomerRef,
    pub account: String,
    pub properties: Properties,
}

/// Which customers' activity to read.
#[derive(Debug, Clone)]
pub enum Whose<'a> {
    /// Customers who answered one of these surveys in [start, end).
    Respondents { surveys: &'a [SurveyId], start: Timestamp, end: Timestamp },
    /// The contacts of one account, or of every account.
    Account(Option<&'a str>),
}
