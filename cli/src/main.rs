//! lpctl: luapkt's control tool.
//!
//! `lpctl [OPTIONS] OBJECT COMMAND`, in the manner of bpftool and nft. This build carries the
//! offline commands: `run` (a script over a pcap, packet by packet, through the same engine the
//! kernel uses) and `bench` (the script on every engine, with ratios to native Lua).

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use lpctl::engine::Kind;
use lpctl::{bench, output, pack, run};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lpctl",
    version,
    about = "Lua packet scripting for nftables, sandboxed in WebAssembly",
    long_about = "lpctl loads Lua scripts into the nft_lua kernel module and runs them offline.\n\n\
        A script defines `function process_packet(pkt, arg)` and returns a verdict:\n\
        lp.ACCEPT, lp.DROP, lp.CONTINUE (or true/nothing), lp.BREAK (or false), lp.QUEUE(n).\n\n\
        Examples:\n  \
        lpctl run filter.lua --pcap capture.pcap\n  \
        lpctl -j run filter.lua --pcap capture.pcap --on-error drop\n  \
        lpctl bench filter.lua --pcap capture.pcap"
)]
struct Cli {
    /// JSON output (errors too: {"error": "..."})
    #[arg(short, long, global = true)]
    json: bool,
    /// Pretty-printed JSON (implies --json)
    #[arg(short, long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a script over every packet of a pcap, in order, through one instance
    Run(RunArgs),
    /// Measure a script over a pcap's packets on wasmi, wasmtime and native Lua
    Bench(BenchArgs),
    /// Pack a Lua script and the guest into a .lpk package
    Pack(PackArgs),
}

#[derive(Args)]
struct PackArgs {
    /// The Lua script
    script: PathBuf,
    /// Script name (default: the file name without .lua); [A-Za-z0-9_.-], at most 63 bytes
    #[arg(long)]
    name: Option<String>,
    /// Output file (default: NAME.lpk)
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Limits and entry point shared by `run` and `bench`.
#[derive(Args, Clone)]
pub struct ScriptArgs {
    /// The Lua script
    script: PathBuf,
    /// Capture to read (Ethernet, raw IP or Linux cooked; pcap or pcapng)
    #[arg(long)]
    pcap: PathBuf,
    /// Entry function
    #[arg(long, default_value = runtime::DEFAULT_ENTRY)]
    function: String,
    /// String passed to the entry function as its second argument
    #[arg(long)]
    arg: Option<String>,
    /// Wasm fuel per packet
    #[arg(long)]
    fuel: Option<String>,
    /// Lua instructions per packet (0: no budget)
    #[arg(long)]
    instructions: Option<String>,
    /// Linear memory per instance, bytes (suffixes K, M, G: powers of 1024)
    #[arg(long)]
    memory: Option<String>,
    /// Nested protected calls (pcall, coroutines) per packet
    #[arg(long)]
    pcall_depth: Option<String>,
    /// What an error resolves to
    #[arg(long, value_parser = ["break", "accept", "drop"], default_value = "break")]
    on_error: String,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    script: ScriptArgs,
    /// Engine to run the script on
    #[arg(long, value_enum, default_value_t = Kind::Wasmi)]
    engine: Kind,
    /// Print the script's log (lp.log, print) and error reports on stderr
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    script: ScriptArgs,
    /// Minimum measuring time per engine, milliseconds
    #[arg(long, default_value_t = 300)]
    millis: u64,
    /// Engines to measure
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Kind::Wasmi, Kind::Wasmtime, Kind::Native])]
    engines: Vec<Kind>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mode = output::Mode {
        json: cli.json || cli.pretty,
        pretty: cli.pretty,
    };
    let r: Result<()> = match cli.command {
        Command::Run(a) => run::run(&a.script.into_options(), a.engine, a.verbose, mode),
        Command::Bench(a) => bench::bench(&a.script.into_options(), &a.engines, a.millis, mode),
        Command::Pack(a) => pack::pack(&a.script, a.name.as_deref(), a.output.as_deref(), mode),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(mode, &e);
            ExitCode::FAILURE
        }
    }
}

impl ScriptArgs {
    fn into_options(self) -> run::Options {
        run::Options {
            script: self.script,
            pcap: self.pcap,
            function: self.function,
            arg: self.arg,
            fuel: self.fuel,
            instructions: self.instructions,
            memory: self.memory,
            pcall_depth: self.pcall_depth,
            on_error: self.on_error,
        }
    }
}
