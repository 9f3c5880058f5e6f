//! DNS checks: one query for the monitor's name and record type, to its resolver or to the
//! system's (`/etc/resolv.conf`, read once), with hickory's resolver. Nothing is cached and
//! `/etc/hosts` is not read, so every check asks the DNS for the answer it gives now. The
//! answers (one per line, as DNS presents them) are what `BODY` assertions read.

use std::{net::SocketAddr, str::FromStr, sync::OnceLock, time::Duration};

use domain::{spec::DnsRecordType, CheckSpec, MonitorUrl};
use hickory_resolver::{
    config::{NameServerConfigGroup, ResolveHosts, ResolverConfig, ResolverOpts},
    name_server::TokioConnectionProvider,
    proto::{op::ResponseCode, rr::RecordType, ProtoErrorKind},
    Name, ResolveError, Resolver,
};

use super::failure::Failure;

/// What a DNS monitor asks, prepared once.
#[derive(Debug)]
pub(super) struct DnsQuery {
    /// The name as given (IDNA applied), for messages.
    shown: String,
    /// The same, fully qualified, so no search domain is tried.
    name: Name,
    record_type: DnsRecordType,
    resolver: Option<SocketAddr>,
}

impl DnsQuery {
    /// `None` when the URL holds no name to query (never for a parsed monitor).
    pub fn new(url: &str, spec: &CheckSpec) -> Option<Self> {
        let shown = MonitorUrl::parse(url).ok()?.dns_name()?;
        let name = Name::from_str(&format!("{shown}.")).ok()?;
        Some(Self {
            shown,
            name,
            record_type: spec.dns_record_type.unwrap_or_default(),
            resolver: spec
                .dns_resolver
                .as_deref()
                .and_then(|r| domain::spec::parse_resolver(r).ok()),
        })
    }

    /// The resolver the query goes to, when the monitor names one.
    pub fn resolver(&self) -> Option<SocketAddr> {
        self.resolver
    }

    /// Asks, within `timeout`; the answers of the asked type, or why there are none.
    pub async fn ask(&self, timeout: Duration) -> Result<Vec<String>, Failure> {
        let (config, mut options) = match self.resolver {
            Some(addr) => (
                ResolverConfig::from_parts(
                    None,
                    vec![],
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                ResolverOpts::default(),
            ),
            None => system().clone().ok_or_else(|| {
                Failure::DnsAnswer(
                    "no system resolver is configured (give dns_resolver)".to_owned(),
                )
            })?,
        };
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        options.timeout = timeout;
        options.attempts = 1;
        let resolver = Resolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(options)
            .build();
        let wanted = record_type(self.record_type);
        let lookup = resolver
            .lookup(self.name.clone(), wanted)
            .await
            .map_err(|err| self.failure(&err))?;
        let answers: Vec<String> = lookup
            .record_iter()
            .filter(|r| r.record_type() == wanted)
            .map(|r| r.data().to_string())
            .collect();
        if answers.is_empty() {
            return Err(self.no_records());
        }
        Ok(answers)
    }

    fn no_records(&self) -> Failure {
        Failure::DnsAnswer(format!(
            "DNS: no {} records for {}",
            self.record_type.as_str(),
            self.shown
        ))
    }

    fn failure(&self, err: &ResolveError) -> Failure {
        let Some(proto) = err.proto() else {
            return Failure::DnsAnswer(format!("DNS failure: {err}"));
        };
        match proto.kind() {
            ProtoErrorKind::NoRecordsFound { response_code, .. } => match *response_code {
                ResponseCode::NXDomain => {
                    Failure::DnsAnswer(format!("DNS: {} does not exist (NXDOMAIN)", self.shown))
                }
                ResponseCode::NoError => self.no_records(),
                other => Failure::DnsAnswer(format!(
                    "DNS: the resolver answered with an error: {other} (RCODE {})",
                    u16::from(other)
                )),
            },
            ProtoErrorKind::Timeout => Failure::TimedOut,
            ProtoErrorKind::NoConnections => {
                Failure::DnsAnswer("DNS: no resolver could be reached".to_owned())
            }
            _ => Failure::DnsAnswer(format!("DNS failure: {proto}")),
        }
    }
}

fn record_type(kind: DnsRecordType) -> RecordType {
    match kind {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::Aaaa => RecordType::AAAA,
        DnsRecordType::Cname => RecordType::CNAME,
        DnsRecordType::Mx => RecordType::MX,
        DnsRecordType::Txt => RecordType::TXT,
        DnsRecordType::Ns => RecordType::NS,
    }
}

/// The system's resolver configuration, read once; `None` when there is none.
fn system() -> &'static Option<(ResolverConfig, ResolverOpts)> {
    static SYSTEM: OnceLock<Option<(ResolverConfig, ResolverOpts)>> = OnceLock::new();
    SYSTEM.get_or_init(|| match hickory_resolver::system_conf::read_system_conf() {
        Ok(conf) => Some(conf),
        Err(err) => {
            tracing::warn!(error = %err, "no system DNS configuration; DNS monitors need dns_resolver");
            None
        }
    })
}
