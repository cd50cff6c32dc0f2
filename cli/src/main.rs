//! lpctl: luapkt's control tool.
//!
//! `lpctl [OPTIONS] OBJECT COMMAND`, in the manner of bpftool and nft. This build carries the
//! offline commands: `run` (a script over a pcap, packet by packet, through the same engine the
//! kernel uses) and `bench` (the script on every engine, with ratios to native Lua).

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use lpctl::engine::Kind;
use lpctl::{
    bench, check, log_cmd, lua_api, map_cmd, nft_cmd, output, pack, rule_cmd, run, save_cmd,
    script_cmd,
};
use std::path::PathBuf;
use std::process::ExitCode;

#[cfg(feature = "selftest")]
mod selftest;

#[derive(Parser)]
#[command(
    name = "lpctl",
    version,
    about = "Lua packet scripting for nftables, sandboxed in WebAssembly",
    long_about = "lpctl loads Lua scripts into the nft_lua kernel module and runs them offline.\n\n\
        A script defines `function process_packet(pkt, arg)` and returns a verdict:\n\
        lp.ACCEPT, lp.DROP, lp.CONTINUE (or true/nothing), lp.BREAK (or false), lp.QUEUE(n).\n\n\
        Commands are OBJECT COMMAND, as in bpftool: script, rule, map; nft is nft itself\n\
        with the lua statement; save and restore take everything at once.\n\n\
        Examples:\n  \
        lpctl script check filter.lua\n  \
        lpctl script run filter.lua --pcap capture.pcap\n  \
        lpctl script load filter.lua\n  \
        lpctl nft add rule inet filter input tcp dport 22 lua script filter\n  \
        lpctl script show filter\n  \
        lpctl save -o /etc/luapkt/luapkt.conf"
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
    /// `lpctl script run` (the older spelling)
    #[command(hide = true)]
    Run(RunArgs),
    /// `lpctl script bench` (the older spelling)
    #[command(hide = true)]
    Bench(BenchArgs),
    /// `lpctl script pack` (the older spelling)
    #[command(hide = true)]
    Pack(PackArgs),
    /// Scripts loaded into the kernel
    #[command(subcommand)]
    Script(ScriptCmd),
    /// nft rules whose verdict comes from a script
    #[command(subcommand)]
    Rule(RuleCmd),
    /// Write the scripts (by source), their limits and the nft ruleset with its lua rules as
    /// one JSON document, for `lpctl restore`
    ///
    /// Examples:
    ///   lpctl save -o /etc/luapkt/luapkt.conf     (luapkt.service restores it at boot)
    ///   lpctl save | jq '.scripts[].name'
    #[command(verbatim_doc_comment)]
    Save {
        /// Write to FILE (atomically: a temporary file renamed) instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Bring back what `lpctl save` wrote: scripts loaded (or their limits set), then the
    /// ruleset replaced in one nft transaction and its lua rules added; all or nothing
    ///
    /// Everything is checked first (the file, every script packed and its limits, the
    /// ruleset dry-run by nft); a step that fails undoes the ones before. Restoring twice
    /// changes nothing the second time. Scripts loaded but not in the file are left alone.
    ///
    /// Examples:
    ///   lpctl restore /etc/luapkt/luapkt.conf
    ///   ssh other-host lpctl save | lpctl restore -
    #[command(verbatim_doc_comment)]
    Restore {
        /// The file (`-`: stdin)
        file: PathBuf,
    },
    /// NFQUEUE mode: run scripts in userspace on the packets nft queues (`queue num N`)
    ///
    /// For machines where nft_lua cannot load: the same scripts, library and limits, on the
    /// compiled guest in lpctl. Each packet goes back with the scripts' verdict (the first that
    /// is not lp.CONTINUE, in the order given), rewritten when a script changed it. Continue and
    /// break accept the packet (a queued packet cannot go on in its rule); pkt.ct, pkt.eth,
    /// lp.send and timers are not available here. Runs until interrupted (or --count).
    ///
    /// Examples:
    ///   nft add rule inet filter input udp dport 53 queue num 3
    ///   lpctl serve --queue 3 dns-filter.lua
    ///   lpctl -j serve --queue 3 --count 1000 a.lua b.lua      (stops, prints the tally)
    #[command(verbatim_doc_comment)]
    Serve {
        /// The queue number of the nft rule (`queue num N`)
        #[arg(long)]
        queue: u16,
        /// Scripts (.lua or .lpk), in the order they judge
        #[arg(required = true)]
        scripts: Vec<PathBuf>,
        #[command(flatten)]
        entry: EntryOpts,
        /// Stop after this many packets and print the tally
        #[arg(long)]
        count: Option<u64>,
        /// Each packet's verdict and each error on stderr
        #[arg(short, long)]
        verbose: bool,
    },
    /// nft with the lua statement: any nft command line or -f FILE (`lpctl nft -h`)
    #[command(disable_help_flag = true, long_about = nft_cmd::HELP)]
    Nft {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The maps (lp.map) of a loaded script: shared by all of its instances (CPUs)
    ///
    /// Keys and byte values are text (or hex with --hex; shown in hex when not printable);
    /// values of a number map are numbers.
    ///
    /// Examples:
    ///   lpctl map list budget
    ///   lpctl map dump budget flows
    ///   lpctl map get budget flows 10.0.0.1
    ///   lpctl map set budget flows 10.0.0.1 0
    ///   lpctl map delete budget flows 10.0.0.1
    #[command(subcommand, verbatim_doc_comment)]
    Map(MapCmd),
    /// `lpctl script log` (the older spelling)
    #[command(hide = true)]
    Log(LogArgs),
    /// Man pages and shell completions, for the package (scripts/build-deb.sh)
    #[command(subcommand, hide = true)]
    Generate(GenerateCmd),
    /// Checks against the running kernel, for the VM tests (built with feature `selftest`)
    #[cfg(feature = "selftest")]
    #[command(subcommand, hide = true)]
    Selftest(SelftestCmd),
}

#[cfg(feature = "selftest")]
#[derive(Subcommand)]
enum SelftestCmd {
    /// Malformed requests to the luapkt family: each must be refused with an errno
    Netlink {
        /// A loaded script, for the cases that need one (SET_LIMITS with an ENGINE); it is
        /// left as it was
        #[arg(long)]
        script: Option<String>,
    },
    /// Random and mutated requests to the luapkt family and the lua nf_tables expression;
    /// prints the kernel's answers by errno
    FuzzNetlink {
        /// Requests to send (luapkt messages and nf_tables batches together)
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// PRNG seed (decimal or 0x-hex): the same seed sends the same requests
        #[arg(long, default_value = "0x6c70667a7a", value_parser = selftest::parse_seed)]
        seed: u64,
        /// Percentage of the requests that are nf_tables rules with a lua expression
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=100))]
        nft_share: u64,
        /// Print every request (hex), its answer and its time
        #[arg(long)]
        trace: bool,
    },
}

#[derive(Subcommand)]
enum GenerateCmd {
    /// lpctl.8 and a page per command (lpctl-script.8, lpctl-script-load.8, ...) into DIR
    Man { dir: PathBuf },
    /// The completion script of a shell, on stdout
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Writes the man page of `cmd` (page `name`, invoked as `bin`) and of each visible subcommand
/// into `dir`.
fn man_pages(cmd: &clap::Command, name: &str, bin: &str, dir: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    let cmd = cmd
        .clone()
        .display_name(name.to_string())
        .bin_name(bin.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section("8")
        .render(&mut buf)?;
    let path = dir.join(format!("{name}.8"));
    std::fs::write(&path, buf).with_context(|| path.display().to_string())?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let sub_name = sub.get_name();
        man_pages(
            sub,
            &format!("{name}-{sub_name}"),
            &format!("{bin} {sub_name}"),
            dir,
        )?;
    }
    Ok(())
}

#[derive(Args)]
struct LogArgs {
    name: String,
    /// Keep printing new lines as they come (JSON: one object per line)
    #[arg(short, long)]
    follow: bool,
    /// Only lines of this level and above: debug (all), info or warn (warnings and errors)
    #[arg(long, default_value = "debug", value_parser = clap::value_parser!(log_cmd::Level))]
    level: log_cmd::Level,
}

/// The send limits (`lp.send`, `lp.reply`).
#[derive(Args, Clone, Default)]
struct SendOpts {
    /// Packets one call may send (0: none)
    #[arg(long)]
    send_packets: Option<String>,
    /// Bytes one call may send (K, M suffixes)
    #[arg(long)]
    send_bytes: Option<String>,
    /// Packets the script may send per second, all CPUs together
    #[arg(long)]
    send_rate: Option<String>,
    /// Bytes the script may send per second, all CPUs together (K, M, G suffixes)
    #[arg(long)]
    send_byte_rate: Option<String>,
}

impl SendOpts {
    fn args(&self) -> run::SendArgs {
        run::SendArgs {
            packets: self.send_packets.clone(),
            bytes: self.send_bytes.clone(),
            rate: self.send_rate.clone(),
            byte_rate: self.send_byte_rate.clone(),
        }
    }
}

/// The sandbox's limits, as `script load|limits`, `run` and `bench` take them (unset: the
/// defaults, or for `script limits` the current values).
#[derive(Args, Clone)]
struct SandboxOpts {
    /// Wasm fuel per packet, counted by the guest (`max`: the ceiling, see docs/security.md)
    #[arg(long)]
    fuel: Option<String>,
    /// Lua instructions per packet, a count hook that slows every instruction (0, the default:
    /// none; fuel bounds the call and stops a loop softly, as an "out of fuel" Lua error)
    #[arg(long)]
    instructions: Option<String>,
    /// Linear memory per instance, bytes (suffixes K, M, G: powers of 1024)
    #[arg(long)]
    memory: Option<String>,
    /// wasm call depth within one entry into the guest
    #[arg(long)]
    recursion: Option<String>,
    /// Nested protected calls (pcall, coroutines) per packet
    #[arg(long)]
    pcall_depth: Option<String>,
    /// Fuel for building an instance: Lua setup and the script's top-level chunk
    #[arg(long)]
    load_fuel: Option<String>,
    #[command(flatten)]
    send: SendOpts,
}

#[derive(Args, Clone)]
struct LimitOpts {
    #[command(flatten)]
    sandbox: SandboxOpts,
    /// What an error resolves to: break, accept or drop
    #[arg(long)]
    on_error: Option<String>,
}

impl SandboxOpts {
    fn args(&self, on_error: Option<String>) -> script_cmd::LimitArgs {
        script_cmd::LimitArgs {
            fuel: self.fuel.clone(),
            instructions: self.instructions.clone(),
            memory: self.memory.clone(),
            recursion: self.recursion.clone(),
            pcall_depth: self.pcall_depth.clone(),
            load_fuel: self.load_fuel.clone(),
            send: self.send.args(),
            on_error,
        }
    }
}

impl LimitOpts {
    fn args(&self) -> script_cmd::LimitArgs {
        self.sandbox.args(self.on_error.clone())
    }
}

#[derive(Subcommand)]
enum ScriptCmd {
    /// Run a script over every packet of a pcap, in order, through one instance (offline)
    ///
    /// Examples:
    ///   lpctl script run filter.lua --pcap capture.pcap
    ///   lpctl -j script run filter.lua --pcap capture.pcap --on-error drop
    ///   lpctl script run nat.lua --pcap in.pcap --function nat --out out.pcap
    ///   lpctl script run filter.lua --pcap errors.pcapng -v     (replay kept errors)
    #[command(verbatim_doc_comment)]
    Run(RunArgs),
    /// Measure a script over a pcap's packets on wasmi, wasmtime, the compiled guest and native
    /// Lua (offline)
    ///
    /// Examples:
    ///   lpctl script bench filter.lua --pcap capture.pcap
    ///   lpctl -j script bench filter.lua --pcap capture.pcap --engines compiled,native
    #[command(verbatim_doc_comment)]
    Bench(BenchArgs),
    /// Pack a Lua script and the guest into a .lpk package (what script load uploads)
    ///
    /// Examples:
    ///   lpctl script pack filter.lua                 (writes filter.lpk)
    ///   lpctl script pack filter.lua --name web -o web.lpk
    #[command(verbatim_doc_comment)]
    Pack(PackArgs),
    /// Load a script (.lua, packed on the fly, or .lpk) into this network namespace
    ///
    /// Examples:
    ///   lpctl script load filter.lua
    ///   lpctl script load filter.lua --name web --fuel 50000 --on-error drop
    ///   lpctl script load filter.lua --name web --replace      (swap it atomically)
    #[command(verbatim_doc_comment)]
    Load {
        file: PathBuf,
        /// Script name (default: from the package, or the file name without .lua)
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitOpts,
        /// Swap a loaded script of the same name atomically
        #[arg(long)]
        replace: bool,
        /// Engine its instances run on: wasmi (the reference, any guest) or compiled (the
        /// built-in guest compiled into the module, native speed). Default: the module's
        /// parameter default_engine
        #[arg(long, value_name = "ENGINE")]
        engine: Option<String>,
    },
    /// Unload a script (refused while rules use it)
    ///
    /// Example:
    ///   lpctl script unload web
    #[command(verbatim_doc_comment)]
    Unload { name: String },
    /// What a package (.lpk) carries, offline: name, tag, guest (built-in or not) and script
    ///
    /// Examples:
    ///   lpctl pack filter.lua && lpctl script inspect filter.lpk
    ///   lpctl -j script inspect filter.lpk | jq -r .script
    #[command(verbatim_doc_comment)]
    Inspect { file: PathBuf },
    /// The Lua source a loaded script runs
    ///
    /// Example:
    ///   lpctl script source web > web.lua
    #[command(verbatim_doc_comment)]
    Source { name: String },
    /// A loaded script's log: what it printed with lp.log or print, and its errors
    ///
    /// Lines are kept in a ring per script (32 KiB, the newest win) and rate-limited per script
    /// (a burst of 200 lines, then 100 per second: the rest are dropped and counted, see
    /// `lpctl script show`). Times are the kernel's, seconds since boot, as in dmesg.
    ///
    /// Examples:
    ///   lpctl script log filter
    ///   lpctl script log filter -f --level warn
    ///   lpctl -j script log filter -f | jq -r .text
    #[command(verbatim_doc_comment)]
    Log(LogArgs),
    /// Check a script before loading it: FILE:LINE:COLUMN messages, exit 1 when any
    ///
    /// Syntax, undefined globals, unknown fields of the packet, its protocols and lp, then a
    /// load in the sandbox offline (the top-level chunk run, each entry function bound).
    ///
    /// Examples:
    ///   lpctl script check filter.lua
    ///   lpctl script check nat.lua --function nat
    ///   lpctl -j script check filter.lua
    #[command(verbatim_doc_comment)]
    Check {
        file: PathBuf,
        /// Entry functions the rules will name (repeatable)
        #[arg(long = "function", value_name = "F", default_value = runtime::DEFAULT_ENTRY)]
        functions: Vec<String>,
    },
    /// LuaLS annotations (---@meta) of lp, the packet and its protocol classes, for editors
    ///
    /// Examples:
    ///   lpctl script stubs > ~/.local/share/luapkt/luapkt.lua
    ///   (then add that directory to Lua.workspace.library)
    #[command(verbatim_doc_comment)]
    Stubs,
    /// Every loaded script with its counters
    ///
    /// Examples:
    ///   lpctl script list
    ///   lpctl -j script list | jq '.luapkt[1:][].script.name'
    #[command(verbatim_doc_comment)]
    List,
    /// One script with its counters
    ///
    /// Example:
    ///   lpctl script show web
    #[command(verbatim_doc_comment)]
    Show { name: String },
    /// Change a script's limits or on-error policy, live
    ///
    /// Examples:
    ///   lpctl script limits web --fuel 100000
    ///   lpctl script limits web --on-error accept
    #[command(verbatim_doc_comment)]
    Limits {
        name: String,
        #[command(flatten)]
        limits: LimitOpts,
    },
    /// The last errors of a script's calls with their packets (the newest 8); -w writes the
    /// packets as a pcapng capture that `lpctl script run` replays with their metadata
    ///
    /// Examples:
    ///   lpctl script errors filter
    ///   lpctl script errors filter -w errors.pcapng
    ///   lpctl script run filter.lua --pcap errors.pcapng -v
    #[command(verbatim_doc_comment)]
    Errors {
        name: String,
        /// Write the packets to this pcapng file (raw IP, each with a luapkt-meta comment)
        #[arg(short, long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum MapCmd {
    /// A script's maps: type, value kind, sizes, entries
    List { script: String },
    /// Every entry of a map
    Dump {
        script: String,
        map: String,
        /// Keys and byte values in hex
        #[arg(long)]
        hex: bool,
    },
    /// The value of a key (fails when absent)
    Get {
        script: String,
        map: String,
        key: String,
        /// KEY is hex (and byte values are shown in hex)
        #[arg(long)]
        hex: bool,
    },
    /// Store a value: a number for a number map, bytes (text, or hex with --hex) otherwise
    Set {
        script: String,
        map: String,
        key: String,
        value: String,
        /// KEY (and a byte VALUE) are hex
        #[arg(long)]
        hex: bool,
    },
    /// Remove a key (fails when absent)
    Delete {
        script: String,
        map: String,
        key: String,
        /// KEY is hex
        #[arg(long)]
        hex: bool,
    },
}

#[derive(Subcommand)]
enum RuleCmd {
    /// FAMILY TABLE CHAIN [nft statements...] lua script NAME [function F] [arg S]
    ///
    /// The statements before `lua` go to nft as `... jump lua-NAME`; the lua rule goes alone
    /// into chain lua-NAME (nft cannot display it: `lpctl rule list` does).
    ///
    /// Example:
    ///   lpctl rule add inet filter input tcp dport 22 lua script web
    ///   (the same as: lpctl nft add rule inet filter input tcp dport 22 lua script web)
    #[command(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        verbatim_doc_comment
    )]
    Add {
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
    },
    /// Every lua rule: family, table, chain, handle, script, function, argument
    ///
    /// Example:
    ///   lpctl rule list        (lpctl nft list ruleset shows them in place)
    #[command(verbatim_doc_comment)]
    List,
    /// Delete the rule FAMILY TABLE CHAIN handle H (and its lua chain when unused)
    ///
    /// Example:
    ///   lpctl rule delete inet filter input handle 7   (or: lpctl nft delete rule ...)
    #[command(verbatim_doc_comment)]
    Delete {
        family: String,
        table: String,
        chain: String,
        /// the word `handle`
        #[arg(value_parser = ["handle"])]
        handle_kw: String,
        handle: u64,
    },
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

/// The entry a script is called at, its limits and on-error policy: `run`, `bench`, `serve`.
#[derive(Args, Clone)]
struct EntryOpts {
    /// Entry function
    #[arg(long, default_value = runtime::DEFAULT_ENTRY)]
    function: String,
    /// String passed to the entry function as its second argument
    #[arg(long)]
    arg: Option<String>,
    #[command(flatten)]
    sandbox: SandboxOpts,
    /// What an error resolves to
    #[arg(long, value_parser = ["break", "accept", "drop"], default_value = "break")]
    on_error: String,
}

/// Limits and entry point shared by `run` and `bench`.
#[derive(Args, Clone)]
pub struct ScriptArgs {
    /// The Lua script
    script: PathBuf,
    /// Capture to read (Ethernet, raw IP or Linux cooked; pcap or pcapng)
    #[arg(long)]
    pcap: PathBuf,
    #[command(flatten)]
    entry: EntryOpts,
    /// Packet metadata the script sees (pkt.meta, pkt.ct), as the kernel would give it
    #[command(flatten)]
    meta: MetaArgs,
}

/// Metadata of every packet of the capture: what a kernel hook would provide.
#[derive(Args, Clone, Default)]
pub struct MetaArgs {
    /// pkt.meta.mark
    #[arg(long, help_heading = "Packet metadata", value_name = "N")]
    mark: Option<String>,
    /// pkt.meta.iifname
    #[arg(long, help_heading = "Packet metadata", value_name = "NAME")]
    iifname: Option<String>,
    /// pkt.meta.oifname
    #[arg(long, help_heading = "Packet metadata", value_name = "NAME")]
    oifname: Option<String>,
    /// pkt.meta.hook: prerouting, input, forward, output, postrouting (or 0..4)
    #[arg(long, help_heading = "Packet metadata", value_name = "HOOK")]
    hook: Option<String>,
    /// pkt.ct.state: new, established, related, untracked (without --ct-*: no pkt.ct, as for a
    /// packet conntrack has no entry for)
    #[arg(long, help_heading = "Packet metadata", value_name = "STATE")]
    ct_state: Option<String>,
    /// pkt.ct.mark (gives the packets conntrack)
    #[arg(long, help_heading = "Packet metadata", value_name = "N")]
    ct_mark: Option<String>,
    /// pkt.ct.id (gives the packets conntrack)
    #[arg(long, help_heading = "Packet metadata", value_name = "N")]
    ct_id: Option<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    script: ScriptArgs,
    /// Engine to run the script on [default: compiled, as the kernel's default; wasmi for a
    /// package that carries another guest]
    #[arg(long, value_enum)]
    engine: Option<Kind>,
    /// Print the script's log (lp.log, print) and error reports on stderr
    #[arg(short, long)]
    verbose: bool,
    /// Write the packets, as the script left them, to this pcap (raw IP); dropped ones omitted
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --out: keep the packets the script dropped
    #[arg(long, requires = "out")]
    keep_dropped: bool,
    /// Write the packets the script sent (lp.send, lp.reply) to this pcap (raw IP), each at the
    /// time of the packet whose call sent it
    #[arg(long)]
    sent: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    script: ScriptArgs,
    /// Minimum measuring time per engine, milliseconds
    #[arg(long, default_value_t = 300)]
    millis: u64,
    /// Engines to measure
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Kind::Wasmi, Kind::Wasmtime, Kind::Compiled, Kind::Native])]
    engines: Vec<Kind>,
}

fn run_cmd(a: RunArgs, mode: output::Mode) -> Result<()> {
    let out = run::Output {
        path: a.out,
        keep_dropped: a.keep_dropped,
        sent: a.sent,
    };
    run::run(&a.script.into_options(), a.engine, a.verbose, &out, mode)
}

fn bench_cmd(a: BenchArgs, mode: output::Mode) -> Result<()> {
    bench::bench(&a.script.into_options(), &a.engines, a.millis, mode)
}

fn pack_cmd(a: PackArgs, mode: output::Mode) -> Result<()> {
    pack::pack(&a.script, a.name.as_deref(), a.output.as_deref(), mode)
}

fn log_show(a: LogArgs, mode: output::Mode) -> Result<()> {
    log_cmd::log(&a.name, a.follow, a.level, mode)
}

fn main() -> ExitCode {
    // `lpctl nft …` is nft's command line, options included: clap must not read it
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("nft") {
        return nft_cmd::main(&argv[2..]);
    }
    let cli = Cli::parse();
    let mode = output::Mode {
        json: cli.json || cli.pretty,
        pretty: cli.pretty,
    };
    let r: Result<()> = match cli.command {
        // the older spellings of script run|bench|pack|log
        Command::Run(a) => run_cmd(a, mode),
        Command::Bench(a) => bench_cmd(a, mode),
        Command::Pack(a) => pack_cmd(a, mode),
        Command::Log(a) => log_show(a, mode),
        Command::Script(c) => match c {
            ScriptCmd::Load {
                file,
                name,
                limits,
                replace,
                engine,
            } => script_cmd::load(
                &file,
                name.as_deref(),
                &limits.args(),
                replace,
                engine.as_deref(),
                mode,
            ),
            ScriptCmd::Unload { name } => script_cmd::unload(&name, mode),
            ScriptCmd::Inspect { file } => pack::inspect(&file, mode),
            ScriptCmd::List => script_cmd::list(mode),
            ScriptCmd::Source { name } => script_cmd::source(&name, mode),
            ScriptCmd::Check { file, functions } => match check::run(&file, &functions, mode) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            },
            ScriptCmd::Stubs => {
                print!("{}", lua_api::stubs());
                Ok(())
            }
            ScriptCmd::Show { name } => script_cmd::show_one(&name, mode),
            ScriptCmd::Limits { name, limits } => {
                script_cmd::set_limits(&name, &limits.args(), mode)
            }
            ScriptCmd::Errors { name, write } => log_cmd::errors(&name, write.as_deref(), mode),
            ScriptCmd::Run(a) => run_cmd(a, mode),
            ScriptCmd::Bench(a) => bench_cmd(a, mode),
            ScriptCmd::Pack(a) => pack_cmd(a, mode),
            ScriptCmd::Log(a) => log_show(a, mode),
        },
        Command::Map(c) => match c {
            MapCmd::List { script } => map_cmd::list(&script, mode),
            MapCmd::Dump { script, map, hex } => map_cmd::dump(&script, &map, hex, mode),
            MapCmd::Get {
                script,
                map,
                key,
                hex,
            } => map_cmd::get(&script, &map, &key, hex, mode),
            MapCmd::Set {
                script,
                map,
                key,
                value,
                hex,
            } => map_cmd::set(&script, &map, &key, &value, hex, mode),
            MapCmd::Delete {
                script,
                map,
                key,
                hex,
            } => map_cmd::delete(&script, &map, &key, hex, mode),
        },
        Command::Generate(GenerateCmd::Man { dir }) => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)
                .map_err(anyhow::Error::from)
                .and_then(|()| man_pages(&Cli::command(), "lpctl", "lpctl", &dir))
        }
        Command::Generate(GenerateCmd::Completion { shell }) => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "lpctl", &mut buf);
            std::io::Write::write_all(&mut std::io::stdout(), &buf).map_err(anyhow::Error::from)
        }
        Command::Serve {
            queue,
            scripts,
            entry,
            count,
            verbose,
        } => lpctl::serve::serve(
            &lpctl::serve::ServeOptions {
                queue,
                scripts,
                function: entry.function,
                arg: entry.arg,
                limits: entry.sandbox.args(None),
                on_error: entry.on_error,
                count,
                verbose,
            },
            mode,
        ),
        Command::Save { output } => save_cmd::save(output.as_deref(), mode),
        Command::Restore { file } => save_cmd::restore(&file, mode),
        Command::Nft { mut args } => {
            // `lpctl -j nft …`: nft's JSON
            if mode.json {
                args.insert(0, "-j".into());
            }
            return nft_cmd::main(&args);
        }
        Command::Rule(c) => match c {
            RuleCmd::Add { words } => rule_cmd::add(&words, mode),
            RuleCmd::List => rule_cmd::list(mode),
            RuleCmd::Delete {
                family,
                table,
                chain,
                handle,
                ..
            } => rule_cmd::delete(&family, &table, &chain, handle, mode),
        },
        #[cfg(feature = "selftest")]
        Command::Selftest(SelftestCmd::Netlink { script }) => {
            match selftest::netlink(script.as_deref()) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        #[cfg(feature = "selftest")]
        Command::Selftest(SelftestCmd::FuzzNetlink {
            count,
            seed,
            nft_share,
            trace,
        }) => selftest::fuzz_netlink(count, seed, nft_share, trace),
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
            function: self.entry.function,
            arg: self.entry.arg,
            limits: self.entry.sandbox.args(None),
            on_error: self.entry.on_error,
            meta: run::MetaOptions {
                mark: self.meta.mark,
                iifname: self.meta.iifname,
                oifname: self.meta.oifname,
                hook: self.meta.hook,
                ct_state: self.meta.ct_state,
                ct_mark: self.meta.ct_mark,
                ct_id: self.meta.ct_id,
            },
        }
    }
}
