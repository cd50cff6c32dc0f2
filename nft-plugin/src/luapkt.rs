//! The `luapkt` generic netlink client: load, unload, show and tune scripts.

use std::{fmt, str::FromStr};

use abi::{
    limits,
    netlink::{self as nl, attr, cmd, stat},
};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP};
use serde::{Serialize, Serializer};

use crate::{
    conn::{Conn, Expect, Pending, Reply},
    error::{Error, Result},
    genl::{self, FamilyInfo, GENL_HDRLEN},
    nft::check_script_name,
    transport::{Protocol, Socket, Transport},
    wire::{self, required, Decoded, Malformed, MessageBuilder},
};

/// What the kernel does when a script fails on a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The rule does not match (the default).
    Break,
    Accept,
    Drop,
}

impl OnError {
    pub fn number(self) -> u8 {
        match self {
            OnError::Break => nl::ON_ERROR_BREAK,
            OnError::Accept => nl::ON_ERROR_ACCEPT,
            OnError::Drop => nl::ON_ERROR_DROP,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        [OnError::Break, OnError::Accept, OnError::Drop]
            .into_iter()
            .find(|e| e.number() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            OnError::Break => "break",
            OnError::Accept => "accept",
            OnError::Drop => "drop",
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OnError {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [OnError::Break, OnError::Accept, OnError::Drop]
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!("on-error {s}"), "not one of break, accept, drop")
            })
    }
}

/// The engine a loaded script's instances run on, chosen at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// wasmi, the reference engine: any guest.
    Wasmi,
    /// The built-in guest compiled into the module: only the built-in guest.
    Compiled,
}

impl Engine {
    pub fn number(self) -> u8 {
        match self {
            Engine::Wasmi => nl::ENGINE_WASMI,
            Engine::Compiled => nl::ENGINE_COMPILED,
        }
    }

    pub fn from_number(n: u8) -> Option<Self> {
        [Engine::Wasmi, Engine::Compiled]
            .into_iter()
            .find(|e| e.number() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::Wasmi => "wasmi",
            Engine::Compiled => "compiled",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [Engine::Wasmi, Engine::Compiled]
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| Error::invalid(format!("engine {s}"), "not one of wasmi, compiled"))
    }
}

/// Limits to set; `None` keeps the current value (or the default, at load).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub fuel: Option<u64>,
    pub instructions: Option<u32>,
    pub memory: Option<u64>,
    pub recursion: Option<u32>,
    pub pcall_depth: Option<u32>,
    pub load_fuel: Option<u64>,
    /// Packets and bytes a call may send, packets and bytes per second
    /// (`LUAPKT_ATTR_SEND_*`).
    pub send: SendLimits<Option<u32>>,
}

/// The send limits, in `abi::limits`' order: per call packets and bytes, per second packets
/// and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendLimits<T> {
    pub send_packets: T,
    pub send_bytes: T,
    pub send_rate: T,
    pub send_byte_rate: T,
}

impl<T: Copy> SendLimits<T> {
    /// (attribute, name, maximum, value) of each.
    pub fn each(&self) -> [(u16, &'static str, u32, T); 4] {
        [
            (
                attr::SEND_PACKETS,
                "send-packets",
                limits::MAX_SEND_PACKETS,
                self.send_packets,
            ),
            (
                attr::SEND_BYTES,
                "send-bytes",
                limits::MAX_SEND_BYTES,
                self.send_bytes,
            ),
            (
                attr::SEND_RATE,
                "send-rate",
                limits::MAX_SEND_RATE,
                self.send_rate,
            ),
            (
                attr::SEND_BYTE_RATE,
                "send-byte-rate",
                limits::MAX_SEND_BYTE_RATE,
                self.send_byte_rate,
            ),
        ]
    }
}

impl Limits {
    /// Checks the values against the bounds in `abi::limits`, which the kernel enforces too.
    pub fn check(&self, what: &str) -> Result<()> {
        fn within<V: PartialOrd + fmt::Display>(
            what: &str,
            name: &str,
            value: Option<V>,
            min: V,
            max: V,
        ) -> Result<()> {
            match value {
                Some(v) if v < min || v > max => Err(Error::invalid(
                    what,
                    format!("{name} {v} is outside {min}..={max}"),
                )),
                _ => Ok(()),
            }
        }
        within(what, "fuel", self.fuel, 0, limits::MAX_FUEL)?;
        within(
            what,
            "instructions",
            self.instructions,
            0,
            limits::MAX_INSTRUCTIONS,
        )?;
        within(
            what,
            "memory",
            self.memory,
            limits::MIN_MEMORY,
            limits::MAX_MEMORY,
        )?;
        within(what, "recursion", self.recursion, 0, limits::MAX_RECURSION)?;
        within(
            what,
            "pcall depth",
            self.pcall_depth,
            0,
            limits::MAX_PCALL_DEPTH,
        )?;
        within(
            what,
            "load fuel",
            self.load_fuel,
            limits::MIN_LOAD_FUEL,
            limits::MAX_LOAD_FUEL,
        )?;
        for (_, name, max, v) in self.send.each() {
            within(what, name, v, 0, max)?;
        }
        Ok(())
    }

    fn encode(&self, m: &mut MessageBuilder) {
        if let Some(fuel) = self.fuel {
            m.attr_u64(attr::FUEL, fuel);
        }
        if let Some(instructions) = self.instructions {
            m.attr_u32(attr::INSTRUCTIONS, instructions);
        }
        if let Some(memory) = self.memory {
            m.attr_u64(attr::MEMORY, memory);
        }
        if let Some(recursion) = self.recursion {
            m.attr_u32(attr::RECURSION, recursion);
        }
        if let Some(pcall_depth) = self.pcall_depth {
            m.attr_u32(attr::PCALL_DEPTH, pcall_depth);
        }
        if let Some(load_fuel) = self.load_fuel {
            m.attr_u64(attr::LOAD_FUEL, load_fuel);
        }
        for (kind, _, _, v) in self.send.each() {
            if let Some(v) = v {
                m.attr_u32(kind, v);
            }
        }
    }
}

/// A script's limits, as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScriptLimits {
    pub fuel: u64,
    pub instructions: u32,
    pub memory: u64,
    pub recursion: u32,
    pub pcall_depth: u32,
    /// Fuel for building one instance (0 from a kernel that does not report it).
    pub load_fuel: u64,
    #[serde(flatten)]
    pub send: SendLimits<u32>,
}

/// A script's counters (`LUAPKT_STAT_*`), summed over its instances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub run_cnt: u64,
    pub run_time_ns: u64,
    pub accept: u64,
    pub drop: u64,
    #[serde(rename = "continue")]
    pub continue_: u64,
    #[serde(rename = "break")]
    pub break_: u64,
    pub queue: u64,
    pub err_lua: u64,
    pub err_memory: u64,
    pub err_fuel: u64,
    pub err_instructions: u64,
    pub err_stack: u64,
    pub err_return: u64,
    pub err_trap: u64,
    pub fuel_total: u64,
    pub fuel_max: u64,
    pub rebuilds: u64,
    pub rebuild_failures: u64,
    pub run_time_max_ns: u64,
    pub log_lines: u64,
    pub log_dropped: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub send_refused: u64,
    pub send_failed: u64,
    pub timers_pending: u64,
    pub timer_runs: u64,
    pub timer_errors: u64,
    pub timers_dropped: u64,
}

/// Which of a script's rings to read (`LUAPKT_CMD_LOG_READ`, `LUAPKT_CMD_ERRORS_READ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// Its log lines (`abi::records::LogRecord`).
    Log,
    /// The errors it kept with their packets (`abi::records::ErrorRecord`).
    Errors,
}

/// One of a script's maps (`lp.map`), as `LUAPKT_CMD_MAP_LIST` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MapInfo {
    pub name: String,
    /// `hash` or `lru`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `number` or `bytes`.
    pub value: &'static str,
    pub key_size: u16,
    pub value_size: u16,
    pub max_entries: u32,
    /// Entries now.
    pub entries: u32,
}

/// One read of a ring: whole records (`abi::records`), the sequence number to read from
/// next, and how many were overwritten before the read reached them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordBatch {
    pub data: Vec<u8>,
    pub next: u64,
    pub lost: u64,
}

/// The first 8 bytes of the package's SHA-256, shown in hex like bpftool's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag(pub [u8; 8]);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A loaded script, as `LUAPKT_CMD_GET` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScriptInfo {
    pub name: String,
    pub tag: Tag,
    /// Rules bound to the script.
    pub refs: u32,
    /// Linear memory of all instances, in bytes.
    pub mem_bytes: u64,
    /// The script's maps, in bytes (allocated in full when declared; 0 from a kernel that
    /// does not say).
    pub map_bytes: u64,
    /// One per possible CPU.
    pub instances: u32,
    pub limits: ScriptLimits,
    pub on_error: OnError,
    /// `None` from a module that does not report it (before engines were selectable: wasmi).
    pub engine: Option<Engine>,
    pub stats: Stats,
}

/// A package to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadRequest<'a> {
    pub name: &'a str,
    /// The `.lpk` bytes.
    pub package: &'a [u8],
    pub limits: Limits,
    pub on_error: Option<OnError>,
    /// `None`: the module's default.
    pub engine: Option<Engine>,
    /// Swap a loaded script of the same name atomically instead of failing with EEXIST.
    pub replace: bool,
}

impl<'a> LoadRequest<'a> {
    pub fn new(name: &'a str, package: &'a [u8]) -> Self {
        Self {
            name,
            package,
            limits: Limits::default(),
            on_error: None,
            engine: None,
            replace: false,
        }
    }
}

const NOT_LOADED_HINT: &str = " (is nft_lua loaded?)";

/// A client of the `luapkt` family in the caller's network namespace.
pub struct Luapkt<T = Socket> {
    conn: Conn<T>,
    family: FamilyInfo,
}

impl Luapkt<Socket> {
    /// Opens a generic netlink socket and looks the family up.
    pub fn open() -> Result<Self> {
        let socket =
            Socket::open(Protocol::Generic).map_err(|e| Error::io("luapkt: netlink socket", e))?;
        Self::with_transport(socket)
    }
}

impl<T: Transport> Luapkt<T> {
    /// Looks the family up over `transport`; [`Error::FamilyNotFound`] when nft_lua is not
    /// loaded.
    pub fn with_transport(transport: T) -> Result<Self> {
        let mut conn = Conn::new(transport);
        let family = genl::resolve(&mut conn, nl::GENL_NAME, NOT_LOADED_HINT)?;
        Ok(Self { conn, family })
    }

    pub fn family(&self) -> FamilyInfo {
        self.family
    }

    pub fn transport(&self) -> &T {
        &self.conn.transport
    }

    pub fn into_transport(self) -> T {
        self.conn.transport
    }

    /// Uploads and commits a package: LOAD_BEGIN, LOAD_CHUNKs of at most `CHUNK_MAX` bytes,
    /// LOAD_COMMIT. A failed upload is aborted.
    pub fn load(&mut self, request: &LoadRequest<'_>) -> Result<ScriptInfo> {
        let what = format!("script {}", request.name);
        check_script_name(request.name)?;
        request.limits.check(&what)?;
        let size = u32::try_from(request.package.len())
            .ok()
            .filter(|&n| n > 0 && n <= nl::PACKAGE_MAX)
            .ok_or_else(|| {
                Error::invalid(
                    &what,
                    format!(
                        "package of {} bytes: must be 1 to {} bytes",
                        request.package.len(),
                        nl::PACKAGE_MAX
                    ),
                )
            })?;

        let replies = self.call(&what, cmd::LOAD_BEGIN, |m| {
            m.attr_str(attr::NAME, request.name)
                .attr_u32(attr::SIZE, size);
            request.limits.encode(m);
            if let Some(on_error) = request.on_error {
                m.attr_u8(attr::ON_ERROR, on_error.number());
            }
            if let Some(engine) = request.engine {
                m.attr_u8(attr::ENGINE, engine.number());
            }
            let flags = if request.replace { nl::FLAG_REPLACE } else { 0 };
            m.attr_u32(attr::FLAGS, flags);
        })?;
        let upload = self.single(&what, &replies, decode_upload_id)?;

        let result = self.upload(&what, upload, request.package);
        if result.is_err() {
            // Best effort: the kernel also drops uploads when the socket closes.
            let _ = self.abort_upload(upload);
        }
        result
    }

    fn upload(&mut self, what: &str, upload: u32, package: &[u8]) -> Result<ScriptInfo> {
        let mut offset = 0u32;
        for chunk in package.chunks(nl::CHUNK_MAX as usize) {
            let chunk_what = format!("{what}: chunk at offset {offset}");
            self.call(&chunk_what, cmd::LOAD_CHUNK, |m| {
                m.attr_u32(attr::UPLOAD_ID, upload)
                    .attr_u32(attr::OFFSET, offset)
                    .attr(attr::DATA, chunk);
            })?;
            // Chunks are at most CHUNK_MAX and the package at most PACKAGE_MAX bytes.
            offset += chunk.len() as u32;
        }
        let replies = self.call(what, cmd::LOAD_COMMIT, |m| {
            m.attr_u32(attr::UPLOAD_ID, upload);
        })?;
        self.single(what, &replies, decode_script)
    }

    /// Sends one request of the family exactly as given: `command`, then `attrs` (encoded
    /// attributes, appended unchecked and padded to 4 bytes), with NLM_F_ACK. For tests that
    /// send malformed requests (`lpctl selftest netlink`); the other methods never need it.
    /// Returns the attribute bytes (after `genlmsghdr`) of each reply before the ack.
    pub fn request_raw(&mut self, command: u8, attrs: &[u8]) -> Result<Vec<Vec<u8>>> {
        let what = format!("luapkt command {command}");
        let seq = self.conn.next_seq();
        let m = genl::request(self.family.id, NLM_F_ACK, seq, command, nl::GENL_VERSION)
            .fixed_header(attrs);
        let answers =
            self.conn
                .exchange(&m.finish(), &[Pending::new(seq, &what)], None, Expect::Ack)?;
        Ok(answers
            .replies
            .into_iter()
            .map(|r| r.payload.get(GENL_HDRLEN..).unwrap_or_default().to_vec())
            .collect())
    }

    /// Drops an upload in progress.
    pub fn abort_upload(&mut self, upload: u32) -> Result<()> {
        self.call(&format!("upload {upload}"), cmd::LOAD_ABORT, |m| {
            m.attr_u32(attr::UPLOAD_ID, upload);
        })?;
        Ok(())
    }

    /// Unloads a script; EBUSY (with the kernel's message naming the rules) while rules use it.
    pub fn unload(&mut self, name: &str) -> Result<()> {
        check_script_name(name)?;
        self.call(&format!("script {name}"), cmd::UNLOAD, |m| {
            m.attr_str(attr::NAME, name);
        })?;
        Ok(())
    }

    /// One script.
    pub fn get(&mut self, name: &str) -> Result<ScriptInfo> {
        check_script_name(name)?;
        let what = format!("script {name}");
        let replies = self.call(&what, cmd::GET, |m| {
            m.attr_str(attr::NAME, name);
        })?;
        self.single(&what, &replies, decode_script)
    }

    /// Every script of the namespace.
    pub fn list(&mut self) -> Result<Vec<ScriptInfo>> {
        let what = "list scripts";
        let family = self.family.id;
        let replies = self.conn.dump(what, |seq| {
            genl::request(family, NLM_F_DUMP, seq, cmd::GET, nl::GENL_VERSION).finish()
        })?;
        replies
            .iter()
            .map(|r| self.decode(what, r, decode_script))
            .collect()
    }

    /// Changes a script's limits and on-error policy, live.
    pub fn set_limits(
        &mut self,
        name: &str,
        limits: &Limits,
        on_error: Option<OnError>,
    ) -> Result<()> {
        check_script_name(name)?;
        let what = format!("script {name}");
        limits.check(&what)?;
        self.call(&what, cmd::SET_LIMITS, |m| {
            m.attr_str(attr::NAME, name);
            limits.encode(m);
            if let Some(on_error) = on_error {
                m.attr_u8(attr::ON_ERROR, on_error.number());
            }
        })?;
        Ok(())
    }

    /// Reads a script's ring from sequence number `from` (0: the oldest kept): at most
    /// `abi::records::READ_MAX` bytes of records; ask again from `next` for more.
    pub fn read_ring(&mut self, name: &str, ring: Ring, from: u64) -> Result<RecordBatch> {
        check_script_name(name)?;
        let what = format!("script {name}");
        let command = match ring {
            Ring::Log => cmd::LOG_READ,
            Ring::Errors => cmd::ERRORS_READ,
        };
        let replies = self.call(&what, command, |m| {
            m.attr_str(attr::NAME, name);
            m.attr_u64(attr::LOG_SEQ, from);
        })?;
        self.single(&what, &replies, decode_batch)
    }

    /// A script's maps.
    pub fn map_list(&mut self, script: &str) -> Result<Vec<MapInfo>> {
        use abi::records::{records, MapInfoRecord};
        check_script_name(script)?;
        let what = format!("script {script}");
        let replies = self.call(&what, cmd::MAP_LIST, |m| {
            m.attr_str(attr::NAME, script);
        })?;
        let data = self.single(&what, &replies, decode_data)?;
        records::<MapInfoRecord<'_>>(&data)
            .map(|r| {
                let r =
                    r.map_err(|e| Error::malformed(&what, format!("map record at byte {}", e.at)))?;
                Ok(MapInfo {
                    name: String::from_utf8_lossy(r.name).into_owned(),
                    kind: if r.info.kind == abi::guest::map::KIND_LRU {
                        "lru"
                    } else {
                        "hash"
                    },
                    value: if r.info.value == abi::guest::map::VALUE_BYTES {
                        "bytes"
                    } else {
                        "number"
                    },
                    key_size: r.info.key_size,
                    value_size: r.info.value_size,
                    max_entries: r.info.max_entries,
                    entries: r.info.len,
                })
            })
            .collect()
    }

    /// Every entry of a map, as (key, value) bytes (a number as `abi::guest::map::NUMBER`
    /// bytes), read in as many requests as it takes.
    pub fn map_dump(&mut self, script: &str, map: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        use abi::records::{records, MapEntry};
        check_script_name(script)?;
        let what = format!("map {map} of script {script}");
        let mut out = Vec::new();
        let mut cursor = 0;
        // a map holds at most 2^20 entries; bound the requests all the same
        for _ in 0..(1 << 21) {
            let replies = self.call(&what, cmd::MAP_DUMP, |m| {
                m.attr_str(attr::NAME, script)
                    .attr_str(attr::MAP_NAME, map)
                    .attr_u64(attr::LOG_SEQ, cursor);
            })?;
            let b = self.single(&what, &replies, decode_batch)?;
            for e in records::<MapEntry<'_>>(&b.data) {
                let e = e.map_err(|e| {
                    Error::malformed(&what, format!("entry record at byte {}", e.at))
                })?;
                out.push((e.key.to_vec(), e.value.to_vec()));
            }
            if b.next == 0 {
                return Ok(out);
            }
            cursor = b.next;
        }
        Err(Error::malformed(&what, "the dump did not end"))
    }

    /// The value of `key` (a number as `abi::guest::map::NUMBER` bytes); ENOENT when absent.
    pub fn map_get(&mut self, script: &str, map: &str, key: &[u8]) -> Result<Vec<u8>> {
        check_script_name(script)?;
        let what = format!("map {map} of script {script}");
        let replies = self.call(&what, cmd::MAP_GET, |m| {
            m.attr_str(attr::NAME, script)
                .attr_str(attr::MAP_NAME, map)
                .attr(attr::MAP_KEY, key);
        })?;
        self.single(&what, &replies, decode_value)
    }

    /// Stores `value` at `key`.
    pub fn map_set(&mut self, script: &str, map: &str, key: &[u8], value: &[u8]) -> Result<()> {
        check_script_name(script)?;
        let what = format!("map {map} of script {script}");
        self.call(&what, cmd::MAP_SET, |m| {
            m.attr_str(attr::NAME, script)
                .attr_str(attr::MAP_NAME, map)
                .attr(attr::MAP_KEY, key)
                .attr(attr::MAP_VALUE, value);
        })?;
        Ok(())
    }

    /// The Lua source a script was loaded with, read in chunks of at most
    /// `abi::records::READ_MAX` bytes.
    pub fn source(&mut self, name: &str) -> Result<Vec<u8>> {
        check_script_name(name)?;
        let what = format!("script {name}");
        let mut out = Vec::new();
        loop {
            let offset = u32::try_from(out.len())
                .map_err(|_| Error::malformed(&what, "a source of more than 4 GiB"))?;
            let replies = self.call(&what, cmd::SOURCE_READ, |m| {
                m.attr_str(attr::NAME, name).attr_u32(attr::OFFSET, offset);
            })?;
            let chunk = self.single(&what, &replies, decode_source)?;
            if chunk.offset != offset || chunk.size < offset {
                return Err(Error::malformed(&what, "a reply for another offset"));
            }
            let want = (chunk.size - offset) as usize;
            if chunk.data.len() > want || (chunk.data.is_empty() && want > 0) {
                return Err(Error::malformed(
                    &what,
                    "a chunk that does not fit the size",
                ));
            }
            out.extend_from_slice(&chunk.data);
            if out.len() == chunk.size as usize {
                return Ok(out);
            }
        }
    }

    /// Removes `key`; ENOENT when absent.
    pub fn map_delete(&mut self, script: &str, map: &str, key: &[u8]) -> Result<()> {
        check_script_name(script)?;
        let what = format!("map {map} of script {script}");
        self.call(&what, cmd::MAP_DELETE, |m| {
            m.attr_str(attr::NAME, script)
                .attr_str(attr::MAP_NAME, map)
                .attr(attr::MAP_KEY, key);
        })?;
        Ok(())
    }

    /// One request with NLM_F_ACK; returns the messages that came before the ack.
    fn call(
        &mut self,
        what: &str,
        command: u8,
        attrs: impl FnOnce(&mut MessageBuilder),
    ) -> Result<Vec<Reply>> {
        let seq = self.conn.next_seq();
        let mut m = genl::request(self.family.id, NLM_F_ACK, seq, command, nl::GENL_VERSION);
        attrs(&mut m);
        let answers =
            self.conn
                .exchange(&m.finish(), &[Pending::new(seq, what)], None, Expect::Ack)?;
        Ok(answers.replies)
    }

    fn decode<V>(&self, what: &str, reply: &Reply, decode: fn(&[u8]) -> Decoded<V>) -> Result<V> {
        if reply.message_type != self.family.id {
            return Err(Error::malformed(
                what,
                format!(
                    "message type {} is not the luapkt family",
                    reply.message_type
                ),
            ));
        }
        let attrs = reply
            .payload
            .get(GENL_HDRLEN..)
            .ok_or_else(|| Error::malformed(what, "shorter than genlmsghdr"))?;
        decode(attrs).map_err(|e| Error::malformed(what, e.0))
    }

    fn single<V>(
        &self,
        what: &str,
        replies: &[Reply],
        decode: fn(&[u8]) -> Decoded<V>,
    ) -> Result<V> {
        match replies {
            [reply] => self.decode(what, reply, decode),
            _ => Err(Error::malformed(
                what,
                format!("{} messages where one was expected", replies.len()),
            )),
        }
    }
}

fn decode_upload_id(attrs: &[u8]) -> Decoded<u32> {
    for attr in wire::attrs(attrs) {
        let attr = attr?;
        if attr.kind == attr::UPLOAD_ID {
            return attr.u32("LUAPKT_ATTR_UPLOAD_ID");
        }
    }
    Err(Malformed::new("LUAPKT_ATTR_UPLOAD_ID missing"))
}

fn decode_data(attrs: &[u8]) -> Decoded<Vec<u8>> {
    for a in wire::attrs(attrs) {
        let a = a?;
        if a.kind == attr::LOG_DATA {
            return Ok(a.value.to_vec());
        }
    }
    Err(Malformed::new("LUAPKT_ATTR_LOG_DATA missing"))
}

fn decode_value(attrs: &[u8]) -> Decoded<Vec<u8>> {
    for a in wire::attrs(attrs) {
        let a = a?;
        if a.kind == attr::MAP_VALUE {
            return Ok(a.value.to_vec());
        }
    }
    Err(Malformed::new("LUAPKT_ATTR_MAP_VALUE missing"))
}

/// One SOURCE_READ reply.
struct SourceChunk {
    data: Vec<u8>,
    size: u32,
    offset: u32,
}

fn decode_source(attrs: &[u8]) -> Decoded<SourceChunk> {
    let (mut data, mut size, mut offset) = (None, None, None);
    for a in wire::attrs(attrs) {
        let a = a?;
        match a.kind {
            attr::DATA => data = Some(a.value.to_vec()),
            attr::SIZE => size = Some(a.u32("LUAPKT_ATTR_SIZE")?),
            attr::OFFSET => offset = Some(a.u32("LUAPKT_ATTR_OFFSET")?),
            _ => {}
        }
    }
    let data = required(data, "LUAPKT_ATTR_DATA")?;
    if data.len() > abi::records::READ_MAX {
        return Err(Malformed::new(format!(
            "LUAPKT_ATTR_DATA: {} bytes, more than {}",
            data.len(),
            abi::records::READ_MAX
        )));
    }
    Ok(SourceChunk {
        data,
        size: required(size, "LUAPKT_ATTR_SIZE")?,
        offset: required(offset, "LUAPKT_ATTR_OFFSET")?,
    })
}

fn decode_batch(attrs: &[u8]) -> Decoded<RecordBatch> {
    let (mut data, mut next, mut lost) = (None, None, 0);
    for a in wire::attrs(attrs) {
        let a = a?;
        match a.kind {
            attr::LOG_DATA => data = Some(a.value.to_vec()),
            attr::LOG_SEQ => next = Some(a.u64("LUAPKT_ATTR_LOG_SEQ")?),
            attr::LOG_LOST => lost = a.u64("LUAPKT_ATTR_LOG_LOST")?,
            _ => {}
        }
    }
    let data = required(data, "LUAPKT_ATTR_LOG_DATA")?;
    if data.len() > abi::records::READ_MAX {
        return Err(Malformed::new(format!(
            "LUAPKT_ATTR_LOG_DATA: {} bytes, more than {}",
            data.len(),
            abi::records::READ_MAX
        )));
    }
    Ok(RecordBatch {
        data,
        next: required(next, "LUAPKT_ATTR_LOG_SEQ")?,
        lost,
    })
}

fn decode_script(attrs: &[u8]) -> Decoded<ScriptInfo> {
    let mut name = None;
    let mut tag = None;
    let (mut refs, mut mem_bytes, mut instances) = (None, None, None);
    let (mut fuel, mut instructions, mut memory, mut recursion, mut pcall_depth) =
        (None, None, None, None, None);
    let mut on_error = None;
    let mut engine = None;
    let mut load_fuel = 0;
    let mut map_bytes = 0;
    let mut send = SendLimits::<u32>::default();
    let mut stats = Stats::default();
    for a in wire::attrs(attrs) {
        let a = a?;
        match a.kind {
            attr::NAME => name = Some(a.str("LUAPKT_ATTR_NAME")?),
            attr::TAG => {
                tag = Some(Tag(a.value.try_into().map_err(|_| {
                    Malformed::new(format!("LUAPKT_ATTR_TAG: {} bytes, not 8", a.value.len()))
                })?))
            }
            attr::REFS => refs = Some(a.u32("LUAPKT_ATTR_REFS")?),
            attr::MEM_BYTES => mem_bytes = Some(a.u64("LUAPKT_ATTR_MEM_BYTES")?),
            attr::MAP_BYTES => map_bytes = a.u64("LUAPKT_ATTR_MAP_BYTES")?,
            attr::INSTANCES => instances = Some(a.u32("LUAPKT_ATTR_INSTANCES")?),
            attr::FUEL => fuel = Some(a.u64("LUAPKT_ATTR_FUEL")?),
            attr::INSTRUCTIONS => instructions = Some(a.u32("LUAPKT_ATTR_INSTRUCTIONS")?),
            attr::MEMORY => memory = Some(a.u64("LUAPKT_ATTR_MEMORY")?),
            attr::RECURSION => recursion = Some(a.u32("LUAPKT_ATTR_RECURSION")?),
            attr::PCALL_DEPTH => pcall_depth = Some(a.u32("LUAPKT_ATTR_PCALL_DEPTH")?),
            attr::ON_ERROR => {
                let n = a.u8("LUAPKT_ATTR_ON_ERROR")?;
                on_error = Some(
                    OnError::from_number(n)
                        .ok_or_else(|| Malformed::new(format!("LUAPKT_ATTR_ON_ERROR {n}")))?,
                );
            }
            attr::LOAD_FUEL => load_fuel = a.u64("LUAPKT_ATTR_LOAD_FUEL")?,
            attr::SEND_PACKETS => send.send_packets = a.u32("LUAPKT_ATTR_SEND_PACKETS")?,
            attr::SEND_BYTES => send.send_bytes = a.u32("LUAPKT_ATTR_SEND_BYTES")?,
            attr::SEND_RATE => send.send_rate = a.u32("LUAPKT_ATTR_SEND_RATE")?,
            attr::SEND_BYTE_RATE => send.send_byte_rate = a.u32("LUAPKT_ATTR_SEND_BYTE_RATE")?,
            attr::ENGINE => {
                let n = a.u8("LUAPKT_ATTR_ENGINE")?;
                engine = Some(
                    Engine::from_number(n)
                        .ok_or_else(|| Malformed::new(format!("LUAPKT_ATTR_ENGINE {n}")))?,
                );
            }
            attr::STATS => stats = decode_stats(a.value)?,
            _ => {}
        }
    }
    Ok(ScriptInfo {
        name: required(name, "LUAPKT_ATTR_NAME")?,
        tag: required(tag, "LUAPKT_ATTR_TAG")?,
        refs: required(refs, "LUAPKT_ATTR_REFS")?,
        mem_bytes: required(mem_bytes, "LUAPKT_ATTR_MEM_BYTES")?,
        map_bytes,
        instances: required(instances, "LUAPKT_ATTR_INSTANCES")?,
        limits: ScriptLimits {
            fuel: required(fuel, "LUAPKT_ATTR_FUEL")?,
            instructions: required(instructions, "LUAPKT_ATTR_INSTRUCTIONS")?,
            memory: required(memory, "LUAPKT_ATTR_MEMORY")?,
            recursion: required(recursion, "LUAPKT_ATTR_RECURSION")?,
            pcall_depth: required(pcall_depth, "LUAPKT_ATTR_PCALL_DEPTH")?,
            load_fuel,
            send,
        },
        on_error: required(on_error, "LUAPKT_ATTR_ON_ERROR")?,
        engine,
        stats,
    })
}

/// Counters the kernel does not send stay 0; unknown ones are skipped.
fn decode_stats(nested: &[u8]) -> Decoded<Stats> {
    let mut s = Stats::default();
    for a in wire::attrs(nested) {
        let a = a?;
        let field = match a.kind {
            stat::RUN_CNT => &mut s.run_cnt,
            stat::RUN_TIME_NS => &mut s.run_time_ns,
            stat::ACCEPT => &mut s.accept,
            stat::DROP => &mut s.drop,
            stat::CONTINUE => &mut s.continue_,
            stat::BREAK => &mut s.break_,
            stat::QUEUE => &mut s.queue,
            stat::ERR_LUA => &mut s.err_lua,
            stat::ERR_MEMORY => &mut s.err_memory,
            stat::ERR_FUEL => &mut s.err_fuel,
            stat::ERR_INSTRUCTIONS => &mut s.err_instructions,
            stat::ERR_STACK => &mut s.err_stack,
            stat::ERR_RETURN => &mut s.err_return,
            stat::ERR_TRAP => &mut s.err_trap,
            stat::FUEL_TOTAL => &mut s.fuel_total,
            stat::FUEL_MAX => &mut s.fuel_max,
            stat::REBUILDS => &mut s.rebuilds,
            stat::REBUILD_FAILURES => &mut s.rebuild_failures,
            stat::RUN_TIME_MAX_NS => &mut s.run_time_max_ns,
            stat::LOG_LINES => &mut s.log_lines,
            stat::LOG_DROPPED => &mut s.log_dropped,
            stat::SENT_PACKETS => &mut s.sent_packets,
            stat::SENT_BYTES => &mut s.sent_bytes,
            stat::SEND_REFUSED => &mut s.send_refused,
            stat::SEND_FAILED => &mut s.send_failed,
            stat::TIMERS_PENDING => &mut s.timers_pending,
            stat::TIMER_RUNS => &mut s.timer_runs,
            stat::TIMER_ERRORS => &mut s.timer_errors,
            stat::TIMERS_DROPPED => &mut s.timers_dropped,
            _ => continue,
        };
        *field = a.u64("LUAPKT_ATTR_STATS counter")?;
    }
    Ok(s)
}

// The tests check exact bytes, written for a little-endian host.
#[cfg(all(test, target_endian = "little"))]
mod tests;
