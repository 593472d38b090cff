//! What the benchmarks that fill PostgreSQL themselves share (`search`, `ui`).

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// `name` as a number, or `default`.
pub fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A line of `EXPLAIN`.
#[derive(diesel::QueryableByName)]
pub struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    pub line: String,
}

/// Run `sql`; panics naming it.
pub async fn exec(conn: &mut AsyncPgConnection, sql: &str) {
    diesel::sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
