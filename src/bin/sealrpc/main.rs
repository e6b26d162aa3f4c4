//! The `sealrpc` command line: keygen, master, minion, call, publish, demo.
mod bench;
mod bench_minions;
mod call;
mod demo;
mod key;
mod master;
mod minion;
mod node;
mod publish;
mod soak;
mod trace;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sealrpc",
    version,
    about = "Encrypted RPC with trace context inside the envelope"
)]
struct Cli {
    /// Log filter for sealrpc's own diagnostics on stderr (e.g. info, debug).
    #[arg(long, global = true, env = "SEALRPC_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a fresh random 256-bit key to a new file (mode 0600).
    Keygen {
        /// Where to write the symmetric key. Refuses to overwrite.
        #[arg(long, required_unless_present = "pki_dir", conflicts_with = "pki_dir")]
        out: Option<PathBuf>,
        /// Directory for an identity key pair (with --id).
        #[arg(long, requires = "id")]
        pki_dir: Option<PathBuf>,
        /// The identity's name: writes PKI_DIR/ID.key (0600) and PKI_DIR/ID.pub.
        #[arg(long, requires = "pki_dir")]
        id: Option<String>,
    },
    /// Manage the master's minion keys: list, accept, reject, delete.
    Key(key::KeyArgs),
    /// Serve the built-in test.* methods until SIGTERM or Ctrl-C.
    Master(master::MasterArgs),
    /// Register with a master and run the jobs published to this minion.
    Minion(minion::MinionArgs),
    /// Call one method on a master and print the result as JSON.
    Call(call::CallArgs),
    /// Publish a job to minions and print every return as JSON.
    Publish(publish::PublishArgs),
    /// Run a master and clients in-process and print each trace as a tree.
    Demo(demo::DemoArgs),
    /// Measure request/reply latency and throughput on loopback, in-process.
    Bench(bench::BenchArgs),
    /// Drive requests and jobs over every transport through injected
    /// faults, and account for every outcome (lost and run twice must be 0).
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Command::Keygen { out, pki_dir, id } = &cli.command {
        if let (Some(dir), Some(id)) = (pki_dir, id) {
            return match key::keygen_identity(dir, id) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            };
        }
        let Some(out) = out else {
            return fail(&"keygen needs --out FILE, or --pki-dir DIR --id ID");
        };
        return match sealrpc::keys::Key::generate().save_new(out) {
            Ok(()) => {
                eprintln!("wrote a new key to {}", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Master(a) => master::run(a).await,
            Command::Call(a) => call::run(a).await,
            Command::Key(a) => key::run(a).await,
            Command::Minion(a) => minion::run(a).await,
            Command::Publish(a) => publish::run(a).await,
            Command::Demo(a) => demo::run(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Soak(a) => soak::run(a).await,
            Command::Keygen { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
