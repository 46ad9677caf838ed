//! `fake-upstream`: the scripted fake upstream as a standalone server, for benchmarks and for
//! running real clients against the gateway by hand.
//!
//! Serves the default behaviour (every request succeeds, echoing its model, with usage) on
//! 127.0.0.1. The first line on stdout is the bound address (`127.0.0.1:PORT`); the server
//! runs until Ctrl-C. The journal is off so memory stays flat under load.
//!
//! ```text
//! fake-upstream [--port N] [--delay-ms MS] [--event-delay-ms MS] [--deltas N] [--control-port N]
//! ```
//!
//! With `--control-port`, the journal is on and a second listener on 127.0.0.1 lets a test
//! steer and inspect the fake. Its address is the second line on stdout. Routes:
//!
//! | route | what |
//! |---|---|
//! | `PUT /credentials/{credential}` `{"status": 401, "message": "…"}` | how the fake answers that credential from now on (status 200 restores the normal answer); 204 |
//! | `GET /journal` | every request recorded since start or the last clear, oldest first: `[{seq, method, uri, path, query, headers, credential, status, body}]`, `headers` a map of lowercase name → value (repeated headers joined with `, `), `body` the JSON body or `null` |
//! | `DELETE /journal` | clears the journal, counts and peaks (scripts stay); 204 |
//! | `PUT /oauth/lifetime` `{"seconds": N}` | lifetime of the access tokens the fake OAuth token endpoint issues from now on; 204 |
//! | `POST /oauth/revoke` | every refresh token issued so far answers `invalid_grant` from now on; 204 |
//! | `GET /oauth/requests` | every request the token endpoint (`POST …/oauth/token`) received: `[{path, fields}]` |
//!
//! Token requests are answered by the fake's OAuth endpoint and are not in the journal.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use proxy::testing::{DEFAULT_DELTAS, FakeUpstream, RecordedRequest, Script, TokenRequest};
use serde_json::{Map, Value, json};

/// The flags that take a value.
const FLAGS: [&str; 5] = ["--port", "--delay-ms", "--event-delay-ms", "--deltas", "--control-port"];

const USAGE: &str =
    "usage: fake-upstream [--port N] [--delay-ms MS] [--event-delay-ms MS] [--deltas N] [--control-port N]";

/// Command-line options.
#[derive(Debug, Default)]
struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    port: u16,
    /// Delay before the response headers of every request (time to first byte).
    delay_ms: u64,
    /// Delay between streamed events.
    event_delay_ms: u64,
    /// Text deltas per stream; the default when absent.
    deltas: Option<usize>,
    /// Port of the control listener; none when absent.
    control_port: Option<u16>,
}

impl Options {
    /// The options, `None` for `--help`, or a message naming the bad argument.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            if !FLAGS.contains(&flag.as_str()) {
                return Err(format!("unknown argument {flag:?}\n{USAGE}"));
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let invalid = |_| format!("{flag}: invalid value {value:?}\n{USAGE}");
            match flag.as_str() {
                "--port" => options.port = value.parse().map_err(invalid)?,
                "--delay-ms" => options.delay_ms = value.parse().map_err(invalid)?,
                "--event-delay-ms" => options.event_delay_ms = value.parse().map_err(invalid)?,
                "--deltas" => options.deltas = Some(value.parse().map_err(invalid)?),
                "--control-port" => options.control_port = Some(value.parse().map_err(invalid)?),
                _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
            }
        }
        Ok(Some(options))
    }

    fn script(&self) -> Script {
        Script::ok()
            .deltas(self.deltas.unwrap_or(DEFAULT_DELTAS))
            .delay_before_headers(Duration::from_millis(self.delay_ms))
            .delay_between_events(Duration::from_millis(self.event_delay_ms))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => return print_line(USAGE).map_or(ExitCode::FAILURE, |()| ExitCode::SUCCESS),
        Err(message) => {
            eprintln!("fake-upstream: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fake-upstream: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until Ctrl-C.
async fn run(options: &Options) -> io::Result<()> {
    let fake = FakeUpstream::try_start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port))).await?;
    // Only a controlled fake keeps a journal: someone may read it. Otherwise memory stays flat.
    fake.set_recording(options.control_port.is_some());
    fake.set_default(options.script());
    print_line(&fake.addr().to_string())?;
    if let Some(port) = options.control_port {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        print_line(&listener.local_addr()?.to_string())?;
        let control = control_router(fake.clone(), options.script());
        tokio::spawn(async move { axum::serve(listener, control).await });
    }
    tokio::signal::ctrl_c().await?;
    fake.shutdown().await;
    Ok(())
}

/// The control listener's state: the fake, and its normal answer.
#[derive(Clone)]
struct Control {
    fake: FakeUpstream,
    normal: Script,
}

/// The control routes (see the module doc).
fn control_router(fake: FakeUpstream, normal: Script) -> axum::Router {
    axum::Router::new()
        .route("/credentials/{credential}", put(set_answer))
        .route("/journal", get(journal).delete(clear_journal))
        .route("/oauth/lifetime", put(set_token_lifetime))
        .route("/oauth/revoke", post(revoke_refresh_tokens))
        .route("/oauth/requests", get(token_requests))
        .with_state(Control { fake, normal })
}

#[derive(serde::Deserialize)]
struct Answer {
    status: u16,
    #[serde(default)]
    message: Option<String>,
}

/// Sets how the fake answers one credential from now on.
async fn set_answer(
    State(control): State<Control>,
    Path(credential): Path<String>,
    Json(answer): Json<Answer>,
) -> StatusCode {
    let script = match answer.status {
        200 => control.normal,
        status => {
            let script = Script::status_code(status);
            match answer.message {
                Some(message) => script.error_message(message),
                None => script,
            }
        }
    };
    control.fake.set_default_for(credential, script);
    StatusCode::NO_CONTENT
}

/// The recorded requests, oldest first.
async fn journal(State(control): State<Control>) -> Json<Vec<Value>> {
    Json(control.fake.requests().iter().map(recorded_json).collect())
}

/// Forgets the recorded requests.
async fn clear_journal(State(control): State<Control>) -> StatusCode {
    control.fake.clear_journal();
    StatusCode::NO_CONTENT
}

#[derive(serde::Deserialize)]
struct Lifetime {
    seconds: i64,
}

/// Sets the lifetime of the access tokens issued from now on.
async fn set_token_lifetime(State(control): State<Control>, Json(lifetime): Json<Lifetime>) -> StatusCode {
    control.fake.set_token_lifetime(lifetime.seconds);
    StatusCode::NO_CONTENT
}

/// Makes every refresh token issued so far fail with `invalid_grant`.
async fn revoke_refresh_tokens(State(control): State<Control>) -> StatusCode {
    control.fake.revoke_refresh_tokens();
    StatusCode::NO_CONTENT
}

/// The requests the token endpoint received, oldest first.
async fn token_requests(State(control): State<Control>) -> Json<Vec<Value>> {
    Json(control.fake.token_requests().iter().map(token_request_json).collect())
}

/// One journal entry as JSON.
fn recorded_json(request: &RecordedRequest) -> Value {
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    json!({
        "seq": request.seq,
        "method": request.method.as_str(),
        "uri": request.uri,
        "path": request.path,
        "query": request.query,
        "headers": headers,
        "credential": request.credential,
        "status": request.status.map(|status| status.as_u16()),
        "body": request.json,
    })
}

fn token_request_json(request: &TokenRequest) -> Value {
    json!({"path": request.path, "fields": request.fields})
}

/// Writes one line to stdout and flushes it, so a parent reading the address sees it at once.
fn print_line(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn parses_flags_and_rejects_unknown_ones() {
        let options = parse(&["--port", "18081", "--delay-ms", "50", "--deltas", "2"]).unwrap().unwrap();
        assert_eq!((options.port, options.delay_ms, options.event_delay_ms, options.deltas), (18081, 50, 0, Some(2)));
        assert_eq!(parse(&["--control-port", "0"]).unwrap().unwrap().control_port, Some(0));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--bogus"]).unwrap_err().starts_with("unknown argument \"--bogus\""));
        assert!(parse(&["--port"]).unwrap_err().starts_with("--port needs a value"));
        assert!(parse(&["--port", "http"]).unwrap_err().starts_with("--port: invalid value"));
    }

    /// Serves the control routes of `fake` on 127.0.0.1; returns their base URL.
    async fn serve_control(fake: &FakeUpstream) -> String {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let control = control_router(fake.clone(), Script::ok());
        tokio::spawn(async move { axum::serve(listener, control).await });
        url
    }

    async fn json(response: reqwest::Response) -> Value {
        response.json().await.unwrap()
    }

    #[tokio::test]
    async fn control_routes_script_answers_and_expose_the_journal_and_the_oauth_endpoint() {
        let fake = FakeUpstream::start().await;
        let control = serve_control(&fake).await;
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let message =
            serde_json::json!({"model": "claude-x", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]});
        let send = |key: &'static str| {
            http.post(format!("{}/v1/messages?beta=true", fake.url()))
                .header("x-api-key", key)
                .header("anthropic-beta", "a-1")
                .header("Anthropic-Beta", "b-2")
                .json(&message)
                .send()
        };

        // The journal: what the fake received, headers by lowercase name.
        assert_eq!(send("key-a").await.unwrap().status(), 200);
        let journal = json(http.get(format!("{control}/journal")).send().await.unwrap()).await;
        let [entry] = journal.as_array().unwrap().as_slice() else { panic!("one entry expected: {journal}") };
        assert_eq!(entry["method"], "POST");
        assert_eq!(entry["uri"], "/v1/messages?beta=true");
        assert_eq!((&entry["path"], &entry["query"]), (&json!("/v1/messages"), &json!("beta=true")));
        assert_eq!(entry["headers"]["x-api-key"], "key-a");
        assert_eq!(entry["headers"]["anthropic-beta"], "a-1, b-2");
        assert_eq!(entry["headers"]["content-type"], "application/json");
        assert_eq!((&entry["credential"], &entry["status"]), (&json!("key-a"), &json!(200)));
        assert_eq!(entry["body"], message);
        let cleared = http.delete(format!("{control}/journal")).send().await.unwrap();
        assert_eq!(cleared.status(), 204);
        assert_eq!(json(http.get(format!("{control}/journal")).send().await.unwrap()).await, json!([]));

        // One credential's answer changed, then restored.
        let failing = http.put(format!("{control}/credentials/key-b")).json(&json!({"status": 401, "message": "nope"}));
        assert_eq!(failing.send().await.unwrap().status(), 204);
        assert_eq!(send("key-b").await.unwrap().status(), 401);
        assert_eq!(send("key-a").await.unwrap().status(), 200);
        let restored = http.put(format!("{control}/credentials/key-b")).json(&json!({"status": 200}));
        assert_eq!(restored.send().await.unwrap().status(), 204);
        assert_eq!(send("key-b").await.unwrap().status(), 200);

        // The OAuth token endpoint: token lifetime, revocation and the requests it received.
        let token = |fields: Value| http.post(format!("{}/v1/oauth/token", fake.url())).json(&fields).send();
        let code = json!({"grant_type": "authorization_code", "client_id": "c", "code": "good", "code_verifier": "v".repeat(43)});
        let first = json(token(code.clone()).await.unwrap()).await;
        assert_eq!((&first["access_token"], &first["expires_in"]), (&json!("fake-at-1"), &json!(28_800)));
        let lifetime = http.put(format!("{control}/oauth/lifetime")).json(&json!({"seconds": 60}));
        assert_eq!(lifetime.send().await.unwrap().status(), 204);
        let refresh = json!({"grant_type": "refresh_token", "client_id": "c", "refresh_token": "fake-rt-1"});
        let second = json(token(refresh.clone()).await.unwrap()).await;
        assert_eq!((&second["access_token"], &second["expires_in"]), (&json!("fake-at-2"), &json!(60)));
        assert_eq!(http.post(format!("{control}/oauth/revoke")).send().await.unwrap().status(), 204);
        let revoked = token(json!({"grant_type": "refresh_token", "client_id": "c", "refresh_token": "fake-rt-2"}));
        let revoked = revoked.await.unwrap();
        assert_eq!(revoked.status(), 400);
        assert_eq!(json(revoked).await["error"], "invalid_grant");
        let requests = json(http.get(format!("{control}/oauth/requests")).send().await.unwrap()).await;
        let requests = requests.as_array().unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0], json!({"path": "/v1/oauth/token", "fields": code}));
        assert_eq!(requests[1], json!({"path": "/v1/oauth/token", "fields": refresh}));
        assert_eq!(requests[2]["fields"]["refresh_token"], "fake-rt-2");
        // Token requests are not journaled.
        assert_eq!(
            json(http.get(format!("{control}/journal")).send().await.unwrap()).await.as_array().unwrap().len(),
            3
        );
        fake.shutdown().await;
    }
}
