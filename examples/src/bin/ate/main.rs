//! `ate`: the reference host of the ATE SDK. `ate serve` serves the seeds' REST API over
//! every crate; the other commands are the operator's CLI over the same configuration.
//!
//! ```text
//! cargo run -p examples --bin ate -- serve                 # embedded defaults, 127.0.0.1:8080
//! cargo run -p examples --bin ate -- serve --check-config  # validate and print, then exit
//! cargo run -p examples --bin ate -- openapi               # the OpenAPI document
//! ```
//!
//! Configuration: built-in defaults, then `--config FILE` (or `ATE_CONFIG`), then `ATE_*`
//! variables; see `config.rs`. Everything the host does goes through the crates' public
//! APIs: it is an example of wiring them, not a place for logic of its own.

mod alerting;
mod api;
mod cli;
mod config;
mod dashboard;
mod gateway;
mod history;
mod host;
mod metrics;
mod serve;
mod steps;
mod tls;

use clap::{Parser, Subcommand};
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// The ATE reference host and operator CLI.
#[derive(Debug, Parser)]
#[command(name = "ate", version, about)]
struct Cli {
    /// A TOML configuration file (layered under `ATE_*` variables).
    #[arg(long, global = true, env = "ATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print results as JSON (for scripts); progress bars stay off.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API, gateway and metrics.
    Serve {
        /// Listen on this address instead of the configured one (port 0: any free port;
        /// the bound address is printed).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Validate the configuration, print the effective settings (secrets hidden) and
        /// exit.
        #[arg(long)]
        check_config: bool,
    },
    /// Print the OpenAPI document of the REST API.
    Openapi,
    /// Tenants (as the platform).
    #[command(subcommand)]
    Tenants(cli::TenantsCmd),
    /// Users of a tenant.
    #[command(subcommand)]
    Users(cli::UsersCmd),
    /// Codebase projects: import and export snapshots.
    #[command(subcommand)]
    Projects(cli::ProjectsCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(cli::AuditCmd),
    /// Data keys: rotate, rewrap under the master key, re-encrypt.
    #[command(subcommand)]
    Keys(cli::KeysCmd),
    /// Collect a tenant's storage garbage.
    Gc(cli::GcArgs),
    /// Check that stored data adds up (objects against blobs and keys, audit chains);
    /// exits 9 when something is wrong.
    Verify(cli::VerifyArgs),
    /// Workflow runs: submit, list, get, watch, logs, cancel.
    #[command(subcommand)]
    Workflows(cli::WorkflowsCmd),
}

/// mimalloc rather than the system allocator: a server allocates small, short-lived objects
/// on every request from several threads, where glibc's arenas contend (the load
/// benchmark's baselines use it too, so their figures compare like with like).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ate: {e}");
            ExitCode::from(cli::exit_code(kind_of(e.as_ref())))
        }
    }
}

/// The kind of a failure, when it has one.
fn kind_of(e: &(dyn std::error::Error + 'static)) -> Option<ate_core::ErrorKind> {
    use ate_core::Classify;
    if let Some(e) = e.downcast_ref::<cli::CliError>() {
        return Some(e.kind);
    }
    if let Some(e) = e.downcast_ref::<ate_core::CoreError>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<ate_storage::StorageError>() {
        return Some(e.kind());
    }
    if let Some(e) = e.downcast_ref::<ate_auth::AuthError>() {
        return Some(e.kind());
    }
    if e.downcast_ref::<config::ConfigError>().is_some() {
        return Some(ate_core::ErrorKind::InvalidInput);
    }
    None
}

async fn run(cli: Cli) -> Result<(), host::BoxError> {
    match cli.command {
        Command::Serve {
            listen,
            check_config,
        } => {
            let mut config = Config::load(cli.config.as_deref())?;
            if let Some(addr) = listen {
                config.listen = addr;
            }
            if check_config {
                // The certificate and key must load, not only exist.
                tls::Certificates::load(&config.tls)?;
                println!("{}", serde_json::to_string_pretty(&config.summary())?);
                return Ok(());
            }
            let _flush_logs_at_exit = serve::init_logging(config.log_format);
            serve::serve(config).await
        }
        Command::Openapi => {
            print!("{}", api::openapi_document());
            Ok(())
        }
        Command::Tenants(c) => operator(cli.config, cli.json, cli::Operator::Tenants(c)).await,
        Command::Users(c) => operator(cli.config, cli.json, cli::Operator::Users(c)).await,
        Command::Projects(c) => operator(cli.config, cli.json, cli::Operator::Projects(c)).await,
        Command::Audit(c) => operator(cli.config, cli.json, cli::Operator::Audit(c)).await,
        Command::Keys(c) => operator(cli.config, cli.json, cli::Operator::Keys(c)).await,
        Command::Gc(a) => operator(cli.config, cli.json, cli::Operator::Gc(a)).await,
        Command::Verify(a) => operator(cli.config, cli.json, cli::Operator::Verify(a)).await,
        Command::Workflows(c) => operator(cli.config, cli.json, cli::Operator::Workflows(c)).await,
    }
}

async fn operator(
    config: Option<PathBuf>,
    json: bool,
    cmd: cli::Operator,
) -> Result<(), host::BoxError> {
    let config = Config::load(config.as_deref())?;
    cli::run(config, cmd, json).await
}
