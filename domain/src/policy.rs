//! The target policy: which addresses a check may connect to. Link-local addresses (cloud
//! metadata among them), unspecified, multicast and broadcast addresses are always blocked;
//! with `block_private` so are loopback, RFC 1918, CGNAT and unique-local addresses; networks
//! in `allowed` are never blocked. A check vets the address it connects to, after resolving
//! the host once, so a name cannot pass the check and then resolve elsewhere.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;

/// Which addresses checks may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub block_private: bool,
    pub allowed: Vec<IpNet>,
}

/// Why an address is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    LinkLocal,
    Metadata,
    Unspecified,
    Multicast,
    Broadcast,
    Loopback,
    Private,
    SharedAddressSpace,
    UniqueLocal,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LinkLocal => "link-local",
            Self::Metadata => "a cloud metadata address",
            Self::Unspecified => "unspecified",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Loopback => "loopback (BLOCK_PRIVATE_NETWORKS is on)",
            Self::Private => "a private network (BLOCK_PRIVATE_NETWORKS is on)",
            Self::SharedAddressSpace => "carrier-grade NAT space (BLOCK_PRIVATE_NETWORKS is on)",
            Self::UniqueLocal => "unique-local (BLOCK_PRIVATE_NETWORKS is on)",
        })
    }
}

impl TargetPolicy {
    /// Parses `ALLOWED_NETWORKS`: comma-separated CIDRs (or single addresses).
    pub fn parse_networks(raw: &str) -> Result<Vec<IpNet>, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("`{item}` is not a network such as 10.0.0.0/8 or fd00::/8")
                    })
            })
            .collect()
    }

    /// Whether checks may connect to `ip`, and why not.
    pub fn vet(&self, ip: IpAddr) -> Result<(), Blocked> {
        let ip = canonical(ip);
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match blocked_always(ip) {
            Some(why) => Err(why),
            None if self.block_private => blocked_private(ip).map_or(Ok(()), Err),
            None => Ok(()),
        }
    }

    /// Vets a URL whose host is a literal address (any form the URL parser reads:
    /// `127.1`, `2130706433`, `0x7f000001`, `[::ffff:127.0.0.1]`); names pass, to be
    /// vetted once resolved.
    pub fn vet_url(&self, url: &url::Url) -> Result<(), (IpAddr, Blocked)> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        self.vet(ip).map_err(|why| (canonical(ip), why))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn blocked_always(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => {
            if v4 == Ipv4Addr::new(100, 100, 100, 200) {
                Some(Blocked::Metadata)
            } else if v4.is_link_local() {
                Some(Blocked::LinkLocal)
            } else if v4.octets()[0] == 0 {
                Some(Blocked::Unspecified)
            } else if v4.is_multicast() {
                Some(Blocked::Multicast)
            } else if v4.is_broadcast() {
                Some(Blocked::Broadcast)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some(Blocked::Metadata)
            } else if first & 0xffc0 == 0xfe80 {
                Some(Blocked::LinkLocal)
            } else if v6.is_unspecified() {
                Some(Blocked::Unspecified)
            } else if v6.is_multicast() {
                Some(Blocked::Multicast)
            } else {
                None
            }
        }
    }
}

fn blocked_private(ip: IpAddr) -> Option<Blocked> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some(Blocked::Loopback)
            } else if v4.is_private() {
                Some(Blocked::Private)
            } else if a == 100 && (64..128).contains(&b) {
                Some(Blocked::SharedAddressSpace)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some(Blocked::Loopback)
            } else if v6.segments()[0] & 0xfe00 == 0xfc00 {
                Some(Blocked::UniqueLocal)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn metadata_link_local_and_friends_are_always_blocked() {
        let open = TargetPolicy::default();
        for bad in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(open.vet(ip(bad)).is_err(), "{bad}");
        }
        for fine in ["127.0.0.1", "10.1.2.3", "::1", "8.8.8.8", "2001:db8::1"] {
            assert!(open.vet(ip(fine)).is_ok(), "{fine}");
        }
    }

    #[test]
    fn private_networks_when_asked_and_allowed_networks_override() {
        let strict = TargetPolicy {
            block_private: true,
            allowed: TargetPolicy::parse_networks("10.9.0.0/16, 169.254.10.10").unwrap(),
        };
        for bad in [
            "127.0.0.1",
            "127.255.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd12::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(strict.vet(ip(bad)).is_err(), "{bad}");
        }
        assert!(strict.vet(ip("10.9.3.4")).is_ok());
        assert!(strict.vet(ip("169.254.10.10")).is_ok());
        assert!(strict.vet(ip("8.8.8.8")).is_ok());
        assert!(TargetPolicy::parse_networks("10.0.0.0/33").is_err());
    }

    #[test]
    fn every_literal_form_of_loopback_is_seen_through() {
        let strict = TargetPolicy {
            block_private: true,
            allowed: Vec::new(),
        };
        for form in [
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:8080/",
            "https://127.0.0.1./",
        ] {
            let url = url::Url::parse(form).unwrap();
            let (addr, why) = strict.vet_url(&url).expect_err(form);
            assert_eq!(why, Blocked::Loopback, "{form}");
            assert!(addr.is_loopback(), "{form}");
        }
        let name = url::Url::parse("http://localhost/").unwrap();
        assert!(
            strict.vet_url(&name).is_ok(),
            "names are vetted once resolved"
        );
    }
}
