//! The composition root of the `sub2api` binary: configuration, logging, database bootstrap,
//! router assembly (admin UI, server functions, admin REST, ops endpoints), background jobs
//! and graceful shutdown. Nothing depends on this crate; it depends on all the others.

pub mod admin_api;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod ops;
pub mod secrets;
pub mod startup;
pub mod telemetry;
pub mod web;

/// The version this binary reports: the release tag without its `v`, or the Cargo version.
pub const VERSION: &str = env!("SUB2API_BUILD_VERSION");
