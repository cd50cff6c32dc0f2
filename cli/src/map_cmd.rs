//! `lpctl map list|dump|get|set|delete SCRIPT [MAP [KEY [VALUE]]]`: the maps (`lp.map`) of a
//! script loaded into the kernel. Keys and byte values are given and shown as text, or in hex
//! with `--hex` (shown in hex anyway when they are not printable); a number map's values are
//! numbers.

use crate::output::{self, hex, Mode};
use crate::script_cmd::envelope;
use abi::guest::map as m;
use anyhow::{bail, Context, Result};
use nft_plugin::luapkt::{Luapkt, MapInfo};
use serde_json::{json, Value};

fn printable(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.is_empty() && s.chars().all(|c| !c.is_control()))
}

/// A key or byte value as text: itself when printable, else `0x` and its hex.
fn show(b: &[u8], as_hex: bool) -> String {
    match printable(b) {
        Some(s) if !as_hex => s.to_string(),
        _ => format!("0x{}", hex(b)),
    }
}

fn parse_bytes(what: &str, s: &str, as_hex: bool) -> Result<Vec<u8>> {
    if !as_hex {
        return Ok(s.as_bytes().to_vec());
    }
    output::unhex(s).with_context(|| format!("{what} {s}"))
}

/// A number map's value (a tag and 8 little-endian bytes) as JSON.
fn number(v: &[u8]) -> Option<Value> {
    let bits: [u8; 8] = v.get(1..9)?.try_into().ok()?;
    match *v.first()? {
        m::INT => Some(json!(i64::from_le_bytes(bits))),
        m::FLOAT => Some(json!(f64::from_le_bytes(bits))),
        _ => None,
    }
}

fn encode_number(s: &str) -> Result<Vec<u8>> {
    let mut v = vec![0u8; m::NUMBER];
    if let Ok(n) = s.parse::<i64>() {
        v[0] = m::INT;
        v[1..].copy_from_slice(&n.to_le_bytes());
    } else if let Ok(f) = s.parse::<f64>() {
        v[0] = m::FLOAT;
        v[1..].copy_from_slice(&f.to_le_bytes());
    } else {
        bail!("value {s}: the map holds numbers");
    }
    Ok(v)
}

fn find(lp: &mut Luapkt, script: &str, map: &str) -> Result<MapInfo> {
    lp.map_list(script)?
        .into_iter()
        .find(|i| i.name == map)
        .with_context(|| format!("script {script} has no map {map}"))
}

fn value_json(info: &MapInfo, v: &[u8], as_hex: bool) -> Value {
    if info.value == "number" {
        number(v).unwrap_or(Value::Null)
    } else {
        json!(show(v, as_hex))
    }
}

fn value_text(info: &MapInfo, v: &[u8], as_hex: bool) -> String {
    match value_json(info, v, as_hex) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

pub fn list(script: &str, mode: Mode) -> Result<()> {
    let maps = Luapkt::open()?.map_list(script)?;
    if mode.json {
        let items = maps
            .iter()
            .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
            .collect();
        output::json(mode, &envelope("map", items));
    } else {
        for i in &maps {
            crate::outln!(
                "{}: {}  value {}  key_size {}  value_size {}  entries {} of {}",
                i.name,
                i.kind,
                i.value,
                i.key_size,
                i.value_size,
                i.entries,
                i.max_entries
            );
        }
    }
    Ok(())
}

pub fn dump(script: &str, map: &str, as_hex: bool, mode: Mode) -> Result<()> {
    let mut lp = Luapkt::open()?;
    let info = find(&mut lp, script, map)?;
    let entries = lp.map_dump(script, map)?;
    if mode.json {
        let items = entries
            .iter()
            .map(|(k, v)| json!({"key": show(k, as_hex), "value": value_json(&info, v, as_hex)}))
            .collect();
        output::json(mode, &envelope("entry", items));
    } else {
        for (k, v) in &entries {
            crate::outln!("{} {}", show(k, as_hex), value_text(&info, v, as_hex));
        }
    }
    Ok(())
}

pub fn get(script: &str, map: &str, key: &str, as_hex: bool, mode: Mode) -> Result<()> {
    let mut lp = Luapkt::open()?;
    let info = find(&mut lp, script, map)?;
    let k = parse_bytes("key", key, as_hex)?;
    let v = lp.map_get(script, map, &k)?;
    if mode.json {
        output::json(
            mode,
            &envelope(
                "entry",
                vec![json!({"key": show(&k, as_hex), "value": value_json(&info, &v, as_hex)})],
            ),
        );
    } else {
        crate::outln!("{}", value_text(&info, &v, as_hex));
    }
    Ok(())
}

pub fn set(
    script: &str,
    map: &str,
    key: &str,
    value: &str,
    as_hex: bool,
    mode: Mode,
) -> Result<()> {
    let mut lp = Luapkt::open()?;
    let info = find(&mut lp, script, map)?;
    let k = parse_bytes("key", key, as_hex)?;
    let v = if info.value == "number" {
        encode_number(value)?
    } else {
        parse_bytes("value", value, as_hex)?
    };
    lp.map_set(script, map, &k, &v)?;
    if mode.json {
        output::json(
            mode,
            &envelope("set", vec![json!({"map": map, "key": show(&k, as_hex)})]),
        );
    }
    Ok(())
}

pub fn delete(script: &str, map: &str, key: &str, as_hex: bool, mode: Mode) -> Result<()> {
    let mut lp = Luapkt::open()?;
    find(&mut lp, script, map)?;
    let k = parse_bytes("key", key, as_hex)?;
    lp.map_delete(script, map, &k)?;
    if mode.json {
        output::json(
            mode,
            &envelope(
                "deleted",
                vec![json!({"map": map, "key": show(&k, as_hex)})],
            ),
        );
    }
    Ok(())
}
