//! Shared helpers for the runtime's tests: a host, packet builders, a script loader.
#![allow(dead_code)]

use runtime::{GuestCache, Host, Limits, LogLevel, OnError, Script};

// The packet builders, shared with lpctl's tests (luapkt-tests' packets.rs).
#[path = "../../../../tests/src/packets.rs"]
#[allow(unreachable_pub)]
mod packets;
pub(crate) use packets::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
pub(crate) struct TestHost {
    pub lines: Mutex<Vec<String>>,
    start: Option<Instant>,
}

impl Host for TestHost {
    fn now_ns(&self) -> u64 {
        self.start
            .map(|s| s.elapsed().as_nanos() as u64)
            .unwrap_or(0)
    }
    fn log(&self, _script: &str, level: LogLevel, line: &[u8]) {
        let l = String::from_utf8_lossy(line).into_owned();
        self.lines.lock().unwrap().push(format!("{level:?}: {l}"));
    }
    fn seed(&self) -> u32 {
        0x1234_5678
    }
}

pub(crate) fn host() -> Arc<TestHost> {
    Arc::new(TestHost {
        lines: Mutex::new(Vec::new()),
        start: Some(Instant::now()),
    })
}

pub(crate) fn load_with(src: &str, limits: Limits, on_error: OnError) -> (Script, Arc<TestHost>) {
    let h = host();
    let mut cache = GuestCache::new();
    let mut s = Script::load(
        &mut cache,
        guest_lua::LUA_WASM,
        "test.lua",
        src.as_bytes(),
        limits,
        on_error,
        1,
        h.clone(),
    )
    .unwrap_or_else(|e| panic!("load failed: {e}"));
    s.bind(runtime::DEFAULT_ENTRY, None).unwrap();
    (s, h)
}

/// Test scripts check many things in one call: they get the most fuel a call may have and
/// no instruction budget (tests of the defaults use `load_with`).
pub(crate) fn load(src: &str) -> Script {
    load_with(src, roomy(), OnError::Break).0
}

pub(crate) fn roomy() -> Limits {
    Limits {
        fuel: abi::limits::MAX_FUEL,
        instructions: 0,
        ..Limits::default()
    }
}

/// Lua helpers for scripts that assert: `fails(f, needle)` expects an error whose message
/// contains the plain-text needle; `eq(got, want, what)` compares value and number subtype.
pub(crate) const PRELUDE: &str = r##"
local function fails(f, needle)
  local ok, err = pcall(f)
  if ok then error(needle .. ": no error", 2) end
  if not tostring(err):find(needle, 1, true) then
    error(string.format("error %q lacks %q", tostring(err), needle), 2)
  end
end
local function eq(got, want, what)
  if got ~= want or math.type(got) ~= math.type(want) then
    error(string.format("%s: got %s, want %s", what, tostring(got), tostring(want)), 2)
  end
end
"##;

/// Fuel for test scripts that check many things in one call: more than a script may have
/// (`abi::limits::MAX_FUEL`), given by running the instance directly with these limits.
pub(crate) const TEST_FUEL: u64 = 100_000_000;

/// Runs `entry` of instance 0 on `pkt` with the script's limits but [`TEST_FUEL`] (the
/// instance directly: Script::run would refuse that much). Returns the result and the message.
pub(crate) fn run_with_test_fuel(
    s: &mut Script,
    entry: usize,
    pkt: &dyn runtime::Packet,
) -> (Result<runtime::Verdict, runtime::ErrorKind>, String) {
    let limits = Limits {
        fuel: TEST_FUEL,
        ..*s.limits()
    };
    let inst = s.instance(0);
    let (r, _) = inst.run(entry, pkt, &limits);
    (r, inst.message().to_string())
}

/// Runs entry 0 on `p` with [`TEST_FUEL`] and expects `lp.ACCEPT` without an error (the
/// script's message if not).
pub(crate) fn accept(s: &mut Script, p: &[u8]) {
    let (r, msg) = run_with_test_fuel(s, 0, &runtime::SlicePacket::new(p));
    assert_eq!(r, Ok(runtime::Verdict::Accept), "{msg}");
}
