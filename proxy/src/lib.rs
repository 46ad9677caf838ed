//! The gateway pipeline: authenticate key → resolve group, platform and model → admission →
//! schedule → acquire slot → shape → send → classify → stream back → record usage.
//!
//! The modules below are the pure, I/O-free policy pieces of that pipeline; they take parsed
//! inputs and a clock value and return decisions, so they are unit-tested without a server.
//!
//! - [`auth`]: which API key a request presents and why it may be refused.
//! - [`cooldown`]: what an upstream failure means for the request (fail over or pass through)
//!   and for the account's health (rate-limited, overloaded, error).
//! - [`usage`]: token usage extraction from Anthropic and OpenAI responses and SSE streams.
//! - [`sticky`]: the sticky-session key that pins a conversation to one account.
//! - [`error`]: the gateway's own errors in the caller's protocol (Anthropic, OpenAI, Google).
//! - [`schedule`]: which accounts of a group may serve a model now, in the order to try.
//! - [`snapshot`]: the in-process view of keys, users, groups and accounts (credentials
//!   opened) that the hot path reads instead of the database.
//! - [`gateway`]: the routes and the relay that assemble these pieces with the store, the
//!   coordinator and the upstream HTTP client.
//! - [`outbound`]: outbound HTTP/SOCKS5 proxies, one upstream client per proxy, and the
//!   admin proxy test.
//! - [`translate`]: typed conversion between Chat Completions, Responses and Messages
//!   requests, responses and streams, for groups whose platform differs from the route's.
//! - [`usage_writer`]: the bounded, batching writer that records usage rows off the hot path
//!   and drains on shutdown.

pub mod auth;
pub mod cooldown;
pub mod error;
pub mod gateway;
pub mod oauth;
pub mod outbound;
pub mod schedule;
pub mod snapshot;
pub mod sticky;
#[cfg(feature = "testing")]
pub mod testing;
pub mod translate;
pub mod usage;
pub mod usage_writer;
pub mod windows;
