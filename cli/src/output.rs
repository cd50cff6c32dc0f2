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
