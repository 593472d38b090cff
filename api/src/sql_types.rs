//! SQL types of the schema that the two backends store differently.

use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, Text};
use diesel::sqlite::{Sqlite, SqliteValue};

/// A list of strings: `text[]` in PostgreSQL, a JSON array in SQLite's text (SQLite has no
/// arrays; its triggers read the list with `json_each`).
#[derive(diesel::sql_types::SqlType, diesel::query_builder::QueryId, Clone, Copy, Debug)]
#[diesel(postgres_type(oid = 1009, array_oid = 0))]
#[diesel(sqlite_type(name = "Text"))]
pub struct TextList;

/// A list bound as a [`TextList`] (`requests::flags.eq(Strings(&flags))`).
#[derive(Debug, diesel::expression::AsExpression)]
#[diesel(sql_type = TextList)]
pub struct Strings<'a>(pub &'a [String]);

impl FromSql<TextList, Pg> for Vec<String> {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <Vec<String> as FromSql<Array<Text>, Pg>>::from_sql(value)
    }
}

impl ToSql<TextList, Pg> for Strings<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <[String] as ToSql<Array<Text>, Pg>>::to_sql(self.0, out)
    }
}

impl FromSql<TextList, Sqlite> for Vec<String> {
    fn from_sql(mut value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        Ok(serde_json::from_str(value.read_text())?)
    }
}

impl ToSql<TextList, Sqlite> for Strings<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(self.0)?);
        Ok(IsNull::No)
    }
}
