//! The real `sub2api` binary: configuration errors, maintenance commands, a restart that keeps
//! the data, graceful exit on SIGTERM, and logs that never contain secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sub2api");
const API_KEY: &str = "admin-fedcba9876543210fedcba9876543210fedcba98";

fn sub2api(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("SUB2API__SERVER__SHUTDOWN_GRACE_SECONDS", "5");
    cmd
}

/// A running server process with its stderr collected.
struct Running {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn sub2api");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port.parse::<u16>().unwrap_or(0));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("server did not start: {:#?}", log.lock().unwrap())
        });
        Running { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends SIGTERM and returns the exit code and the whole log.
    fn terminate(mut self) -> (Option<i32>, String) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sub2api did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        std::thread::sleep(Duration::from_millis(100));
        (code, self.log.lock().unwrap().join("\n"))
    }
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().expect("run sub2api");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(sub2api(dir.path()).arg("version"));
    assert_eq!(code, Some(0));
    assert_eq!(out.trim(), format!("sub2api {}", server::VERSION));
    let (_, out, _) = run(sub2api(dir.path()).arg("--version"));
    assert!(out.contains(server::VERSION), "{out}");
}

#[test]
fn unknown_config_key_stops_startup_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), "server:\n  port: 8080\n  prot: 9\n").unwrap();
    let (code, _, err) = run(&mut sub2api(dir.path()));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("config.yaml") && err.contains("prot"), "{err}");
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn bad_values_stop_startup_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(sub2api(dir.path()).env("DATABASE_URL", "nonsense://x"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("database.url") && err.contains("nonsense://x"), "{err}");

    let (code, _, err) = run(sub2api(dir.path()).env("SUB2API__LOG__FORMAT", "xml"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("SUB2API__LOG__FORMAT") && err.contains("xml"), "{err}");

    let missing = dir.path().join("missing.yaml");
    let (code, _, err) = run(sub2api(dir.path()).arg("--config").arg(&missing));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing.yaml"), "{err}");
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(sub2api(dir.path()).arg("migrate"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "migrations applied");
    assert!(dir.path().join("data/sub2api.db").is_file(), "default SQLite file under ./data");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_restart_maintenance_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();

    // First start: a generated admin password is logged once.
    let first = Running::start({
        let mut cmd = sub2api(dir.path());
        cmd.env("SUB2API_ADMIN_API_KEY", API_KEY);
        cmd
    });
    let stats = http.get(first.url("/api/v1/admin/dashboard/stats")).header("x-api-key", API_KEY).send().await.unwrap();
    assert_eq!(stats.status(), 200);
    let wrong = "admin-0000000000000000000000000000000000000000";
    let denied = http.get(first.url("/api/v1/admin/dashboard/stats")).header("x-api-key", wrong).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let (code, log) = first.terminate();
    assert_eq!(code, Some(0), "SIGTERM exits 0: {log}");
    let password = log
        .split("password: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("bootstrap credentials line: {log}"))
        .to_owned();
    assert!(log.contains("email: admin@localhost"), "{log}");
    assert!(!log.contains(API_KEY) && !log.contains(wrong), "admin keys never reach the log: {log}");
    assert!(log.contains("SIGTERM received") && log.contains("stopped"), "{log}");

    // Maintenance commands work on the same data.
    let (code, out, err) = run(sub2api(dir.path()).args(["admin", "api-key"]));
    assert_eq!(code, Some(0), "{err}");
    let new_key = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(new_key.starts_with("admin-") && new_key.len() > 40, "{out}");

    // Second start: the admin exists, nothing new is printed, the new key works, old data is kept.
    let second = Running::start(sub2api(dir.path()));
    let stats: serde_json::Value = http
        .get(second.url("/api/v1/admin/dashboard/stats"))
        .header("x-api-key", &new_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["data"]["total_users"], 1, "{stats}");
    let old = http.get(second.url("/api/v1/admin/dashboard/stats")).header("x-api-key", API_KEY).send().await.unwrap();
    assert_eq!(old.status(), 401, "the regenerated key replaced the old one");
    let (code, log) = second.terminate();
    assert_eq!(code, Some(0));
    assert!(!log.contains("password:"), "credentials are printed only on first start: {log}");
    assert!(!log.contains(&new_key), "{log}");

    // The generated password still verifies, and reset-password replaces it.
    let store = store::Store::connect(&format!("sqlite://{}/data/sub2api.db", dir.path().display()), 1).await.unwrap();
    let user = store.find_user_by_email("admin@localhost").await.unwrap().unwrap();
    assert!(store::secret::verify_password(&password, &user.password_hash));
    store.close().await;
    let (code, out, err) = run(sub2api(dir.path()).args(["admin", "reset-password", "--email", "admin@localhost"]));
    assert_eq!(code, Some(0), "{err}");
    let reset = out.trim().rsplit(' ').next().unwrap().to_owned();
    let store = store::Store::connect(&format!("sqlite://{}/data/sub2api.db", dir.path().display()), 1).await.unwrap();
    let user = store.find_user_by_email("admin@localhost").await.unwrap().unwrap();
    assert!(store::secret::verify_password(&reset, &user.password_hash));
    assert!(!store::secret::verify_password(&password, &user.password_hash));
    let (code, _, err) = run(sub2api(dir.path()).args(["admin", "reset-password", "--email", "nobody@example.com"]));
    assert_eq!(code, Some(1));
    assert!(err.contains("no user with email nobody@example.com"), "{err}");
}
