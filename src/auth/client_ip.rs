//! The client's address. It is the socket peer, unless the peer is a trusted proxy: only then
//! is the forwarding header read, from the right, skipping trusted hops. A forged header from
//! anyone else changes nothing.
//!
//! Only the one header the proxies maintain is read (`X-Forwarded-For` by default, or
//! `Forwarded`): most proxies append to one and pass the other through from the client
//! untouched, so reading both would let a client name its own address.

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// Which forwarding header the trusted proxies maintain.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Arc<Vec<IpNet>>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>, header: ForwardedHeader) -> Self {
        Self {
            nets: Arc::new(nets),
            header,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for_hops(headers),
            ForwardedHeader::Forwarded => forwarded_hops(headers),
        }
        .unwrap_or_default();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = ip.to_canonical();
                    if !self.trusts(client) {
                        return client;
                    }
                }
                // An unreadable hop: the nearest trusted proxy is all we can vouch for.
                None => return client,
            }
        }
        client
    }
}

/// The `for=` addresses of all `Forwarded` headers, in order; `None` for unreadable ones.
fn forwarded_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(text) = value.to_str() else {
            hops.push(None);
            continue;
        };
        for element in text.split(',') {
            let node = element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .map(|(_, value)| value.trim().trim_matches('"'));
            hops.push(node.and_then(parse_node));
        }
    }
    Some(hops)
}

fn x_forwarded_for_hops(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all("x-forwarded-for").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        match value.to_str() {
            Ok(text) => hops.extend(text.split(',').map(|hop| parse_node(hop.trim()))),
            Err(_) => hops.push(None),
        }
    }
    Some(hops)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// Puts the request's `ClientIp` into its extensions.
pub fn resolve_client_ip(proxies: &TrustedProxies, request: &mut axum::extract::Request) {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let client = proxies.resolve(peer, request.headers());
    request.extensions_mut().insert(ClientIp(client));
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(
            vec!["10.0.0.0/8".parse().expect("net")],
            ForwardedHeader::XForwardedFor,
        )
    }

    fn forwarded_proxies() -> TrustedProxies {
        TrustedProxies::new(
            vec!["10.0.0.0/8".parse().expect("net")],
            ForwardedHeader::Forwarded,
        )
    }

    #[test]
    fn untrusted_peers_cannot_forge_their_address() {
        let forged = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.7"),
        ]);
        assert_eq!(
            proxies().resolve(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::default().resolve(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn trusted_proxies_pass_on_the_first_untrusted_hop_from_the_right() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = headers(&[
            ("forwarded", "for=203.0.113.7"),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &both), ip("198.51.100.9"));
        assert_eq!(
            forwarded_proxies().resolve(ip("10.0.0.1"), &both),
            ip("203.0.113.7")
        );
        let client_sent_forwarded = headers(&[("forwarded", "for=203.0.113.7")]);
        assert_eq!(
            proxies().resolve(ip("10.0.0.1"), &client_sent_forwarded),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_is_understood_in_all_its_forms() {
        let h = headers(&[(
            "forwarded",
            "for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.3",
        )]);
        assert_eq!(
            forwarded_proxies().resolve(ip("10.0.0.1"), &h),
            ip("2001:db8::7")
        );
        let h = headers(&[("forwarded", "for=192.0.2.60:8080")]);
        assert_eq!(
            forwarded_proxies().resolve(ip("10.0.0.1"), &h),
            ip("192.0.2.60")
        );
    }

    #[test]
    fn unreadable_hops_stop_at_the_nearest_trusted_proxy() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage")]);
        assert_eq!(proxies().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            forwarded_proxies().resolve(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_seen_as_ipv4() {
        assert_eq!(
            TrustedProxies::default().resolve(ip("::ffff:198.51.100.1"), &HeaderMap::new()),
            ip("198.51.100.1")
        );
    }
}
