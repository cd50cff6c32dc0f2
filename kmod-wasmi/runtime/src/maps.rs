//! Maps shared by all of a script's instances (`lp.map`, issue 11): a hash of byte-string keys
//! to numbers or byte strings, or its LRU variant, declared with a maximum size and sized in
//! full when declared (process context): an insert never allocates.
//!
//! Every CPU reads and writes in softirq. There is no lock for the whole map: keys are spread
//! over stripes by a hash keyed per map (a packet cannot aim its keys at one stripe without
//! knowing the key), and each stripe is an open-addressing table under its own spin lock
//! (bottom halves disabled while held, kmod-wasmi/ffi/spin), held for one operation, whose
//! work is bounded by the stripe's size. The number of entries is bounded by `max_entries`
//! (an atomic count); a stripe of a hash map holds a quarter more than its share, so the map
//! fills at `max_entries` unless the keys crowd one stripe. An LRU map's stripes hold its
//! `max_entries` between them exactly, and a stripe that is full evicts its entry used longest
//! ago: an LRU map never refuses an insert.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// Most maps a script may declare.
pub const MAPS_MAX: usize = 16;
/// Longest key, and longest byte-string value.
pub const KEY_MAX: usize = abi::records::MAP_KEY_MAX;
pub const VALUE_MAX: usize = abi::records::MAP_VALUE_MAX;
/// Most entries of one map.
pub const ENTRIES_MAX: u32 = 1 << 20;
/// Most bytes all of a script's maps may take.
pub const BYTES_MAX: usize = 64 << 20;

/// What a map holds and how it makes room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// Inserting into a full map fails.
    Hash,
    /// Inserting into a full map evicts the entry of its stripe used longest ago.
    Lru,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// Lua numbers (integers or floats).
    Number,
    /// Byte strings of at most the declared size.
    Bytes,
}

/// A map's declaration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSpec {
    pub kind: MapKind,
    pub value: ValueKind,
    pub key_max: u16,
    /// Byte strings: the longest value (numbers: ignored).
    pub value_max: u16,
    pub max_entries: u32,
}

/// A value going in or coming out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Float(f64),
    Bytes(&'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The declaration is out of range: what is wrong.
    Spec(&'static str),
    /// The memory for the map could not be had.
    NoMemory,
    KeyTooLong,
    ValueTooLong,
    /// A number where the map holds byte strings, or the other way round.
    WrongType,
    /// A hash map at its maximum (or its key's stripe full).
    Full,
}

impl MapError {
    pub fn message(self) -> &'static str {
        match self {
            MapError::Spec(what) => what,
            MapError::NoMemory => "not enough memory for the map",
            MapError::KeyTooLong => "key longer than the map's key_size",
            MapError::ValueTooLong => "value longer than the map's value_size",
            MapError::WrongType => "value of the wrong type for the map",
            MapError::Full => "map full",
        }
    }
}

const NIL: u32 = u32::MAX;
/// Bytes a number takes in a slot: a tag and 8 bytes.
const NUMBER_BYTES: usize = 9;
const TAG_INT: u8 = 1;
const TAG_FLOAT: u8 = 2;

impl MapSpec {
    fn value_bytes(&self) -> usize {
        match self.value {
            ValueKind::Number => NUMBER_BYTES,
            ValueKind::Bytes => usize::from(self.value_max),
        }
    }

    fn stripes(&self) -> usize {
        // one stripe per 64 entries, 1 to 64 of them
        ((self.max_entries as usize / 64).next_power_of_two()).clamp(1, 64)
    }

    /// Slots of stripe `i`.
    fn stripe_capacity(&self, i: usize) -> usize {
        let (max, n) = (self.max_entries as usize, self.stripes());
        match self.kind {
            MapKind::Hash => {
                let share = max.div_ceil(n);
                (share + share / 4 + 4).min(max)
            }
            // exactly max_entries in all
            MapKind::Lru => max / n + usize::from(i < max % n),
        }
    }

    /// Bytes the map takes once declared.
    pub fn bytes(&self) -> usize {
        let per_slot = usize::from(self.key_max) + self.value_bytes() + 2 + 2 + 8 + 4 + 4 + 4;
        (0..self.stripes())
            .map(|i| {
                let cap = self.stripe_capacity(i);
                cap * per_slot + (cap * 2).next_power_of_two() * 4
            })
            .sum()
    }

    /// Checks the declaration's ranges.
    pub fn validate(&self) -> Result<(), MapError> {
        if self.key_max == 0 || usize::from(self.key_max) > KEY_MAX {
            return Err(MapError::Spec("key_size must be 1..256"));
        }
        if self.value == ValueKind::Bytes
            && (self.value_max == 0 || usize::from(self.value_max) > VALUE_MAX)
        {
            return Err(MapError::Spec("value_size must be 1..4096"));
        }
        if self.max_entries == 0 || self.max_entries > ENTRIES_MAX {
            return Err(MapError::Spec("max_entries must be 1..1048576"));
        }
        if self.bytes() > BYTES_MAX {
            return Err(MapError::Spec("the map would take more than 64 MiB"));
        }
        Ok(())
    }
}

/// One stripe: slots, an index over them, and the order of use (LRU).
struct Stripe {
    /// Open addressing over slot numbers + 1 (0: empty cell); a power of two at least twice
    /// the slots, so a probe always ends.
    index: Vec<u32>,
    hashes: Vec<u64>,
    keys: Vec<u8>,
    klen: Vec<u16>,
    vals: Vec<u8>,
    vlen: Vec<u16>,
    /// Free slots (a stack).
    free: Vec<u32>,
    /// Most recently used first.
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
}

/// Called with the size of each allocation a map is about to make: the kernel makes that one
/// fallible (`Host::linear_memory`): a map's size comes from the script.
pub type Announce<'a> = &'a dyn Fn(usize);

fn try_vec<T: Clone>(announce: Announce<'_>, n: usize, v: T) -> Result<Vec<T>, MapError> {
    announce(n.saturating_mul(core::mem::size_of::<T>()));
    let mut x = Vec::new();
    x.try_reserve_exact(n).map_err(|_| MapError::NoMemory)?;
    x.resize(n, v);
    Ok(x)
}

impl Stripe {
    fn new(spec: &MapSpec, cap: usize, a: Announce<'_>) -> Result<Stripe, MapError> {
        let mut free = try_vec(a, cap, 0u32)?;
        for (i, f) in free.iter_mut().enumerate() {
            *f = (cap - 1 - i) as u32;
        }
        Ok(Stripe {
            index: try_vec(a, (cap * 2).next_power_of_two(), 0u32)?,
            hashes: try_vec(a, cap, 0u64)?,
            keys: try_vec(a, cap * usize::from(spec.key_max), 0u8)?,
            klen: try_vec(a, cap, 0u16)?,
            vals: try_vec(a, cap * spec.value_bytes(), 0u8)?,
            vlen: try_vec(a, cap, 0u16)?,
            free,
            prev: try_vec(a, cap, NIL)?,
            next: try_vec(a, cap, NIL)?,
            head: NIL,
            tail: NIL,
        })
    }

    fn key(&self, spec: &MapSpec, slot: usize) -> &[u8] {
        let at = slot * usize::from(spec.key_max);
        &self.keys[at..at + usize::from(self.klen[slot])]
    }

    /// The index cell holding `key`'s slot, or the empty cell where it would go.
    fn find(&self, spec: &MapSpec, h: u64, key: &[u8]) -> (usize, Option<usize>) {
        let mask = self.index.len() - 1;
        let mut i = (h as usize) & mask;
        loop {
            match self.index[i] {
                0 => return (i, None),
                s => {
                    let slot = (s - 1) as usize;
                    if self.hashes[slot] == h && self.key(spec, slot) == key {
                        return (i, Some(slot));
                    }
                }
            }
            i = (i + 1) & mask;
        }
    }

    fn unlink(&mut self, slot: usize) {
        let (p, n) = (self.prev[slot], self.next[slot]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
    }

    fn push_front(&mut self, slot: usize) {
        self.prev[slot] = NIL;
        self.next[slot] = self.head;
        if self.head != NIL {
            self.prev[self.head as usize] = slot as u32;
        }
        self.head = slot as u32;
        if self.tail == NIL {
            self.tail = slot as u32;
        }
    }

    fn touch(&mut self, slot: usize) {
        if self.head != slot as u32 {
            self.unlink(slot);
            self.push_front(slot);
        }
    }

    /// Removes the entry at index cell `i` (slot `slot`), closing the probe gap behind it.
    fn remove_at(&mut self, mut i: usize, slot: usize) {
        let mask = self.index.len() - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.index[j];
            if s == 0 {
                break;
            }
            let home = (self.hashes[(s - 1) as usize] as usize) & mask;
            // the entry at j may move back to i if its home is not in (i, j] (cyclically)
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.index[i] = s;
                i = j;
            }
        }
        self.index[i] = 0;
        self.unlink(slot);
        self.free.push(slot as u32);
    }

    fn write_value(&mut self, spec: &MapSpec, slot: usize, v: Value<'_>) {
        let vb = spec.value_bytes();
        let dst = &mut self.vals[slot * vb..(slot + 1) * vb];
        match v {
            Value::Int(n) => {
                dst[0] = TAG_INT;
                dst[1..9].copy_from_slice(&n.to_ne_bytes());
                self.vlen[slot] = NUMBER_BYTES as u16;
            }
            Value::Float(f) => {
                dst[0] = TAG_FLOAT;
                dst[1..9].copy_from_slice(&f.to_ne_bytes());
                self.vlen[slot] = NUMBER_BYTES as u16;
            }
            Value::Bytes(b) => {
                dst[..b.len()].copy_from_slice(b);
                self.vlen[slot] = b.len() as u16;
            }
        }
    }

    fn value(&self, spec: &MapSpec, slot: usize) -> Value<'_> {
        let vb = spec.value_bytes();
        let v = &self.vals[slot * vb..slot * vb + usize::from(self.vlen[slot])];
        match spec.value {
            ValueKind::Bytes => Value::Bytes(v),
            ValueKind::Number => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&v[1..9]);
                if v[0] == TAG_FLOAT {
                    Value::Float(f64::from_ne_bytes(n))
                } else {
                    Value::Int(i64::from_ne_bytes(n))
                }
            }
        }
    }
}

/// A declared map.
pub struct Map {
    spec: MapSpec,
    keys: (u64, u64),
    stripes: Box<[spin::Mutex<Stripe>]>,
    count: AtomicU32,
}

impl Map {
    /// A map sized in full for `spec`, hashing with `seed` (random per map: keys come from
    /// packets). Process context.
    pub fn new(spec: MapSpec, seed: (u64, u64), announce: Announce<'_>) -> Result<Map, MapError> {
        spec.validate()?;
        let n = spec.stripes();
        let mut stripes = Vec::new();
        stripes
            .try_reserve_exact(n)
            .map_err(|_| MapError::NoMemory)?;
        for i in 0..n {
            stripes.push(spin::Mutex::new(Stripe::new(
                &spec,
                spec.stripe_capacity(i),
                announce,
            )?));
        }
        Ok(Map {
            spec,
            keys: seed,
            stripes: stripes.into_boxed_slice(),
            count: AtomicU32::new(0),
        })
    }

    pub fn spec(&self) -> &MapSpec {
        &self.spec
    }

    /// Entries now.
    pub fn len(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, key: &[u8]) -> u64 {
        use core::hash::Hasher;
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write(key);
        h.finish()
    }

    fn stripe(&self, h: u64) -> &spin::Mutex<Stripe> {
        // the index uses the low bits; the stripe the high ones
        &self.stripes[(h >> 48) as usize & (self.stripes.len() - 1)]
    }

    fn check_key(&self, key: &[u8]) -> Result<(), MapError> {
        if key.len() > usize::from(self.spec.key_max) {
            return Err(MapError::KeyTooLong);
        }
        Ok(())
    }

    /// Calls `f` with the value of `key` (None: absent). An LRU map counts it as a use.
    pub fn get<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<Value<'_>>) -> R,
    ) -> Result<R, MapError> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut s = self.stripe(h).lock();
        match s.find(&self.spec, h, key).1 {
            Some(slot) => {
                if self.spec.kind == MapKind::Lru {
                    s.touch(slot);
                }
                Ok(f(Some(s.value(&self.spec, slot))))
            }
            None => Ok(f(None)),
        }
    }

    /// Sets `key` to `v`.
    pub fn set(&self, key: &[u8], v: Value<'_>) -> Result<(), MapError> {
        self.update(key, |_| Ok(v)).map(|_| ())
    }

    /// Adds `delta` to the number at `key` (absent: 0) and returns the sum; integers stay
    /// integers (wrapping, as Lua's), a float makes a float.
    pub fn add(&self, key: &[u8], delta: Value<'_>) -> Result<Value<'static>, MapError> {
        self.update(key, |old| {
            Ok(match (old.unwrap_or(Value::Int(0)), delta) {
                (Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(b)),
                (Value::Int(a), Value::Float(b)) => Value::Float(a as f64 + b),
                (Value::Float(a), Value::Int(b)) => Value::Float(a + b as f64),
                (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
                _ => return Err(MapError::WrongType),
            })
        })
    }

    /// Stores `f(old value)` at `key`; returns what was stored when it is a number.
    fn update<'v>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<Value<'_>>) -> Result<Value<'v>, MapError>,
    ) -> Result<Value<'static>, MapError> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut s = self.stripe(h).lock();
        let (cell, found) = s.find(&self.spec, h, key);
        let new = f(found.map(|slot| s.value(&self.spec, slot)))?;
        match (self.spec.value, new) {
            (ValueKind::Number, Value::Bytes(_))
            | (ValueKind::Bytes, Value::Int(_) | Value::Float(_)) => {
                return Err(MapError::WrongType)
            }
            (ValueKind::Bytes, Value::Bytes(b)) if b.len() > usize::from(self.spec.value_max) => {
                return Err(MapError::ValueTooLong)
            }
            _ => {}
        }
        let stored = match new {
            Value::Int(n) => Value::Int(n),
            Value::Float(x) => Value::Float(x),
            Value::Bytes(_) => Value::Int(0),
        };
        if let Some(slot) = found {
            s.write_value(&self.spec, slot, new);
            if self.spec.kind == MapKind::Lru {
                s.touch(slot);
            }
            return Ok(stored);
        }
        // a new entry: a hash map needs room in the map and in the stripe; an LRU map's full
        // stripe gives up its entry used longest ago
        let mut cell = cell;
        match self.spec.kind {
            MapKind::Hash => {
                let reserved = self
                    .count
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.spec.max_entries).then_some(n + 1)
                    })
                    .is_ok();
                if !reserved || s.free.is_empty() {
                    if reserved {
                        self.count.fetch_sub(1, Ordering::AcqRel);
                    }
                    return Err(MapError::Full);
                }
            }
            MapKind::Lru if s.free.is_empty() => {
                let victim = s.tail as usize;
                let Some(&vh) = s.hashes.get(victim) else {
                    return Err(MapError::Full);
                };
                let at = victim * usize::from(self.spec.key_max);
                let len = usize::from(s.klen[victim]);
                let mut vkey = [0u8; KEY_MAX];
                vkey[..len].copy_from_slice(&s.keys[at..at + len]);
                let (vcell, _) = s.find(&self.spec, vh, &vkey[..len]);
                s.remove_at(vcell, victim);
                // the removal may have moved entries: the new key's cell again
                cell = s.find(&self.spec, h, key).0;
            }
            MapKind::Lru => {
                self.count.fetch_add(1, Ordering::AcqRel);
            }
        }
        let Some(slot) = s.free.pop() else {
            return Err(MapError::Full);
        };
        let slot = slot as usize;
        let at = slot * usize::from(self.spec.key_max);
        s.keys[at..at + key.len()].copy_from_slice(key);
        s.klen[slot] = key.len() as u16;
        s.hashes[slot] = h;
        s.write_value(&self.spec, slot, new);
        s.index[cell] = slot as u32 + 1;
        s.push_front(slot);
        Ok(stored)
    }

    /// Removes `key`; false when it was absent.
    pub fn delete(&self, key: &[u8]) -> Result<bool, MapError> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut s = self.stripe(h).lock();
        match s.find(&self.spec, h, key) {
            (cell, Some(slot)) => {
                s.remove_at(cell, slot);
                drop(s);
                self.count.fetch_sub(1, Ordering::AcqRel);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Copies whole entry records (`abi::records::MapEntry`) from `cursor` (0: the start) into
    /// `out`; returns the bytes written and the cursor to go on from (0: done). A stripe's
    /// lock is held while its entries are copied; the cursor is a stripe and a cell of its
    /// index, so an entry moved meanwhile may show twice or not at all.
    pub fn dump(&self, cursor: u64, out: &mut [u8]) -> (usize, u64) {
        let mut len = 0;
        let (mut stripe, mut cell) = ((cursor >> 32) as usize, (cursor & 0xffff_ffff) as usize);
        let mut buf = [0u8; abi::guest::map::NUMBER];
        while let Some(m) = self.stripes.get(stripe) {
            let s = m.lock();
            while let Some(&e) = s.index.get(cell) {
                if e != 0 {
                    let slot = (e - 1) as usize;
                    let key = s.key(&self.spec, slot);
                    let value: &[u8] = match s.value(&self.spec, slot) {
                        Value::Bytes(b) => b,
                        v => {
                            let (tag, bits) = match v {
                                Value::Float(f) => (abi::guest::map::FLOAT, f.to_le_bytes()),
                                Value::Int(n) => (abi::guest::map::INT, n.to_le_bytes()),
                                Value::Bytes(_) => (0, [0; 8]),
                            };
                            buf[0] = tag;
                            buf[1..].copy_from_slice(&bits);
                            &buf
                        }
                    };
                    let size = abi::records::map_entry_size(key.len(), value.len());
                    let Some(dst) = out.get_mut(len..len + size) else {
                        return (len, (stripe as u64) << 32 | cell as u64);
                    };
                    dst.fill(0);
                    dst[0..2].copy_from_slice(&(key.len() as u16).to_ne_bytes());
                    dst[2..4].copy_from_slice(&(value.len() as u16).to_ne_bytes());
                    let h = abi::records::MAP_ENTRY_HEADER;
                    dst[h..h + key.len()].copy_from_slice(key);
                    dst[h + key.len()..h + key.len() + value.len()].copy_from_slice(value);
                    len += size;
                }
                cell += 1;
            }
            drop(s);
            stripe += 1;
            cell = 0;
        }
        (len, 0)
    }

    /// Calls `f` with every entry, a stripe at a time (each under its lock): for listing in
    /// process context.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], Value<'_>)) {
        for stripe in self.stripes.iter() {
            let s = stripe.lock();
            let mut slot = s.head;
            while slot != NIL {
                let i = slot as usize;
                f(s.key(&self.spec, i), s.value(&self.spec, i));
                slot = s.next[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn spec(kind: MapKind, value: ValueKind, max: u32) -> MapSpec {
        MapSpec {
            kind,
            value,
            key_max: 16,
            value_max: 32,
            max_entries: max,
        }
    }

    fn get_int(m: &Map, k: &[u8]) -> Option<i64> {
        m.get(k, |v| match v {
            Some(Value::Int(n)) => Some(n),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn numbers_set_get_add_delete() {
        let m = Map::new(spec(MapKind::Hash, ValueKind::Number, 100), (1, 2), &|_| ()).unwrap();
        assert_eq!(get_int(&m, b"a"), None);
        m.set(b"a", Value::Int(5)).unwrap();
        assert_eq!(get_int(&m, b"a"), Some(5));
        assert_eq!(m.add(b"a", Value::Int(2)).unwrap(), Value::Int(7));
        assert_eq!(m.add(b"b", Value::Int(1)).unwrap(), Value::Int(1));
        assert_eq!(m.add(b"b", Value::Float(0.5)).unwrap(), Value::Float(1.5));
        assert_eq!(m.len(), 2);
        assert!(m.delete(b"a").unwrap());
        assert!(!m.delete(b"a").unwrap());
        assert_eq!(m.len(), 1);
        assert_eq!(m.set(b"c", Value::Bytes(b"x")), Err(MapError::WrongType));
        assert_eq!(m.set(&[0; 17], Value::Int(1)), Err(MapError::KeyTooLong));
        // the key's whole bytes count, a shared prefix is another key
        m.set(b"", Value::Int(9)).unwrap();
        assert_eq!(get_int(&m, b""), Some(9));
        assert_eq!(get_int(&m, b"b\0"), None);
    }

    #[test]
    fn bytes_values_are_bounded() {
        let m = Map::new(spec(MapKind::Hash, ValueKind::Bytes, 10), (3, 4), &|_| ()).unwrap();
        m.set(b"k", Value::Bytes(b"hello")).unwrap();
        let got = m
            .get(b"k", |v| match v {
                Some(Value::Bytes(b)) => b.to_vec(),
                _ => vec![],
            })
            .unwrap();
        assert_eq!(got, b"hello");
        m.set(b"k", Value::Bytes(b"")).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            m.set(b"k", Value::Bytes(&[1; 33])),
            Err(MapError::ValueTooLong)
        );
        assert_eq!(m.add(b"k", Value::Int(1)), Err(MapError::WrongType));
    }

    #[test]
    fn a_hash_map_fills_at_its_maximum() {
        for max in [1, 7, 64, 1000, 5000] {
            let m = Map::new(
                spec(MapKind::Hash, ValueKind::Number, max),
                (5, max as u64),
                &|_| (),
            )
            .unwrap();
            let mut stored = 0;
            for i in 0..max * 2 {
                if m.set(&i.to_le_bytes(), Value::Int(i64::from(i))).is_ok() {
                    stored += 1;
                }
            }
            assert!(stored <= max, "{max}: {stored}");
            // a stripe holds a quarter more than its share: the map fills near its maximum
            assert!(stored >= max * 9 / 10, "{max}: only {stored}");
            assert_eq!(m.len(), stored);
            // every stored key reads back; then all are deleted
            let mut found = 0;
            for i in 0..max * 2 {
                if let Some(v) = get_int(&m, &i.to_le_bytes()) {
                    assert_eq!(v, i64::from(i));
                    found += 1;
                    assert!(m.delete(&i.to_le_bytes()).unwrap());
                }
            }
            assert_eq!(found, stored);
            assert!(m.is_empty());
            // and the room is there again
            assert!(m.set(b"again", Value::Int(1)).is_ok());
        }
    }

    #[test]
    fn an_lru_map_evicts_the_least_recently_used() {
        let m = Map::new(spec(MapKind::Lru, ValueKind::Number, 3), (7, 8), &|_| ()).unwrap();
        m.set(b"a", Value::Int(1)).unwrap();
        m.set(b"b", Value::Int(2)).unwrap();
        m.set(b"c", Value::Int(3)).unwrap();
        assert_eq!(get_int(&m, b"a"), Some(1)); // a is used: b is now the oldest
        m.set(b"d", Value::Int(4)).unwrap();
        assert_eq!(get_int(&m, b"b"), None);
        assert_eq!(get_int(&m, b"a"), Some(1));
        assert_eq!(get_int(&m, b"d"), Some(4));
        assert_eq!(m.len(), 3);
        // many more keys than room: always full, never more
        let big = Map::new(spec(MapKind::Lru, ValueKind::Number, 500), (9, 9), &|_| ()).unwrap();
        for i in 0u32..20_000 {
            big.set(&i.to_le_bytes(), Value::Int(1)).unwrap();
            assert!(big.len() <= 500);
        }
        let mut n = 0;
        big.for_each(|_, _| n += 1);
        assert_eq!(n, big.len());
        assert!(big.len() >= 450);
        // the newest key is always there
        assert_eq!(get_int(&big, &19_999u32.to_le_bytes()), Some(1));
    }

    #[test]
    fn deletes_keep_every_probe_chain_whole() {
        // many keys, deleted in an order unrelated to their insertion: every remaining key
        // must still be found (backward-shift deletion)
        let m = Map::new(
            spec(MapKind::Hash, ValueKind::Number, 256),
            (11, 12),
            &|_| (),
        )
        .unwrap();
        let keys: Vec<[u8; 4]> = (0u32..200)
            .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect();
        for k in &keys {
            m.set(k, Value::Int(1)).unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            if i % 3 == 0 {
                assert!(m.delete(k).unwrap());
            }
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(get_int(&m, k).is_some(), i % 3 != 0, "key {i}");
        }
    }

    #[cfg(feature = "std")]
    #[test]
    fn cpus_share_a_map() {
        // four writers on one counter and on keys of their own, two readers, at once
        let m = std::sync::Arc::new(
            Map::new(
                spec(MapKind::Lru, ValueKind::Number, 4096),
                (13, 14),
                &|_| (),
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0u8..6)
            .map(|t| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for i in 0u32..5000 {
                        if t < 4 {
                            m.add(b"hits", Value::Int(1)).unwrap();
                            m.set(&[t, (i % 200) as u8], Value::Int(i64::from(i)))
                                .unwrap();
                        } else {
                            let _ = m.get(b"hits", |v| v.is_some());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(get_int(&m, b"hits"), Some(20_000));
        assert_eq!(m.len(), 1 + 4 * 200);
    }

    #[test]
    fn dumps_go_on_from_their_cursor() {
        use abi::records::{records, MapEntry};
        let m = Map::new(
            spec(MapKind::Hash, ValueKind::Bytes, 300),
            (21, 22),
            &|_| (),
        )
        .unwrap();
        for i in 0u32..250 {
            m.set(&i.to_le_bytes(), Value::Bytes(&[i as u8; 20]))
                .unwrap();
        }
        let mut seen = Vec::new();
        let (mut cursor, mut reads) = (0, 0);
        loop {
            let mut buf = [0u8; 1000]; // a few records a read
            let (len, next) = m.dump(cursor, &mut buf);
            for e in records::<MapEntry<'_>>(&buf[..len]) {
                let e = e.unwrap();
                let k = u32::from_le_bytes(e.key.try_into().unwrap());
                assert_eq!(e.value, &[k as u8; 20]);
                seen.push(k);
            }
            reads += 1;
            if next == 0 {
                break;
            }
            assert_ne!(len, 0);
            cursor = next;
        }
        seen.sort();
        assert_eq!(seen, (0u32..250).collect::<Vec<_>>());
        assert!(reads > 5);
        // numbers come as a tag and 8 bytes
        let n = Map::new(spec(MapKind::Hash, ValueKind::Number, 4), (1, 1), &|_| ()).unwrap();
        n.set(b"k", Value::Int(-2)).unwrap();
        let mut buf = [0u8; 64];
        let (len, next) = n.dump(0, &mut buf);
        let e = records::<MapEntry<'_>>(&buf[..len])
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.key, e.value[0], next),
            (&b"k"[..], abi::guest::map::INT, 0)
        );
        assert_eq!(i64::from_le_bytes(e.value[1..9].try_into().unwrap()), -2);
    }

    #[test]
    fn declarations_out_of_range_are_refused() {
        let ok = spec(MapKind::Hash, ValueKind::Bytes, 10);
        assert!(ok.validate().is_ok());
        for bad in [
            MapSpec { key_max: 0, ..ok },
            MapSpec { key_max: 257, ..ok },
            MapSpec { value_max: 0, ..ok },
            MapSpec {
                value_max: 4097,
                ..ok
            },
            MapSpec {
                max_entries: 0,
                ..ok
            },
            MapSpec {
                max_entries: ENTRIES_MAX + 1,
                ..ok
            },
            MapSpec {
                key_max: 256,
                value_max: 4096,
                max_entries: ENTRIES_MAX,
                ..ok
            },
        ] {
            assert!(matches!(bad.validate(), Err(MapError::Spec(_))), "{bad:?}");
        }
    }
}

/// A script's maps, by the id its instances were given (the order of declaration): the same
/// ids in every instance, so a map is one object whichever CPU runs the call. Declared in
/// process context only (the top-level chunk); read lock-free.
pub struct ScriptMaps {
    /// Written once per id (null → a map leaked from an `Arc`), freed with the script's maps.
    table: [AtomicPtr<NamedMap>; MAPS_MAX],
    /// Declarations, serialized (process context only: no softirq takes this lock).
    declare: spin::mutex::SpinMutex<usize>,
}

/// A map and its name.
pub struct NamedMap {
    pub name: String,
    pub map: Map,
}

impl Default for ScriptMaps {
    fn default() -> Self {
        ScriptMaps {
            table: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            declare: spin::mutex::SpinMutex::new(0),
        }
    }
}

impl Drop for ScriptMaps {
    fn drop(&mut self) {
        for p in &self.table {
            let p = p.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: every non-null pointer came from Box::into_raw in `declare`, and the
                // swap took it out: dropped once.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

/// Why a declaration failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclareError {
    Map(MapError),
    TooMany,
    Redeclared,
    /// Past the bytes the host lets the script's maps take ([`crate::Host::map_room`]).
    NoRoom,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= abi::guest::map::NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl ScriptMaps {
    /// The map of `id`.
    pub fn get(&self, id: usize) -> Option<&NamedMap> {
        let p = self.table.get(id)?.load(Ordering::Acquire);
        // SAFETY: a published pointer stays valid until `self` drops (maps are never removed).
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The id of map `name`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        self.iter().position(|m| m.name.as_bytes() == name)
    }

    /// Copies a `abi::records::MapInfo` record per map into `out` (16 at most: a few hundred
    /// bytes); returns the bytes written.
    pub fn list(&self, out: &mut [u8]) -> usize {
        let mut len = 0;
        for m in self.iter() {
            let s = m.map.spec();
            let info = abi::records::MapInfo {
                kind: match s.kind {
                    MapKind::Hash => abi::guest::map::KIND_HASH,
                    MapKind::Lru => abi::guest::map::KIND_LRU,
                },
                value: match s.value {
                    ValueKind::Number => abi::guest::map::VALUE_NUMBER,
                    ValueKind::Bytes => abi::guest::map::VALUE_BYTES,
                },
                name_len: m.name.len() as u8,
                key_size: s.key_max,
                value_size: s.value_max,
                max_entries: s.max_entries,
                len: m.map.len(),
            };
            let size = info.record_size();
            let Some(dst) = out.get_mut(len..len + size) else {
                break;
            };
            dst.fill(0);
            let mut h = [0u8; abi::records::MapInfo::SIZE];
            info.write(&mut h);
            dst[..h.len()].copy_from_slice(&h);
            dst[h.len()..h.len() + m.name.len()].copy_from_slice(m.name.as_bytes());
            len += size;
        }
        len
    }

    /// The maps declared so far, in order.
    pub fn iter(&self) -> impl Iterator<Item = &NamedMap> {
        (0..MAPS_MAX).map_while(|i| self.get(i))
    }

    /// Bytes the declared maps take (allocated in full when declared).
    pub fn bytes(&self) -> usize {
        self.iter().map(|m| m.map.spec().bytes()).sum()
    }

    /// Whether a map of `spec` fits beside the `n` declared ones, under the bounds and in `room`.
    fn room_for(&self, n: usize, spec: &MapSpec, room: usize) -> Result<(), DeclareError> {
        let bytes = self.bytes() + spec.bytes();
        if n >= MAPS_MAX || bytes > BYTES_MAX {
            return Err(DeclareError::TooMany);
        }
        if bytes > room {
            return Err(DeclareError::NoRoom);
        }
        Ok(())
    }

    /// Declares map `name` (or finds it, declared the same way by another instance or the
    /// script this one replaced) and returns its id. Process context: a new map is allocated
    /// in full here, if all the maps then take at most `room` bytes.
    pub fn declare(
        &self,
        name: &str,
        spec: MapSpec,
        seed: (u64, u64),
        announce: Announce<'_>,
        room: usize,
    ) -> Result<usize, DeclareError> {
        if !valid_name(name) {
            return Err(DeclareError::Map(MapError::Spec(
                "a map name is 1..63 bytes of [A-Za-z0-9_.-]",
            )));
        }
        spec.validate().map_err(DeclareError::Map)?;
        let known = |n: usize| -> Option<Result<usize, DeclareError>> {
            self.iter()
                .take(n)
                .enumerate()
                .find(|(_, m)| m.name == name)
                .map(|(i, m)| {
                    if *m.map.spec() == spec {
                        Ok(i)
                    } else {
                        Err(DeclareError::Redeclared)
                    }
                })
        };
        {
            let n = self.declare.lock();
            if let Some(r) = known(*n) {
                return r;
            }
            self.room_for(*n, &spec, room)?;
        }
        // allocated without the lock held (it may sleep); another declarer may win the race
        let map = Map::new(spec, seed, announce).map_err(DeclareError::Map)?;
        let mut fresh = Vec::new();
        fresh
            .try_reserve_exact(name.len())
            .map_err(|_| DeclareError::Map(MapError::NoMemory))?;
        fresh.extend_from_slice(name.as_bytes());
        let named = Box::new(NamedMap {
            name: String::from_utf8(fresh).map_err(|_| DeclareError::Map(MapError::NoMemory))?,
            map,
        });
        let mut n = self.declare.lock();
        if let Some(r) = known(*n) {
            return r;
        }
        // another declarer's map may have taken the room meanwhile
        self.room_for(*n, &spec, room)?;
        let id = *n;
        self.table[id].store(Box::into_raw(named), Ordering::Release);
        *n += 1;
        Ok(id)
    }
}
