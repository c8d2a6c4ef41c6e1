//! The client's address behind reverse proxies: the forwarding header (`X-Forwarded-For`, or
//! RFC 7239 `Forwarded` when configured) is believed only when the TCP peer is one of the
//! configured trusted proxies, and then only up to the first hop that is not a trusted proxy
//! itself.
//!
//! Reading the chain from the right (the hop nearest to Signet) and stopping at the first
//! address that is not a trusted proxy is what keeps a client from choosing its own address:
//! whatever it writes into the header itself sits to the left of the address its first proxy
//! appended, and is never reached.

use std::net::IpAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// One trusted address or block (`10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    network: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(text: &str) -> Result<Block, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr =
            address.parse().map_err(|_| format!("{text:?} is not an IP address or a CIDR block (10.0.0.0/8)"))?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Block { network, prefix })
    }

    fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u32::from(net).into(), 32, self.prefix) == masked(u32::from(a).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
    match u32::from(prefix) {
        0 => 0,
        p => bits >> (width - p.min(width)),
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener reports) as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The header the proxies write the chain into. Only that one is read: a proxy that writes
/// `X-Forwarded-For` passes a `Forwarded` header from the client through untouched, so reading
/// whichever is present would let the client choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1` (its `for=` values).
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(name: &str) -> Result<ForwardedHeader, String> {
        match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(format!("{name:?}: expected \"x-forwarded-for\" or \"forwarded\"")),
        }
    }
}

/// The reverse proxies whose forwarding header is believed (none by default), and that header.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    blocks: Vec<Block>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses addresses and CIDR blocks; an entry that is neither is an error naming it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let blocks = entries.iter().map(|e| Block::parse(e.as_ref())).collect::<Result<_, _>>()?;
        Ok(TrustedProxies { blocks, header: ForwardedHeader::default() })
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    pub fn with_header(self, header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies { header, ..self }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(address))
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers, self.header);
        let mut nearest = peer;
        for hop in chain.iter().rev() {
            // An obfuscated or unknown hop ("unknown", "_proxy2"): what lies beyond it cannot
            // be checked, so the last address that could be is the answer.
            let Some(address) = hop else { return nearest };
            if !self.trusts(*address) {
                return *address;
            }
            nearest = *address;
        }
        nearest
    }
}

/// The forwarding chain in `which` header, client first. Every header line counts, in order.
/// `None` for a hop that is not an address.
fn forwarded_chain(headers: &HeaderMap, which: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let lines = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    if which == ForwardedHeader::Forwarded {
        return lines(header::FORWARDED)
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| node_address(value))
            })
            .collect();
    }
    lines(header::HeaderName::from_static("x-forwarded-for"))
        .iter()
        .flat_map(|line| line.split(','))
        .map(node_address)
        .collect()
}

/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:8080` -> the address.
fn node_address(value: &str) -> Option<IpAddr> {
    let value = value.trim().trim_matches('"');
    if let Ok(address) = value.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']').and_then(|(address, _)| address.parse().ok()).map(canonical);
    }
    value.rsplit_once(':').and_then(|(address, _)| address.parse::<std::net::Ipv4Addr>().ok()).map(IpAddr::V4)
}

/// The client address of a request, resolved once by [`resolve`] (the TCP peer when no
/// trusted proxy forwarded it).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub IpAddr);

/// Middleware: puts the request's [`ClientAddress`] into its extensions.
pub async fn resolve(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    if let Some(peer) = peer {
        let address = state.config.trusted_proxies.client_address(peer, request.headers());
        request.extensions_mut().insert(ClientAddress(address));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let none = TrustedProxies::default();
        let spoofed = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(none.client_address(ip("203.0.113.5"), &spoofed), ip("203.0.113.5"));
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(proxies.client_address(ip("203.0.113.5"), &spoofed), ip("203.0.113.5"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "192.0.2.7"]).unwrap();
        // The client wrote 1.1.1.1 itself; its first proxy appended the address it saw.
        let chain = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.23, 10.1.2.3")]);
        assert_eq!(proxies.client_address(ip("192.0.2.7"), &chain), ip("198.51.100.23"));
        // Several header lines are one list.
        let lines = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "198.51.100.23, 10.1.2.3")]);
        assert_eq!(proxies.client_address(ip("192.0.2.7"), &lines), ip("198.51.100.23"));
        // Only proxies in the chain: the leftmost is the nearest to the client Signet can know.
        let inside = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.2.3")]);
        assert_eq!(proxies.client_address(ip("192.0.2.7"), &inside), ip("10.9.9.9"));
        // No header at all: the proxy is the client.
        assert_eq!(proxies.client_address(ip("192.0.2.7"), &HeaderMap::new()), ip("192.0.2.7"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let both = headers(&[
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, for=198.51.100.9"#),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        // A proxy writing X-Forwarded-For passes the client's own `Forwarded` through.
        let xff = TrustedProxies::parse(&["127.0.0.1", "2001:db8::/32"]).unwrap();
        assert_eq!(xff.client_address(ip("127.0.0.1"), &both), ip("203.0.113.1"));
        let rfc = xff.with_header(ForwardedHeader::Forwarded);
        assert_eq!(rfc.client_address(ip("127.0.0.1"), &both), ip("198.51.100.9"));
        assert_eq!(ForwardedHeader::parse("Forwarded"), Ok(ForwardedHeader::Forwarded));
        assert!(ForwardedHeader::parse("x-real-ip").unwrap_err().contains("x-real-ip"));
        let v6 = headers(&[("forwarded", r#"for="[2001:db8:cafe::17]:4711", for=192.0.2.60:8080"#)]);
        let proxies =
            TrustedProxies::parse(&["127.0.0.1", "192.0.2.60"]).unwrap().with_header(ForwardedHeader::Forwarded);
        assert_eq!(proxies.client_address(ip("127.0.0.1"), &v6), ip("2001:db8:cafe::17"));
        // An obfuscated hop: stop at the last address that could be checked.
        let hidden = headers(&[("forwarded", "for=198.51.100.9, for=_hidden, for=192.0.2.60")]);
        assert_eq!(proxies.client_address(ip("127.0.0.1"), &hidden), ip("192.0.2.60"));
    }

    #[test]
    fn blocks_parse_and_match_mapped_addresses() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
        assert!(proxies.trusts(ip("::ffff:10.20.30.40")));
        assert!(proxies.trusts(ip("::1")));
        assert!(!proxies.trusts(ip("11.0.0.1")));
        assert!(TrustedProxies::parse(&["0.0.0.0/0"]).unwrap().trusts(ip("8.8.8.8")));
        let err = TrustedProxies::parse(&["10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("0 to 32"), "{err}");
        let err = TrustedProxies::parse(&["proxy.example.com"]).unwrap_err();
        assert!(err.contains("proxy.example.com"), "{err}");
    }
}
