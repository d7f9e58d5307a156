//! sea-orm entities, one per table of `migrations/`. Times are microseconds since
//! the epoch; property maps are JSON text.

macro_rules! entity {
    ($module:ident, $table:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub id: String,
                $(pub $field: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

/// An entity of a tenant's rows, keyed by the id and the tenant as the tables are
/// (m20261201_000005: a sharded database needs the tenant in every key; the tables'
/// keys are `(id, tenant_id)`, the id first). Ids are
/// UUIDv7, unique on their own in practice; the key is what the database enforces.
macro_rules! tenant_entity {
    ($module:ident, $table:literal, { $($field:ident : $ty:ty),* $(,)? }) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub tenant_id: String,
                #[sea_orm(primary_key, auto_increment = false)]
                pub id: String,
                $(pub $field: $ty,)*
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(tenant, "tenants", {
    name: String,
    time_zone: String,
    days_after_invitation_this_survey: i32,
    days_after_invitation_any_survey: i32,
    days_after_response_this_survey: i32,
    days_after_response_any_survey: i32,
    invitation_expiry_days: i32,
    created_at: i64,
    event_seq: i64,
});

entity!(api_key, "api_keys", {
    tenant_id: String,
    kind: String,
    key_hash: String,
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
});

tenant_entity!(survey, "surveys", {
    kind: String,
    name: String,
    question: String,
    scale_max: i32,
    low_label: String,
    high_label: String,
    days_after_invitation_this_survey: Option<i32>,
    days_after_invitation_any_survey: Option<i32>,
    days_after_response_this_survey: Option<i32>,
    days_after_response_any_survey: Option<i32>,
    invitation_expiry_days: Option<i32>,
    follow_up_threshold: Option<i32>,
    follow_up_condition: String,
    follow_up_sla_hours: Option<i32>,
    follow_up_disabled: bool,
    in_app: bool,
    archived_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    brand_display_name: String,
    brand_accent_color: String,
    brand_logo_url: String,
    language: String,
});

// The tenant's default branding: the same `tenants` rows, only these columns (the
// columns have defaults, so `tenant` inserts rows without them).
entity!(tenant_branding, "tenants", {
    brand_display_name: String,
    brand_accent_color: String,
    brand_logo_url: String,
    language: String,
});

tenant_entity!(customer, "customers", {
    external_id: String,
    properties: String,
    unsubscribed_at: Option<i64>,
    erased_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
});

tenant_entity!(invitation, "invitations", {
    survey_id: String,
    customer_id: String,
    channel: String,
    outcome: String,
    rule: Option<String>,
    next_eligible_at: Option<i64>,
    token_hash: Option<String>,
    forced: bool,
    idempotency_key: Option<String>,
    request_hash: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    answered_at: Option<i64>,
    response_id: Option<String>,
    dismissed_at: Option<i64>,
});

tenant_entity!(response, "responses", {
    survey_id: String,
    customer_id: String,
    invitation_id: Option<String>,
    kind: String,
    score: i32,
    bucket: String,
    scale_max: i32,
    comment: String,
    properties: String,
    idempotency_key: Option<String>,
    request_hash: Option<String>,
    recorded_at: i64,
    updated_at: i64,
});

tenant_entity!(follow_up, "follow_ups", {
    response_id: String,
    survey_id: String,
    customer_id: String,
    status: String,
    priority: String,
    assignee: String,
    due_at: i64,
    overdue_at: Option<i64>,
    resolution: String,
    at_or_under_threshold: bool,
    opened_at: i64,
    acknowledged_at: Option<i64>,
    resolved_at: Option<i64>,
    dismissed_at: Option<i64>,
    reopened_at: Option<i64>,
    updated_at: i64,
});

tenant_entity!(follow_up_entry, "follow_up_entries", {
    follow_up_id: String,
    kind: String,
    author: String,
    body: String,
    from_status: Option<String>,
    to_status: Option<String>,
    created_at: i64,
});

tenant_entity!(event, "events", {
    seq: Option<i64>,
    event_type: String,
    data: String,
    created_at: i64,
    sequenced_at: Option<i64>,
});

tenant_entity!(webhook_endpoint, "webhook_endpoints", {
    url: String,
    description: String,
    event_types: String,
    survey_ids: String,
    secret: String,
    // The id of the key that sealed `secret` (domain::sealing); NULL: not sealed yet.
    secret_key_id: Option<String>,
    enabled: bool,
    disabled_reason: String,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
});

// Per tenant (`id` is the tenant's id): the last event whose webhook deliveries exist.
entity!(fanout_cursor, "fanout_cursors", {
    seq: i64,
    updated_at: i64,
});

tenant_entity!(delivery, "deliveries", {
    endpoint_id: String,
    event_id: String,
    event_seq: i64,
    event_type: String,
    payload: String,
    body: Option<String>,
    status: String,
    attempts: i32,
    next_attempt_at: i64,
    last_attempt_at: Option<i64>,
    last_status_code: Option<i32>,
    last_error: String,
    event_created_at: i64,
    created_at: i64,
    updated_at: i64,
});

/// One attempt of a delivery. On PostgreSQL the table is partitioned by month of
/// `attempted_at` (m20261201_000006), so its key holds the tenant and that time too;
/// `id` alone is unique, and SQLite's key is `id`.
pub mod delivery_attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub delivery_id: String,
        pub attempt: i32,
        #[sea_orm(primary_key, auto_increment = false)]
        pub attempted_at: i64,
        pub status_code: Option<i32>,
        pub error: String,
        pub duration_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Entities whose rows belong to a tenant. Every query on them starts from
/// [`Scoped::scoped`], so there is no way to forget the tenant filter.
pub trait Scoped: sea_orm::EntityTrait {
    fn tenant_column() -> Self::Column;

    /// `SELECT … WHERE tenant_id = ?`.
    fn scoped(tenant: &crate::domain::TenantId) -> sea_orm::Select<Self> {
        use sea_orm::{ColumnTrait, QueryFilter};
        Self::find().filter(Self::tenant_column().eq(tenant.as_str()))
    }
}

macro_rules! scoped {
    ($($m:ident),*) => {$(
        impl Scoped for $m::Entity {
            fn tenant_column() -> Self::Column {
                $m::Column::TenantId
            }
        }
    )*};
}
scoped!(
    api_key,
    survey,
    customer,
    invitation,
    response,
    follow_up,
    follow_up_entry,
    event,
    webhook_endpoint,
    delivery,
    delivery_attempt,
    imported_response
);

// One imported answer (`id` is the response's id) and the source's id it came with.
tenant_entity!(imported_response, "imported_responses", {
    external_id: String,
    request_hash: String,
    created_at: i64,
});
