//! Where a service's replicas are: the value of a `*_URL` variable.
//!
//! - `http://host:port` — one server (the name is resolved at each connection, as before);
//! - `http://a:1,http://b:2,…` — a fixed list of replicas (what `cargo xtask up --replicas`
//!   passes), each its own endpoint;
//! - `dns:///name:port` — every address `name` resolves to is a replica, and the name is
//!   resolved again every few seconds (gRPC's own name syntax; in Kubernetes a headless
//!   Service's name, which resolves to its ready pods).

use std::fmt;

/// A parsed `*_URL` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Fixed endpoints, each `scheme://authority` with an explicit port.
    Urls(Vec<http::Uri>),
    /// Every address of `host`, re-resolved periodically, each reached over plaintext HTTP/2.
    Dns { host: String, port: u16 },
}

impl Target {
    /// Parses a `*_URL` value; the error says what is wrong, for a start-up message.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Some(rest) = value.strip_prefix("dns:") {
            // gRPC's `dns:[//authority/]host:port`; a DNS server of our own is not supported.
            let name = match rest.strip_prefix("//") {
                Some(with_authority) => match with_authority.split_once('/') {
                    Some(("", name)) => name,
                    _ => {
                        return Err(format!(
                            "{value:?}: write dns:///name:port (a DNS server in the URL is not supported)"
                        ));
                    }
                },
                None => rest,
            };
            let (host, port) = name
                .rsplit_once(':')
                .ok_or_else(|| format!("{value:?}: dns:///name:port needs the port"))?;
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("{value:?}: {port:?} is not a port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(format!("{value:?}: dns:///name:port needs a name"));
            }
            return Ok(Self::Dns {
                host: host.to_owned(),
                port,
            });
        }
        let urls = value
            .split(',')
            .map(|url| parse_url(url.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Urls(urls))
    }

    /// True when there is exactly one fixed endpoint: nothing to balance.
    pub fn is_single(&self) -> bool {
        matches!(self, Self::Urls(urls) if urls.len() == 1)
    }
}

fn parse_url(url: &str) -> Result<http::Uri, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "{url:?} is not an http:// or https:// URL (or a list of them, or dns:///name:port)"
        ));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|error| format!("{url:?} is not a URL: {error}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} names no host"));
    }
    Ok(uri)
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Urls(urls) => {
                for (n, url) in urls.iter().enumerate() {
                    if n > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{url}")?;
                }
                Ok(())
            }
            Self::Dns { host, port } => write!(f, "dns:///{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_url_a_list_and_a_dns_name_are_targets() {
        assert!(Target::parse("http://127.0.0.1:50053").unwrap().is_single());
        let list = Target::parse("http://127.0.0.1:50053, http://127.0.0.1:50054").unwrap();
        assert_eq!(
            list.to_string(),
            "http://127.0.0.1:50053/,http://127.0.0.1:50054/"
        );
        for dns in ["dns:///reservation:50053", "dns:reservation:50053"] {
            assert_eq!(
                Target::parse(dns).unwrap(),
                Target::Dns {
                    host: "reservation".into(),
                    port: 50053
                }
            );
        }
        assert_eq!(
            Target::parse("dns:///[::1]:7").unwrap(),
            Target::Dns {
                host: "::1".into(),
                port: 7
            }
        );
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for bad in [
            "",
            "127.0.0.1:50053",
            "http://a:1,",
            "http://a:1,redis://b:2",
            "dns:///reservation",
            "dns:///reservation:0",
            "dns:///:50053",
            "dns://8.8.8.8/reservation:50053",
            "http://",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
