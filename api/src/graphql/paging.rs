//! Relay connections over id-ordered pages. A cursor is the id of the edge's row, so a page
//! stays correct while new rows arrive: monitors page forwards by increasing id, check
//! results backwards by decreasing id.

use async_graphql::{
    connection::{Connection, Edge},
    Context,
};

use super::types::{CheckResult, Monitor};
use crate::{
    error::{ApiError, IntoGraphql},
    service::{MonitorService, Page},
};

/// Default page size.
pub const DEFAULT_FIRST: i32 = 50;
/// Largest page size.
pub const MAX_FIRST: i32 = 1000;

/// The `first` and `after` arguments as the client sent them.
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
}

impl PageArgs {
    /// Validated page size and the id after which to start.
    fn parse(self) -> Result<(u64, Option<i64>), ApiError> {
        let first = self.first.unwrap_or(DEFAULT_FIRST);
        if !(0..=MAX_FIRST).contains(&first) {
            return Err(ApiError::invalid(
                "first",
                format!("must be between 0 and {MAX_FIRST}"),
            ));
        }
        let after = match self.after {
            None => None,
            Some(cursor) => Some(
                cursor
                    .parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| ApiError::invalid("after", "is not a valid cursor"))?,
            ),
        };
        Ok((first as u64, after))
    }
}

fn connection<T, N>(
    page: Page<T>,
    id: impl Fn(&T) -> i64,
    node: impl Fn(T) -> N,
) -> Connection<i64, N>
where
    N: async_graphql::OutputType,
{
    let mut connection = Connection::new(false, page.has_next);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|item| Edge::new(id(&item), node(item))),
    );
    connection
}

/// A page of monitors, oldest first.
pub async fn monitors_page(
    ctx: &Context<'_>,
    args: PageArgs,
    active: Option<bool>,
) -> async_graphql::Result<Connection<i64, Monitor>> {
    let (first, after) = args.parse().gql()?;
    let service = ctx.data_unchecked::<MonitorService>();
    let page = service.list_page(after, first, active).await.gql()?;
    Ok(connection(page, |m| m.id, Monitor))
}

/// A page of one monitor's check results, newest first; `NOT_FOUND` when it does not exist.
pub async fn check_results_page(
    ctx: &Context<'_>,
    monitor_id: i64,
    args: PageArgs,
) -> async_graphql::Result<Connection<i64, CheckResult>> {
    let (first, after) = args.parse().gql()?;
    let service = ctx.data_unchecked::<MonitorService>();
    let page = service.history(monitor_id, after, first).await.gql()?;
    Ok(connection(page, |r| i64::from(r.seq), CheckResult))
}
