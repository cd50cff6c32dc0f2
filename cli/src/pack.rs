//! `lpctl pack`: a Lua script and the guest into one `.lpk` package (abi::package), the unit
//! that `lpctl script load` uploads and `lpctl run` also accepts.

use crate::output::{self, Mode};
use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The package's tag: the first 8 bytes of its SHA-256, in hex (like bpftool's prog tag).
pub fn tag(package: &[u8]) -> String {
    crate::output::hex(&Sha256::digest(package)[..8])
}

/// The default script name: the file name without `.lua`.
pub fn default_name(script: &Path) -> String {
    script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn pack(script: &Path, name: Option<&str>, out: Option<&Path>, mode: Mode) -> Result<()> {
    let source = std::fs::read(script)
        .with_context(|| format!("cannot read script {}", script.display()))?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| default_name(script));
    if !runtime::package::valid_name(&name) {
        bail!(
            "script name '{name}': {}",
            runtime::package::PackageError::BadName
        );
    }
    let package = runtime::package::build(guest_lua::LUA_WASM, &name, &source)
        .with_context(|| format!("{}", script.display()))?;
    let out: PathBuf = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{name}.lpk")));
    std::fs::write(&out, &package).with_context(|| format!("cannot write {}", out.display()))?;
    let tag = tag(&package);
    if mode.json {
        output::json(
            mode,
            &json!({"name": name, "file": out.display().to_string(), "bytes": package.len(), "tag": tag}),
        );
    } else {
        crate::outln!(
            "{name}: {} ({} bytes, tag {tag})",
            out.display(),
            package.len()
        );
    }
    Ok(())
}
