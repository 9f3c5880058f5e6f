//! `health`: exit 0 when the database (and RabbitMQ, when configured) can be reached.

use std::time::Duration;

use anyhow::Context as _;

use crate::{cli::Settings, config};

/// `health`: can the database (and the broker) be reached?
pub(super) async fn run(settings: &Settings) -> anyhow::Result<()> {
    let db = super::open_db(settings).await?;
    db.ping().await.context("the database does not answer")?;
    if let Some(url) = config::rabbitmq_url(settings) {
        let amqp = config::amqp(url, &settings.rabbitmq_prefix).map_err(anyhow::Error::msg)?;
        tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(&amqp.url, lapin::ConnectionProperties::default()),
        )
        .await
        .context("RabbitMQ did not answer within 5 s")?
        .context("cannot connect to RabbitMQ")?;
    }
    println!("ok");
    Ok(())
}
