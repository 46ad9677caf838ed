//! Outbound proxies: HTTP(S) or SOCKS5 hops that an account's upstream traffic leaves
//! through. The password is write-only: it crosses the wire inward (`ProxyInput`) and never
//! back out (`ProxyView` only says whether one is stored).

use serde::{Deserialize, Serialize};

use crate::usage::NamedId;
use crate::{FieldError, text_enum};

/// The setting that holds the URL a proxy test fetches.
pub const PROBE_URL_SETTING: &str = "proxies.probe_url";
/// What a proxy test fetches until an administrator chooses otherwise: the upstream most
/// accounts talk to, so a pass means the proxy can reach it.
pub const DEFAULT_PROBE_URL: &str = "https://api.anthropic.com";

/// How the gateway speaks to the proxy. `socks5` resolves upstream host names locally,
/// `socks5h` lets the proxy resolve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    Http,
    Https,
    Socks5,
    Socks5h,
}
text_enum!(ProxyProtocol, "proxy protocol", { Http => "http", Https => "https", Socks5 => "socks5", Socks5h => "socks5h" });

/// A disabled proxy keeps its accounts out of service instead of letting them go direct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyStatus {
    Active,
    Disabled,
}
text_enum!(ProxyStatus, "proxy status", { Active => "active", Disabled => "disabled" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyView {
    pub id: i64,
    pub name: String,
    pub protocol: ProxyProtocol,
    pub host: String,
    pub port: u16,
    pub username: String,
    /// Whether a password is stored; the password itself is never returned.
    pub has_password: bool,
    pub status: ProxyStatus,
    pub account_count: i64,
    /// The accounts whose traffic goes through this proxy.
    pub accounts: Vec<NamedId>,
    pub created_at: String,
}

impl ProxyView {
    /// `protocol://host:port`, without credentials, for display.
    pub fn address(&self) -> String {
        proxy_address(self.protocol, &self.host, self.port)
    }
}

/// `protocol://host:port`, IPv6 literals in brackets. Never carries credentials.
pub fn proxy_address(protocol: ProxyProtocol, host: &str, port: u16) -> String {
    if host.contains(':') { format!("{protocol}://[{host}]:{port}") } else { format!("{protocol}://{host}:{port}") }
}

/// Body of `POST /api/v1/admin/proxies` and `PUT /api/v1/admin/proxies/:id` (all fields
/// optional on update).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyInput {
    pub name: Option<String>,
    pub protocol: Option<ProxyProtocol>,
    pub host: Option<String>,
    /// Wider than `u16` so an out-of-range port is reported by field, not as a parse error.
    pub port: Option<i64>,
    /// Empty: no authentication (any stored password is removed too).
    pub username: Option<String>,
    /// Absent: keep the stored password; empty: remove it; anything else: replace it.
    pub password: Option<String>,
    pub status: Option<ProxyStatus>,
}

/// A validated proxy, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyFields {
    pub name: String,
    pub protocol: ProxyProtocol,
    /// Host name or IP address; IPv6 without brackets.
    pub host: String,
    pub port: u16,
    pub username: String,
    /// The password to store: `None` keeps what is stored (nothing, on create), `Some("")`
    /// removes it.
    pub password: Option<String>,
    pub status: ProxyStatus,
}

const MAX_CREDENTIAL_LEN: usize = 255;

impl ProxyInput {
    /// Applies this input on top of `current` (or on nothing, for a create) and validates.
    /// `current.password` is ignored: the stored password is kept unless this input says
    /// otherwise.
    pub fn resolve(self, current: Option<&ProxyFields>) -> Result<ProxyFields, FieldError> {
        let name = match (self.name, current) {
            (Some(n), _) => n.trim().to_owned(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => return Err(FieldError::new("name", "is required")),
        };
        if name.is_empty() || name.chars().count() > 100 {
            return Err(FieldError::new("name", "must be 1 to 100 characters"));
        }
        let protocol = match (self.protocol, current) {
            (Some(p), _) => p,
            (None, Some(c)) => c.protocol,
            (None, None) => return Err(FieldError::new("protocol", "is required")),
        };
        let host = match (self.host, current) {
            (Some(h), _) => normalize_host(&h)?,
            (None, Some(c)) => c.host.clone(),
            (None, None) => return Err(FieldError::new("host", "is required")),
        };
        let port = match (self.port, current) {
            (Some(p), _) => u16::try_from(p)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| FieldError::new("port", "must be between 1 and 65535"))?,
            (None, Some(c)) => c.port,
            (None, None) => return Err(FieldError::new("port", "is required")),
        };
        let username = self.username.or(current.map(|c| c.username.clone())).unwrap_or_default();
        check_credential("username", &username)?;
        let password = match self.password {
            Some(p) => {
                check_credential("password", &p)?;
                Some(p)
            }
            None => None,
        };
        // Without a user name nothing would send the password: drop it rather than keep a
        // secret that does nothing.
        let password = if username.is_empty() {
            if password.as_deref().is_some_and(|p| !p.is_empty()) {
                return Err(FieldError::new("password", "needs a username"));
            }
            Some(String::new())
        } else {
            password
        };
        let status = self.status.or(current.map(|c| c.status)).unwrap_or(ProxyStatus::Active);
        Ok(ProxyFields { name, protocol, host, port, username, password, status })
    }
}

fn check_credential(field: &'static str, value: &str) -> Result<(), FieldError> {
    if value.len() > MAX_CREDENTIAL_LEN {
        return Err(FieldError::new(field, format!("must be at most {MAX_CREDENTIAL_LEN} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// A host name, an IPv4 address or an IPv6 address (brackets optional, stored without).
fn normalize_host(raw: &str) -> Result<String, FieldError> {
    let host = raw.trim();
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if unbracketed.contains(':') {
        return match unbracketed.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(unbracketed.to_ascii_lowercase()),
            Err(_) => Err(FieldError::new("host", "is not a valid IPv6 address")),
        };
    }
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if valid_name {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(FieldError::new("host", "must be a host name or IP address, without a scheme or port"))
    }
}

/// Validates the URL a proxy test fetches: absolute `http://` or `https://` with a host.
pub fn validate_probe_url(raw: &str) -> Result<String, FieldError> {
    let url = raw.trim();
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(h) if !h.is_empty() && url.len() <= 2000 && !url.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Ok(url.to_owned())
        }
        _ => Err(FieldError::new("probe_url", "must be an http:// or https:// URL with a host")),
    }
}

/// What a proxy test found. `ok` means an HTTP answer came back through the proxy (whatever
/// its status): the proxy works and can reach the probe URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyTestResult {
    pub ok: bool,
    /// Time to the response headers, or to the failure.
    pub latency_ms: u64,
    /// The probe URL's HTTP status, when one arrived.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub probe_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> ProxyInput {
        ProxyInput {
            name: Some(" office ".into()),
            protocol: Some(ProxyProtocol::Socks5h),
            host: Some("Proxy.Example.com".into()),
            port: Some(1080),
            username: Some("user".into()),
            password: Some("p@ss:word".into()),
            status: None,
        }
    }

    #[test]
    fn create_needs_every_connection_field_and_names_the_missing_one() {
        for (field, input) in [
            ("name", ProxyInput { name: None, ..full() }),
            ("protocol", ProxyInput { protocol: None, ..full() }),
            ("host", ProxyInput { host: None, ..full() }),
            ("port", ProxyInput { port: None, ..full() }),
        ] {
            assert_eq!(input.resolve(None).err().map(|e| e.field), Some(field));
        }
        let ok = full().resolve(None).unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.host.as_str(), ok.port, ok.password.as_deref(), ok.status),
            ("office", "proxy.example.com", 1080, Some("p@ss:word"), ProxyStatus::Active)
        );
    }

    #[test]
    fn rejects_bad_hosts_ports_and_orphan_passwords() {
        for host in ["", "http://x", "x:80", "a b", "user@x", "-x.com", "::zz"] {
            let err = ProxyInput { host: Some(host.into()), ..full() }.resolve(None).err();
            assert_eq!(err.map(|e| e.field), Some("host"), "{host}");
        }
        for port in [0, -1, 65_536] {
            let err = ProxyInput { port: Some(port), ..full() }.resolve(None).err();
            assert_eq!(err.map(|e| e.field), Some("port"), "{port}");
        }
        let err = ProxyInput { username: Some(String::new()), ..full() }.resolve(None).err();
        assert_eq!(err.map(|e| e.field), Some("password"));
        let v6 = ProxyInput { host: Some("[::1]".into()), ..full() }.resolve(None).unwrap();
        assert_eq!(proxy_address(v6.protocol, &v6.host, v6.port), "socks5h://[::1]:1080");
    }

    #[test]
    fn update_keeps_the_password_unless_told_and_drops_it_with_the_username() {
        let current = full().resolve(None).unwrap();
        let kept = ProxyInput { port: Some(8080), ..Default::default() }.resolve(Some(&current)).unwrap();
        assert_eq!((kept.port, kept.password), (8080, None), "absent password: keep the stored one");
        let removed = ProxyInput { password: Some(String::new()), ..Default::default() }.resolve(Some(&current));
        assert_eq!(removed.unwrap().password.as_deref(), Some(""));
        let anonymous = ProxyInput { username: Some(String::new()), password: None, ..Default::default() }
            .resolve(Some(&current))
            .unwrap();
        assert_eq!(anonymous.password.as_deref(), Some(""), "no username: the password goes too");
    }

    #[test]
    fn input_refuses_unknown_fields_and_spells_protocols_in_lowercase() {
        let parsed: Result<ProxyInput, _> = serde_json::from_str(r#"{"name":"x","secret":"y"}"#);
        assert!(parsed.is_err());
        let parsed: ProxyInput = serde_json::from_str(r#"{"protocol":"socks5h"}"#).unwrap();
        assert_eq!(parsed.protocol, Some(ProxyProtocol::Socks5h));
        assert_eq!("https".parse::<ProxyProtocol>(), Ok(ProxyProtocol::Https));
    }

    #[test]
    fn probe_urls_must_be_http_with_a_host() {
        assert_eq!(validate_probe_url(" https://api.anthropic.com ").as_deref(), Ok("https://api.anthropic.com"));
        assert!(validate_probe_url("http://127.0.0.1:9/x?y").is_ok());
        for bad in ["", "ftp://x", "https://", "https:///path", "https://a b"] {
            assert!(validate_probe_url(bad).is_err(), "{bad}");
        }
    }
}
