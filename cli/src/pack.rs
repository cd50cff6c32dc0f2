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

/// `lpctl script inspect FILE.lpk`: what a package carries, read offline: its name and tag (as
/// `script show` will show them once loaded), its guest (SHA-256, and whether it is the
/// built-in Lua guest the module runs on either engine) and its script.
pub fn inspect(file: &Path, mode: Mode) -> Result<()> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read package {}", file.display()))?;
    let p = runtime::package::parse(&bytes).with_context(|| {
        format!(
            "{}: not a luapkt package (lpctl pack makes one)",
            file.display()
        )
    })?;
    let guest = crate::output::hex(&Sha256::digest(p.module));
    let builtin = runtime::guest::is_builtin(p.module);
    let source = String::from_utf8_lossy(p.script);
    if mode.json {
        output::json(
            mode,
            &json!({
                "name": p.name,
                "tag": tag(&bytes),
                "bytes": bytes.len(),
                "guest_sha256": guest,
                "guest_bytes": p.module.len(),
                "builtin_guest": builtin,
                "script_bytes": p.script.len(),
                "script": source,
            }),
        );
    } else {
        crate::outln!(
            "{}: tag {}  {} bytes\n\tguest: sha256 {guest}  {} bytes  {}\n\tscript: {} bytes\n{}",
            p.name,
            tag(&bytes),
            bytes.len(),
            p.module.len(),
            if builtin {
                "the built-in Lua guest (either engine)"
            } else {
                "another guest (wasmi only; loading it needs CAP_SYS_ADMIN)"
            },
            p.script.len(),
            // outln ends the line
            source.strip_suffix('\n').unwrap_or(&source)
        );
    }
    Ok(())
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
