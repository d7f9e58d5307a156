//! Use-cases: each takes the caller and domain inputs, runs in one transaction, and
//! returns domain records. No transport types here, and no SQL (that is `store/`).

pub mod admin;
pub mod engagement;
pub mod engagement_read;
pub mod follow_ups;
pub mod invitations;
pub mod metrics;
pub mod responses;
pub mod surveys;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::model::{KeyKind, Principal};
use crate::domain::time::Timestamp;
use crate::error::{AppError, Result};
use crate::store::Db;

/// The service's clock. Tests move it forward to reach expiries and cooldowns
/// without sleeping; production never touches the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    /// Now, at the microsecond precision the database keeps.
    pub fn now(&self) -> Timestamp {
        let t = chrono::Utc::now() + chrono::Duration::microseconds(self.offset_micros.load(Ordering::Relaxed));
        crate::domain::time::from_micros(crate::domain::time::to_micros(t))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        self.offset_micros.fetch_add(by.num_microseconds().unwrap_or(0), Ordering::Relaxed);
    }
}

/// Everything a use-case needs.
#[derive(Clone, Debug)]
pub struct Services {
    pub db: Db,
    pub clock: Clock,
}

impl Services {
    /// Resolves a plaintext key to its caller.
    pub async fn authenticate(&self, key: &str) -> Result<Principal> {
        crate::store::tenants::authenticate(&self.db, key).await
    }
}

/// Secret keys only: publishable keys may only answer in-app surveys.
pub fn require_secret(p: &Principal) -> Result<()> {
    match p.kind {
        KeyKind::Secret => Ok(()),
        KeyKind::Publishable => Err(AppError::PermissionDenied(
            "this call needs a secret key; publishable keys may only answer surveys".into(),
        )),
    }
}
