//! Check results: history pages and counts (the batch write is in [`crate::batch`]).

use domain::CheckResult;
use entity::check_result;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::{rows, Database, Error, Page};

impl Database {
    /// Up to `limit` results of one monitor, newest first, older than its result number
    /// `before` (a [`CheckResult::seq`]).
    pub async fn history(
        &self,
        monitor_id: i64,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<CheckResult>, Error> {
        let rows = match self.reads() {
            Some(reads) => reads.history(monitor_id, before, limit + 1).await?,
            None => {
                let mut query = check_result::Entity::find()
                    .filter(check_result::Column::MonitorId.eq(monitor_id))
                    .order_by_desc(check_result::Column::Seq);
                if let Some(before) = before {
                    query = query.filter(check_result::Column::Seq.lt(before));
                }
                query.limit(limit + 1).all(&self.conn).await?
            }
        };
        Ok(Page::of(rows, limit, rows::check_result))
    }

    /// How many results a monitor has. Results are numbered 1, 2, 3, ... per monitor and only
    /// the oldest are ever removed, so the count is the span of the numbers kept: two lookups
    /// at the ends of the `(monitor_id, seq)` index, whatever the history's length.
    pub async fn result_count(&self, monitor_id: i64) -> Result<u64, Error> {
        use sea_orm::sea_query::{Expr, Func};
        let span: Option<(Option<i32>, Option<i32>)> = check_result::Entity::find()
            .select_only()
            .column_as(
                Expr::expr(Func::min(Expr::col(check_result::Column::Seq))),
                "lo",
            )
            .column_as(
                Expr::expr(Func::max(Expr::col(check_result::Column::Seq))),
                "hi",
            )
            .filter(check_result::Column::MonitorId.eq(monitor_id))
            .into_tuple()
            .one(&self.conn)
            .await?;
        Ok(match span {
            Some((Some(lo), Some(hi))) => {
                u64::try_from(i64::from(hi) - i64::from(lo) + 1).unwrap_or(0)
            }
            _ => 0,
        })
    }
}
