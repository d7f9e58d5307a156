//! Keys that include the tenant (docs/scaling.md, "Tenant-sharded on Citus"): read from
//! each database's own catalog, every primary key and unique constraint of a tenant's
//! table includes `tenant_id`, and so does every foreign key between such tables — so a
//! later migration that forgets it fails here. m20261201_000005 changes exactly the
//! keys it means to (the schema before and after, compared; down restores it), and rows
//! written before it are all there and readable through the API after it.

use std::collections::{BTreeMap, BTreeSet};

use migrations::MigratorTrait as _;
use pb::privacy_service_client::PrivacyServiceClient;
use pb::webhook_service_client::WebhookServiceClient;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tonic::Code;

use crate::helpers::*;

/// Tables documented as Citus reference tables (docs/scaling.md): small, looked up
/// before the tenant is known, replicated to every worker. Their keys need no tenant.
const REFERENCE_TABLES: [&str; 2] = ["tenants", "api_keys"];

/// Tables whose tenant column is not called `tenant_id`: (table, column).
const TENANT_COLUMN_NAMED: [(&str, &str); 1] = [("fanout_cursors", "id")];

/// The migration bookkeeping of sea-orm (a coordinator-local table on Citus).
const BOOKKEEPING: &str = "seaql_migrations";

/// How many migrations come before m20261201_000005_tenant_keys.
const BEFORE_TENANT_KEYS: u32 = 12;

/// A table's keys as its database's catalog has them.
#[derive(Debug, Default)]
struct Keys {
    columns: Vec<String>,
    primary: Vec<String>,
    /// Unique constraints and unique indexes: (name as the catalog has it, columns).
    unique: Vec<(String, Vec<String>)>,
    /// (columns, parent, parent's columns).
    foreign: Vec<(Vec<String>, String, Vec<String>)>,
}

/// The catalog of one database: each table's keys, and the whole schema as a set of
/// lines (columns, keys, indexes, triggers) to compare before and after a migration.
struct Catalog {
    tables: BTreeMap<String, Keys>,
    lines: BTreeSet<String>,
}

async fn texts(conn: &DatabaseConnection, sql: &str) -> Vec<Vec<String>> {
    let backend = conn.get_database_backend();
    let rows = conn.query_all_raw(Statement::from_string(backend, sql.to_owned())).await;
    rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|row| {
            (0..)
                .map_while(|i| row.try_get_by_index::<Option<String>>(i).ok())
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(str::to_owned).collect()
}

async fn catalog(conn: &DatabaseConnection) -> Catalog {
    match conn.get_database_backend() {
        DbBackend::Sqlite => sqlite_catalog(conn).await,
        _ => postgres_catalog(conn).await,
    }
}

async fn sqlite_catalog(conn: &DatabaseConnection) -> Catalog {
    let mut tables = BTreeMap::new();
    let mut lines = BTreeSet::new();
    let names = texts(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").await;
    for t in names.into_iter().map(|r| r[0].clone()) {
        let mut keys = Keys::default();
        let mut pk: Vec<(i64, String)> = Vec::new();
        let cols = texts(
            conn,
            &format!(
                "SELECT name, type, CAST(\"notnull\" AS TEXT), dflt_value, CAST(pk AS TEXT), CAST(cid AS TEXT) \
                 FROM pragma_table_info('{t}')"
            ),
        )
        .await;
        for c in cols {
            let null = if c[2] == "1" { "not null" } else { "null" };
            lines.insert(format!("column {t}.{} #{} {} {null} default {}", c[0], c[5], c[1].to_lowercase(), c[3]));
            if c[4] != "0" {
                pk.push((c[4].parse().unwrap(), c[0].clone()));
            }
            keys.columns.push(c[0].clone());
        }
        pk.sort();
        keys.primary = pk.into_iter().map(|(_, c)| c).collect();
        lines.insert(format!("primary key {t} ({})", keys.primary.join(",")));
        let indexes = texts(
            conn,
            &format!(
                "SELECT name, CAST(\"unique\" AS TEXT), origin, CAST(partial AS TEXT) FROM pragma_index_list('{t}')"
            ),
        )
        .await;
        for i in indexes {
            if i[2] == "pk" {
                continue;
            }
            let cols = texts(conn, &format!("SELECT name FROM pragma_index_info('{}') ORDER BY seqno", i[0])).await;
            let cols: Vec<String> = cols.into_iter().map(|r| r[0].clone()).collect();
            lines.insert(index_line(&t, &i[0], i[1] == "1", &cols, i[3] == "1"));
            if i[1] == "1" {
                keys.unique.push((i[0].clone(), cols));
            }
        }
        let fks = texts(
            conn,
            &format!("SELECT CAST(id AS TEXT), \"table\", \"from\", \"to\" FROM pragma_foreign_key_list('{t}') ORDER BY id, seq"),
        )
        .await;
        let mut by_id: BTreeMap<String, (Vec<String>, String, Vec<String>)> = BTreeMap::new();
        for f in fks {
            let e = by_id.entry(f[0].clone()).or_insert_with(|| (Vec::new(), f[1].clone(), Vec::new()));
            e.0.push(f[2].clone());
            e.2.push(f[3].clone());
        }
        for (_, fk) in by_id {
            lines.insert(format!("foreign key {t} ({}) -> {} ({})", fk.0.join(","), fk.1, fk.2.join(",")));
            keys.foreign.push(fk);
        }
        tables.insert(t, keys);
    }
    for trg in texts(conn, "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'").await {
        lines.insert(format!("trigger {}.{}", trg[1], trg[0]));
    }
    Catalog { tables, lines }
}

/// An index as a line: named by the migrations (`ix_…`), or by what it is (a UNIQUE
/// constraint's index has a name of the database's choosing).
fn index_line(table: &str, name: &str, unique: bool, cols: &[String], partial: bool) -> String {
    let name = if name.starts_with("ix_") { name } else { "(constraint)" };
    let unique = if unique { " unique" } else { "" };
    let partial = if partial { " partial" } else { "" };
    format!("index {table} {name}{unique} ({}){partial}", cols.join(","))
}

async fn postgres_catalog(conn: &DatabaseConnection) -> Catalog {
    let mut tables: BTreeMap<String, Keys> = BTreeMap::new();
    let mut lines = BTreeSet::new();
    let cols = texts(
        conn,
        "SELECT table_name::text, column_name::text, ordinal_position::text, data_type::text, \
         character_maximum_length::text, is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    .await;
    for c in cols {
        let null = if c[5] == "NO" { "not null" } else { "null" };
        lines.insert(format!("column {}.{} #{} {}({}) {null} default {}", c[0], c[1], c[2], c[3], c[4], c[6]));
        tables.entry(c[0].clone()).or_default().columns.push(c[1].clone());
    }
    let indexes = texts(
        conn,
        "SELECT t.relname::text, i.relname::text, x.indisprimary::text, x.indisunique::text, \
         (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM unnest(x.indkey::int2[]) WITH ORDINALITY \
          AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum), \
         (x.indpred IS NOT NULL)::text \
         FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public'",
    )
    .await;
    for i in indexes {
        let keys = tables.entry(i[0].clone()).or_default();
        let cols = list(&i[4]);
        if i[2] == "true" {
            lines.insert(format!("primary key {} ({})", i[0], i[4]));
            keys.primary = cols;
            continue;
        }
        lines.insert(index_line(&i[0], &i[1], i[3] == "true", &cols, i[5] == "true"));
        if i[3] == "true" {
            keys.unique.push((i[1].clone(), cols));
        }
    }
    let fks = texts(
        conn,
        "SELECT t.relname::text, p.relname::text, \
         (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY \
          AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), \
         (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY \
          AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class p ON p.oid = c.confrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE c.contype = 'f' AND n.nspname = 'public'",
    )
    .await;
    for f in fks {
        lines.insert(format!("foreign key {} ({}) -> {} ({})", f[0], f[2], f[1], f[3]));
        tables.entry(f[0].clone()).or_default().foreign.push((list(&f[2]), f[1].clone(), list(&f[3])));
    }
    let triggers = texts(
        conn,
        "SELECT c.relname::text, g.tgname::text FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT g.tgisinternal AND n.nspname = 'public'",
    )
    .await;
    for t in triggers {
        lines.insert(format!("trigger {}.{}", t[0], t[1]));
    }
    Catalog { tables, lines }
}

/// The column a table is distributed by, or `None` for a reference table (or the
/// bookkeeping).
fn tenant_column(table: &str) -> Option<&'static str> {
    if REFERENCE_TABLES.contains(&table) || table == BOOKKEEPING {
        return None;
    }
    Some(TENANT_COLUMN_NAMED.iter().find(|(t, _)| *t == table).map_or("tenant_id", |(_, c)| *c))
}

/// What is wrong with the catalog for a sharded database: each line names the table
/// and the key that lacks its tenant.
fn without_tenant(c: &Catalog) -> Vec<String> {
    let mut wrong = Vec::new();
    for (table, keys) in &c.tables {
        let Some(tenant) = tenant_column(table) else { continue };
        let has = |cols: &[String]| cols.iter().any(|c| c == tenant);
        if !keys.columns.iter().any(|c| c == tenant) {
            wrong.push(format!("{table} has no {tenant} column"));
        }
        if !keys.primary.is_empty() && !has(&keys.primary) {
            wrong.push(format!("{table}: primary key ({})", keys.primary.join(",")));
        }
        for (name, cols) in &keys.unique {
            if !has(cols) {
                wrong.push(format!("{table}: unique {name} ({})", cols.join(",")));
            }
        }
        for (cols, parent, refs) in &keys.foreign {
            let Some(parent_tenant) = tenant_column(parent) else { continue };
            let paired = cols.iter().zip(refs).any(|(c, r)| c == tenant && r == parent_tenant);
            if !paired {
                wrong.push(format!("{table}: foreign key ({}) -> {parent} ({})", cols.join(","), refs.join(",")));
            }
        }
    }
    wrong
}

async fn every_key_of_a_tenants_table_includes_the_tenant(b: Backend) {
    let app = spawn_app(b).await;
    let conn = Database::connect(&app.db_url).await.expect("the test database");
    let c = catalog(&conn).await;
    for table in ["surveys", "responses", "invitations", "follow_up_entries", "audit_log", "events"] {
        assert!(c.tables.contains_key(table), "the catalog lists {table}: {:?}", c.tables.keys());
    }
    assert_eq!(without_tenant(&c), Vec::<String>::new(), "keys without the tenant");
    // The foreign keys between tenants' tables are still there, widened.
    let fk = |t: &str| c.tables[t].foreign.iter().map(|(c, p, _)| format!("{p}({})", c.join(","))).collect::<Vec<_>>();
    assert!(fk("responses").contains(&"invitations(tenant_id,invitation_id)".to_owned()), "{:?}", fk("responses"));
    assert!(fk("follow_up_entries").contains(&"follow_ups(tenant_id,follow_up_id)".to_owned()));
    // The token lookup, which does not know the tenant yet, has a plain index.
    assert!(c.lines.contains("index invitations ix_invitations_token_lookup (token_hash)"), "{:#?}", c.lines);
    let _ = conn.close().await;
}

/// The rule itself: a table keyed by `id` alone, or a foreign key between tenants'
/// tables without the tenant, is reported.
#[test]
fn a_key_without_the_tenant_is_reported() {
    let keys = |primary: &[&str], foreign: Vec<(Vec<String>, String, Vec<String>)>| Keys {
        columns: vec!["id".into(), "tenant_id".into(), "parent_id".into()],
        primary: primary.iter().map(|c| c.to_string()).collect(),
        unique: vec![("ix_t_code".into(), vec!["code".into()])],
        foreign,
    };
    let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let c = Catalog {
        tables: BTreeMap::from([
            ("tenants".into(), keys(&["id"], vec![])),
            ("parents".into(), keys(&["tenant_id", "id"], vec![])),
            ("children".into(), keys(&["id"], vec![(s(&["parent_id"]), "parents".into(), s(&["id"]))])),
        ]),
        lines: BTreeSet::new(),
    };
    assert_eq!(
        without_tenant(&c),
        [
            "children: primary key (id)",
            "children: unique ix_t_code (code)",
            "children: foreign key (parent_id) -> parents (id)",
            "parents: unique ix_t_code (code)",
        ]
    );
}

/// The lines only in `a`.
fn minus(a: &BTreeSet<String>, b: &BTreeSet<String>) -> BTreeSet<String> {
    a.difference(b).cloned().collect()
}

const REKEYED: [&str; 11] = [
    "surveys",
    "customers",
    "invitations",
    "responses",
    "follow_ups",
    "follow_up_entries",
    "events",
    "webhook_endpoints",
    "deliveries",
    "imported_responses",
    "audit_log",
];

const WIDENED: [(&str, &str, &str); 5] = [
    ("invitations", "customer_id", "customers"),
    ("responses", "customer_id", "customers"),
    ("responses", "invitation_id", "invitations"),
    ("follow_ups", "response_id", "responses"),
    ("follow_up_entries", "follow_up_id", "follow_ups"),
];

/// What m20261201_000005 removes and adds, as catalog lines; nothing else changes
/// (every column, every other index, constraint and trigger).
fn intended_changes(b: Backend) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut removed = BTreeSet::new();
    let mut added = BTreeSet::new();
    // SQLite keeps plain history tables: delivery_attempts is re-keyed here too
    // (PostgreSQL partitions it in m20261201_000006).
    let sqlite_also: &[&str] = if b == Backend::Sqlite { &["delivery_attempts"] } else { &[] };
    for t in REKEYED.iter().chain(sqlite_also) {
        removed.insert(format!("primary key {t} (id)"));
        added.insert(format!("primary key {t} (id,tenant_id)"));
    }
    for (t, c, p) in WIDENED {
        removed.insert(format!("foreign key {t} ({c}) -> {p} (id)"));
        added.insert(format!("foreign key {t} (tenant_id,{c}) -> {p} (tenant_id,id)"));
    }
    for (t, c, i) in [
        ("invitations", "token_hash", "ix_invitations_token"),
        ("responses", "invitation_id", "ix_responses_invitation"),
        ("follow_ups", "response_id", "ix_follow_ups_response"),
    ] {
        removed.insert(format!("index {t} (constraint) unique ({c})"));
        added.insert(format!("index {t} {i} unique ({c},tenant_id)"));
    }
    added.insert("index invitations ix_invitations_token_lookup (token_hash)".into());
    (removed, added)
}

const T: &str = "0190aaaa-0000-7000-8000-000000000001";
const SECRET: &str = "rk_secret_legacylegacylegacylegacylegacyle";
const TOKEN: &str = "inv_legacytokenlegacytokenlegacytoke";

/// Rows of every re-keyed table, as the server wrote them before the migration (values
/// as the store writes them; times in microseconds).
fn legacy_rows(now: i64) -> Vec<String> {
    let later = now + 30 * 86_400_000_000;
    let key_hash = rapport::domain::secrets::hash(SECRET);
    let token_hash = rapport::domain::secrets::hash(TOKEN);
    vec![
        format!("INSERT INTO tenants (id, name, created_at, event_seq) VALUES ('{T}', 'legacy', {now}, 1)"),
        format!(
            "INSERT INTO api_keys (id, tenant_id, kind, key_hash, prefix, created_at) \
             VALUES ('k1', '{T}', 'secret', '{key_hash}', 'rk_secret_lega', {now})"
        ),
        format!(
            "INSERT INTO surveys (id, tenant_id, kind, name, question, scale_max, low_label, high_label, \
             follow_up_threshold, follow_up_condition, follow_up_disabled, in_app, created_at, updated_at) \
             VALUES ('s1', '{T}', 'nps', 'Legacy NPS', 'How likely are you to recommend us?', 10, 'No', 'Yes', \
             6, '{{}}', FALSE, FALSE, {now}, {now})"
        ),
        format!(
            "INSERT INTO customers (id, tenant_id, external_id, properties, created_at, updated_at) \
             VALUES ('c1', '{T}', 'cust-1', '{{}}', {now}, {now})"
        ),
        // One answered invitation, one still open (its token is the hosted page's).
        format!(
            "INSERT INTO invitations (id, tenant_id, survey_id, customer_id, channel, outcome, forced, created_at, \
             expires_at, answered_at, response_id) \
             VALUES ('i1', '{T}', 's1', 'c1', 'email', 'issued', FALSE, {now}, {later}, {now}, 'r1')"
        ),
        format!(
            "INSERT INTO invitations (id, tenant_id, survey_id, customer_id, channel, outcome, token_hash, forced, \
             created_at, expires_at) \
             VALUES ('i2', '{T}', 's1', 'c1', 'link', 'issued', '{token_hash}', FALSE, {now}, {later})"
        ),
        format!(
            "INSERT INTO responses (id, tenant_id, survey_id, customer_id, invitation_id, kind, score, bucket, \
             scale_max, comment, properties, recorded_at, updated_at) \
             VALUES ('r1', '{T}', 's1', 'c1', 'i1', 'nps', 3, 'detractor', 10, 'Too slow', '{{}}', {now}, {now})"
        ),
        format!(
            "INSERT INTO follow_ups (id, tenant_id, response_id, survey_id, customer_id, status, priority, assignee, \
             due_at, resolution, at_or_under_threshold, opened_at, updated_at) \
             VALUES ('f1', '{T}', 'r1', 's1', 'c1', 'open', 'high', 'ann', {later}, '', TRUE, {now}, {now})"
        ),
        format!(
            "INSERT INTO follow_up_entries (id, tenant_id, follow_up_id, kind, author, body, created_at) \
             VALUES ('e1', '{T}', 'f1', 'note', 'ann', 'Called back', {now})"
        ),
        format!(
            "INSERT INTO events (id, tenant_id, seq, event_type, data, created_at, sequenced_at) \
             VALUES ('ev1', '{T}', 1, 'response.recorded', '{{\"response_id\":\"r1\"}}', {now}, {now})"
        ),
        format!("INSERT INTO fanout_cursors (id, seq, updated_at) VALUES ('{T}', 1, {now})"),
        // Disabled: the answer recorded below sends nothing anywhere.
        format!(
            "INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, survey_ids, secret, enabled, \
             disabled_reason, created_at, updated_at) \
             VALUES ('w1', '{T}', 'https://example.com/hook', 'legacy', '[]', '[]', \
             'whsec_bGVnYWN5bGVnYWN5bGVnYWN5bGVnYWN5', FALSE, 'legacy', {now}, {now})"
        ),
        format!(
            "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_id, event_seq, event_type, payload, status, \
             attempts, next_attempt_at, last_attempt_at, last_status_code, last_error, event_created_at, created_at, \
             updated_at) \
             VALUES ('d1', '{T}', 'w1', 'ev1', 1, 'response.recorded', '{{\"response_id\":\"r1\"}}', 'succeeded', 1, \
             {now}, {now}, 200, '', {now}, {now}, {now})"
        ),
        format!(
            "INSERT INTO imported_responses (id, tenant_id, external_id, request_hash, created_at) \
             VALUES ('r1', '{T}', 'legacy-export-1', 'h', {now})"
        ),
        format!(
            "INSERT INTO audit_log (id, tenant_id, actor, action, target, details, created_at) \
             VALUES ('0190aaaa-0000-7000-8000-0000000000a1', '{T}', 'operator', 'key.created', 'k1', '{{}}', {now})"
        ),
    ]
}

/// Migrated up to the migration before, written, then migrated to the end by the
/// server as it starts: the schema changed only as intended, and every row is there
/// and reads back through the API.
async fn rows_written_before_the_tenant_keys_stay_readable(b: Backend) {
    let (url, _dir, pg) = empty_database(b).await;
    // One connection: the one the migration rebuilds SQLite's tables on is the one
    // checked below.
    let conn = Database::connect(sea_orm::ConnectOptions::new(url.clone()).max_connections(1).to_owned())
        .await
        .expect("the test database");
    migrations::Migrator::up(&conn, Some(BEFORE_TENANT_KEYS)).await.expect("migrated up to the one before");
    let now = rapport::domain::time::to_micros(chrono::Utc::now());
    for sql in legacy_rows(now) {
        conn.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let before = catalog(&conn).await;
    migrations::Migrator::up(&conn, Some(1)).await.expect("m20261201_000005 applied");
    let after = catalog(&conn).await;
    let (removed, added) = intended_changes(b);
    assert_eq!(minus(&before.lines, &after.lines), removed, "removed by the migration");
    assert_eq!(minus(&after.lines, &before.lines), added, "added by the migration");
    // Down restores the schema as it was; up again, with the rows.
    migrations::Migrator::down(&conn, Some(1)).await.expect("m20261201_000005 rolled back");
    assert_eq!(catalog(&conn).await.lines, before.lines, "the schema after down");
    migrations::Migrator::up(&conn, Some(1)).await.expect("m20261201_000005 applied again");
    assert_eq!(catalog(&conn).await.lines, after.lines, "the schema after up again");
    if b == Backend::Sqlite {
        let orphans = texts(&conn, "SELECT \"table\" FROM pragma_foreign_key_check").await;
        assert!(orphans.is_empty(), "{orphans:?}");
    }
    // Foreign keys are checked again, and now also that a row's parent is its tenant's.
    for (tenant, follow_up) in [(T, "no-such-follow-up"), ("another-tenant", "f1")] {
        let orphan = format!(
            "INSERT INTO follow_up_entries (id, tenant_id, follow_up_id, kind, author, body, created_at) \
             VALUES ('e-{tenant}', '{tenant}', '{follow_up}', 'note', 'x', 'x', {now})"
        );
        let refused = conn.execute_unprepared(&orphan).await.expect_err("a row without its parent is refused");
        assert!(refused.to_string().to_lowercase().contains("foreign key"), "{refused}");
    }
    let _ = conn.close().await;

    // The server migrates the rest as it starts.
    let app = spawn_app_on(b, url.clone(), SECRET.into(), |_| {}).await;
    let mut surveys = app.surveys.clone();
    let survey = surveys.get_survey(pb::GetSurveyRequest { id: "s1".into() }).await.unwrap().into_inner();
    assert_eq!(survey.name, "Legacy NPS");
    let response = surveys.get_response(pb::GetResponseRequest { id: "r1".into() }).await.unwrap().into_inner();
    assert_eq!((response.score, response.comment.as_str()), (3, "Too slow"));
    let follow_up =
        app.follow_ups.clone().get_follow_up(pb::GetFollowUpRequest { id: "f1".into() }).await.unwrap().into_inner();
    assert_eq!(follow_up.response_id, "r1");
    assert!(follow_up.entries.iter().any(|e| e.body == "Called back"), "{:?}", follow_up.entries);

    // The customer's export reads invitations, responses and follow-ups by the keys.
    let export = reqwest::Client::new()
        .get(format!("{}/v1/customers/cust-1/export", app.http))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status().as_u16(), 200);
    let doc: serde_json::Value = export.json().await.unwrap();
    let ids = |list: &str, field: &str| -> BTreeSet<String> {
        doc[list].as_array().unwrap().iter().filter_map(|v| v[field].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(ids("invitations", "invitation_id"), BTreeSet::from(["i1".into(), "i2".into()]));
    assert_eq!(ids("responses", "response_id"), BTreeSet::from(["r1".into()]));
    assert_eq!(ids("follow_ups", "follow_up_id"), BTreeSet::from(["f1".into()]));

    // The hosted form finds the open invitation by its token, without the tenant.
    let mut form = app.surveys_as(None);
    let got = form.get_invitation(pb::GetInvitationRequest { token: TOKEN.into() }).await.unwrap().into_inner();
    assert_eq!(got.form.unwrap().question, "How likely are you to recommend us?");
    assert_eq!(got.invitation.unwrap().id, "i2");

    let mut webhooks = WebhookServiceClient::with_interceptor(app.channel.clone(), Auth(Some(SECRET.into())));
    let deliveries = webhooks
        .list_deliveries(pb::ListDeliveriesRequest { endpoint_id: "w1".into(), page_size: 10, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(deliveries.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1"]);
    assert_eq!(deliveries[0].event_id, "ev1");
    let mut privacy = PrivacyServiceClient::with_interceptor(app.channel.clone(), Auth(Some(SECRET.into())));
    let audit = privacy
        .list_audit_events(pb::ListAuditEventsRequest { page_size: 100, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert!(audit.audit_events.iter().any(|e| e.id == "0190aaaa-0000-7000-8000-0000000000a1"), "{audit:?}");

    // Answered through its token once; a second answer is refused, as before.
    let answer = || pb::RecordResponseRequest {
        target: Some(pb::record_response_request::Target::Token(TOKEN.into())),
        score: Some(9),
        ..Default::default()
    };
    let r = form.record_response(answer()).await.unwrap().into_inner();
    assert_eq!((r.invitation_id.as_str(), r.customer_id.as_str()), ("i2", "cust-1"));
    assert_code(form.record_response(answer()).await, Code::AlreadyExists);

    app.stop().await.unwrap();
    if let Some((name, admin)) = pg {
        drop_database(&name, &admin).await;
    }
}

crate::on_both!(every_key_of_a_tenants_table_includes_the_tenant, rows_written_before_the_tenant_keys_stay_readable);
