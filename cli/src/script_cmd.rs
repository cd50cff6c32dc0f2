//! `lpctl script ...`: scripts loaded into the kernel (the `luapkt` generic netlink family).

use crate::output::{self, Mode};
use crate::pack;
use anyhow::{Context, Result};
use nft_plugin::luapkt::{Engine, Limits, LoadRequest, Luapkt, OnError, ScriptInfo};
use serde_json::{json, Value};
use std::path::Path;

/// Limits given on the command line (unset ones keep the kernel's defaults or current values).
#[derive(Clone, Debug, Default)]
pub struct LimitArgs {
    pub fuel: Option<String>,
    pub instructions: Option<String>,
    pub memory: Option<String>,
    pub recursion: Option<String>,
    pub pcall_depth: Option<String>,
    pub load_fuel: Option<String>,
    pub send: crate::run::SendArgs,
    pub on_error: Option<String>,
}

impl LimitArgs {
    /// The limits to send (unset ones `None`: the kernel keeps its defaults or current values),
    /// checked against the ranges the runtime enforces, and the on-error policy.
    pub fn parse(&self) -> Result<(Limits, Option<OnError>)> {
        let limits = self.netlink_limits()?;
        Self::checked(&limits)?;
        let on_error = self.on_error.as_deref().map(str::parse).transpose()?;
        Ok((limits, on_error))
    }

    /// The limits as the runtime takes them: the given ones over the defaults, checked.
    pub fn runtime_limits(&self) -> Result<runtime::Limits> {
        Self::checked(&self.netlink_limits()?)
    }

    /// The given limits over the runtime's defaults, checked against its ranges.
    pub fn checked(limits: &Limits) -> Result<runtime::Limits> {
        fn set<T: Copy>(given: Option<T>, field: &mut T) {
            if let Some(v) = given {
                *field = v;
            }
        }
        let mut full = runtime::Limits::default();
        set(limits.fuel, &mut full.fuel);
        set(limits.instructions, &mut full.instructions);
        set(limits.memory, &mut full.memory);
        set(limits.recursion, &mut full.recursion);
        set(limits.pcall_depth, &mut full.pcall_depth);
        set(limits.load_fuel, &mut full.load_fuel);
        let s = &limits.send;
        set(s.send_packets, &mut full.send_packets);
        set(s.send_bytes, &mut full.send_bytes);
        set(s.send_rate, &mut full.send_rate);
        set(s.send_byte_rate, &mut full.send_byte_rate);
        if let Err(e) = full.validate() {
            anyhow::bail!("--{}: {e}", e.field);
        }
        Ok(full)
    }

    fn netlink_limits(&self) -> Result<Limits> {
        use crate::run::parse_number;
        let u32_of = |flag: &str, s: &str| -> Result<u32> {
            u32::try_from(parse_number(flag, s, false)?)
                .with_context(|| format!("--{flag} {s}: too large"))
        };
        let limits = Limits {
            fuel: self
                .fuel
                .as_deref()
                .map(|s| parse_number("fuel", s, false))
                .transpose()?,
            instructions: self
                .instructions
                .as_deref()
                .map(|s| u32_of("instructions", s))
                .transpose()?,
            memory: self
                .memory
                .as_deref()
                .map(|s| parse_number("memory", s, true))
                .transpose()?,
            recursion: self
                .recursion
                .as_deref()
                .map(|s| u32_of("recursion", s))
                .transpose()?,
            pcall_depth: self
                .pcall_depth
                .as_deref()
                .map(|s| u32_of("pcall-depth", s))
                .transpose()?,
            load_fuel: self
                .load_fuel
                .as_deref()
                .map(|s| parse_number("load-fuel", s, false))
                .transpose()?,
            send: self.send.parse()?,
        };
        Ok(limits)
    }
}

/// The package for a script file: a `.lpk` as it is, a `.lua` packed with the built-in guest.
pub fn package_of(file: &Path, name: Option<&str>) -> Result<(String, Vec<u8>)> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read script {}", file.display()))?;
    if bytes.starts_with(b"\0asm") {
        let p = runtime::package::parse(&bytes)
            .with_context(|| format!("{}: invalid package", file.display()))?;
        let name = name.unwrap_or(p.name).to_string();
        if name != p.name {
            // the name travels in the package: repack under the new one
            let repacked = runtime::package::build(p.module, &name, p.script)
                .with_context(|| format!("script name '{name}'"))?;
            return Ok((name, repacked));
        }
        return Ok((name, bytes));
    }
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| pack::default_name(file));
    let package = runtime::package::build(guest_lua::LUA_WASM, &name, &bytes)
        .with_context(|| format!("script name '{name}'"))?;
    Ok((name, package))
}

fn info_json(i: &ScriptInfo) -> Value {
    serde_json::to_value(i).unwrap_or(Value::Null)
}

/// The versioned envelope of lpctl's JSON listings, in the manner of nft's.
pub fn envelope(kind: &str, items: Vec<Value>) -> Value {
    let mut list = vec![json!({"metainfo": {
        "version": env!("CARGO_PKG_VERSION"),
        "json_schema_version": 1,
    }})];
    list.extend(items.into_iter().map(|v| json!({ kind: v })));
    json!({ "luapkt": list })
}

fn kib(b: u64) -> String {
    if b < 1024 {
        format!("{b}B")
    } else if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{}M", b >> 20)
    } else {
        format!("{}K", b / 1024)
    }
}

/// bpftool-like text: one line of identity, one of limits, one of counters.
pub fn info_text(i: &ScriptInfo) -> String {
    let s = &i.stats;
    let l = &i.limits;
    let mut out = format!(
        "{}: tag {}  engine {}  refs {}  instances {}  memory {}  maps {}\n",
        i.name,
        i.tag,
        i.engine.unwrap_or(Engine::Wasmi),
        i.refs,
        i.instances,
        kib(i.mem_bytes),
        kib(i.map_bytes)
    );
    out.push_str(&format!(
        "\tlimits: fuel {}  instructions {}  memory {}  recursion {}  pcall-depth {}  load-fuel {}  on-error {}\n",
        l.fuel,
        l.instructions,
        kib(l.memory),
        l.recursion,
        l.pcall_depth,
        l.load_fuel,
        i.on_error.name()
    ));
    out.push_str(&format!(
        "\trun_cnt {}  run_time_ns {}  accept {}  drop {}  continue {}  break {}  queue {}\n",
        s.run_cnt, s.run_time_ns, s.accept, s.drop, s.continue_, s.break_, s.queue
    ));
    out.push_str(&format!(
        "\terrors: lua {}  memory {}  fuel {}  instructions {}  stack {}  return {}  trap {}  rebuilds {}  rebuild_failures {}\n",
        s.err_lua, s.err_memory, s.err_fuel, s.err_instructions, s.err_stack, s.err_return, s.err_trap, s.rebuilds, s.rebuild_failures
    ));
    out.push_str(&format!(
        "\tfuel: total {}  max {}  run_time_max_ns {}\n",
        s.fuel_total, s.fuel_max, s.run_time_max_ns
    ));
    out.push_str(&format!(
        "\tsend limits: packets {}  bytes {}  rate {}/s  byte-rate {}/s\n",
        l.send.send_packets,
        kib(l.send.send_bytes.into()),
        l.send.send_rate,
        kib(l.send.send_byte_rate.into())
    ));
    out.push_str(&format!(
        "\tlog: lines {}  dropped {}\n",
        s.log_lines, s.log_dropped
    ));
    out.push_str(&format!(
        "\tsent: packets {}  bytes {}  refused {}  failed {}\n",
        s.sent_packets, s.sent_bytes, s.send_refused, s.send_failed
    ));
    out.push_str(&format!(
        "\ttimers: pending {}  runs {}  errors {}  dropped {}",
        s.timers_pending, s.timer_runs, s.timer_errors, s.timers_dropped
    ));
    out
}

fn show(mode: Mode, infos: &[ScriptInfo]) {
    if mode.json {
        output::json(
            mode,
            &envelope("script", infos.iter().map(info_json).collect()),
        );
    } else {
        for i in infos {
            crate::outln!("{}", info_text(i));
        }
    }
}

pub fn load(
    file: &Path,
    name: Option<&str>,
    limits: &LimitArgs,
    replace: bool,
    engine: Option<&str>,
    mode: Mode,
) -> Result<()> {
    let engine = engine
        .map(|e| e.parse::<Engine>().map_err(|e| anyhow::anyhow!("--{e}")))
        .transpose()?;
    let (name, package) = package_of(file, name)?;
    let (limits, on_error) = limits.parse()?;
    let mut lp = Luapkt::open()?;
    let info = lp.load(&LoadRequest {
        name: &name,
        package: &package,
        limits,
        on_error,
        engine,
        replace,
    })?;
    show(mode, std::slice::from_ref(&info));
    Ok(())
}

pub fn unload(name: &str, mode: Mode) -> Result<()> {
    Luapkt::open()?.unload(name)?;
    if mode.json {
        output::json(mode, &envelope("unloaded", vec![json!({"name": name})]));
    }
    Ok(())
}

pub fn list(mode: Mode) -> Result<()> {
    let infos = Luapkt::open()?.list()?;
    show(mode, &infos);
    Ok(())
}

pub fn source(name: &str, mode: Mode) -> Result<()> {
    let src = Luapkt::open()?.source(name)?;
    if mode.json {
        output::json(
            mode,
            &envelope(
                "source",
                vec![json!({"name": name, "source": String::from_utf8_lossy(&src)})],
            ),
        );
    } else {
        use std::io::Write;
        std::io::stdout().write_all(&src)?;
    }
    Ok(())
}

pub fn show_one(name: &str, mode: Mode) -> Result<()> {
    let info = Luapkt::open()?.get(name)?;
    show(mode, std::slice::from_ref(&info));
    Ok(())
}

pub fn set_limits(name: &str, limits: &LimitArgs, mode: Mode) -> Result<()> {
    let (limits, on_error) = limits.parse()?;
    let mut lp = Luapkt::open()?;
    lp.set_limits(name, &limits, on_error)?;
    let info = lp.get(name)?;
    show(mode, std::slice::from_ref(&info));
    Ok(())
}
