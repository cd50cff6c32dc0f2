//! Writes the C headers made from `abi/` (luapkt_tests::c_headers) into the tree, or with
//! `--check` only says which differ (exit 1). Run from anywhere in the repository.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(_) => {
            eprintln!("usage: abi-headers [--check]");
            return ExitCode::from(2);
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stale = false;
    for (path, text) in luapkt_tests::c_headers::headers() {
        let file = root.join(path);
        if std::fs::read_to_string(&file).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        if check {
            eprintln!("abi-headers: {path} is stale");
            stale = true;
        } else if let Err(e) = std::fs::write(&file, text) {
            eprintln!("abi-headers: {path}: {e}");
            return ExitCode::FAILURE;
        } else {
            println!("abi-headers: wrote {path}");
        }
    }
    if stale {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
