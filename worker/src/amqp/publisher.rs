//! Publishing with publisher confirms over one channel.

use std::sync::Arc;

use domain::CheckEvent;
use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    BasicProperties, Channel, Connection,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{connect, declare, events::WireEvent, AmqpConfig, JobMessage};

/// Publishes with confirms over one channel, reconnecting lazily after a failure.
pub struct Publisher {
    config: AmqpConfig,
    stop: CancellationToken,
    state: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(config: AmqpConfig, stop: CancellationToken) -> Self {
        Self {
            config,
            stop,
            state: Mutex::new(None),
        }
    }

    /// Publishes every job to the jobs queue and returns once the broker confirmed them all.
    pub async fn publish_jobs(&self, jobs: &[JobMessage]) -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = jobs
            .iter()
            .map(|job| serde_json::to_vec(job).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        self.publish("", &self.config.jobs_queue(), &payloads, 2)
            .await
    }

    /// Publishes check events to the events exchange and waits for the confirms.
    pub async fn publish_events(&self, events: &[Arc<CheckEvent>]) -> Result<(), String> {
        let payloads: Vec<Vec<u8>> = events
            .iter()
            .map(|event| serde_json::to_vec(&WireEvent::from(&**event)).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        self.publish(&self.config.events_exchange(), "", &payloads, 1)
            .await
    }

    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payloads: &[Vec<u8>],
        delivery_mode: u8,
    ) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let result = async {
            if state
                .as_ref()
                .is_none_or(|(conn, ch)| !conn.status().connected() || !ch.status().connected())
            {
                let conn = connect(&self.config, &self.stop)
                    .await
                    .ok_or_else(|| "shutting down".to_owned())?;
                let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
                declare(&channel, &self.config)
                    .await
                    .map_err(|e| e.to_string())?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(|e| e.to_string())?;
                *state = Some((conn, channel));
            }
            let (_, channel) = state.as_ref().ok_or("no channel")?;
            let properties = BasicProperties::default()
                .with_delivery_mode(delivery_mode)
                .with_content_type("application/json".into());
            let mut confirms = Vec::with_capacity(payloads.len());
            for payload in payloads {
                confirms.push(
                    channel
                        .basic_publish(
                            exchange.into(),
                            routing_key.into(),
                            BasicPublishOptions::default(),
                            payload,
                            properties.clone(),
                        )
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            for confirm in confirms {
                let confirmation = confirm.await.map_err(|e| e.to_string())?;
                if confirmation.is_nack() {
                    return Err("the broker refused a message".to_owned());
                }
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            // Start over with a fresh connection next time.
            *state = None;
        }
        result
    }
}
