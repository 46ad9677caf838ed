//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sub2api", version = crate::VERSION, about = "Self-hosted AI API gateway")]
pub struct Cli {
    /// Configuration file (default: ./config.yaml, ./config/config.yaml, /etc/sub2api/config.yaml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway and the admin UI (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the version and exit.
    Version,
    /// Administrator maintenance.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set a new password for a user (generated and printed when --password is omitted).
    ResetPassword {
        #[arg(long)]
        email: String,
        /// The new password; prefer SUB2API_ADMIN_PASSWORD so it stays out of shell history.
        #[arg(long, env = "SUB2API_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Also make the user an active administrator (recovers a locked-out installation).
        #[arg(long)]
        make_admin: bool,
    },
    /// Generate a new admin API key (`admin-…`), print it once, and replace the old one.
    ApiKey,
}
