//! Notification channel operations: create, change, delete and test channels, choose a
//! monitor's channels, read deliveries. Channels are always returned with their secrets
//! masked; sending is the worker's delivery job.

use domain::notification::{
    parse_channel_name, Channel, ChannelKind, ChannelSettings, Delivery, SettingError,
    SettingsInput,
};
use store::Page;

use crate::{now, Error, MonitorService};

/// Most channels one monitor names.
pub const MAX_MONITOR_CHANNELS: usize = 50;

/// A new channel as a client sent it.
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub kind: ChannelKind,
    pub is_default: bool,
    pub settings: SettingsInput,
}

/// A change to a channel: what was sent (the kind cannot change).
#[derive(Debug, Clone, Default)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub settings: SettingsInput,
}

fn masked(mut channel: Channel) -> Channel {
    channel.settings = channel.settings.masked(channel.kind);
    channel
}

fn setting_error(err: SettingError) -> Error {
    Error::invalid(err.field, err.problem)
}

impl MonitorService {
    /// Refuses an endpoint at a literal address the target policy blocks (names are vetted
    /// as they resolve, at every send).
    fn vet_endpoint(&self, settings: &ChannelSettings) -> Result<(), Error> {
        let refused = |field: &'static str, ip: std::net::IpAddr, why: &str| {
            Error::invalid(
                field,
                format!("points at {ip}, which is {why}; notifications may not go there (see ALLOWED_NETWORKS)"),
            )
        };
        if let Some(host) = &settings.smtp_host {
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                self.policy()
                    .vet(ip)
                    .map_err(|why| refused("smtp_host", ip, &why.to_string()))?;
            }
            return Ok(());
        }
        let Ok(url) = url::Url::parse(&settings.url) else {
            return Ok(());
        };
        self.policy()
            .vet_url(&url)
            .map_err(|(ip, why)| refused("url", ip, &why.to_string()))
    }

    pub async fn channels(&self) -> Result<Vec<Channel>, Error> {
        Ok(self
            .db()
            .channels()
            .await?
            .into_iter()
            .map(masked)
            .collect())
    }

    pub async fn channel(&self, id: i64) -> Result<Channel, Error> {
        self.db()
            .channel(id)
            .await?
            .map(masked)
            .ok_or(Error::NotFound {
                what: "notification channel",
                id,
            })
    }

    pub async fn create_channel(&self, new: NewChannel) -> Result<Channel, Error> {
        let name = parse_channel_name(&new.name).map_err(|p| Error::invalid("name", p))?;
        let settings =
            ChannelSettings::parse(new.kind, new.settings, None).map_err(setting_error)?;
        self.vet_endpoint(&settings)?;
        if self.db().channel_name_taken(&name, None).await? {
            return Err(Error::invalid("name", "is taken by another channel"));
        }
        let channel = self
            .db()
            .insert_channel(name, new.kind, new.is_default, &settings, now())
            .await?;
        Ok(masked(channel))
    }

    pub async fn update_channel(&self, id: i64, patch: ChannelPatch) -> Result<Channel, Error> {
        let not_found = || Error::NotFound {
            what: "notification channel",
            id,
        };
        let stored = self.db().channel(id).await?.ok_or_else(not_found)?;
        let name = match &patch.name {
            Some(raw) => parse_channel_name(raw).map_err(|p| Error::invalid("name", p))?,
            None => stored.name.clone(),
        };
        let settings = ChannelSettings::parse(stored.kind, patch.settings, Some(&stored.settings))
            .map_err(setting_error)?;
        self.vet_endpoint(&settings)?;
        if self.db().channel_name_taken(&name, Some(id)).await? {
            return Err(Error::invalid("name", "is taken by another channel"));
        }
        let is_default = patch.is_default.unwrap_or(stored.is_default);
        self.db()
            .update_channel(id, name, is_default, &settings, now())
            .await?
            .map(masked)
            .ok_or_else(not_found)
    }

    pub async fn delete_channel(&self, id: i64) -> Result<(), Error> {
        if self.db().delete_channel(id).await? {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "notification channel",
                id,
            })
        }
    }

    /// Sends a test message now; the delivery with its one attempt (a failure says why).
    pub async fn test_channel(&self, id: i64) -> Result<Delivery, Error> {
        let channel = self.db().channel(id).await?.ok_or(Error::NotFound {
            what: "notification channel",
            id,
        })?;
        let delivery = worker::delivery::send_test(self.db(), self.policy(), &channel).await?;
        self.db().delivery(delivery).await?.ok_or(Error::Internal)
    }

    /// Up to `limit` deliveries, newest first, of one channel or all, ids below `before`.
    pub async fn deliveries(
        &self,
        channel_id: Option<i64>,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Page<Delivery>, Error> {
        if let Some(id) = channel_id {
            self.channel(id).await?;
        }
        Ok(self.db().deliveries(channel_id, before, limit).await?)
    }

    /// The channels a monitor names (default channels are notified besides them).
    pub async fn monitor_channels(&self, monitor_id: i64) -> Result<Vec<Channel>, Error> {
        Ok(self
            .db()
            .monitor_channels(monitor_id)
            .await?
            .into_iter()
            .map(masked)
            .collect())
    }

    /// Replaces the channels a monitor names; each must exist.
    pub async fn set_monitor_channels(
        &self,
        monitor_id: i64,
        mut ids: Vec<i64>,
    ) -> Result<Vec<Channel>, Error> {
        self.get(monitor_id).await?;
        self.check_channel_ids(&mut ids, "channelIds").await?;
        self.db().set_monitor_channels(monitor_id, &ids).await?;
        self.monitor_channels(monitor_id).await
    }

    /// Channel ids a monitor names, each once: at most [`MAX_MONITOR_CHANNELS`], each stored.
    pub(crate) async fn check_channel_ids(
        &self,
        ids: &mut Vec<i64>,
        field: &'static str,
    ) -> Result<(), Error> {
        ids.sort_unstable();
        ids.dedup();
        if ids.len() > MAX_MONITOR_CHANNELS {
            return Err(Error::invalid(
                field,
                format!("must name at most {MAX_MONITOR_CHANNELS} channels"),
            ));
        }
        for &id in ids.iter() {
            if self.db().channel(id).await?.is_none() {
                return Err(Error::invalid(
                    field,
                    format!("notification channel {id} does not exist"),
                ));
            }
        }
        Ok(())
    }
}
