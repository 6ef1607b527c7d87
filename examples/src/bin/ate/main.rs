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

mod api;
mod config;
mod host;
mod metrics;
mod serve;

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ate: {e}");
            ExitCode::FAILURE
        }
    }
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
                println!("{}", serde_json::to_string_pretty(&config.summary())?);
                return Ok(());
            }
            serve::init_logging(config.log_format);
            serve::serve(config).await
        }
        Command::Openapi => {
            print!("{}", api::openapi_document());
            Ok(())
        }
    }
}
