//! Relay paging over id-ordered pages: cursors, page arguments, `totalCount` and the building
//! of a connection (the connection types themselves are in `types.rs`). A cursor is opaque to clients: the base64url of
//! the row it points at (`monitor:<id>`, `result:<monitor id>:<number>`), so a page stays
//! correct while new rows arrive: monitors page forwards by increasing id, check results
//! backwards by decreasing number.

use async_graphql::{
    connection::{Connection, CursorType, Edge},
    Context, Object,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use service::{MonitorService, Page};

use crate::error::{ApiError, IntoGraphql};

/// Default page size.
pub const DEFAULT_FIRST: i32 = 50;
/// Largest page size.
pub const MAX_FIRST: i32 = 1000;

/// The complexity of a page: its fields counted once per row asked for.
pub fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let rows = first.unwrap_or(DEFAULT_FIRST).clamp(1, MAX_FIRST) as usize;
    rows.saturating_mul(child_complexity).saturating_add(1)
}

/// Where an edge is: a monitor's id, or a monitor's result number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Monitor(i64),
    Result { monitor_id: i64, seq: i64 },
    Incident(i64),
    Delivery(i64),
}

/// A cursor this API did not give out.
#[derive(Debug)]
pub struct InvalidCursor;

impl std::fmt::Display for InvalidCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is not a cursor this API gave out")
    }
}

impl CursorType for Cursor {
    type Error = InvalidCursor;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        let invalid = || InvalidCursor;
        let text = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
        let text = String::from_utf8(text).map_err(|_| invalid())?;
        let number = |raw: &str| {
            raw.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(invalid)
        };
        match text.split(':').collect::<Vec<_>>().as_slice() {
            ["monitor", id] => Ok(Self::Monitor(number(id)?)),
            ["incident", id] => Ok(Self::Incident(number(id)?)),
            ["delivery", id] => Ok(Self::Delivery(number(id)?)),
            ["result", monitor_id, seq] => Ok(Self::Result {
                monitor_id: number(monitor_id)?,
                seq: number(seq)?,
            }),
            _ => Err(invalid()),
        }
    }

    fn encode_cursor(&self) -> String {
        let text = match self {
            Self::Monitor(id) => format!("monitor:{id}"),
            Self::Incident(id) => format!("incident:{id}"),
            Self::Delivery(id) => format!("delivery:{id}"),
            Self::Result { monitor_id, seq } => format!("result:{monitor_id}:{seq}"),
        };
        URL_SAFE_NO_PAD.encode(text)
    }
}

/// The `first` and `after` arguments as the client sent them.
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
}

impl PageArgs {
    /// Validated page size and the cursor after which to start.
    pub(super) fn parse(self) -> Result<(u64, Option<Cursor>), ApiError> {
        let first = self.first.unwrap_or(DEFAULT_FIRST);
        if !(0..=MAX_FIRST).contains(&first) {
            return Err(ApiError::invalid(
                "first",
                format!("must be between 0 and {MAX_FIRST}"),
            ));
        }
        let after = self
            .after
            .as_deref()
            .map(Cursor::decode_cursor)
            .transpose()
            .map_err(|e| ApiError::invalid("after", e.to_string()))?;
        Ok((first as u64, after))
    }
}

/// `totalCount` of a monitor connection, counted only when asked for.
pub struct MonitorCount {
    pub(super) active: Option<bool>,
}

#[Object]
impl MonitorCount {
    /// How many monitors match the filter, across all pages (one count query, run only when
    /// this field is selected).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let service = ctx.data_unchecked::<MonitorService>();
        service.count(self.active).await.gql()
    }
}

/// `totalCount` of a check result connection, counted only when asked for.
pub struct ResultCount {
    pub(super) monitor_id: i64,
}

#[Object]
impl ResultCount {
    /// How many results the monitor has, across all pages (two index lookups whatever the
    /// history's length, run only when this field is selected).
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<u64> {
        let service = ctx.data_unchecked::<MonitorService>();
        service.result_count(self.monitor_id).await.gql()
    }
}

/// A connection of `page`'s items, each with its cursor, and `counter` for `totalCount`.
pub(super) fn connection<T, N, C>(
    page: Page<T>,
    counter: C,
    cursor: impl Fn(&T) -> Cursor,
    node: impl Fn(T) -> N,
) -> Connection<Cursor, N, C>
where
    N: async_graphql::OutputType,
    C: async_graphql::ObjectType,
{
    let mut connection = Connection::with_additional_fields(false, page.has_next, counter);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|item| Edge::new(cursor(&item), node(item))),
    );
    connection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for cursor in [
            Cursor::Monitor(7),
            Cursor::Incident(12),
            Cursor::Result {
                monitor_id: 3,
                seq: 99,
            },
        ] {
            let text = cursor.encode_cursor();
            assert!(!text.contains(':'), "{text} is not opaque");
            assert_eq!(Cursor::decode_cursor(&text).unwrap(), cursor);
        }
        for bad in [
            "",
            "42",
            "!!",
            &URL_SAFE_NO_PAD.encode("monitor:-1"),
            &URL_SAFE_NO_PAD.encode("x:1"),
        ] {
            assert!(Cursor::decode_cursor(bad).is_err(), "{bad} was accepted");
        }
    }
}
