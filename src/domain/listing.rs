//! What a list call asks for: a page position and the filters of each list. The
//! transport parses them, the use-cases pass them on and the store applies them.

use base64::Engine as _;

use crate::domain::model::DeliveryStatus;
use crate::domain::time::Timestamp;
use crate::domain::{Bucket, FollowUpStatus, SurveyId};
use crate::error::{AppError, Result};

/// Page size when the caller sends none.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page.
pub const MAX_PAGE_SIZE: u64 = 1_000;

/// A keyset position: list pages are ordered by id, newest first, and a token holds
/// the last id of the previous page.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub size: u64,
    pub after: Option<String>,
}

impl PageRequest {
    /// Checks `page_size` (0 means the default, 50; at most 1 000) and `page_token`.
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 || n as u64 > MAX_PAGE_SIZE => {
                return Err(AppError::invalid("page_size", format!("must be from 0 to {MAX_PAGE_SIZE}; got {n}")));
            }
            n => n as u64,
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || AppError::invalid("page_token", "is not a token this service issued");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(page_token).map_err(|_| bad())?;
            let s = String::from_utf8(bytes).map_err(|_| bad())?;
            let id = s.strip_prefix("after:").ok_or_else(bad)?;
            if id.is_empty() || super::input::control_character(id).is_some() {
                return Err(bad());
            }
            Some(id.to_owned())
        };
        Ok(PageRequest { size, after })
    }

    /// The token for the page after one that ended with `last_id`, if it was full.
    pub fn next_token(&self, returned: usize, last_id: Option<&str>) -> String {
        match last_id {
            Some(id) if returned as u64 >= self.size => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{id}"))
            }
            _ => String::new(),
        }
    }
}

/// Filters of `ListResponses`.
#[derive(Debug, Clone, Default)]
pub struct ResponseFilter {
    pub survey: Option<SurveyId>,
    /// rapport's row id of the customer.
    pub customer_row: Option<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub bucket: Option<Bucket>,
}

/// Filters of `ListFollowUps`.
#[derive(Debug, Clone, Default)]
pub struct FollowUpFilter {
    pub status: Option<FollowUpStatus>,
    pub survey: Option<SurveyId>,
    pub customer_row: Option<String>,
    pub assignee: Option<String>,
    pub overdue: Option<bool>,
    pub order: FollowUpOrder,
}

/// The order of `ListFollowUps` (its `order_by`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FollowUpOrder {
    /// Newest first (by id), the default.
    #[default]
    Newest,
    /// Earliest due time first (the oldest SLA), then by id: a work queue.
    DueFirst,
}

impl FollowUpOrder {
    /// `order_by`: empty (newest first) or `due_time` (earliest due first).
    pub fn parse(order_by: &str) -> Result<Self> {
        match order_by.trim() {
            "" => Ok(FollowUpOrder::Newest),
            "due_time" | "due_time asc" | "dueTime" => Ok(FollowUpOrder::DueFirst),
            _ => {
                Err(AppError::invalid("order_by", "must be empty (newest first) or \"due_time\" (earliest due first)"))
            }
        }
    }

    /// The page token's position for a due-first page: the last row's due time and id.
    pub fn due_position(due_micros: i64, id: &str) -> String {
        format!("{due_micros:020}.{id}")
    }

    /// The due time and id of a due-first page token's position; a token of the
    /// newest-first order (or anything else) is INVALID_ARGUMENT.
    pub fn parse_due_position(after: &str) -> Result<(i64, &str)> {
        let bad = || AppError::invalid("page_token", "is not a token of this order_by");
        let (due, id) = after.split_once('.').ok_or_else(bad)?;
        let due = due.parse::<i64>().map_err(|_| bad())?;
        if id.is_empty() {
            return Err(bad());
        }
        Ok((due, id))
    }
}

/// Filters of `ListDeliveries`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    pub event_id: Option<String>,
    pub status: Option<DeliveryStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_orders_parse_and_due_positions_round_trip() {
        assert_eq!(FollowUpOrder::parse("").unwrap(), FollowUpOrder::Newest);
        assert_eq!(FollowUpOrder::parse("due_time").unwrap(), FollowUpOrder::DueFirst);
        assert!(FollowUpOrder::parse("score desc").is_err());
        let pos = FollowUpOrder::due_position(1_700_000_000_000_000, "01ABC");
        assert_eq!(FollowUpOrder::parse_due_position(&pos).unwrap(), (1_700_000_000_000_000, "01ABC"));
        assert!(FollowUpOrder::parse_due_position("01ABC").is_err(), "a newest-first position");
    }
}
