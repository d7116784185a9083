//! IP allow-list rules: an address, a CIDR block, a legacy `a.b.c.*` wildcard, or `*`.
//! An empty list allows no address.

use ipnet::{IpNet, Ipv4Net};
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpRule {
    /// Every address; must be chosen explicitly and is shown with a warning.
    Any,
    Addr(IpAddr),
    Net(IpNet),
    /// `203.0.113.*`: kept as written, matched as the block it stands for.
    Wildcard(Ipv4Net),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpRuleError {
    #[error("the rule is empty")]
    Empty,
    #[error("`{0}` is not an IPv4/IPv6 address, a CIDR block, an `a.b.c.*` wildcard or `*`")]
    Unrecognised(String),
    #[error("`{given}` has host bits set; the block is `{canonical}`")]
    HostBits { given: String, canonical: String },
    #[error("`{0}`: a wildcard replaces whole trailing octets, as in `203.0.113.*`")]
    Wildcard(String),
}

impl IpRule {
    pub fn parse(raw: &str) -> Result<Self, IpRuleError> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(IpRuleError::Empty);
        }
        if text == "*" {
            return Ok(Self::Any);
        }
        if text.contains('*') {
            return parse_wildcard(text);
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Ok(Self::Addr(addr.to_canonical()));
        }
        let net: IpNet = text
            .parse()
            .map_err(|_| IpRuleError::Unrecognised(text.to_owned()))?;
        let net = canonical_net(net);
        if net.trunc() != net {
            return Err(IpRuleError::HostBits {
                given: text.to_owned(),
                canonical: net.trunc().to_string(),
            });
        }
        Ok(Self::Net(net))
    }

    /// Whether `ip` may use a key with this rule. IPv4-mapped IPv6 addresses match their
    /// IPv4 rules.
    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match self {
            Self::Any => true,
            Self::Addr(addr) => *addr == ip,
            Self::Net(net) => net.contains(&ip),
            Self::Wildcard(net) => matches!(ip, IpAddr::V4(v4) if net.contains(&v4)),
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Self::Any)
    }

    /// Whether the rule admits every IPv4 address (`0.0.0.0/0`): `*` in all but its name.
    pub fn admits_all_ipv4(&self) -> bool {
        matches!(self, Self::Net(IpNet::V4(net)) if net.prefix_len() == 0)
    }

    /// Whether the rule admits every IPv6 address (`::/0`).
    pub fn admits_all_ipv6(&self) -> bool {
        matches!(self, Self::Net(IpNet::V6(net)) if net.prefix_len() == 0)
    }
}

/// Whether any rule of `rules` admits `ip`. An empty list admits nobody.
pub fn allows(rules: &[IpRule], ip: IpAddr) -> bool {
    rules.iter().any(|rule| rule.matches(ip))
}

fn canonical_net(net: IpNet) -> IpNet {
    // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8.
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped);
    }
    net
}

fn parse_wildcard(text: &str) -> Result<IpRule, IpRuleError> {
    let bad = || IpRuleError::Wildcard(text.to_owned());
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() != 4 {
        return Err(bad());
    }
    let fixed = parts.iter().take_while(|p| **p != "*").count();
    if fixed == 0 || parts[fixed..].iter().any(|p| *p != "*") {
        return Err(bad());
    }
    let mut octets = [0u8; 4];
    for (slot, part) in octets.iter_mut().zip(&parts[..fixed]) {
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        *slot = part.parse().map_err(|_| bad())?;
    }
    let prefix = u8::try_from(fixed * 8).map_err(|_| bad())?;
    let net = Ipv4Net::new(Ipv4Addr::from(octets), prefix).map_err(|_| bad())?;
    Ok(IpRule::Wildcard(net))
}

impl fmt::Display for IpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Addr(addr) => addr.fmt(f),
            Self::Net(net) => net.fmt(f),
            Self::Wildcard(net) => {
                let fixed = usize::from(net.prefix_len() / 8);
                let octets = net.addr().octets();
                let parts: Vec<String> = (0..4)
                    .map(|i| {
                        if i < fixed {
                            octets[i].to_string()
                        } else {
                            "*".to_owned()
                        }
                    })
                    .collect();
                f.write_str(&parts.join("."))
            }
        }
    }
}

impl Serialize for IpRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn rule(s: &str) -> IpRule {
        IpRule::parse(s).expect("test rule")
    }

    #[test]
    fn single_addresses_match_only_themselves() {
        assert!(rule("203.0.113.7").matches(ip("203.0.113.7")));
        assert!(!rule("203.0.113.7").matches(ip("203.0.113.8")));
        assert!(rule("2001:db8::1").matches(ip("2001:db8::1")));
        assert!(!rule("2001:db8::1").matches(ip("2001:db8::2")));
    }

    #[test]
    fn cidr_blocks_match_their_range() {
        assert!(rule("10.0.0.0/8").matches(ip("10.200.3.4")));
        assert!(!rule("10.0.0.0/8").matches(ip("11.0.0.1")));
        assert!(rule("2001:db8::/32").matches(ip("2001:db8:ffff::1")));
        assert!(!rule("2001:db8::/32").matches(ip("2001:db9::1")));
    }

    #[test]
    fn legacy_wildcards_match_like_blocks_and_print_as_written() {
        let r = rule("203.0.113.*");
        assert!(r.matches(ip("203.0.113.250")));
        assert!(!r.matches(ip("203.0.114.1")));
        assert_eq!(r.to_string(), "203.0.113.*");
        assert!(rule("10.1.*.*").matches(ip("10.1.9.9")));
        for bad in [
            "*.0.0.1",
            "1.*.3.*",
            "1.2.3.4.*",
            "1.2.*",
            "300.1.1.*",
            "a.b.c.*",
        ] {
            assert!(IpRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_addresses_match_ipv4_rules() {
        assert!(rule("203.0.113.7").matches(ip("::ffff:203.0.113.7")));
        assert!(rule("203.0.113.0/24").matches(ip("::ffff:203.0.113.99")));
        assert!(rule("203.0.113.*").matches(ip("::ffff:203.0.113.1")));
        assert_eq!(rule("::ffff:203.0.113.7"), rule("203.0.113.7"));
        assert_eq!(rule("::ffff:10.0.0.0/104"), rule("10.0.0.0/8"));
    }

    #[test]
    fn star_is_any_and_an_empty_list_allows_nobody() {
        assert!(rule("*").matches(ip("198.51.100.1")));
        assert!(rule("*").is_any());
        assert!(!allows(&[], ip("127.0.0.1")));
    }

    #[test]
    fn host_bits_and_garbage_are_refused_with_a_reason() {
        assert_eq!(
            IpRule::parse("10.0.0.5/8"),
            Err(IpRuleError::HostBits {
                given: "10.0.0.5/8".into(),
                canonical: "10.0.0.0/8".into()
            })
        );
        assert!(matches!(
            IpRule::parse("example.com"),
            Err(IpRuleError::Unrecognised(_))
        ));
        assert_eq!(IpRule::parse("  "), Err(IpRuleError::Empty));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    proptest! {
        /// A CIDR rule admits exactly what ipnet's own containment admits.
        #[test]
        fn cidr_rules_match_exactly_what_ipnet_contains(net in any::<[u8; 4]>(), prefix in 0u8..=32, probe in any::<[u8; 4]>()) {
            let net = Ipv4Net::new(Ipv4Addr::from(net), prefix).expect("prefix ≤ 32").trunc();
            let rule = IpRule::parse(&net.to_string()).expect("a canonical block parses");
            let probe = Ipv4Addr::from(probe);
            prop_assert_eq!(rule.matches(IpAddr::V4(probe)), net.contains(&probe));
            // …and the IPv4-mapped IPv6 form of the probe matches the same way.
            prop_assert_eq!(rule.matches(IpAddr::V6(probe.to_ipv6_mapped())), net.contains(&probe));
        }

        #[test]
        fn ipv6_cidr_rules_match_exactly_what_ipnet_contains(net in any::<[u8; 16]>(), prefix in 0u8..=128, probe in any::<[u8; 16]>()) {
            let net = Ipv6Net::new(Ipv6Addr::from(net), prefix).expect("prefix ≤ 128").trunc();
            if net.addr().to_ipv4_mapped().is_some() {
                return Ok(()); // IPv4-mapped blocks are IPv4 rules, tested above.
            }
            let rule = IpRule::parse(&net.to_string()).expect("a canonical block parses");
            let probe = Ipv6Addr::from(probe);
            if probe.to_ipv4_mapped().is_none() {
                prop_assert_eq!(rule.matches(IpAddr::V6(probe)), net.contains(&probe));
            }
        }

        /// A wildcard is the block of its fixed octets.
        #[test]
        fn wildcards_match_like_their_block(octets in any::<[u8; 4]>(), fixed in 1usize..=3, probe in any::<[u8; 4]>()) {
            let text: Vec<String> = (0..4).map(|i| if i < fixed { octets[i].to_string() } else { "*".to_owned() }).collect();
            let rule = IpRule::parse(&text.join(".")).expect("a wildcard parses");
            let net = Ipv4Net::new(Ipv4Addr::from(octets), (fixed * 8) as u8).expect("prefix").trunc();
            let probe = Ipv4Addr::from(probe);
            prop_assert_eq!(rule.matches(IpAddr::V4(probe)), net.contains(&probe));
            prop_assert_eq!(rule.to_string(), text.join("."));
        }

        /// Whatever text comes in, parsing answers (never panics), and a rule that parses
        /// prints in a form that parses back to itself.
        #[test]
        fn parsing_never_panics_and_round_trips(text in "\\PC{0,40}") {
            if let Ok(rule) = IpRule::parse(&text) {
                prop_assert_eq!(IpRule::parse(&rule.to_string()), Ok(rule));
            }
        }
    }
}
