//! The composition root of the `sub2api` binary: configuration, logging, database bootstrap,
//! router assembly (admin UI, server functions, admin REST, ops endpoints), background jobs
//! and graceful shutdown. Nothing depends on this crate; it depends on all the others.

// Leptos view types nest deeply; rendering the admin pages needs more than the default 128.
#![recursion_limit = "512"]

pub mod admin_api;
pub mod bootstrap;
pub mod cli;
pub mod config;
mod export;
pub mod ops;
pub mod secrets;
pub mod startup;
pub mod telemetry;
pub mod web;

/// The version this binary reports: the release tag without its `v`, or the Cargo version.
pub const VERSION: &str = env!("SUB2API_BUILD_VERSION");
