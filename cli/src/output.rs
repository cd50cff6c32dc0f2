//! How lpctl prints: text for people, or one JSON document (`-j`, `-p` pretty).

use serde_json::Value;

/// `println!` that ignores a closed stdout (`lpctl run ... | head`) instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    pub json: bool,
    pub pretty: bool,
}

/// Bytes in lower-case hex, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex digits (after an optional `0x`) as bytes.
pub fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if !h.len().is_multiple_of(2) {
        anyhow::bail!("an odd number of hex digits");
    }
    h.as_bytes()
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| anyhow::anyhow!("not hex at digit {}", 2 * i + 1))
        })
        .collect()
}

/// Prints one JSON document on stdout.
pub fn json(mode: Mode, v: &Value) {
    if mode.pretty {
        crate::outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        crate::outln!("{v}");
    }
}

/// Prints an error: `Error: ...` on stderr, or `{"error": "..."}` on stdout with -j.
pub fn error(mode: Mode, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    if mode.json {
        json(mode, &serde_json::json!({ "error": msg }));
    } else {
        eprintln!("Error: {msg}");
    }
}
