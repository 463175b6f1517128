//! Which `Host` a signed 9.x request may name: this agent only.
//!
//! Why: the UI signs `Host` (`<address>:<port>` as the agent was registered)
//! but 9.0.1 never compared it with the agent, so a request captured on one
//! agent could be replayed to every other agent of the same UI within its
//! two hours (the replay cache is per agent). Here a signed request is served
//! only when its `Host` names this agent: `[temboard] hostname`, the host's
//! FQDN and short name, `localhost`, an address of a local interface, or an
//! entry of `[temboard] accepted_hosts` (NAT, DNS aliases, proxies), with this
//! agent's port.

use std::net::IpAddr;
use std::sync::Arc;

/// The names of this host (interfaces, FQDN, short name), refreshed every
/// [`LOCAL_NAMES_AGE`] (an address may come with DHCP).
pub type LocalNames = Arc<Vec<String>>;

/// How long the local names are reused.
pub const LOCAL_NAMES_AGE: std::time::Duration = std::time::Duration::from_secs(30);

/// The host's own names, lowercase: `localhost`, its FQDN and short name,
/// and the address of every interface (IPv6 without a zone).
pub fn local_names(fqdn: &str) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    let mut add = |n: &str| {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    add(fqdn);
    if let Some((short, _)) = fqdn.split_once('.') {
        add(short);
    }
    if let Ok(h) = nix::unistd::gethostname() {
        let h = h.to_string_lossy();
        add(&h);
        if let Some((short, _)) = h.split_once('.') {
            add(short);
        }
    }
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(sa) = a.address else { continue };
            if let Some(v4) = sa.as_sockaddr_in() {
                add(&v4.ip().to_string());
            } else if let Some(v6) = sa.as_sockaddr_in6() {
                add(&v6.ip().to_string());
            }
        }
    }
    names
}

/// `host[:port]` split, brackets of an IPv6 literal removed; a bare IPv6
/// address (9.x adds no brackets) ends with its port after the last `:`
/// when what is left is still an address.
fn split(host: &str) -> (String, Option<u16>) {
    let host = host.trim().to_ascii_lowercase();
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (addr.to_string(), port);
        }
    }
    if let Some((name, port)) = host.rsplit_once(':') {
        if let Ok(p) = port.parse::<u16>() {
            let v6_without_port = host.matches(':').count() > 1 && name.parse::<IpAddr>().is_err();
            if !v6_without_port {
                return (name.trim_end_matches('.').to_string(), Some(p));
            }
        }
    }
    (host.trim_end_matches('.').to_string(), None)
}

/// Whether `host` (the signed `Host` header) names this agent listening on
/// `port`, given its local names, `[temboard] hostname` and
/// `accepted_hosts`. A `Host` without a port is taken for this agent's port
/// (the UI always sends one; scripts may not).
pub fn accepted(
    host: &str,
    port: u16,
    local: &[String],
    hostname: Option<&str>,
    extra: &[String],
) -> bool {
    let (name, given) = split(host);
    if given.is_some_and(|p| p != port) {
        // Another port: only an accepted_hosts entry naming it.
        return extra
            .iter()
            .any(|e| split(e) == (name.clone(), given) && given.is_some());
    }
    let hostname = hostname.map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    local.contains(&name)
        || hostname.as_deref() == Some(name.as_str())
        || extra.iter().any(|e| {
            let (n, p) = split(e);
            n == name && p.is_none_or(|p| p == port)
        })
}

/// What a refusal says: the names accepted, with the port.
pub fn describe(port: u16, local: &[String], hostname: Option<&str>, extra: &[String]) -> String {
    let mut names: Vec<String> = hostname.map(str::to_string).into_iter().collect();
    names.extend(local.iter().cloned());
    names.extend(extra.iter().cloned());
    names.dedup();
    format!("{} (port {port})", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_as_the_ui_sends_them() {
        assert_eq!(
            split("pg1.example.com:2345"),
            ("pg1.example.com".into(), Some(2345))
        );
        assert_eq!(
            split("PG1.Example.com.:2345"),
            ("pg1.example.com".into(), Some(2345))
        );
        assert_eq!(split("localhost"), ("localhost".into(), None));
        assert_eq!(split("[::1]:2345"), ("::1".into(), Some(2345)));
        assert_eq!(split("::1:2345"), ("::1".into(), Some(2345)));
        assert_eq!(split("fe80::1"), ("fe80::1".into(), None));
        assert_eq!(split("10.0.0.5:2345"), ("10.0.0.5".into(), Some(2345)));
    }

    #[test]
    fn only_this_agent_is_accepted() {
        let local: Vec<String> = ["localhost", "pg1.example.com", "pg1", "10.0.0.5", "::1"]
            .map(String::from)
            .to_vec();
        let ok = |h: &str, extra: &[&str]| {
            let extra: Vec<String> = extra.iter().map(|e| e.to_string()).collect();
            accepted(h, 2345, &local, Some("db.example.org"), &extra)
        };
        assert!(ok("pg1.example.com:2345", &[]));
        assert!(ok("PG1:2345", &[]));
        assert!(ok("10.0.0.5:2345", &[]));
        assert!(ok("::1:2345", &[]));
        assert!(ok("[::1]:2345", &[]));
        assert!(ok("db.example.org:2345", &[]));
        assert!(ok("localhost", &[]));
        assert!(!ok("other-agent.example:2345", &[]));
        assert!(
            !ok("pg1.example.com:2346", &[]),
            "another agent of this host"
        );
        assert!(!ok("10.0.0.6:2345", &[]));
        // NAT, aliases, proxies.
        assert!(ok("public.example:2345", &["public.example"]));
        assert!(ok("proxy.example:443", &["proxy.example:443"]));
        assert!(!ok("proxy.example:444", &["proxy.example:443"]));
        assert!(!ok("public.example:9999", &["public.example"]));
    }
}
