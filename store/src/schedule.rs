//! What the in-process scheduler reads: the active monitors (all, or one shard's), and the
//! monitors that changed.

use domain::MonitorSchedule;
use entity::monitor;
use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};

use crate::{rows, Database, Error};

impl Database {
    /// The active monitors; with `shard = Some((k, n))` only those whose id is `k` modulo `n`
    /// (ids are positive, so `id % n` is the scheduler's shard), filtered by the database.
    pub async fn active_schedules(
        &self,
        shard: Option<(usize, usize)>,
    ) -> Result<Vec<MonitorSchedule>, Error> {
        let mut query = monitor::Entity::find().filter(monitor::Column::Active.eq(true));
        if let Some((shard, shards)) = shard {
            query = query.filter(Expr::cust(format!("id % {} = {shard}", shards.max(1))));
        }
        let rows = query.all(&self.conn).await?;
        Ok(rows.into_iter().map(rows::schedule).collect())
    }

    /// The monitors among `ids` that exist, active or not.
    pub async fn schedules(&self, ids: &[i64]) -> Result<Vec<MonitorSchedule>, Error> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let rows = monitor::Entity::find()
                .filter(monitor::Column::Id.is_in(chunk.iter().copied()))
                .all(&self.conn)
                .await?;
            found.extend(rows.into_iter().map(rows::schedule));
        }
        Ok(found)
    }
}
