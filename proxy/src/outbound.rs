//! Outbound proxies: the HTTP(S) or SOCKS5 hop an account's upstream traffic leaves through,
//! the one HTTP client kept per distinct proxy, and the admin "test this proxy" probe.
//!
//! Which account uses which proxy is the snapshot's business, not this module's. A proxy
//! password lives here in clear (the connection needs it) and must never reach a log, a
//! `Debug` output or an error text.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::proxies::{ProxyProtocol, ProxyTestResult, proxy_address};

/// Where and how to reach one proxy, password opened. Two proxies with the same target share
/// a client; an edit (new host, port or password) makes a new target and so a fresh client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyTarget {
    pub protocol: ProxyProtocol,
    pub host: String,
    pub port: u16,
    /// Empty: the proxy needs no authentication.
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTarget")
            .field("address", &self.address())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ProxyTarget {
    /// `protocol://host:port`, safe to log and show.
    pub fn address(&self) -> String {
        proxy_address(self.protocol, &self.host, self.port)
    }

    /// The proxy for reqwest, for every scheme. Credentials become the URL's user info, which
    /// reqwest sends as `Proxy-Authorization: Basic …` to HTTP proxies and as the SOCKS5
    /// user/password sub-negotiation to SOCKS proxies.
    fn reqwest_proxy(&self) -> reqwest::Result<reqwest::Proxy> {
        let proxy = reqwest::Proxy::all(self.address())?;
        Ok(if self.username.is_empty() { proxy } else { proxy.basic_auth(&self.username, &self.password) })
    }

    /// `text` with this proxy's password blanked out, in case an error message quotes it.
    fn scrub(&self, text: String) -> String {
        if self.password.is_empty() { text } else { text.replace(&self.password, "***") }
    }
}

/// The settings every upstream client shares, direct or through a proxy.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .connect_timeout(Duration::from_secs(10))
}

/// One client (and so one connection pool) per proxy target, built on first use. A client
/// is never built per request.
#[derive(Default)]
pub struct ProxiedClients {
    /// A std lock: held only to look up, insert or prune, never across `.await` and never
    /// while a client is built.
    clients: Mutex<HashMap<ProxyTarget, reqwest::Client>>,
}

impl ProxiedClients {
    /// The client for `target`. On a miss the new client is built outside the lock, and the
    /// clients of targets for which `in_use` is false (proxies edited or deleted since) are
    /// dropped with their pools.
    pub fn get(&self, target: &ProxyTarget, in_use: impl Fn(&ProxyTarget) -> bool) -> reqwest::Result<reqwest::Client> {
        if let Some(client) = self.lock().get(target) {
            return Ok(client.clone());
        }
        let built = client_builder().proxy(target.reqwest_proxy()?).build()?;
        let mut clients = self.lock();
        clients.retain(|t, _| in_use(t));
        // Another request may have built one meanwhile: keep the first, so they share a pool.
        Ok(clients.entry(target.clone()).or_insert(built).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProxyTarget, reqwest::Client>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Fetches `url` through `target` once and reports how long the response headers took. Any
/// HTTP answer from the probe URL counts as success (the proxy carried the request); a 407
/// is the proxy refusing, so it does not.
pub async fn probe(target: &ProxyTarget, url: &str, timeout: Duration) -> ProxyTestResult {
    let mut result = ProxyTestResult { ok: false, latency_ms: 0, status: None, error: None, probe_url: url.to_owned() };
    // A fresh client without a pool, so the test opens a new connection through the proxy;
    // redirects are not followed, so the latency is one round trip.
    let client = target.reqwest_proxy().and_then(|proxy| {
        client_builder()
            .proxy(proxy)
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
    });
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(target.scrub(error_chain(e)));
            return result;
        }
    };
    let started = Instant::now();
    let outcome = client.get(url).send().await;
    result.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(response) if response.status() == reqwest::StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
            result.status = Some(response.status().as_u16());
            result.error = Some("the proxy refused the credentials (407 Proxy Authentication Required)".into());
        }
        Ok(response) => {
            result.status = Some(response.status().as_u16());
            result.ok = true;
        }
        Err(e) if e.is_timeout() => {
            result.error = Some(format!("no answer within {} s", timeout.as_secs()));
        }
        Err(e) => result.error = Some(target.scrub(error_chain(e))),
    }
    result
}

/// The error and its causes on one line ("error sending request: client error (Connect):
/// tcp connect error: Connection refused"), without the request URL.
fn error_chain(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn target(port: u16, password: &str) -> ProxyTarget {
        ProxyTarget {
            protocol: ProxyProtocol::Http,
            host: "127.0.0.1".into(),
            port,
            username: "user".into(),
            password: password.into(),
        }
    }

    #[test]
    fn debug_and_address_never_show_the_password() {
        let t = target(3128, "hunter2");
        assert_eq!(t.address(), "http://127.0.0.1:3128");
        assert!(!format!("{t:?}").contains("hunter2"));
        assert_eq!(t.scrub("bad hunter2!".into()), "bad ***!");
    }

    #[test]
    fn one_client_per_target_and_stale_targets_are_dropped() {
        let clients = ProxiedClients::default();
        let a = target(1, "x");
        let edited = target(1, "y");
        clients.get(&a, |_| true).unwrap();
        clients.get(&a, |_| true).unwrap();
        assert_eq!(clients.lock().len(), 1, "the same target reuses its client");
        clients.get(&edited, |t| *t == edited).unwrap();
        let kept: Vec<ProxyTarget> = clients.lock().keys().cloned().collect();
        assert_eq!(kept, vec![edited], "a new password means a new client; the old one goes");
    }

    /// A one-connection-at-a-time SOCKS5 server that demands `user`/`pass` and counts the
    /// tunnels it opened.
    async fn socks5_server(user: &'static str, pass: &'static str) -> (u16, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&tunnels);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut head = [0u8; 2];
                    client.read_exact(&mut head).await?;
                    let mut methods = vec![0u8; usize::from(head[1])];
                    client.read_exact(&mut methods).await?;
                    client.write_all(&[5, 2]).await?; // username/password, RFC 1929
                    let _version = client.read_u8().await?;
                    let given_user = read_field(&mut client).await?;
                    let given_pass = read_field(&mut client).await?;
                    if (given_user.as_slice(), given_pass.as_slice()) != (user.as_bytes(), pass.as_bytes()) {
                        return client.write_all(&[1, 1]).await;
                    }
                    client.write_all(&[1, 0]).await?;
                    let mut request = [0u8; 4];
                    client.read_exact(&mut request).await?;
                    let host = match request[3] {
                        1 => {
                            let mut ip = [0u8; 4];
                            client.read_exact(&mut ip).await?;
                            std::net::Ipv4Addr::from(ip).to_string()
                        }
                        _ => String::from_utf8_lossy(&read_field(&mut client).await?).into_owned(),
                    };
                    let mut port = [0u8; 2];
                    client.read_exact(&mut port).await?;
                    let mut upstream =
                        tokio::net::TcpStream::connect((host.as_str(), u16::from_be_bytes(port))).await?;
                    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::io::copy_bidirectional(&mut client, &mut upstream).await.map(|_| ())
                });
            }
        });
        (port, tunnels)
    }

    /// Reads a length byte and that many bytes.
    async fn read_field(stream: &mut tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
        let len = stream.read_u8().await?;
        let mut field = vec![0u8; usize::from(len)];
        stream.read_exact(&mut field).await?;
        Ok(field)
    }

    #[tokio::test]
    async fn socks5_proxies_carry_requests_with_their_credentials() {
        let fake = crate::testing::FakeUpstream::start().await;
        let (port, tunnels) = socks5_server("user", "s0cks-pw").await;
        let mut socks = ProxyTarget { protocol: ProxyProtocol::Socks5h, ..target(port, "s0cks-pw") };
        let result = probe(&socks, &fake.url(), Duration::from_secs(5)).await;
        assert!(result.ok, "{result:?}");
        assert_eq!((tunnels.load(Ordering::SeqCst), fake.count()), (1, 1));

        socks.protocol = ProxyProtocol::Socks5;
        socks.password = "wrong".into();
        let result = probe(&socks, &fake.url(), Duration::from_secs(5)).await;
        assert!(!result.ok && result.error.is_some(), "{result:?}");
        assert_eq!((tunnels.load(Ordering::SeqCst), fake.count()), (1, 1), "refused: no tunnel");
    }

    #[tokio::test]
    async fn probing_through_a_dead_proxy_reports_the_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let result = probe(&target(port, "hunter2"), "http://example.invalid/", Duration::from_secs(5)).await;
        assert!(!result.ok);
        let error = result.error.unwrap_or_default();
        assert!(!error.is_empty() && !error.contains("hunter2"), "{error}");
    }
}
