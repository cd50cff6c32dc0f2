//! `.lpk` packages (abi::package): the guest module followed by the custom sections
//! `luapkt.meta` and `luapkt.script`. Parsing is bounds-checked: packages come from userspace.

use abi::netlink::NAME_MAX;
use abi::package::{META_VERSION, SCRIPT_MAX, SECTION_META, SECTION_SCRIPT};
use alloc::vec::Vec;
use core::fmt;

/// A parsed package, borrowing from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Package<'a> {
    /// The script's name (from `luapkt.meta`).
    pub name: &'a str,
    /// The Lua source (from `luapkt.script`).
    pub script: &'a [u8],
    /// The guest: the module without luapkt's sections (what the compiled-guest cache keys on).
    pub module: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackageError {
    /// No `\0asm` version 1 header.
    NotWasm,
    /// A section or field runs past the end (at this offset).
    Truncated(usize),
    /// A LEB128 number is malformed (at this offset).
    BadNumber(usize),
    /// `luapkt.meta` or `luapkt.script` is missing.
    Missing(&'static str),
    /// `luapkt.meta` or `luapkt.script` appears twice.
    Duplicate(&'static str),
    /// A section other than a custom one follows luapkt's sections.
    SectionAfterPackage(usize),
    /// `luapkt.meta` has an unknown version or a malformed body.
    BadMeta,
    /// The name is empty, too long, or has characters outside `[A-Za-z0-9_.-]`.
    BadName,
    /// The script is larger than `abi::package::SCRIPT_MAX`.
    ScriptTooLarge(usize),
}

impl fmt::Display for PackageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageError::NotWasm => f.write_str("not a wasm module (bad magic or version)"),
            PackageError::Truncated(o) => write!(f, "truncated at byte {o}"),
            PackageError::BadNumber(o) => write!(f, "malformed number at byte {o}"),
            PackageError::Missing(s) => write!(f, "no {s} section"),
            PackageError::Duplicate(s) => write!(f, "{s} section appears twice"),
            PackageError::SectionAfterPackage(o) => {
                write!(f, "module section after the luapkt sections (byte {o})")
            }
            PackageError::BadMeta => write!(f, "malformed {SECTION_META} section"),
            PackageError::BadName => write!(
                f,
                "script name must be 1..={NAME_MAX} characters of [A-Za-z0-9_.-]"
            ),
            PackageError::ScriptTooLarge(n) => {
                write!(f, "script is {n} bytes (at most {SCRIPT_MAX})")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PackageError {}

/// True for names a script may have (they appear in nft rules and chain names).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn leb_u32(bytes: &[u8], pos: &mut usize) -> Result<u32, PackageError> {
    let start = *pos;
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = *bytes.get(*pos).ok_or(PackageError::Truncated(*pos))?;
        *pos += 1;
        if i == 4 && b > 0x0f {
            return Err(PackageError::BadNumber(start));
        }
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(PackageError::BadNumber(start))
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], PackageError> {
    let end = pos.checked_add(n).ok_or(PackageError::Truncated(*pos))?;
    let s = bytes.get(*pos..end).ok_or(PackageError::Truncated(*pos))?;
    *pos = end;
    Ok(s)
}

const MAGIC: [u8; 8] = [0, b'a', b's', b'm', 1, 0, 0, 0];

/// Splits a package into name, script and guest module.
pub fn parse(bytes: &[u8]) -> Result<Package<'_>, PackageError> {
    if bytes.get(..8) != Some(&MAGIC[..]) {
        return Err(PackageError::NotWasm);
    }
    let mut pos = 8;
    let mut first_ours: Option<usize> = None;
    let mut meta: Option<&[u8]> = None;
    let mut script: Option<&[u8]> = None;
    while pos < bytes.len() {
        let section_start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = leb_u32(bytes, &mut pos)? as usize;
        let body = take(bytes, &mut pos, size)?;
        if id != 0 {
            if first_ours.is_some() {
                return Err(PackageError::SectionAfterPackage(section_start));
            }
            continue;
        }
        let mut p = 0;
        let name_len = leb_u32(body, &mut p)? as usize;
        let name = take(body, &mut p, name_len)?;
        let payload = &body[p..];
        let slot = if name == SECTION_META.as_bytes() {
            (&mut meta, SECTION_META)
        } else if name == SECTION_SCRIPT.as_bytes() {
            (&mut script, SECTION_SCRIPT)
        } else {
            continue;
        };
        if slot.0.is_some() {
            return Err(PackageError::Duplicate(slot.1));
        }
        *slot.0 = Some(payload);
        first_ours.get_or_insert(section_start);
    }
    let meta = meta.ok_or(PackageError::Missing(SECTION_META))?;
    let script = script.ok_or(PackageError::Missing(SECTION_SCRIPT))?;
    let (&version, rest) = meta.split_first().ok_or(PackageError::BadMeta)?;
    let (&nlen, rest) = rest.split_first().ok_or(PackageError::BadMeta)?;
    if version != META_VERSION || rest.len() != usize::from(nlen) {
        return Err(PackageError::BadMeta);
    }
    let name = core::str::from_utf8(rest).map_err(|_| PackageError::BadName)?;
    if !valid_name(name) {
        return Err(PackageError::BadName);
    }
    if script.len() > SCRIPT_MAX {
        return Err(PackageError::ScriptTooLarge(script.len()));
    }
    let module = &bytes[..first_ours.unwrap_or(bytes.len())];
    Ok(Package {
        name,
        script,
        module,
    })
}

fn push_leb(out: &mut Vec<u8>, mut v: usize) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn push_custom(out: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 5);
    push_leb(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    out.push(0);
    push_leb(out, body.len());
    out.extend_from_slice(&body);
}

/// Builds a package from a guest module, a script name and its source.
pub fn build(module: &[u8], name: &str, script: &[u8]) -> Result<Vec<u8>, PackageError> {
    if !valid_name(name) {
        return Err(PackageError::BadName);
    }
    if script.len() > SCRIPT_MAX {
        return Err(PackageError::ScriptTooLarge(script.len()));
    }
    if module.get(..8) != Some(&MAGIC[..]) {
        return Err(PackageError::NotWasm);
    }
    let mut out = Vec::with_capacity(module.len() + script.len() + name.len() + 32);
    out.extend_from_slice(module);
    let mut meta = Vec::with_capacity(2 + name.len());
    meta.push(META_VERSION);
    meta.push(name.len() as u8);
    meta.extend_from_slice(name.as_bytes());
    push_custom(&mut out, SECTION_META, &meta);
    push_custom(&mut out, SECTION_SCRIPT, script);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_module() -> Vec<u8> {
        // header + an empty type section + an unrelated custom section
        let mut m = MAGIC.to_vec();
        m.extend_from_slice(&[1, 1, 0]);
        push_custom(&mut m, "name", b"x");
        m
    }

    #[test]
    fn round_trip() {
        let m = tiny_module();
        let p = build(&m, "ratelimit", b"return 1").unwrap();
        let pk = parse(&p).unwrap();
        assert_eq!(pk.name, "ratelimit");
        assert_eq!(pk.script, b"return 1");
        assert_eq!(pk.module, &m[..]);
    }

    #[test]
    fn refuses_malformed_packages() {
        let m = tiny_module();
        assert_eq!(parse(b"\0asm"), Err(PackageError::NotWasm));
        assert_eq!(parse(&m), Err(PackageError::Missing(SECTION_META)));
        let p = build(&m, "a", b"x").unwrap();
        for cut in 9..p.len() {
            assert!(parse(&p[..cut]).is_err(), "cut at {cut}");
        }
        let mut twice = p.clone();
        push_custom(&mut twice, SECTION_SCRIPT, b"y");
        assert_eq!(parse(&twice), Err(PackageError::Duplicate(SECTION_SCRIPT)));
        let mut after = p.clone();
        after.extend_from_slice(&[1, 1, 0]);
        assert!(matches!(
            parse(&after),
            Err(PackageError::SectionAfterPackage(_))
        ));
        assert_eq!(build(&m, "bad name", b""), Err(PackageError::BadName));
        assert_eq!(build(&m, "", b""), Err(PackageError::BadName));
        assert!(valid_name("web-1.v2_x"));
        let long = "x".repeat(NAME_MAX + 1);
        assert!(!valid_name(&long));
        let mut bad_leb = MAGIC.to_vec();
        bad_leb.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(parse(&bad_leb), Err(PackageError::BadNumber(9)));
    }

    #[test]
    fn never_panics_on_mutations() {
        let p = build(&tiny_module(), "fuzz", b"function process_packet() end").unwrap();
        let mut seed = 0x2545_f491_u64;
        for _ in 0..20_000 {
            let mut q = p.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % q.len();
                q[i] = (seed >> 32) as u8;
            }
            seed ^= seed << 13;
            q.truncate(q.len() - (seed as usize % 4));
            let _ = parse(&q);
        }
    }
}
