//! The `lp` imports (`abi::guest::IMPORT_*`) and the fuel they handle, written once for every
//! engine. An engine's linker wraps these functions around its own caller type through
//! [`ImportCtx`] (wasmi in [`crate::wasmi_exec`]; wasmtime and the compiled guest in lpctl), so a script's packet reads,
//! writes, log lines and fuel behave the same whichever engine runs it.
//!
//! `try` and `throw` stay with the engines: they are control flow (a nested call into the
//! guest, an error that unwinds it) that each engine expresses in its own function and error
//! types.

use crate::call::{COPY_BYTES_PER_FUEL, MAX_MESSAGE};
use crate::host::{Host, LogLevel};
use crate::limits::SLICE_FUEL;
use crate::packet::Packet;
use crate::sends::{check_packet, SendBudget, SendError, SendKind};
use crate::timers::{next_instance_id, TimerSlot};
use abi::guest as g;
use alloc::sync::Arc;
use core::ptr::NonNull;

/// Registers in `$linker` the `lp` imports this module implements (log, now, packet bytes,
/// maps, sends, timers, out_of_fuel), each a host function taking the engine's caller of type `$ty`;
/// `$cx` is the [`ImportCtx`] made of it (named `$c`). One list for every engine with a linker
/// (wasmi here, wasmtime in lpctl); `try` and `throw` stay with each engine (control flow).
/// Expands to statements using `?` on the linker's errors.
#[macro_export]
macro_rules! wrap_lp_imports {
    ($linker:expr, $ty:ty, |$c:ident| $cx:expr) => {{
        use $crate::__abi::guest as __g;
        use $crate::imports as __i;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_LOG,
            |mut $c: $ty, level: i32, ptr: i32, len: i32| __i::log(&mut $cx, level, ptr, len),
        )?;
        #[allow(unused_mut)]
        let now = |mut $c: $ty| -> i64 { __i::now(&$cx) };
        $linker.func_wrap(__g::IMPORT_MODULE, __g::IMPORT_NOW, now)?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_PKT_READ,
            |mut $c: $ty, off: i32, dst: i32, len: i32| __i::pkt_read(&mut $cx, off, dst, len),
        )?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_PKT_WRITE,
            |mut $c: $ty, off: i32, src: i32, len: i32| __i::pkt_write(&mut $cx, off, src, len),
        )?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_MAP_DECLARE,
            |mut $c: $ty, spec: i32, len: i32| -> i32 { __i::map_declare(&mut $cx, spec, len) },
        )?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_MAP_OP,
            |mut $c: $ty, op: i32, id: i32, key: i32, klen: i32, val: i32, vlen: i32| {
                __i::map_op(&mut $cx, op, id, key, klen, val, vlen)
            },
        )?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_SEND,
            |mut $c: $ty, kind: i32, ptr: i32, len: i32| __i::send(&mut $cx, kind, ptr, len),
        )?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_TIMER,
            |mut $c: $ty, op: i32, gref: i32, ms: i32| __i::timer(&mut $cx, op, gref, ms),
        )?;
        $linker.func_wrap(
            __g::IMPORT_MODULE,
            __g::IMPORT_OUT_OF_FUEL,
            |mut $c: $ty| __i::out_of_fuel(&mut $cx),
        )?;
    }};
}

/// The packet of the running call, with its lifetime erased (see [`CallData::set_packet`]).
pub type PacketPtr = NonNull<dyn Packet + 'static>;

/// The budget of a run taken in slices (the top-level chunk at load): fuel not yet handed out,
/// and why the run stopped early.
#[derive(Default)]
pub struct Slices {
    pub left: u64,
    pub exhausted: bool,
    pub interrupted: bool,
}

/// What the imports keep per instance, whatever the engine.
pub struct CallData {
    /// The running call's packet; `None` between calls (the imports then serve nothing).
    pkt: Option<PacketPtr>,
    /// Fuel of a packet's call held back from the guest's counter for the soft stop: handed
    /// out, with a call of the guest's `lp_fuel_stop`, the first time the counter runs out
    /// (`limits::SOFT_STOP_FUEL`).
    pub soft: u64,
    /// Set while a process-context run takes its fuel in slices.
    pub slices: Option<Slices>,
    /// What the running call may still send (armed with the packet).
    pub send: SendBudget,
    /// The instance as its timers know it (set by the script container that holds it).
    pub timer_slot: TimerSlot,
    pub host: Arc<dyn Host>,
    /// The script's name, for its log lines.
    pub name: Arc<str>,
}

impl CallData {
    pub fn new(host: Arc<dyn Host>, name: Arc<str>) -> Self {
        CallData {
            pkt: None,
            soft: 0,
            slices: None,
            send: SendBudget::default(),
            timer_slot: TimerSlot {
                cpu: 0,
                instance: next_instance_id(),
            },
            host,
            name,
        }
    }

    /// Lets the imports reach `pkt` until [`clear_packet`](Self::clear_packet).
    ///
    /// # Safety
    /// The caller clears the packet before the borrow of `pkt` ends: the imports dereference
    /// it while a guest call made in between runs.
    pub unsafe fn set_packet(&mut self, pkt: &dyn Packet) {
        // SAFETY: only the lifetime is erased; the caller's contract keeps the borrow alive
        // for as long as the pointer is set.
        let erased: &'static (dyn Packet + 'static) = unsafe { core::mem::transmute(pkt) };
        self.pkt = Some(NonNull::from(erased));
    }

    pub fn clear_packet(&mut self) {
        self.pkt = None;
        self.send = SendBudget::default();
    }

    fn packet(&self) -> Option<&dyn Packet> {
        // SAFETY: set only by `set_packet`, whose caller keeps the packet borrowed until it
        // clears the pointer; imports run only during a call made in between.
        self.pkt.map(|p| unsafe { &*p.as_ptr() })
    }
}

// SAFETY: the packet pointer is set only while its owner runs a call on this thread and
// cleared before that call returns (`set_packet`); the rest is `Send`.
unsafe impl Send for CallData {}

/// What the imports need from one engine's caller (or store).
pub trait ImportCtx {
    type Error;
    /// The engine's out-of-fuel trap.
    fn fuel_trap() -> Self::Error;
    fn data(&self) -> &CallData;
    fn data_mut(&mut self) -> &mut CallData;
    /// The guest's linear memory (empty before instantiation has made it).
    fn memory(&self) -> &[u8];
    fn memory_mut(&mut self) -> &mut [u8];
    /// The guest's own fuel counter (`lp_fuel`), when the runtime trusts the guest to count
    /// (the built-in guest); `None`: the engine meters fuel itself.
    fn counter(&mut self) -> Option<i64>;
    fn set_counter(&mut self, value: i64) -> Result<(), Self::Error>;
    /// The engine's own fuel (guests it meters).
    fn engine_fuel(&self) -> u64;
    fn set_engine_fuel(&mut self, fuel: u64);
    /// Calls the guest's `lp_fuel_stop` (the soft stop), if it exports one.
    fn fuel_stop(&mut self) -> Result<(), Self::Error>;
}

/// Takes the next slice of a sliced run's budget (at least `required`) after letting the host
/// pause ([`Host::pause`]: the kernel reschedules there); the fuel trap when there is no
/// sliced run, the budget cannot cover `required`, or the host says stop.
pub fn take_slice<C: ImportCtx>(c: &mut C, required: u64) -> Result<u64, C::Error> {
    let d = c.data_mut();
    let Some(s) = d.slices.as_mut() else {
        return Err(C::fuel_trap());
    };
    if s.left < required.max(1) {
        s.left = 0;
        s.exhausted = true;
        return Err(C::fuel_trap());
    }
    if !d.host.pause() {
        if let Some(s) = d.slices.as_mut() {
            s.interrupted = true;
        }
        return Err(C::fuel_trap());
    }
    let Some(s) = d.slices.as_mut() else {
        return Err(C::fuel_trap());
    };
    let give = s.left.min(SLICE_FUEL.max(required));
    s.left -= give;
    Ok(give)
}

/// Fuel left: the guest's counter (never negative here) or the engine's.
pub fn fuel_left<C: ImportCtx>(c: &mut C) -> u64 {
    match c.counter() {
        Some(n) => n.max(0) as u64,
        None => c.engine_fuel(),
    }
}

/// Sets the fuel left, in the guest's counter or in the engine.
pub fn put_fuel<C: ImportCtx>(c: &mut C, fuel: u64) {
    if c.counter().is_some() {
        let _ = c.set_counter(fuel.min(i64::MAX as u64) as i64);
    } else {
        c.set_engine_fuel(fuel);
    }
}

/// Charges the fuel of copying `len` packet bytes. A guest that counts its own fuel is charged
/// like one of its untested regions: the counter may go below zero, and the guest's next test
/// (a loop or a call) stops it as it would have. Otherwise out of fuel is a fuel trap.
pub fn charge_copy<C: ImportCtx>(c: &mut C, len: usize) -> Result<(), C::Error> {
    let cost = (len / COPY_BYTES_PER_FUEL) as u64;
    if let Some(now) = c.counter() {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        return c.set_counter(now.saturating_sub(cost));
    }
    let left = c.engine_fuel();
    if left < cost {
        return Err(C::fuel_trap());
    }
    c.set_engine_fuel(left - cost);
    Ok(())
}

/// `log(level, ptr, len)`: one line of the script's log (at most [`MAX_MESSAGE`] bytes).
pub fn log<C: ImportCtx>(c: &mut C, level: i32, ptr: i32, len: i32) {
    let len = (len.max(0) as usize).min(MAX_MESSAGE);
    let start = ptr as u32 as usize;
    let line = c
        .memory()
        .get(start..start.saturating_add(len))
        .unwrap_or(&[]);
    let level = LogLevel::from_code(level);
    let d = c.data();
    d.host.log(&d.name, level, line);
}

/// `now()`: monotonic nanoseconds.
pub fn now<C: ImportCtx>(c: &C) -> i64 {
    c.data().host.now_ns() as i64
}

/// The start of a packet copy: `None` without a packet in hand; otherwise the copy is
/// charged, and its offsets and length come back as sizes (wasm's i32 are unsigned here).
fn begin_copy<C: ImportCtx>(
    c: &mut C,
    off: i32,
    addr: i32,
    len: i32,
) -> Result<Option<(usize, usize, usize)>, C::Error> {
    if c.data().pkt.is_none() {
        return Ok(None);
    }
    let len = len as u32 as usize;
    charge_copy(c, len)?;
    Ok(Some((off as u32 as usize, addr as u32 as usize, len)))
}

/// `pkt_read(off, dst, len)`: copies packet bytes `[off, off + len)` into guest memory at
/// `dst`; `len`, or -1 when either range is out of bounds or no packet is in hand.
pub fn pkt_read<C: ImportCtx>(c: &mut C, off: i32, dst: i32, len: i32) -> Result<i32, C::Error> {
    let Some((off, dst, len)) = begin_copy(c, off, dst, len)? else {
        return Ok(-1);
    };
    let Some(pkt) = c.data().pkt else {
        return Ok(-1);
    };
    let Some(out) = c.memory_mut().get_mut(dst..dst.saturating_add(len)) else {
        return Ok(-1);
    };
    // SAFETY: as in `CallData::packet`; the pointer was copied out of the data so that guest
    // memory can be borrowed mutably at the same time.
    let pkt = unsafe { &*pkt.as_ptr() };
    Ok(if pkt.read(off, out) { len as i32 } else { -1 })
}

/// `pkt_write(off, src, len)`: writes guest memory `[src, src + len)` into the packet at
/// `off`; `len`, or -1 when either range is out of bounds, no packet is in hand or the packet
/// cannot be written.
pub fn pkt_write<C: ImportCtx>(c: &mut C, off: i32, src: i32, len: i32) -> Result<i32, C::Error> {
    let Some((off, src, len)) = begin_copy(c, off, src, len)? else {
        return Ok(-1);
    };
    let Some(bytes) = c.memory().get(src..src.saturating_add(len)) else {
        return Ok(-1);
    };
    let Some(pkt) = c.data().packet() else {
        return Ok(-1);
    };
    Ok(if pkt.write(off, bytes) {
        len as i32
    } else {
        -1
    })
}

/// `out_of_fuel()`: the guest's counter went below zero at one of its tests. Only a guest the
/// runtime trusts to count calls this honestly; for any other it is the engine's fuel trap.
/// The first time in a packet's call the held-back fuel is handed out and the guest's
/// `lp_fuel_stop` makes the interpreter raise "out of fuel" at its next back edge or call (the
/// instance is kept); a run taken in slices goes on with its next slice.
pub fn out_of_fuel<C: ImportCtx>(c: &mut C) -> Result<(), C::Error> {
    let Some(now) = c.counter() else {
        return Err(C::fuel_trap());
    };
    if now >= 0 {
        return Ok(());
    }
    let soft = core::mem::take(&mut c.data_mut().soft);
    if soft > 0 {
        c.set_counter(now.saturating_add_unsigned(soft))?;
        c.fuel_stop()?;
        return match c.counter() {
            Some(n) if n >= 0 => Ok(()),
            _ => Err(C::fuel_trap()),
        };
    }
    let give = take_slice(c, now.unsigned_abs())?;
    c.set_counter(now.saturating_add_unsigned(give))
}

/// Fuel of a map operation besides its bytes: hashing the key and probing, as the guest would
/// pay for a table lookup of its own.
const MAP_OP_FUEL_BYTES: usize = 512;

fn map_spec(b: &[u8]) -> Option<(crate::maps::MapSpec, &str)> {
    use crate::maps::{MapKind, MapSpec, ValueKind};
    use g::map as m;
    let name = core::str::from_utf8(b.get(m::SPEC_NAME..)?).ok()?;
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    Some((
        MapSpec {
            kind: match b[0] {
                m::KIND_HASH => MapKind::Hash,
                m::KIND_LRU => MapKind::Lru,
                _ => return None,
            },
            value: match b[1] {
                m::VALUE_NUMBER => ValueKind::Number,
                m::VALUE_BYTES => ValueKind::Bytes,
                _ => return None,
            },
            key_max: u16_at(2),
            value_max: u16_at(4),
            max_entries: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        },
        name,
    ))
}

/// `map_declare(spec, len)`: declares a map while the top-level chunk runs (a run taken in
/// slices); its id, or a negative `map::E_*`.
pub fn map_declare<C: ImportCtx>(c: &mut C, spec: i32, len: i32) -> i32 {
    if c.data().slices.is_none() {
        return g::map::E_LATE;
    }
    let (start, len) = (spec as u32 as usize, len as u32 as usize);
    let Some(bytes) = c.memory().get(start..start.saturating_add(len)) else {
        return g::map::E_RANGE;
    };
    let host = c.data().host.clone();
    declare_map(&*host, bytes)
}

/// Declares the map `spec` describes (`abi::guest::map`'s layout) in `host`'s maps: its id or
/// a negative `map::E_*`. Process context. The imports' and lpctl's native baseline's.
pub fn declare_map(host: &dyn Host, spec: &[u8]) -> i32 {
    use crate::maps::DeclareError;
    use g::map as m;
    let Some((spec, name)) = map_spec(spec) else {
        return m::E_SPEC;
    };
    let Some(maps) = host.maps() else {
        return m::E_ID;
    };
    let seed = |k: u32| u64::from(host.seed()) << 32 | u64::from(host.seed() ^ k);
    let announce = |bytes: usize| host.linear_memory(bytes);
    match maps.declare(name, spec, (seed(1), seed(2)), &announce, host.map_room()) {
        Ok(id) => id as i32,
        Err(DeclareError::TooMany) => m::E_TOO_MANY,
        Err(DeclareError::NoRoom) => m::E_ROOM,
        Err(DeclareError::Redeclared) => m::E_REDECLARED,
        Err(DeclareError::Map(crate::maps::MapError::NoMemory)) => m::E_MEMORY,
        Err(DeclareError::Map(_)) => m::E_SPEC,
    }
}

fn map_error(e: crate::maps::MapError) -> i32 {
    use crate::maps::MapError as E;
    use g::map as m;
    match e {
        E::KeyTooLong => m::E_KEY,
        E::ValueTooLong => m::E_VALUE,
        E::WrongType => m::E_TYPE,
        E::Full => m::E_FULL,
        E::NoMemory => m::E_MEMORY,
        E::Spec(_) => m::E_SPEC,
    }
}

fn encode_number(v: crate::maps::Value<'_>, out: &mut [u8]) {
    use crate::maps::Value;
    let (tag, bits) = match v {
        Value::Float(f) => (g::map::FLOAT, f.to_le_bytes()),
        Value::Int(n) => (g::map::INT, n.to_le_bytes()),
        Value::Bytes(_) => (g::map::INT, [0; 8]),
    };
    out[0] = tag;
    out[1..9].copy_from_slice(&bits);
}

fn decode_number(b: &[u8]) -> Option<crate::maps::Value<'static>> {
    let mut n = [0u8; 8];
    n.copy_from_slice(b.get(1..9)?);
    match b[0] {
        g::map::INT => Some(crate::maps::Value::Int(i64::from_le_bytes(n))),
        g::map::FLOAT => Some(crate::maps::Value::Float(f64::from_le_bytes(n))),
        _ => None,
    }
}

/// `map_op(op, id, key, klen, val, vlen)`: one operation on map `id` (see
/// `abi::guest::IMPORT_MAP_OP`). Charged like a copy of its bytes plus a lookup.
pub fn map_op<C: ImportCtx>(
    c: &mut C,
    op: i32,
    id: i32,
    key: i32,
    klen: i32,
    val: i32,
    vlen: i32,
) -> Result<i32, C::Error> {
    use crate::maps::KEY_MAX;
    let (key, klen) = (key as u32 as usize, klen as u32 as usize);
    let (val, vlen) = (val as u32 as usize, vlen as u32 as usize);
    charge_copy(
        c,
        MAP_OP_FUEL_BYTES.saturating_add(klen).saturating_add(vlen),
    )?;
    let host = c.data().host.clone();
    let Some(maps) = host.maps() else {
        return Ok(g::map::E_ID);
    };
    if klen > KEY_MAX {
        return Ok(g::map::E_KEY);
    }
    // the key out of guest memory first: a GET writes the value there
    let mut kbuf = [0u8; KEY_MAX];
    let Some(k) = c.memory().get(key..key.saturating_add(klen)) else {
        return Ok(g::map::E_RANGE);
    };
    kbuf[..klen].copy_from_slice(k);
    let Some(v) = c.memory_mut().get_mut(val..val.saturating_add(vlen)) else {
        return Ok(g::map::E_RANGE);
    };
    Ok(op_on_map(maps, op, id, &kbuf[..klen], v))
}

/// One operation of `map_op` on `maps`' map `id`, with the key and the value's bytes in hand:
/// its result or a negative `map::E_*`. The imports' and lpctl's native baseline's.
pub fn op_on_map(maps: &crate::maps::ScriptMaps, op: i32, id: i32, k: &[u8], v: &mut [u8]) -> i32 {
    use crate::maps::{Value, ValueKind};
    use g::map as m;
    let Some(map) = usize::try_from(id)
        .ok()
        .and_then(|i| maps.get(i))
        .map(|n| &n.map)
    else {
        return m::E_ID;
    };
    let number = map.spec().value == ValueKind::Number;
    let r = match op {
        m::GET => map.get(k, |got| match got {
            None => m::ABSENT,
            Some(Value::Bytes(b)) => {
                let n = b.len().min(v.len());
                v[..n].copy_from_slice(&b[..n]);
                b.len() as i32
            }
            Some(x) if v.len() >= m::NUMBER => {
                encode_number(x, v);
                m::NUMBER as i32
            }
            Some(_) => m::E_VALUE,
        }),
        m::SET if number => match decode_number(v) {
            Some(x) => map.set(k, x).map(|()| 0),
            None => Ok(m::E_TYPE),
        },
        m::SET => map.set(k, Value::Bytes(v)).map(|()| 0),
        m::DELETE => map.delete(k).map(i32::from),
        m::ADD => match decode_number(v) {
            Some(d) => map.add(k, d).map(|sum| {
                encode_number(sum, v);
                m::NUMBER as i32
            }),
            None => Ok(m::E_TYPE),
        },
        m::LEN => Ok(map.len().min(i32::MAX as u32) as i32),
        _ => Ok(m::E_ID),
    };
    r.unwrap_or_else(map_error)
}

/// Fuel of a send besides its bytes: building and routing a packet in the embedder costs what
/// copying this many bytes would.
const SEND_FUEL_BYTES: usize = 4096;

/// `send(kind, ptr, len)`: hands the packet at `[ptr, ptr + len)` to [`send_packet`]; 0 or a
/// negative `send::E_*`.
pub fn send<C: ImportCtx>(c: &mut C, kind: i32, ptr: i32, len: i32) -> Result<i32, C::Error> {
    let (start, len) = (ptr as u32 as usize, len as u32 as usize);
    charge_copy(c, SEND_FUEL_BYTES.saturating_add(len))?;
    let host = c.data().host.clone();
    let (pkt, mut budget) = (c.data().pkt, c.data().send);
    let Some(bytes) = c.memory().get(start..start.saturating_add(len)) else {
        return Ok(g::send::E_RANGE);
    };
    // SAFETY: as in `CallData::packet`; copied out so that guest memory can be borrowed at
    // the same time.
    let pkt = pkt.map(|p| unsafe { &*p.as_ptr() });
    let r = send_packet(&*host, &mut budget, pkt, kind, bytes);
    c.data_mut().send = budget;
    Ok(r)
}

/// Checks a packet a script built (`sends::check_packet`) and hands it to `pkt`'s embedder
/// within the call's `budget` and the script's rates; counts the result in the script's send
/// counters. 0 or a negative `send::E_*`. The imports' and lpctl's native baseline's.
pub fn send_packet(
    host: &dyn Host,
    budget: &mut SendBudget,
    pkt: Option<&dyn Packet>,
    kind: i32,
    bytes: &[u8],
) -> i32 {
    let kind = match kind {
        g::send::KIND_SEND => SendKind::Send,
        g::send::KIND_REPLY => SendKind::Reply,
        _ => return g::send::E_RANGE,
    };
    let Some(state) = host.sends() else {
        return g::send::E_UNAVAILABLE;
    };
    let r = check_packet(bytes).and_then(|nfproto| {
        let pkt = pkt.ok_or(SendError::Unavailable)?;
        state.admit(host.now_ns(), budget, bytes.len())?;
        pkt.send(kind, nfproto, bytes)
    });
    state.count(r.map(|()| bytes.len()));
    r.map_or_else(SendError::code, |()| 0)
}

/// Fuel of arming or cancelling a timer besides the guest's own work (a scan of the script's
/// timer pool, a driver call).
const TIMER_FUEL_BYTES: usize = 256;

/// `timer(op, ref, ms)`: arms (`timer::ARM`) or cancels (`timer::CANCEL`) the timer of the
/// guest's function `ref` in this instance (see [`crate::timers`]); 0 or a negative
/// `timer::E_*`. Only during a call (not while the script loads).
pub fn timer<C: ImportCtx>(c: &mut C, op: i32, gref: i32, ms: i32) -> Result<i32, C::Error> {
    charge_copy(c, TIMER_FUEL_BYTES)?;
    let d = c.data();
    Ok(timer_op(
        &*d.host,
        d.pkt.is_some(),
        d.timer_slot,
        op,
        gref,
        ms,
    ))
}

/// One `timer` operation for instance `slot`, `in_call` when a call (not the load) runs: 0 or
/// a negative `timer::E_*`. The imports' and lpctl's native baseline's.
pub fn timer_op(
    host: &dyn Host,
    in_call: bool,
    slot: TimerSlot,
    op: i32,
    gref: i32,
    ms: i32,
) -> i32 {
    use g::timer as t;
    let Some(timers) = host.timers().filter(|_| in_call) else {
        return t::E_UNAVAILABLE;
    };
    let r = match op {
        t::ARM => timers.arm(slot, gref, ms, host.now_ns()),
        t::CANCEL => timers.cancel(slot, gref),
        _ => return t::E_RANGE,
    };
    r.map_or_else(|e| e.code(), |()| 0)
}
