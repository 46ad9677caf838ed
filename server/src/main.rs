//! `sub2api`: parse the command line and configuration, then serve or run a maintenance task.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use server::VERSION;
use server::cli::{AdminCommand, Cli, Command};
use server::config::{Config, Source};
use server::startup::{Application, open_store, shutdown_signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Version)) {
        return say(&format!("sub2api {VERSION}"));
    }
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (config, source) = match Config::load(cli.config.as_deref(), &env) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("sub2api: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    server::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sub2api: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config, source, env)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sub2api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    command: Command,
    config: Config,
    source: Source,
    env: BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            match &source {
                Source::File(path) => tracing::info!(version = VERSION, config = %path.display(), "starting sub2api"),
                Source::Defaults => tracing::info!(version = VERSION, "starting sub2api with default configuration"),
            }
            let app = Application::build(&config, &env).await?;
            let addr = app.local_addr()?;
            let shown_host = if addr.ip().is_unspecified() { "localhost".to_owned() } else { addr.ip().to_string() };
            tracing::info!("listening on {addr}; admin UI: http://{shown_host}:{}/login", addr.port());
            app.run_until(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open_store(&config).await?.close().await;
            Ok(say("migrations applied"))
        }
        Command::Version => Ok(say(&format!("sub2api {VERSION}"))),
        Command::Admin(AdminCommand::ResetPassword { email, password, make_admin }) => {
            let store = open_store(&config).await?;
            let chosen = password.is_some();
            let password = server::bootstrap::reset_password(&store, &email, password, make_admin).await?;
            store.close().await;
            if chosen {
                Ok(say(&format!("password updated for {email}")))
            } else {
                Ok(say(&format!("new password for {email}: {password}")))
            }
        }
        Command::Admin(AdminCommand::ApiKey) => {
            let store = open_store(&config).await?;
            let key = app::service::admin_key::regenerate(&store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            store.close().await;
            Ok(say(&format!("admin API key (shown once): {key}")))
        }
    }
}

/// Writes one line to stdout (the command's result, as opposed to logs on stderr).
fn say(line: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
