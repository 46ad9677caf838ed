//! Test support for the gateway, compiled only with the `testing` feature: a scripted fake
//! upstream ([`FakeUpstream`]) that speaks the Anthropic, OpenAI and Gemini wire formats over
//! real HTTP, with per-request faults and a journal of what it received; and a counting HTTP
//! forward proxy ([`ForwardProxy`]) for accounts that use an outbound proxy.
//!
//! Nothing here is used by the gateway itself; integration tests, benchmarks and the
//! `fake-upstream` binary are its only users.
//!
//! ```no_run
//! # use http::StatusCode;
//! # use proxy::testing::{FakeUpstream, Script};
//! # async fn example() {
//! let fake = FakeUpstream::start().await;
//! fake.push_for("key-a", Script::status(StatusCode::TOO_MANY_REQUESTS).header("retry-after", "2"));
//! // … point accounts with keys "key-a" and "key-b" at fake.url(), send a request …
//! assert_eq!(fake.count_for("key-a"), 1);
//! assert_eq!(fake.max_in_flight_for("key-b"), 1);
//! # }
//! ```

mod fake_oauth;
mod fake_upstream;
mod forward_proxy;
mod journal;
mod script;
mod wire;

pub use fake_oauth::TokenRequest;
pub use fake_upstream::FakeUpstream;
/// Who the fake OAuth provider's tokens belong to.
pub mod oauth_identity {
    pub use super::fake_oauth::{ACCOUNT_UUID, BAD_CODE, CHATGPT_ACCOUNT_ID, EMAIL, ORG_UUID};
}
pub use forward_proxy::ForwardProxy;
pub use journal::RecordedRequest;
pub use script::{DEFAULT_DELTAS, DEFAULT_TEXT, DEFAULT_USAGE, Script};
pub use wire::{CODE_ASSIST_PROJECT, Protocol};
