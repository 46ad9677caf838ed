//! Two real `sub2api` processes sharing one PostgreSQL database and one Redis (under a key
//! prefix of their own), in front of the scripted fake upstream. Needs `TEST_DATABASE_URL`
//! and `TEST_REDIS_URL`; without them each scenario says so and returns.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use proxy::testing::{FakeUpstream, Script};
use serde_json::{Value, json};
use store::UsageFilter;
use store::coord::RedisCoordinator;
use store::testing::TestDb;
use support::{ADMIN_API_KEY, admin_at, hello};

/// One scenario at a time: each runs two servers, and the timing checks want the cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ENCRYPTION_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A running `sub2api` process; killed when dropped.
struct Instance {
    name: &'static str,
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Instance {
    fn start(name: &'static str, db_url: &str, redis_url: &str, prefix: &str, env: &[(&str, &str)]) -> Instance {
        let dir = std::env::temp_dir();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sub2api"));
        cmd.current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SUB2API__SERVER__HOST", "127.0.0.1")
            .env("SUB2API__SERVER__PORT", "0")
            .env("SUB2API__SERVER__SHUTDOWN_GRACE_SECONDS", "10")
            .env("DATABASE_URL", db_url)
            .env("REDIS_URL", redis_url)
            .env("SUB2API__REDIS__KEY_PREFIX", prefix)
            .env("SUB2API__SECURITY__ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("SUB2API__GATEWAY__SNAPSHOT_REFRESH_SECONDS", "0")
            .env("SUB2API_ADMIN_EMAIL", "root@example.com")
            .env("SUB2API_ADMIN_PASSWORD", "correct-horse-battery")
            .env("SUB2API_ADMIN_API_KEY", ADMIN_API_KEY)
            .env("SUB2API__LOG__LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start sub2api");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(addr) = rest.split(';').next().and_then(|a| a.trim().parse().ok())
                {
                    let _ = addr_tx.send(addr);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => panic!("{name} did not start:\n{}", log.lock().unwrap()),
        };
        Instance { name, child, base: format!("http://{addr}"), log }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn signal(&mut self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(&mut self) {
        self.signal("-TERM");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{} exited with {status}:\n{}", self.name, self.log.lock().unwrap());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- log of {} ----\n{}", self.name, self.log.lock().unwrap());
        }
    }
}

struct Cluster {
    a: Instance,
    b: Instance,
    fake: FakeUpstream,
    db: TestDb,
    redis: RedisCoordinator,
    client: reqwest::Client,
    key: String,
    key_id: i64,
}

fn cred(i: usize) -> String {
    format!("sk-ant-multi-{i}")
}

impl Cluster {
    /// Two instances, `accounts` accounts in one group, a user and a key; `None` without
    /// PostgreSQL and Redis.
    async fn start(accounts: usize, account_json: Value, env: &[(&str, &str)]) -> Option<Cluster> {
        let Some(redis_url) = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("TEST_REDIS_URL not set: two-instance scenario not run");
            return None;
        };
        let Some(db) = TestDb::postgres().await else {
            eprintln!("TEST_DATABASE_URL not set: two-instance scenario not run");
            return None;
        };
        let prefix = format!("sub2api-test:{:016x}:", rand::random::<u64>());
        let redis = RedisCoordinator::connect(&redis_url, &prefix).await.expect("Redis");
        let a = Instance::start("instance A", &db.url, &redis_url, &prefix, env);
        let b = Instance::start("instance B", &db.url, &redis_url, &prefix, env);
        let fake = FakeUpstream::start().await;
        let client = reqwest::Client::new();
        let admin = |method: &'static str, path: String, body: Value| {
            let (client, base) = (client.clone(), a.base.clone());
            async move { admin_at(&client, &base, method, &path, body).await }
        };
        let group = admin("POST", "/groups".into(), json!({"name": "claude", "platform": "anthropic"})).await["id"]
            .as_i64()
            .unwrap();
        for i in 0..accounts {
            let mut body = json!({
                "name": format!("acc-{i}"), "platform": "anthropic", "type": "apikey",
                "credentials": {"api_key": cred(i), "base_url": fake.url()}, "group_ids": [group],
            });
            for (k, v) in account_json.as_object().unwrap() {
                body[k] = v.clone();
            }
            admin("POST", "/accounts".into(), body).await;
        }
        let user = admin(
            "POST",
            "/users".into(),
            json!({"email": "dev@example.com", "password": "dev-password-1", "concurrency": 0}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let key = admin("POST", format!("/users/{user}/api-keys"), json!({"name": "cli", "group_id": group})).await;
        let cluster = Cluster {
            a,
            b,
            fake,
            db,
            redis,
            client,
            key: key["key"].as_str().unwrap().to_owned(),
            key_id: key["id"].as_i64().unwrap(),
        };
        // B learns about the new key through the change announcement.
        cluster
            .until(Duration::from_secs(5), |c| async move {
                c.status(&c.b, &hello("claude-sonnet-4-5", false)).await == 200
            })
            .await;
        cluster.fake.clear_journal();
        Some(cluster)
    }

    async fn send(&self, to: &Instance, body: &Value) -> reqwest::Response {
        self.client.post(to.url("/v1/messages")).header("x-api-key", &self.key).json(body).send().await.unwrap()
    }

    async fn status(&self, to: &Instance, body: &Value) -> u16 {
        self.send(to, body).await.status().as_u16()
    }

    /// Polls `check` until it holds; panics after `limit`. Returns how long it took.
    async fn until<'a, F, Fut>(&'a self, limit: Duration, check: F) -> Duration
    where
        F: Fn(&'a Cluster) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !check(self).await {
            assert!(start.elapsed() < limit, "not within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        start.elapsed()
    }

    async fn cleanup(self) {
        self.redis.delete_all().await.expect("clean the Redis prefix");
    }
}

fn in_session(session: &str) -> Value {
    let mut body = hello("claude-sonnet-4-5", false);
    body["metadata"] = json!({"user_id": format!("user_{}_account__session_{session}", "ab".repeat(32))});
    body
}

#[tokio::test]
async fn account_concurrency_holds_across_instances() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start(1, json!({"concurrency": 1}), &[]).await else { return };
    c.fake.set_default(Script::ok().deltas(3).delay_between_events(Duration::from_millis(80)));
    let streams = (0..10).map(|i| {
        let to = if i % 2 == 0 { &c.a } else { &c.b };
        let c = &c;
        async move {
            let res = c.send(to, &hello("claude-sonnet-4-5", true)).await;
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    });
    for body in futures_util::future::join_all(streams).await {
        assert!(body.contains("message_stop"), "{body}");
    }
    assert_eq!(c.fake.count(), 10);
    assert_eq!(c.fake.max_in_flight_for(&cred(0)), 1, "never two at once, though two instances served");
    c.cleanup().await;
}

#[tokio::test]
async fn a_sticky_binding_made_on_one_instance_is_honoured_by_the_other() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start(2, json!({}), &[]).await else { return };
    let session = "5f0c8d52-3333-4444-8555-a66677778888";
    assert_eq!(c.status(&c.a, &in_session(session)).await, 200);
    let bound = if c.fake.count_for(&cred(0)) == 1 { 0 } else { 1 };
    for _ in 0..10 {
        assert_eq!(c.status(&c.b, &in_session(session)).await, 200);
    }
    assert_eq!(c.fake.count_for(&cred(bound)), 11, "every request of the session on its account");
    assert_eq!(c.fake.count_for(&cred(1 - bound)), 0);
    c.cleanup().await;
}

#[tokio::test]
async fn a_cooldown_set_by_one_instance_is_honoured_by_the_other() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start(2, json!({}), &[]).await else { return };
    c.fake.set_default_for(cred(0), Script::status_code(529));
    assert_eq!(c.status(&c.a, &hello("claude-sonnet-4-5", false)).await, 200, "A fails over to the second account");
    assert_eq!(c.fake.count_for(&cred(0)), 1);
    for _ in 0..6 {
        assert_eq!(c.status(&c.b, &hello("claude-sonnet-4-5", false)).await, 200);
    }
    assert_eq!(c.fake.count_for(&cred(0)), 1, "B never tried the overloaded account");
    c.cleanup().await;
}

#[tokio::test]
async fn a_disabled_key_is_refused_by_both_within_a_second() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start(1, json!({}), &[]).await else { return };
    assert_eq!(c.status(&c.b, &hello("claude-sonnet-4-5", false)).await, 200);
    admin_at(&c.client, &c.a.base, "PUT", &format!("/api-keys/{}", c.key_id), json!({"status": "disabled"})).await;
    assert_eq!(c.status(&c.a, &hello("claude-sonnet-4-5", false)).await, 401, "at once where it was changed");
    let took = c
        .until(
            Duration::from_secs(1),
            |c| async move { c.status(&c.b, &hello("claude-sonnet-4-5", false)).await == 401 },
        )
        .await;
    eprintln!("instance B refused the disabled key after {took:?}");
    c.cleanup().await;
}

#[tokio::test]
async fn a_killed_instance_frees_its_slots_within_the_lease_ttl() {
    let _serial = SERIAL.lock().await;
    let ttl = 2;
    let env = [("SUB2API__GATEWAY__SLOT_TTL_SECONDS", "2")];
    let Some(mut c) = Cluster::start(1, json!({"concurrency": 1}), &env).await else { return };
    c.fake.set_default(Script::ok().deltas(100).delay_between_events(Duration::from_millis(100)));
    let res = c.send(&c.a, &hello("claude-sonnet-4-5", true)).await;
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();
    c.a.signal("-KILL");
    let killed = Instant::now();
    drop(stream);
    c.fake.set_default(Script::ok());
    let res = c.send(&c.b, &hello("claude-sonnet-4-5", false)).await;
    let waited = killed.elapsed();
    assert_eq!(res.status(), 200, "B got the slot the dead instance held");
    assert!(waited < Duration::from_secs(ttl + 2), "freed within the lease TTL ({ttl} s); took {waited:?}");
    eprintln!("the dead instance's slot came back after {waited:?}");
    c.cleanup().await;
}

#[tokio::test]
async fn usage_rows_from_both_instances_all_land_once() {
    let _serial = SERIAL.lock().await;
    let Some(mut c) = Cluster::start(2, json!({}), &[]).await else { return };
    let requests = (0..20).map(|i| {
        let to = if i % 2 == 0 { &c.a } else { &c.b };
        let c = &c;
        async move { c.status(to, &hello("claude-sonnet-4-5", i % 4 < 2)).await }
    });
    assert!(futures_util::future::join_all(requests).await.iter().all(|s| *s == 200));
    c.a.stop();
    c.b.stop();
    let rows = c.db.store.list_usage(&UsageFilter::default(), 0, 100).await.unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r.data.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // The setup's probe request (through B) is row 21.
    assert_eq!((rows.len(), ids.len()), (21, 21), "every row once");
    c.cleanup().await;
}

#[tokio::test]
async fn idle_instances_send_redis_nothing() {
    let _serial = SERIAL.lock().await;
    let Some(c) = Cluster::start(1, json!({}), &[]).await else { return };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = std::env::var("TEST_REDIS_URL").unwrap();
    // Nothing else uses Redis while this runs (scenarios are serialised; test binaries run one
    // after another), so every command seen is one of the two instances'.
    let client = redis::Client::open(url).unwrap();
    let monitor = client.get_async_monitor().await.unwrap();
    let mut commands = monitor.into_on_message::<String>();
    // Proof that the monitor sees commands: a marker of our own, then silence is expected.
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ECHO").arg("monitor-marker").query_async::<String>(&mut con).await.unwrap();
    let marker = tokio::time::timeout(Duration::from_secs(2), commands.next()).await.unwrap().unwrap();
    assert!(marker.contains("monitor-marker"), "{marker}");
    let mut ours = Vec::new();
    let window = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(window);
    loop {
        tokio::select! {
            () = &mut window => break,
            Some(line) = commands.next() => ours.push(line),
        }
    }
    assert!(ours.is_empty(), "two idle instances sent Redis: {ours:?}");
    eprintln!("two idle instances: 0 Redis commands in 3 s of MONITOR");
    c.cleanup().await;
}
