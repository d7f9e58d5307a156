//! Follow-up statuses and the transitions between them (docs/api.md, "Follow-ups"):
//! OPEN → ACKNOWLEDGED → RESOLVED, OPEN/ACKNOWLEDGED → DISMISSED,
//! RESOLVED/DISMISSED → OPEN (reopen). OPEN → RESOLVED directly is allowed too.

use crate::error::{AppError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FollowUpStatus {
    Open,
    Acknowledged,
    Resolved,
    Dismissed,
}

impl FollowUpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpStatus::Open => "open",
            FollowUpStatus::Acknowledged => "acknowledged",
            FollowUpStatus::Resolved => "resolved",
            FollowUpStatus::Dismissed => "dismissed",
        }
    }
    pub fn from_db(s: &str) -> Result<Self> {
        Ok(match s {
            "open" => FollowUpStatus::Open,
            "acknowledged" => FollowUpStatus::Acknowledged,
            "resolved" => FollowUpStatus::Resolved,
            "dismissed" => FollowUpStatus::Dismissed,
            other => return Err(anyhow::anyhow!("unknown follow-up status {other:?}").into()),
        })
    }
    /// Still needs someone's attention.
    pub fn is_active(self) -> bool {
        matches!(self, FollowUpStatus::Open | FollowUpStatus::Acknowledged)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
    pub fn from_db(s: &str) -> Result<Self> {
        Ok(match s {
            "low" => Priority::Low,
            "normal" => Priority::Normal,
            "high" => Priority::High,
            "urgent" => Priority::Urgent,
            other => return Err(anyhow::anyhow!("unknown priority {other:?}").into()),
        })
    }
}

/// One thing a person does to a follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUpAction {
    Acknowledge,
    Resolve { resolution: String },
    Dismiss { reason: String },
    Reopen { reason: String },
    Assign { assignee: String },
    SetPriority { priority: Priority },
    AddNote { body: String },
}

/// The status an action leads to from `from`, or `None` when it does not change the
/// status. A transition the status does not allow is `FAILED_PRECONDITION`.
pub fn next_status(from: FollowUpStatus, action: &FollowUpAction) -> Result<Option<FollowUpStatus>> {
    use FollowUpStatus::*;
    let (to, allowed): (FollowUpStatus, &[FollowUpStatus]) = match action {
        FollowUpAction::Acknowledge => (Acknowledged, &[Open]),
        FollowUpAction::Resolve { .. } => (Resolved, &[Open, Acknowledged]),
        FollowUpAction::Dismiss { .. } => (Dismissed, &[Open, Acknowledged]),
        FollowUpAction::Reopen { .. } => (Open, &[Resolved, Dismissed]),
        FollowUpAction::Assign { .. } | FollowUpAction::SetPriority { .. } | FollowUpAction::AddNote { .. } => {
            return Ok(None);
        }
    };
    if allowed.contains(&from) {
        Ok(Some(to))
    } else {
        Err(AppError::FailedPrecondition(format!(
            "a follow-up that is {} cannot become {}",
            from.as_str(),
            to.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FollowUpStatus::*;

    #[test]
    fn the_happy_path() {
        assert_eq!(next_status(Open, &FollowUpAction::Acknowledge).unwrap(), Some(Acknowledged));
        let resolve = FollowUpAction::Resolve { resolution: "called".into() };
        assert_eq!(next_status(Acknowledged, &resolve).unwrap(), Some(Resolved));
        let reopen = FollowUpAction::Reopen { reason: String::new() };
        assert_eq!(next_status(Resolved, &reopen).unwrap(), Some(Open));
    }

    #[test]
    fn invalid_transitions_are_failed_precondition() {
        let resolve = FollowUpAction::Resolve { resolution: "x".into() };
        for (from, action) in [
            (Resolved, FollowUpAction::Acknowledge),
            (Acknowledged, FollowUpAction::Acknowledge),
            (Dismissed, resolve.clone()),
            (Open, FollowUpAction::Reopen { reason: String::new() }),
            (Resolved, FollowUpAction::Dismiss { reason: String::new() }),
        ] {
            assert!(matches!(next_status(from, &action), Err(AppError::FailedPrecondition(_))));
        }
    }

    #[test]
    fn notes_and_assignment_keep_the_status() {
        for s in [Open, Acknowledged, Resolved, Dismissed] {
            assert_eq!(next_status(s, &FollowUpAction::AddNote { body: "x".into() }).unwrap(), None);
        }
    }
}
