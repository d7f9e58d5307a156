//! Column and index shorthands shared by the migrations.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// A text primary key (ids are UUIDv7 strings).
pub fn id(name: &'static str) -> ColumnDef {
    string_len(name, 64).primary_key().to_owned()
}

/// A foreign key `table.col → to.id`, named `fk_<table>_<col>`.
pub fn fk(table: &'static str, col: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create().name(format!("fk_{table}_{col}")).from(table, col).to(to, "id").to_owned()
}

/// An index named `ix_<table>_<name>` over `cols`.
pub fn index(table: &'static str, name: &str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(format!("ix_{table}_{name}")).table(table);
    for c in cols {
        idx.col(*c);
    }
    if unique {
        idx.unique();
    }
    idx.to_owned()
}

/// The partial index of the events not numbered yet (m20261129_000001 creates it,
/// m20261129_000002 drops it once events are numbered when written).
pub fn pending_events_index() -> IndexCreateStatement {
    Index::create().name("ix_events_pending").table("events").col("id").and_where(Expr::col("seq").is_null()).to_owned()
}
