//! `lpctl selftest netlink` (hidden): malformed requests to the `luapkt` family, each of which
//! the kernel must refuse with an errno (not crash, not accept). Used by the VM tests
//! (`tests/vm/scenarios/30-malformed.sh`); prints one TAP-like line per case.

use abi::netlink::{attr, cmd, CHUNK_MAX, PACKAGE_MAX};
use anyhow::{Context, Result};
use nft_plugin::{Error, Luapkt};

// Linux errno values (asm-generic/errno-base.h, errno.h).
const ENOENT: i32 = 2;
const E2BIG: i32 = 7;
const ENOEXEC: i32 = 8;
const EINVAL: i32 = 22;
const ERANGE: i32 = 34;
const EMSGSIZE: i32 = 90;
const EOPNOTSUPP: i32 = 95;

/// An upload id no upload has.
const NO_UPLOAD: u32 = 0xfff0_0001;
/// The script name the cases upload under (nothing is ever loaded with it).
const NAME: &str = "selftest-malformed";

/// One encoded attribute, its length as given by the value, padded to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = u16::try_from(4 + value.len()).expect("attribute under 64 KiB");
    let mut out = Vec::with_capacity(value.len() + 8);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
    out
}

fn nla_u32(kind: u16, v: u32) -> Vec<u8> {
    nla(kind, &v.to_ne_bytes())
}

fn nla_str(kind: u16, s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    nla(kind, &v)
}

fn attrs(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// What a case ended with: the kernel's refusal, an acceptance, or a local failure.
enum Outcome {
    Refused(i32, String),
    Accepted,
    Broken(String),
}

fn outcome(r: Result<Vec<Vec<u8>>, Error>) -> Outcome {
    match r {
        Ok(_) => Outcome::Accepted,
        Err(Error::Kernel(k)) => {
            let name = errno_name(k.errno());
            let msg = match &k.message {
                Some(m) => format!("{name}: {m}"),
                None => name.to_string(),
            };
            Outcome::Refused(k.errno(), msg)
        }
        Err(e) => Outcome::Broken(e.to_string()),
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        EINVAL => "EINVAL",
        ERANGE => "ERANGE",
        ENOENT => "ENOENT",
        EMSGSIZE => "EMSGSIZE",
        E2BIG => "E2BIG",
        EOPNOTSUPP => "EOPNOTSUPP",
        ENOEXEC => "ENOEXEC",
        1 => "EPERM",
        12 => "ENOMEM",
        16 => "EBUSY",
        17 => "EEXIST",
        _ => "errno",
    }
}

struct Runner {
    lp: Luapkt,
    failed: usize,
}

impl Runner {
    fn report(&mut self, case: &str, want: &[i32], got: Outcome) {
        let line = match got {
            Outcome::Refused(errno, msg) if want.is_empty() || want.contains(&errno) => {
                format!("ok - {case}: errno {errno} ({msg})")
            }
            Outcome::Refused(errno, msg) => {
                let want: Vec<String> = want.iter().map(|e| errno_name(*e).to_string()).collect();
                self.failed += 1;
                format!(
                    "not ok - {case}: errno {errno} ({msg}), expected {}",
                    want.join(" or ")
                )
            }
            Outcome::Accepted => {
                self.failed += 1;
                format!("not ok - {case}: accepted")
            }
            Outcome::Broken(e) => {
                self.failed += 1;
                format!("not ok - {case}: {e}")
            }
        };
        println!("{line}");
    }

    /// Sends one request; the kernel must refuse it with one of `want` (any errno if empty).
    fn case(&mut self, case: &str, want: &[i32], command: u8, request: &[u8]) {
        let got = outcome(self.lp.request_raw(command, request));
        self.report(case, want, got);
    }

    /// LOAD_BEGIN of a well-formed upload of `size` bytes: its id.
    fn begin(&mut self, size: u32) -> Result<u32> {
        let replies = self
            .lp
            .request_raw(
                cmd::LOAD_BEGIN,
                &attrs(&[nla_str(attr::NAME, NAME), nla_u32(attr::SIZE, size)]),
            )
            .context("LOAD_BEGIN of a well-formed upload")?;
        replies
            .iter()
            .map(Vec::as_slice)
            .find_map(upload_id)
            .context("LOAD_BEGIN replied no UPLOAD_ID")
    }

    fn chunk(&mut self, id: u32, offset: u32, data: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        self.lp.request_raw(
            cmd::LOAD_CHUNK,
            &attrs(&[
                nla_u32(attr::UPLOAD_ID, id),
                nla_u32(attr::OFFSET, offset),
                nla(attr::DATA, data),
            ]),
        )
    }

    fn commit(&mut self, id: u32) -> Result<Vec<Vec<u8>>, Error> {
        self.lp
            .request_raw(cmd::LOAD_COMMIT, &nla_u32(attr::UPLOAD_ID, id))
    }

    fn abort(&mut self, id: u32) {
        // Best effort: a failed commit already dropped the upload, and closing the socket
        // drops the rest.
        let _ = self
            .lp
            .request_raw(cmd::LOAD_ABORT, &nla_u32(attr::UPLOAD_ID, id));
    }

    /// A case that needs an upload in progress: `steps` gets its id; the upload is aborted
    /// afterwards whatever happened.
    fn with_upload(
        &mut self,
        case: &str,
        want: &[i32],
        size: u32,
        steps: impl FnOnce(&mut Self, u32) -> Result<Outcome>,
    ) {
        let got = match self.begin(size) {
            Ok(id) => {
                let got = steps(self, id).unwrap_or_else(|e| Outcome::Broken(format!("{e:#}")));
                self.abort(id);
                got
            }
            Err(e) => Outcome::Broken(format!("{e:#}")),
        };
        self.report(case, want, got);
    }
}

fn upload_id(reply: &[u8]) -> Option<u32> {
    let mut rest = reply;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == attr::UPLOAD_ID && len == 8 {
            return Some(u32::from_ne_bytes(rest[4..8].try_into().ok()?));
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    None
}

/// Uploads `package` whole (chunks of CHUNK_MAX), then commits it: the commit's outcome.
fn upload_and_commit(r: &mut Runner, id: u32, package: &[u8]) -> Result<Outcome> {
    let mut offset = 0u32;
    for chunk in package.chunks(CHUNK_MAX as usize) {
        r.chunk(id, offset, chunk)
            .with_context(|| format!("chunk at offset {offset}"))?;
        offset += u32::try_from(chunk.len())?;
    }
    Ok(outcome(r.commit(id)))
}

/// Runs every case; `Ok(true)` when the kernel refused each as expected.
pub fn netlink() -> Result<bool> {
    let lp = Luapkt::open().context("luapkt family")?;
    let mut r = Runner { lp, failed: 0 };
    let size = nla_u32(attr::SIZE, 64);
    let name = nla_str(attr::NAME, NAME);

    // ---- LOAD_BEGIN: attributes the policy or the handler refuses ----
    r.case("begin: missing NAME", &[EINVAL], cmd::LOAD_BEGIN, &size);
    r.case(
        "begin: missing SIZE",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &name.clone(),
    );
    r.case(
        "begin: NAME with invalid characters",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[nla_str(attr::NAME, "bad name/!"), size.clone()]),
    );
    r.case(
        "begin: empty NAME",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[nla_str(attr::NAME, ""), size.clone()]),
    );
    r.case(
        "begin: NAME longer than NAME_MAX",
        &[EINVAL, ERANGE],
        cmd::LOAD_BEGIN,
        &attrs(&[nla_str(attr::NAME, &"n".repeat(64)), size.clone()]),
    );
    r.case(
        "begin: NAME without its NUL",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[nla(attr::NAME, b"abc"), size.clone()]),
    );
    r.case(
        "begin: NAME as a u32 (wrong type)",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[nla_u32(attr::NAME, 0x6161_6161), size.clone()]),
    );
    r.case(
        "begin: SIZE of 2 bytes",
        &[EINVAL, ERANGE],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), nla(attr::SIZE, &[64, 0])]),
    );
    r.case(
        "begin: SIZE of 8 bytes",
        &[EINVAL, ERANGE],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), nla(attr::SIZE, &64u64.to_ne_bytes())]),
    );
    r.case(
        "begin: SIZE 0",
        &[EMSGSIZE],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), nla_u32(attr::SIZE, 0)]),
    );
    r.case(
        "begin: SIZE above PACKAGE_MAX",
        &[EMSGSIZE, E2BIG],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), nla_u32(attr::SIZE, PACKAGE_MAX + 1)]),
    );
    r.case(
        "begin: SIZE u32::MAX",
        &[EMSGSIZE, E2BIG],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), nla_u32(attr::SIZE, u32::MAX)]),
    );
    r.case(
        "begin: FUEL of 4 bytes (u64 expected)",
        &[EINVAL, ERANGE],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), size.clone(), nla_u32(attr::FUEL, 1000)]),
    );
    r.case(
        "begin: ON_ERROR out of range",
        &[ERANGE, EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), size.clone(), nla(attr::ON_ERROR, &[9])]),
    );
    r.case(
        "begin: unknown FLAGS bit",
        &[EINVAL, ERANGE],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), size.clone(), nla_u32(attr::FLAGS, 0x80)]),
    );
    r.case(
        "begin: reply-only attribute STATS",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), size.clone(), nla(attr::STATS, &[])]),
    );
    r.case(
        "begin: attribute type above MAX",
        &[EINVAL],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), size.clone(), nla_u32(attr::MAX + 1, 1)]),
    );
    r.case(
        "begin: attribute length past the message",
        &[EINVAL, ERANGE],
        cmd::LOAD_BEGIN,
        &attrs(&[name.clone(), vec![64, 0, attr::SIZE as u8, 0, 1, 0, 0, 0]]),
    );
    r.case(
        "unknown command",
        &[EOPNOTSUPP],
        200,
        &attrs(&[name.clone(), size.clone()]),
    );

    // ---- LOAD_CHUNK ----
    r.case(
        "chunk: unknown upload id",
        &[ENOENT],
        cmd::LOAD_CHUNK,
        &attrs(&[
            nla_u32(attr::UPLOAD_ID, NO_UPLOAD),
            nla_u32(attr::OFFSET, 0),
            nla(attr::DATA, &[0; 16]),
        ]),
    );
    r.with_upload("chunk: missing OFFSET", &[EINVAL], 64, |r, id| {
        Ok(outcome(r.lp.request_raw(
            cmd::LOAD_CHUNK,
            &attrs(&[nla_u32(attr::UPLOAD_ID, id), nla(attr::DATA, &[0; 16])]),
        )))
    });
    r.with_upload(
        "chunk: UPLOAD_ID of 2 bytes",
        &[EINVAL, ERANGE],
        64,
        |r, id| {
            Ok(outcome(r.lp.request_raw(
                cmd::LOAD_CHUNK,
                &attrs(&[
                    nla(attr::UPLOAD_ID, &(id as u16).to_ne_bytes()),
                    nla_u32(attr::OFFSET, 0),
                    nla(attr::DATA, &[0; 16]),
                ]),
            )))
        },
    );
    r.with_upload(
        "chunk: DATA above CHUNK_MAX",
        &[ERANGE, EMSGSIZE, E2BIG],
        PACKAGE_MAX,
        |r, id| Ok(outcome(r.chunk(id, 0, &vec![0; CHUNK_MAX as usize + 1]))),
    );
    r.with_upload(
        "chunk: first chunk at offset 8 (gap)",
        &[EINVAL],
        64,
        |r, id| Ok(outcome(r.chunk(id, 8, &[0; 16]))),
    );
    r.with_upload(
        "chunk: out of order (offset rewinds)",
        &[EINVAL],
        64,
        |r, id| {
            r.chunk(id, 0, &[0; 16]).context("first chunk")?;
            r.chunk(id, 16, &[0; 16]).context("second chunk")?;
            Ok(outcome(r.chunk(id, 0, &[0; 16])))
        },
    );
    r.with_upload("chunk: offset skips ahead", &[EINVAL], 64, |r, id| {
        r.chunk(id, 0, &[0; 16]).context("first chunk")?;
        Ok(outcome(r.chunk(id, 48, &[0; 16])))
    });
    r.with_upload(
        "chunk: one chunk larger than SIZE",
        &[EMSGSIZE],
        16,
        |r, id| Ok(outcome(r.chunk(id, 0, &[0; 32]))),
    );
    r.with_upload("chunk: upload grows past SIZE", &[EMSGSIZE], 16, |r, id| {
        r.chunk(id, 0, &[0; 16]).context("first chunk")?;
        Ok(outcome(r.chunk(id, 16, &[0; 1])))
    });

    // ---- LOAD_COMMIT ----
    r.case(
        "commit: missing UPLOAD_ID",
        &[EINVAL],
        cmd::LOAD_COMMIT,
        &[],
    );
    r.case(
        "commit: unknown upload id",
        &[ENOENT],
        cmd::LOAD_COMMIT,
        &nla_u32(attr::UPLOAD_ID, NO_UPLOAD),
    );
    r.with_upload("commit: nothing uploaded", &[EINVAL], 64, |r, id| {
        Ok(outcome(r.commit(id)))
    });
    r.with_upload("commit: incomplete upload", &[EINVAL], 64, |r, id| {
        r.chunk(id, 0, &[0; 32]).context("chunk")?;
        Ok(outcome(r.commit(id)))
    });
    r.with_upload(
        "commit: package that is not wasm",
        &[EINVAL, ENOEXEC],
        64,
        |r, id| upload_and_commit(r, id, &[0x5a; 64]),
    );
    let package = runtime::package::build(
        &[0, b'a', b's', b'm', 1, 0, 0, 0],
        NAME,
        b"function process_packet(pkt) return lp.ACCEPT end",
    )
    .context("building a package")?;
    let truncated = &package[..package.len() - 5];
    r.with_upload(
        "commit: package with a truncated custom section",
        &[EINVAL, ENOEXEC],
        truncated.len() as u32,
        |r, id| upload_and_commit(r, id, truncated),
    );
    r.with_upload(
        "commit: package without its script section",
        &[EINVAL, ENOEXEC],
        8,
        |r, id| upload_and_commit(r, id, &package[..8]),
    );
    r.with_upload(
        "commit: the same upload again after a failed commit",
        &[ENOENT],
        64,
        |r, id| {
            let first = upload_and_commit(r, id, &[0x5a; 64])?;
            if let Outcome::Accepted = first {
                return Ok(first);
            }
            Ok(outcome(r.commit(id)))
        },
    );

    // ---- other commands ----
    r.case("unload: missing NAME", &[EINVAL], cmd::UNLOAD, &[]);
    r.case(
        "unload: NAME without its NUL",
        &[EINVAL],
        cmd::UNLOAD,
        &nla(attr::NAME, b"abcd"),
    );
    r.case("get: missing NAME", &[EINVAL], cmd::GET, &[]);
    r.case("set limits: missing NAME", &[EINVAL], cmd::SET_LIMITS, &[]);
    r.case(
        "abort: unknown upload id",
        &[ENOENT],
        cmd::LOAD_ABORT,
        &nla_u32(attr::UPLOAD_ID, NO_UPLOAD),
    );

    Ok(r.failed == 0)
}
