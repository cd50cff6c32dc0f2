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

/// Runs every case; `Ok(true)` when the kernel refused each as expected. `script` names a
/// loaded script for the cases that need one.
pub(crate) fn netlink(script: Option<&str>) -> Result<bool> {
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
    for engine in [0u8, 3, 255] {
        r.case(
            &format!("begin: ENGINE {engine} (out of range)"),
            &[ERANGE, EINVAL],
            cmd::LOAD_BEGIN,
            &attrs(&[name.clone(), size.clone(), nla(attr::ENGINE, &[engine])]),
        );
    }
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
    if let Some(script) = script {
        // the engine is chosen at load: a SET_LIMITS naming one changes nothing
        r.case(
            "set limits: ENGINE of a loaded script",
            &[EINVAL],
            cmd::SET_LIMITS,
            &attrs(&[
                nla_str(attr::NAME, script),
                nla(attr::ENGINE, &[abi::netlink::ENGINE_WASMI]),
                nla_u32(attr::INSTRUCTIONS, 12_345),
            ]),
        );
    }
    for (what, command) in [("log", cmd::LOG_READ), ("errors", cmd::ERRORS_READ)] {
        r.case(
            &format!("{what} read: missing NAME"),
            &[EINVAL],
            command,
            &[],
        );
        r.case(
            &format!("{what} read: unknown script"),
            &[ENOENT],
            command,
            &nla_str(attr::NAME, "lp-no-such-script"),
        );
        r.case(
            &format!("{what} read: LOG_SEQ of 4 bytes"),
            &[EINVAL, ERANGE],
            command,
            &attrs(&[
                nla_str(attr::NAME, "lp-no-such-script"),
                nla_u32(attr::LOG_SEQ, 1),
            ]),
        );
        r.case(
            &format!("{what} read: LOG_DATA (a reply attribute) in the request"),
            &[EINVAL],
            command,
            &attrs(&[
                nla_str(attr::NAME, "lp-no-such-script"),
                nla(attr::LOG_DATA, &[0; 64]),
            ]),
        );
    }
    r.case(
        "source read: missing NAME",
        &[EINVAL],
        cmd::SOURCE_READ,
        &[],
    );
    r.case(
        "source read: unknown script",
        &[ENOENT],
        cmd::SOURCE_READ,
        &nla_str(attr::NAME, "lp-no-such-script"),
    );
    r.case(
        "source read: OFFSET of 8 bytes",
        &[EINVAL, ERANGE],
        cmd::SOURCE_READ,
        &attrs(&[
            nla_str(attr::NAME, "lp-no-such-script"),
            nla(attr::OFFSET, &[0; 8]),
        ]),
    );
    if let Some(script) = script {
        r.case(
            "source read: OFFSET past the end of the source",
            &[EINVAL],
            cmd::SOURCE_READ,
            &attrs(&[nla_str(attr::NAME, script), nla_u32(attr::OFFSET, u32::MAX)]),
        );
    }
    r.case("map list: missing NAME", &[EINVAL], cmd::MAP_LIST, &[]);
    for (what, command) in [
        ("dump", cmd::MAP_DUMP),
        ("get", cmd::MAP_GET),
        ("set", cmd::MAP_SET),
        ("delete", cmd::MAP_DELETE),
    ] {
        r.case(
            &format!("map {what}: missing MAP_NAME"),
            &[EINVAL],
            command,
            &nla_str(attr::NAME, "lp-no-such-script"),
        );
        r.case(
            &format!("map {what}: a MAP_KEY of 300 bytes"),
            &[EINVAL, ERANGE],
            command,
            &attrs(&[
                nla_str(attr::NAME, "lp-no-such-script"),
                nla_str(attr::MAP_NAME, "m"),
                nla(attr::MAP_KEY, &[1; 300]),
            ]),
        );
    }
    r.case(
        "map set: missing MAP_VALUE",
        &[EINVAL],
        cmd::MAP_SET,
        &attrs(&[
            nla_str(attr::NAME, "lp-no-such-script"),
            nla_str(attr::MAP_NAME, "m"),
            nla(attr::MAP_KEY, b"k"),
        ]),
    );
    r.case(
        "map get: unknown script",
        &[ENOENT],
        cmd::MAP_GET,
        &attrs(&[
            nla_str(attr::NAME, "lp-no-such-script"),
            nla_str(attr::MAP_NAME, "m"),
            nla(attr::MAP_KEY, b"k"),
        ]),
    );
    r.case(
        "abort: unknown upload id",
        &[ENOENT],
        cmd::LOAD_ABORT,
        &nla_u32(attr::UPLOAD_ID, NO_UPLOAD),
    );

    Ok(r.failed == 0)
}

// =============================================================================================
// `lpctl selftest fuzz-netlink` (hidden): random and mutated requests to the `luapkt` family
// and to the `lua` nf_tables expression. Used by `tests/vm/scenarios/35-fuzz-netlink.sh`.
//
// Every request goes over one socket per family (reopened only if the socket itself fails) and
// the fuzzer waits only for its answer: the final NLMSG_ERROR (ack or refusal) or NLMSG_DONE.
// When the kernel may legitimately stay silent (no NLM_F_ACK, or framing that netlink drops),
// a NLMSG_NOOP with NLM_F_ACK follows the request, in the same datagram when netlink will reach
// it, and its ack ends the wait. The answers are counted by errno, one summary line per family.
// Everything the fuzzer creates is named `lpfuzz*` and removed at the end.
// =============================================================================================

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::time::{Duration, Instant};

use abi::limits;
use abi::netlink::{expr as lua_attr, FLAG_REPLACE};
use nft_plugin::{Protocol, Socket, Transport};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ECHO: u16 = 0x8;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_F_NET_BYTEORDER: u16 = 0x4000;

// include/uapi/linux/netfilter/nfnetlink.h, nf_tables.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u8 = 0;
const NFT_MSG_DELTABLE: u8 = 2;
const NFT_MSG_NEWCHAIN: u8 = 3;
const NFT_MSG_NEWRULE: u8 = 6;
const NFT_MSG_DELRULE: u8 = 8;
const NFPROTO_INET: u8 = 1;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;

/// Every script, table and chain the fuzzer creates starts with this.
const FUZZ_PREFIX: &str = "lpfuzz";
/// A valid script the fuzzer loads, so that rules can bind and SET_LIMITS/GET/UNLOAD find it.
const BASE: &str = "lpfuzz-base";
/// A second valid script, the main target of SET_LIMITS: hostile limits on BASE would make
/// every bind trap and rebuild its instances (a fraction of a second each under TCG), so BASE
/// gets its limits back after every SET_LIMITS the kernel accepts, and LIM keeps whatever it is
/// given (a few rules bind to it).
const LIM: &str = "lpfuzz-lim";
const TABLE: &str = "lpfuzz";
/// Where the fuzzed rules go (a regular chain: no packet ever reaches it); flushed now and then.
const CHAIN: &str = "lpfuzz";
/// One rule bound to BASE and one to LIM for the whole run: UNLOADs must fail with EBUSY.
const KEEP_CHAIN: &str = "lpfuzz-keep";
const BASE_SCRIPT: &[u8] = b"function process_packet(pkt) return lp.ACCEPT end\n\
function f1(pkt, arg) return lp.CONTINUE end\n\
function f2(pkt, arg) if arg == 'drop' then return lp.DROP end return lp.BREAK end\n\
x = 1\n";
/// A wasm header alone: packages built on it parse, then fail to compile (cheaply).
const TINY_MODULE: [u8; 8] = [0, b'a', b's', b'm', 1, 0, 0, 0];

/// Sequence numbers of the NLMSG_NOOP sentinels (requests never use this bit).
const SENTINEL_SEQ: u32 = 0x8000_0000;
/// Commits of a complete upload whose package is garbage (each runs the package parser).
const GARBAGE_COMMITS_MAX: u32 = 300;
/// Accepted fuzzed rules before the chain is flushed.
const RULES_BEFORE_FLUSH: u32 = 200;
/// Uploads kept open at once (the kernel allows UPLOADS_MAX per namespace).
const LIVE_UPLOADS_MAX: usize = 8;
/// Largest value of one attribute (its length field is 16 bits).
const ATTR_MAX: usize = 0xffff - 4;
/// Socket buffers, both ways.
const SOCKET_BUF: usize = 1 << 20;
/// Largest luapkt request payload, and largest batch of rules.
const PAYLOAD_MAX: usize = 96 << 10;
const BATCH_MAX: usize = 512 << 10;
/// Send errors that mean the socket itself is gone: EBADF, EPIPE, ENOTCONN, ECONNREFUSED.
const SOCKET_GONE: [i32; 4] = [9, 32, 107, 111];
/// Socket failures tolerated before the fuzzer gives up.
const REOPENS_MAX: u32 = 20;

/// `--seed`: decimal or 0x-hex.
pub(crate) fn parse_seed(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("not a number: {e}"))
}

/// xorshift64*, seeded through splitmix64: small, fast, the same sequence on every host.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// lo..=hi.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn u32(&mut self) -> u32 {
        self.next() as u32
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An index into `weights`, each chosen in proportion to its weight.
    fn weighted(&mut self, weights: &[usize]) -> usize {
        let mut r = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// lo..=hi random bytes.
    fn bytes_in(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        for c in out.chunks_mut(8) {
            let x = self.next().to_le_bytes();
            c.copy_from_slice(&x[..c.len()]);
        }
        out
    }
}

/// Kernel answers of one family, by kind.
#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    refused: BTreeMap<i32, u64>,
    /// Datagrams whose framing netlink drops without a word (too short, bad nlmsg_len).
    ignored: u64,
    /// Requests that should have been answered and were not (a kernel bug).
    unanswered: u64,
    /// Errors the kernel reported on the socket (sk_err) where an answer was expected.
    socket: BTreeMap<i32, u64>,
    /// Requests lost to a socket failure (counted, the socket reopened).
    lost: u64,
    /// Time spent in send and receive.
    busy: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Got {
    Accepted,
    Refused(i32),
    Ignored,
    Unanswered,
    /// An error the kernel reported on the socket (sk_err) instead of an answer.
    Socket(i32),
    /// The socket failed and was reopened.
    Lost,
}

impl std::fmt::Display for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Got::Accepted => f.write_str("accepted"),
            Got::Refused(e) => write!(f, "{}", errno_label(*e)),
            Got::Ignored => f.write_str("ignored"),
            Got::Unanswered => f.write_str("UNANSWERED"),
            Got::Socket(e) => write!(f, "socket error {}", errno_label(*e)),
            Got::Lost => f.write_str("lost (socket reopened)"),
        }
    }
}

impl Tally {
    fn record(&mut self, o: Got) {
        match o {
            Got::Accepted => self.accepted += 1,
            Got::Refused(e) => *self.refused.entry(e).or_default() += 1,
            Got::Ignored => self.ignored += 1,
            Got::Unanswered => self.unanswered += 1,
            Got::Socket(e) => *self.socket.entry(e).or_default() += 1,
            Got::Lost => self.lost += 1,
        }
    }

    /// `what`: the family; `more`: family-specific counts, after the accepted ones.
    fn summary(&self, what: &str, more: &str) -> String {
        let refused: u64 = self.refused.values().sum();
        let mut by: Vec<(i32, u64)> = self.refused.iter().map(|(e, n)| (*e, *n)).collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let by: Vec<String> = by
            .iter()
            .map(|(e, n)| format!("{} {n}", errno_label(*e)))
            .collect();
        let mut line = format!(
            "fuzz {what}: {} sent, {refused} refused ({}), {} accepted{more}",
            self.sent,
            by.join(", "),
            self.accepted
        );
        if self.ignored > 0 {
            line += &format!(", {} ignored (framing netlink drops)", self.ignored);
        }
        if self.unanswered > 0 {
            line += &format!(", {} UNANSWERED", self.unanswered);
        }
        if !self.socket.is_empty() {
            let by: Vec<String> = self
                .socket
                .iter()
                .map(|(e, n)| format!("{} {n}", errno_label(*e)))
                .collect();
            line += &format!(", socket errors instead of answers ({})", by.join(", "));
        }
        if self.lost > 0 {
            line += &format!(", {} lost to socket failures", self.lost);
        }
        line += &format!("; {:.1} s", self.busy.as_secs_f64());
        line
    }
}

fn errno_label(e: i32) -> String {
    let name = match e {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        28 => "ENOSPC",
        34 => "ERANGE",
        36 => "ENAMETOOLONG",
        61 => "ENODATA",
        62 => "ETIME",
        71 => "EPROTO",
        75 => "EOVERFLOW",
        90 => "EMSGSIZE",
        93 => "EPROTONOSUPPORT",
        95 => "EOPNOTSUPP",
        105 => "ENOBUFS",
        110 => "ETIMEDOUT",
        524 => "ENOTSUPP",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

/// One netlink message: header (length filled in) and payload, unpadded.
fn nlmsg(message_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NLMSG_HDRLEN + payload.len() + 4);
    out.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&message_type.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    out
}

/// `n` bytes whose values do not matter (a size the kernel must refuse).
fn filler(n: usize) -> Vec<u8> {
    vec![0x5a; n]
}

fn pad4(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nla_nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    nla(kind | NLA_F_NESTED, &parts.concat())
}

/// The messages of a datagram as the kernel's netlink_rcv_skb() walks them: (offset, length)
/// of each one it processes; it stops at the first length below the header or past the end.
fn walk(datagram: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while datagram.len() - off >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(datagram[off..off + 4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() - off {
            break;
        }
        out.push((off, len));
        off = (off + len.next_multiple_of(4)).min(datagram.len());
    }
    out
}

/// A received message: type, flags, sequence number, payload.
fn messages(datagram: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
    walk(datagram)
        .into_iter()
        .map(|(off, len)| {
            let h = &datagram[off..off + NLMSG_HDRLEN];
            (
                u16::from_ne_bytes([h[4], h[5]]),
                u16::from_ne_bytes([h[6], h[7]]),
                u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
                &datagram[off + NLMSG_HDRLEN..off + len],
            )
        })
        .collect()
}

/// The errno of an NLMSG_ERROR or NLMSG_DONE payload (0 for an ack).
fn answer_errno(payload: &[u8]) -> i32 {
    payload.get(..4).map_or(0, |b| {
        i32::from_ne_bytes(b.try_into().unwrap()).wrapping_neg()
    })
}

/// What came back for one request.
#[derive(Default, Debug)]
struct Answer {
    /// errno of the final NLMSG_ERROR / NLMSG_DONE (0: ack); None: none came.
    fin: Option<i32>,
    /// Payloads of the data messages that answered it.
    data: Vec<Vec<u8>>,
    /// A dump is under way (NLM_F_MULTI data seen): its NLMSG_DONE is still to come.
    multi: bool,
}

/// How an exchange failed: sending the request (the kernel refused it at sendmsg(), or the
/// socket is broken), or after it was sent.
#[derive(Debug)]
enum Fail {
    Send(io::Error),
    Recv(io::Error),
}

/// One socket of one family, with its sequence numbers.
struct Chan {
    protocol: Protocol,
    socket: Socket,
    seq: u32,
    sentinel: u32,
    reopens: u32,
}

impl Chan {
    fn open(protocol: Protocol) -> io::Result<Self> {
        let mut socket = Socket::open(protocol)?;
        // Room for a batch of rules (or a 64 KiB attribute) and for its answers.
        socket.reserve(SOCKET_BUF, SOCKET_BUF)?;
        Ok(Self {
            protocol,
            socket,
            seq: 1000,
            sentinel: 0,
            reopens: 0,
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = (self.seq.wrapping_add(1) & !SENTINEL_SEQ).max(1);
        self.seq
    }

    fn next_sentinel(&mut self) -> u32 {
        self.sentinel = self.sentinel.wrapping_add(1);
        SENTINEL_SEQ | (self.sentinel & !SENTINEL_SEQ)
    }

    fn reopen(&mut self) -> io::Result<()> {
        self.reopens += 1;
        let mut socket = Socket::open(self.protocol)?;
        socket.reserve(SOCKET_BUF, SOCKET_BUF)?;
        self.socket = socket;
        Ok(())
    }

    /// Sends `datagram` (then `extra`, a separate datagram, when given) and reads until every
    /// request in `seqs` has its final answer, or until the sentinel `sentinel` is acked (and
    /// no dump it started is still running). An error on `batch` (a batch's begin message) is
    /// every request's answer.
    fn transact(
        &mut self,
        datagram: &[u8],
        extra: Option<&[u8]>,
        seqs: &[u32],
        sentinel: Option<u32>,
        batch: Option<u32>,
    ) -> Result<Vec<Answer>, Fail> {
        // The kernel refuses some datagrams at sendmsg() (an empty one: ENODATA).
        self.socket.send(datagram).map_err(Fail::Send)?;
        if let Some(extra) = extra {
            self.socket.send(extra).map_err(Fail::Recv)?;
        }
        let mut answers: Vec<Answer> = seqs.iter().map(|_| Answer::default()).collect();
        let mut sentinel_acked = false;
        loop {
            let done = match sentinel {
                Some(_) => sentinel_acked && answers.iter().all(|a| a.fin.is_some() || !a.multi),
                None => answers.iter().all(|a| a.fin.is_some()),
            };
            if done {
                return Ok(answers);
            }
            let datagram = self.socket.recv().map_err(Fail::Recv)?;
            for (kind, flags, seq, payload) in messages(&datagram) {
                if Some(seq) == sentinel && kind == NLMSG_ERROR {
                    sentinel_acked = true;
                    continue;
                }
                if Some(seq) == batch && kind == NLMSG_ERROR {
                    for a in answers.iter_mut().filter(|a| a.fin.is_none()) {
                        a.fin = Some(answer_errno(payload));
                    }
                    continue;
                }
                let Some(i) = seqs.iter().position(|s| *s == seq) else {
                    continue; // left over from an earlier request
                };
                let a = &mut answers[i];
                if a.fin.is_some() {
                    continue;
                }
                match kind {
                    NLMSG_ERROR | NLMSG_DONE => a.fin = Some(answer_errno(payload)),
                    _ => {
                        a.multi |= flags & NLM_F_MULTI != 0;
                        a.data.push(payload.to_vec());
                    }
                }
            }
        }
    }

    /// Reads everything up to the ack of a fresh sentinel: the socket is in step again.
    fn resync(&mut self) -> io::Result<()> {
        let s = self.next_sentinel();
        let datagram = nlmsg(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, s, &[]);
        match self.transact(&datagram, None, &[], Some(s), None) {
            Ok(_) => Ok(()),
            Err(Fail::Send(e) | Fail::Recv(e)) => Err(e),
        }
    }
}

/// A luapkt request before encoding.
struct GenReq {
    cmd: u8,
    version: u8,
    reserved: u16,
    flags: u16,
    attrs: Vec<u8>,
    effect: Effect,
}

impl GenReq {
    fn new(cmd: u8, attrs: Vec<u8>, effect: Effect) -> Self {
        Self {
            cmd,
            version: abi::netlink::GENL_VERSION,
            reserved: 0,
            flags: NLM_F_REQUEST | NLM_F_ACK,
            attrs,
            effect,
        }
    }

    fn payload(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(4 + self.attrs.len());
        p.push(self.cmd);
        p.push(self.version);
        p.extend_from_slice(&self.reserved.to_ne_bytes());
        p.extend_from_slice(&self.attrs);
        // within the socket's send buffer (a cut attribute is one more malformed case)
        p.truncate(PAYLOAD_MAX);
        p
    }
}

/// What a request does to the uploads the fuzzer tracks, when the kernel accepts it.
#[derive(Debug, Clone, Copy)]
enum Effect {
    None,
    Begin {
        size: u32,
    },
    Chunk {
        id: u32,
        len: u32,
    },
    Commit {
        id: u32,
    },
    Abort {
        id: u32,
    },
    /// A mutated request: what it did is not known.
    Unknown,
}

/// An upload the kernel announced (UPLOAD_ID in a LOAD_BEGIN reply).
#[derive(Debug, Clone, Copy)]
struct Upload {
    id: u32,
    size: Option<u32>,
    received: Option<u32>,
}

impl Upload {
    fn complete(&self) -> bool {
        matches!((self.size, self.received), (Some(s), Some(r)) if s == r)
    }
}

const U32_EDGES: [u32; 28] = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    15,
    16,
    63,
    64,
    255,
    256,
    4095,
    4096,
    32767,
    32768,
    32769,
    65535,
    65536,
    PACKAGE_MAX - 1,
    PACKAGE_MAX,
    PACKAGE_MAX + 1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    u32::MAX,
    1_000_000_000,
];

const U64_EDGES: [u64; 18] = [
    0,
    1,
    limits::MIN_LOAD_FUEL - 1,
    limits::MAX_LOAD_FUEL + 1,
    limits::MAX_FUEL,
    limits::MAX_FUEL + 1,
    limits::MIN_MEMORY - 1,
    limits::MIN_MEMORY,
    limits::MAX_MEMORY,
    limits::MAX_MEMORY + 1,
    limits::DEFAULT_MEMORY,
    limits::DEFAULT_FUEL,
    u32::MAX as u64,
    1 << 32,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

fn edge_u32(rng: &mut Rng) -> u32 {
    match rng.below(3) {
        0 => rng.u32(),
        1 => rng.range(0, 100) as u32,
        _ => rng.pick(&U32_EDGES),
    }
}

fn edge_u64(rng: &mut Rng) -> u64 {
    match rng.below(3) {
        0 => rng.next(),
        1 => rng.next() >> rng.range(1, 63),
        _ => rng.pick(&U64_EDGES),
    }
}

/// An integer attribute's value: `width` bytes mostly, the wrong size sometimes.
fn int_value(rng: &mut Rng, value: u64, width: usize) -> Vec<u8> {
    let width = if rng.chance(6) {
        rng.pick(&[0, 1, 2, 3, 5, 6, 7, 8, 4, 12, 16])
    } else {
        width
    };
    let mut v = value.to_ne_bytes().to_vec();
    v.resize(width, 0);
    v
}

/// A script or function name as it travels (with or without its NUL): mostly ours, often bad.
fn name_value(rng: &mut Rng) -> Vec<u8> {
    let mut v = match rng.weighted(&[30, 12, 6, 5, 6, 8, 5, 4, 4, 5, 6, 5]) {
        0 => format!("{FUZZ_PREFIX}-{}", rng.below(40)).into_bytes(),
        1 => BASE.as_bytes().to_vec(),
        2 => format!("{FUZZ_PREFIX}-gone").into_bytes(),
        3 => Vec::new(),
        4 => {
            // unterminated
            let mut v = format!("{FUZZ_PREFIX}-{}", rng.below(40)).into_bytes();
            if rng.chance(50) {
                v.extend(rng.bytes_in(1, 8).iter().map(|b| b | 1));
            }
            return v;
        }
        5 => {
            let bad = rng.pick(&[
                " ", "/", "!", "\x01", "\u{e9}", "\\", "\n", "$(id)", "*", ":", "\x7f", "%s",
            ]);
            format!("{FUZZ_PREFIX}{bad}{}", rng.below(10)).into_bytes()
        }
        6 => {
            let mut v = FUZZ_PREFIX.as_bytes().to_vec();
            v.resize(rng.range(64, 300), b'a');
            v
        }
        7 => {
            // exactly NAME_MAX: the longest valid name
            let mut v = FUZZ_PREFIX.as_bytes().to_vec();
            v.resize(abi::netlink::NAME_MAX, b'z');
            v
        }
        8 => {
            let mut v = FUZZ_PREFIX.as_bytes().to_vec();
            v.resize(abi::netlink::NAME_MAX + 1, b'z');
            v
        }
        9 => {
            // embedded NUL, then garbage (terminated or not)
            let mut v = format!("{FUZZ_PREFIX}-{}\0", rng.below(40)).into_bytes();
            v.extend(rng.bytes_in(1, 20));
            if rng.chance(50) {
                v.push(0);
            }
            return v;
        }
        10 => return rng.bytes_in(0, 80),
        _ => format!("{FUZZ_PREFIX}{}", rng.pick(&["..", ".", "-.-", "_", "-"])).into_bytes(),
    };
    v.push(0);
    v
}

/// Any attribute: a type of the family or not, any value, sometimes nested garbage or framing
/// the parser must refuse.
fn random_attr(rng: &mut Rng, depth: usize) -> Vec<u8> {
    let mut kind = match rng.weighted(&[60, 20, 10, 10]) {
        0 => rng.range(0, attr::MAX as usize) as u16,
        1 => rng.range(attr::MAX as usize + 1, 40) as u16,
        2 => rng.u32() as u16 & 0x3fff,
        _ => {
            rng.range(0, attr::MAX as usize) as u16 | rng.pick(&[NLA_F_NESTED, NLA_F_NET_BYTEORDER])
        }
    };
    let value = match rng.weighted(&[8, 8, 6, 6, 14, 10, 10, 12, 8, 1, 8, 9]) {
        0 => Vec::new(),
        1 => rng.bytes(1),
        2 => rng.bytes(2),
        3 => rng.bytes(3),
        4 => edge_u32(rng).to_ne_bytes().to_vec(),
        5 => edge_u64(rng).to_ne_bytes().to_vec(),
        6 => name_value(rng),
        7 => rng.bytes_in(5, 64),
        8 => rng.bytes_in(64, 1024),
        // huge: only its size matters (and random bytes cost time under TCG)
        9 => filler(rng.range(4000, 65000)),
        10 if depth < 3 => {
            kind |= NLA_F_NESTED;
            let mut v = (0..rng.range(0, 4))
                .map(|_| random_attr(rng, depth + 1))
                .collect::<Vec<_>>()
                .concat();
            v.truncate(ATTR_MAX);
            v
        }
        _ => {
            // framing errors: a length shorter than the header, or past the end
            let mut v = rng.bytes_in(0, 12);
            let len: u16 = rng.pick(&[0, 1, 2, 3, 200, 0xffff]);
            let mut raw = len.to_ne_bytes().to_vec();
            raw.extend_from_slice(&kind.to_ne_bytes());
            raw.append(&mut v);
            return raw;
        }
    };
    nla(kind, &value)
}

/// Flips, inserts, deletes, duplicates or truncates bytes.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 4) {
        let len = buf.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                buf[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                buf[i] = rng.pick(&[0, 0xff, 0x7f, 0x80, 1, 4, 8, 0x40, 0x20, b'/']);
            }
            2 => {
                let i = rng.below(len + 1);
                let n = rng.range(1, 8);
                let bytes = rng.bytes(n);
                buf.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let end = (i + rng.range(1, 8)).min(len);
                buf.drain(i..end);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let end = (i + rng.range(1, 16)).min(len);
                let slice = buf[i..end].to_vec();
                let j = rng.below(len + 1);
                buf.splice(j..j, slice);
            }
            5 if len > 0 => buf.truncate(rng.below(len)),
            _ if len >= 2 => {
                // an nla_len / nla_type sized field at an aligned offset
                let i = rng.below(len / 2) & !1;
                let v: u16 = rng.pick(&[0, 1, 3, 4, 5, 8, 0xffff, 0x8000, 0x4000, len as u16]);
                buf[i..i + 2].copy_from_slice(&v.to_ne_bytes());
            }
            _ => buf.push(rng.below(256) as u8),
        }
    }
}

/// The fuzzer's state.
struct Fuzz {
    rng: Rng,
    trace: bool,
    gen: Chan,
    family: u16,
    nft: Option<Chan>,
    lp: Tally,
    nf: Tally,
    uploads: Vec<Upload>,
    garbage_commits: u32,
    rules_in_chain: u32,
    /// Fuzzed rules of batches that committed (every expression accepted).
    nf_committed: u64,
    /// The real package of BASE (the built-in guest and BASE_SCRIPT).
    package: Vec<u8>,
    /// Failures of the socket layer itself, for the report.
    socket_errors: Vec<String>,
    /// One line per real-package case, for the report.
    events: Vec<String>,
    /// SET_LIMITS with BASE's limits as loaded (restores them).
    base_limits: Option<Vec<u8>>,
    /// The kernel accepted a SET_LIMITS since BASE's limits were last restored.
    limits_touched: bool,
    broken: Option<String>,
}

impl Fuzz {
    fn total(&self) -> u64 {
        self.lp.sent + self.nf.sent
    }

    /// A send or receive that failed. An error the kernel reported through the socket (sk_err:
    /// answers dropped for lack of room, a dump that failed half-way) or a wait that timed out
    /// is the request's outcome, once the socket is back in step. Anything else, or a socket
    /// that cannot get back in step, is reopened (at most REOPENS_MAX times).
    fn socket_trouble(&mut self, nft: bool, fail: Fail) -> Got {
        let family = if nft { "nf_tables" } else { "luapkt" };
        let e = match fail {
            Fail::Send(e) => match e.raw_os_error() {
                // refused before anything was sent: the socket is as it was
                Some(errno) if !SOCKET_GONE.contains(&errno) => return Got::Refused(errno),
                _ => e,
            },
            Fail::Recv(e) => e,
        };
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        );
        let chan = if nft {
            self.nft.as_mut()
        } else {
            Some(&mut self.gen)
        };
        let Some(chan) = chan else {
            return Got::Lost;
        };
        if let Some(errno) = e.raw_os_error() {
            if chan.resync().is_ok() {
                return if timed_out {
                    Got::Unanswered
                } else {
                    Got::Socket(errno)
                };
            }
        }
        if self.socket_errors.len() < 10 {
            self.socket_errors.push(format!("{family}: {e}"));
        }
        if chan.reopens >= REOPENS_MAX {
            self.broken = Some(format!(
                "{family}: socket failed {REOPENS_MAX} times, last: {e}"
            ));
            return Got::Lost;
        }
        if !nft {
            // the kernel dropped this socket's uploads with it
            self.uploads.clear();
        }
        if let Err(e2) = chan.reopen() {
            self.broken = Some(format!(
                "{family}: socket failed ({e}) and cannot be reopened: {e2}"
            ));
        }
        Got::Lost
    }

    // ---- luapkt ----------------------------------------------------------------------------

    /// Sends one luapkt datagram whose first message has sequence number `seq`.
    fn exchange_gen(&mut self, mut datagram: Vec<u8>, seq: u32, effect: Effect) -> Answer {
        self.lp.sent += 1;
        let walked = walk(&datagram);
        // Only the first message counts: anything netlink would read after it is disarmed.
        if let Some(&(off, len)) = walked.get(1) {
            datagram[off..off + 4].copy_from_slice(&0u32.to_ne_bytes());
            let _ = len;
        }
        let first = walked.first().map(|&(off, len)| {
            let flags = u16::from_ne_bytes([datagram[off + 6], datagram[off + 7]]);
            (flags, off + len.next_multiple_of(4) >= datagram.len())
        });
        let needs_sentinel = first.is_none_or(|(flags, _)| flags & NLM_F_ACK == 0);
        let sentinel = needs_sentinel.then(|| self.gen.next_sentinel());
        let mut extra = None;
        if let Some(s) = sentinel {
            let noop = nlmsg(NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, s, &[]);
            match first {
                Some((_, true)) => {
                    pad4(&mut datagram);
                    datagram.extend_from_slice(&noop);
                }
                _ => extra = Some(noop),
            }
        }
        let t = Instant::now();
        let r = self
            .gen
            .transact(&datagram, extra.as_deref(), &[seq], sentinel, None);
        let took = t.elapsed();
        self.lp.busy += took;
        let answer = match r {
            Ok(mut a) => a.pop().unwrap_or_default(),
            Err(e) => {
                let got = self.socket_trouble(false, e);
                self.lp.record(got);
                if self.trace {
                    println!("trace {} luapkt {} -> {got}", self.total(), hex(&datagram));
                }
                return Answer::default();
            }
        };
        let outcome = match (first, answer.fin) {
            (_, Some(0)) => Got::Accepted,
            (_, Some(e)) => Got::Refused(e),
            (None, None) => Got::Ignored,
            (Some((flags, _)), None) if flags & NLM_F_ACK == 0 => Got::Accepted,
            (Some(_), None) => Got::Unanswered,
        };
        self.lp.record(outcome);
        if outcome == Got::Accepted && datagram.get(NLMSG_HDRLEN) == Some(&cmd::SET_LIMITS) {
            self.limits_touched = true;
        }
        if self.trace {
            println!(
                "trace {} luapkt {} -> {outcome} ({} us)",
                self.total(),
                hex(&datagram),
                took.as_micros()
            );
        }
        self.apply(effect, &answer);
        answer
    }

    /// Encodes, maybe mutates or breaks, and sends one request.
    fn send_gen(&mut self, req: GenReq) -> Answer {
        let seq = self.gen.next_seq();
        let datagram = nlmsg(self.family, req.flags, seq, &req.payload());
        self.exchange_gen(datagram, seq, req.effect)
    }

    fn apply(&mut self, effect: Effect, a: &Answer) {
        for d in &a.data {
            if d.first() == Some(&cmd::LOAD_BEGIN) {
                if let Some(id) = upload_id(d.get(4..).unwrap_or_default()) {
                    let size = match effect {
                        Effect::Begin { size } => Some(size),
                        _ => None,
                    };
                    self.uploads.push(Upload {
                        id,
                        size,
                        received: size.map(|_| 0),
                    });
                }
            }
        }
        let accepted = a.fin == Some(0);
        match effect {
            Effect::Chunk { id, len } if accepted => {
                for u in self.uploads.iter_mut().filter(|u| u.id == id) {
                    u.received = u.received.map(|r| r.saturating_add(len));
                }
            }
            Effect::Commit { id } => {
                // the kernel drops a complete upload whatever the commit's outcome
                let gone = a.fin == Some(ENOENT)
                    || self.uploads.iter().any(|u| u.id == id && u.complete())
                    || accepted;
                if gone {
                    self.uploads.retain(|u| u.id != id);
                }
            }
            Effect::Abort { id } if accepted || a.fin == Some(ENOENT) => {
                self.uploads.retain(|u| u.id != id);
            }
            Effect::Unknown if accepted => {
                // a mutated chunk may have moved an upload along
                for u in &mut self.uploads {
                    u.received = None;
                }
            }
            _ => {}
        }
    }

    fn live_upload(&mut self) -> Option<Upload> {
        if self.uploads.is_empty() {
            None
        } else {
            let i = self.rng.below(self.uploads.len());
            Some(self.uploads[i])
        }
    }

    /// An upload id: a live one mostly, else one no upload has.
    fn upload_id_value(&mut self) -> u32 {
        match (self.live_upload(), self.rng.below(10)) {
            (Some(u), 0..=6) => u.id,
            (Some(u), 7) => u.id.wrapping_add(self.rng.pick(&[1, u32::MAX])),
            _ => edge_u32(&mut self.rng),
        }
    }

    fn limit_attrs(&mut self, percent: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let rng = &mut self.rng;
        for (kind, width) in [
            (attr::FUEL, 8),
            (attr::INSTRUCTIONS, 4),
            (attr::MEMORY, 8),
            (attr::RECURSION, 4),
            (attr::PCALL_DEPTH, 4),
            (attr::LOAD_FUEL, 8),
        ] {
            if rng.chance(percent) {
                let v = if width == 8 {
                    edge_u64(rng)
                } else {
                    u64::from(edge_u32(rng))
                };
                out.push(nla(kind, &int_value(rng, v, width)));
            }
        }
        if rng.chance(percent) {
            let v = if rng.chance(70) {
                rng.range(0, 2) as u64
            } else {
                rng.below(256) as u64
            };
            out.push(nla(attr::ON_ERROR, &int_value(rng, v, 1)));
        }
        out
    }

    /// Random attributes mixed in, sometimes; the order shuffled, sometimes.
    fn finish_attrs(&mut self, mut parts: Vec<Vec<u8>>) -> Vec<u8> {
        if self.rng.chance(8) {
            for _ in 0..self.rng.range(1, 3) {
                parts.push(random_attr(&mut self.rng, 0));
            }
        }
        if self.rng.chance(15) {
            for i in (1..parts.len()).rev() {
                let j = self.rng.below(i + 1);
                parts.swap(i, j);
            }
        }
        if self.rng.chance(4) && !parts.is_empty() {
            let i = self.rng.below(parts.len());
            parts.push(parts[i].clone());
        }
        parts.concat()
    }

    fn gen_begin(&mut self) -> GenReq {
        let mut parts = Vec::new();
        let mut clean = true;
        if self.rng.chance(88) {
            let name = if self.rng.chance(50) {
                let mut v = format!("{FUZZ_PREFIX}-{}", self.rng.below(40)).into_bytes();
                v.push(0);
                v
            } else {
                clean = false;
                name_value(&mut self.rng)
            };
            parts.push(nla(attr::NAME, &name));
        } else {
            clean = false;
        }
        let size = match self.rng.weighted(&[55, 30, 10]) {
            0 => self.rng.range(1, 4096) as u32,
            1 => edge_u32(&mut self.rng),
            _ => self.rng.range(1, 64) as u32,
        };
        if self.rng.chance(92) {
            let v = int_value(&mut self.rng, u64::from(size), 4);
            clean &= v.len() == 4;
            parts.push(nla(attr::SIZE, &v));
        } else {
            clean = false;
        }
        parts.extend(self.limit_attrs(20));
        if self.rng.chance(60) {
            let flags = match self.rng.below(4) {
                0 => 0,
                1 => FLAG_REPLACE,
                2 => 1 << self.rng.below(32),
                _ => self.rng.u32(),
            };
            parts.push(nla(
                attr::FLAGS,
                &int_value(&mut self.rng, u64::from(flags), 4),
            ));
        }
        let attrs = self.finish_attrs(parts);
        let effect = if clean {
            Effect::Begin { size }
        } else {
            Effect::Unknown
        };
        GenReq::new(cmd::LOAD_BEGIN, attrs, effect)
    }

    fn gen_chunk(&mut self) -> GenReq {
        let up = if self.rng.chance(80) {
            self.live_upload()
        } else {
            None
        };
        let id = match up {
            Some(u) if self.rng.chance(90) => u.id,
            _ => self.upload_id_value(),
        };
        let received = up.and_then(|u| u.received).unwrap_or(0);
        let left = up
            .and_then(|u| Some(u.size?.saturating_sub(u.received?)))
            .unwrap_or(self.rng.range(0, 512) as u32);
        let offset = match self.rng.weighted(&[75, 25]) {
            0 => received,
            _ => match self.rng.below(5) {
                0 => received.wrapping_add(1),
                1 => received.wrapping_sub(1),
                2 => 0,
                3 => u32::MAX,
                _ => edge_u32(&mut self.rng),
            },
        };
        let len = match self.rng.weighted(&[70, 10, 6, 2, 12]) {
            0 => self.rng.range(1, left.clamp(1, 512) as usize) as u32,
            // one past the announced size (a chunk holds at most CHUNK_MAX, the policy's limit)
            1 => left.saturating_add(1).min(CHUNK_MAX + 1),
            2 => 0,
            3 => CHUNK_MAX + 1,
            _ => self.rng.range(0, 512) as u32,
        };
        let data = if len > 512 {
            filler(len as usize)
        } else {
            self.rng.bytes(len as usize)
        };
        let mut parts = Vec::new();
        let mut clean = true;
        if self.rng.chance(95) {
            let v = int_value(&mut self.rng, u64::from(id), 4);
            clean &= v.len() == 4;
            parts.push(nla(attr::UPLOAD_ID, &v));
        } else {
            clean = false;
        }
        if self.rng.chance(95) {
            let v = int_value(&mut self.rng, u64::from(offset), 4);
            clean &= v.len() == 4;
            parts.push(nla(attr::OFFSET, &v));
        } else {
            clean = false;
        }
        if self.rng.chance(95) {
            parts.push(nla(attr::DATA, &data));
        } else {
            clean = false;
        }
        let attrs = self.finish_attrs(parts);
        let effect = if clean {
            Effect::Chunk { id, len }
        } else {
            Effect::Unknown
        };
        GenReq::new(cmd::LOAD_CHUNK, attrs, effect)
    }

    /// LOAD_COMMIT; None when it would commit one more garbage package than allowed.
    fn gen_commit(&mut self) -> Option<GenReq> {
        let id = self.upload_id_value();
        let complete = self.uploads.iter().any(|u| u.id == id && u.complete());
        let maybe_complete = self
            .uploads
            .iter()
            .any(|u| u.id == id && u.received.is_none());
        if complete || maybe_complete {
            if self.garbage_commits >= GARBAGE_COMMITS_MAX {
                return None;
            }
            self.garbage_commits += 1;
        }
        let parts = match self.rng.below(20) {
            0 => Vec::new(),
            1 => vec![nla(
                attr::UPLOAD_ID,
                &int_value(&mut self.rng, u64::from(id), 2),
            )],
            _ => vec![nla_u32(attr::UPLOAD_ID, id)],
        };
        let attrs = self.finish_attrs(parts);
        Some(GenReq::new(cmd::LOAD_COMMIT, attrs, Effect::Commit { id }))
    }

    fn gen_abort(&mut self) -> GenReq {
        let id = self.upload_id_value();
        let parts = match self.rng.below(12) {
            0 => Vec::new(),
            1 => vec![nla(
                attr::UPLOAD_ID,
                &int_value(&mut self.rng, u64::from(id), 8),
            )],
            _ => vec![nla_u32(attr::UPLOAD_ID, id)],
        };
        let attrs = self.finish_attrs(parts);
        GenReq::new(cmd::LOAD_ABORT, attrs, Effect::Abort { id })
    }

    /// UNLOAD, GET (sometimes a dump) or SET_LIMITS of a name.
    fn gen_named(&mut self, command: u8) -> GenReq {
        let mut parts = Vec::new();
        let weights: &[usize] = if command == cmd::SET_LIMITS {
            &[5, 55, 40]
        } else {
            &[20, 15, 65]
        };
        if self.rng.chance(92) {
            let name = match self.rng.weighted(weights) {
                0 => format!("{BASE}\0").into_bytes(),
                1 => format!("{LIM}\0").into_bytes(),
                _ => name_value(&mut self.rng),
            };
            parts.push(nla(attr::NAME, &name));
        }
        if command == cmd::SET_LIMITS {
            parts.extend(self.limit_attrs(45));
        }
        if command == cmd::SOURCE_READ && self.rng.chance(60) {
            let offset = if self.rng.chance(50) {
                self.rng.range(0, 200) as u32
            } else {
                edge_u32(&mut self.rng)
            };
            parts.push(nla_u32(attr::OFFSET, offset));
        }
        let attrs = self.finish_attrs(parts);
        let mut req = GenReq::new(command, attrs, Effect::None);
        if command == cmd::GET && self.rng.chance(30) {
            req.flags |= NLM_F_DUMP;
        }
        req
    }

    fn gen_random_cmd(&mut self) -> GenReq {
        let command = if self.rng.chance(50) {
            self.rng.range(0, usize::from(cmd::SOURCE_READ)) as u8
        } else {
            self.rng.below(256) as u8
        };
        let parts = (0..self.rng.range(0, 6))
            .map(|_| random_attr(&mut self.rng, 0))
            .collect();
        let attrs = self.finish_attrs(parts);
        GenReq::new(command, attrs, Effect::Unknown)
    }

    /// A well-formed request of a random kind (what mutations start from).
    fn gen_semantic(&mut self) -> GenReq {
        loop {
            let req = match self.rng.weighted(&[14, 18, 8, 5, 7, 10, 10, 5]) {
                0 => self.gen_begin(),
                1 => self.gen_chunk(),
                2 => match self.gen_commit() {
                    Some(r) => r,
                    None => continue,
                },
                3 => self.gen_abort(),
                4 => self.gen_named(cmd::UNLOAD),
                5 => self.gen_named(cmd::GET),
                6 => self.gen_named(cmd::SET_LIMITS),
                _ => self.gen_named(cmd::SOURCE_READ),
            };
            return req;
        }
    }

    /// Random flags, version or reserved bits on a request, sometimes.
    fn rough_header(&mut self, req: &mut GenReq) {
        if self.rng.chance(6) {
            let mut flags = self.rng.u32() as u16 & 0x0fff;
            if self.rng.chance(85) {
                flags |= NLM_F_REQUEST;
            }
            if self.rng.chance(70) {
                flags |= NLM_F_ACK;
            }
            req.flags = flags;
        }
        if self.rng.chance(3) {
            req.version = self.rng.below(256) as u8;
        }
        if self.rng.chance(2) {
            req.reserved = self.rng.u32() as u16;
        }
    }

    /// Datagrams netlink or genetlink must refuse for their framing.
    fn framing_case(&mut self) {
        let req = self.gen_semantic();
        let seq = self.gen.next_seq();
        let mut d = nlmsg(self.family, req.flags, seq, &req.payload());
        match self.rng.below(7) {
            0 => d = self.rng.bytes_in(0, NLMSG_HDRLEN - 1),
            1 => d.truncate(self.rng.range(0, NLMSG_HDRLEN - 1)),
            2 => {
                let len = self.rng.range(0, NLMSG_HDRLEN - 1) as u32;
                d[..4].copy_from_slice(&len.to_ne_bytes());
            }
            3 => {
                let len = if self.rng.chance(50) {
                    (d.len() + self.rng.range(1, 64)) as u32
                } else {
                    u32::MAX
                };
                d[..4].copy_from_slice(&len.to_ne_bytes());
            }
            4 => {
                // shorter than genlmsghdr
                let keep = self.rng.range(0, 3);
                d.truncate(NLMSG_HDRLEN + keep);
                d[..4].copy_from_slice(&((NLMSG_HDRLEN + keep) as u32).to_ne_bytes());
            }
            5 => {
                // payload not a multiple of 4
                d.extend(self.rng.bytes_in(1, 3));
                let len = d.len() as u32;
                d[..4].copy_from_slice(&len.to_ne_bytes());
            }
            _ => {
                // trailing bytes the message's length leaves out
                let junk = self.rng.bytes_in(1, 40);
                d.extend(junk);
            }
        }
        self.exchange_gen(d, seq, Effect::Unknown);
    }

    /// A clean upload of a small garbage package, in chunks (some wrong), then its commit.
    fn upload_sequence(&mut self) {
        if self.garbage_commits >= GARBAGE_COMMITS_MAX {
            self.one_gen();
            return;
        }
        let name = format!("{FUZZ_PREFIX}-pkg{}", self.rng.below(8));
        let package = self.garbage_package(&name);
        let a = self.send_gen(GenReq::new(
            cmd::LOAD_BEGIN,
            [
                nla_str(attr::NAME, &name),
                nla_u32(attr::SIZE, package.len() as u32),
            ]
            .concat(),
            Effect::Begin {
                size: package.len() as u32,
            },
        ));
        let Some(id) = a
            .data
            .iter()
            .find_map(|d| upload_id(d.get(4..).unwrap_or_default()))
        else {
            return;
        };
        let mut offset = 0;
        while offset < package.len() {
            if self.rng.chance(10) {
                self.one_gen(); // interleaved: a wrong chunk, another command...
            }
            let end = (offset + self.rng.range(1, 1024)).min(package.len());
            self.send_gen(GenReq::new(
                cmd::LOAD_CHUNK,
                [
                    nla_u32(attr::UPLOAD_ID, id),
                    nla_u32(attr::OFFSET, offset as u32),
                    nla(attr::DATA, &package[offset..end]),
                ]
                .concat(),
                Effect::Chunk {
                    id,
                    len: (end - offset) as u32,
                },
            ));
            offset = end;
        }
        if self.rng.chance(85) {
            self.garbage_commits += 1;
            self.send_gen(GenReq::new(
                cmd::LOAD_COMMIT,
                nla_u32(attr::UPLOAD_ID, id),
                Effect::Commit { id },
            ));
        } else {
            self.send_gen(GenReq::new(
                cmd::LOAD_ABORT,
                nla_u32(attr::UPLOAD_ID, id),
                Effect::Abort { id },
            ));
        }
    }

    /// Small packages that are not what they claim: random bytes, a wasm header and garbage,
    /// a tiny module in a well-formed package (mutated or not), the real package cut short.
    fn garbage_package(&mut self, name: &str) -> Vec<u8> {
        let rng = &mut self.rng;
        match rng.below(5) {
            0 => rng.bytes_in(1, 2048),
            1 => {
                let mut p = TINY_MODULE.to_vec();
                p.extend(rng.bytes_in(0, 512));
                p
            }
            2 | 3 => {
                let script: &[u8] = rng.pick(&[
                    BASE_SCRIPT,
                    b"function process_packet(p) return lp.ACCEPT end",
                    b"",
                    b"function (",
                ]);
                let pkg_name = if rng.chance(70) { name } else { BASE };
                let mut p = runtime::package::build(&TINY_MODULE, pkg_name, script)
                    .unwrap_or_else(|_| TINY_MODULE.to_vec());
                if rng.chance(60) {
                    mutate(rng, &mut p);
                }
                if p.is_empty() {
                    p.push(0);
                }
                p
            }
            _ => {
                let n = rng.range(1, 2048.min(self.package.len()));
                self.package[..n].to_vec()
            }
        }
    }

    /// BASE's limits back as they were at the start (they may have been changed).
    fn restore_base(&mut self) {
        self.limits_touched = false;
        if let Some(attrs) = self.base_limits.clone() {
            self.send_gen(GenReq::new(cmd::SET_LIMITS, attrs, Effect::None));
            self.limits_touched = false;
        }
    }

    /// One fuzzed luapkt request (or a short sequence).
    fn one_gen(&mut self) {
        match self.rng.weighted(&[14, 45, 26, 5, 3]) {
            0 => {
                let mut req = self.gen_random_cmd();
                self.rough_header(&mut req);
                self.send_gen(req);
            }
            1 => {
                let mut req = self.gen_semantic();
                self.rough_header(&mut req);
                self.send_gen(req);
            }
            2 => {
                let mut req = self.gen_semantic();
                self.rough_header(&mut req);
                let seq = self.gen.next_seq();
                let mut payload = req.payload();
                mutate(&mut self.rng, &mut payload);
                let d = nlmsg(self.family, req.flags, seq, &payload);
                self.exchange_gen(d, seq, Effect::Unknown);
            }
            3 => self.framing_case(),
            _ => self.upload_sequence(),
        }
        if self.uploads.len() > LIVE_UPLOADS_MAX {
            let oldest = self.uploads[0].id;
            let a = self.send_gen(GenReq::new(
                cmd::LOAD_ABORT,
                nla_u32(attr::UPLOAD_ID, oldest),
                Effect::Abort { id: oldest },
            ));
            if a.fin.is_none_or(|e| e != 0) {
                self.uploads.retain(|u| u.id != oldest);
            }
        }
    }

    /// A whole package through LOAD_BEGIN, LOAD_CHUNKs of CHUNK_MAX and LOAD_COMMIT (each
    /// counted); the commit's errno (0: loaded).
    fn upload_package(&mut self, name: &str, package: &[u8], replace: bool) -> Option<i32> {
        let flags = if replace { FLAG_REPLACE } else { 0 };
        let a = self.send_gen(GenReq::new(
            cmd::LOAD_BEGIN,
            [
                nla_str(attr::NAME, name),
                nla_u32(attr::SIZE, package.len() as u32),
                nla_u32(attr::FLAGS, flags),
            ]
            .concat(),
            Effect::Begin {
                size: package.len() as u32,
            },
        ));
        let id = a
            .data
            .iter()
            .find_map(|d| upload_id(d.get(4..).unwrap_or_default()));
        let Some(id) = id else {
            return a.fin;
        };
        for (i, chunk) in package.chunks(CHUNK_MAX as usize).enumerate() {
            let a = self.send_gen(GenReq::new(
                cmd::LOAD_CHUNK,
                [
                    nla_u32(attr::UPLOAD_ID, id),
                    nla_u32(attr::OFFSET, (i * CHUNK_MAX as usize) as u32),
                    nla(attr::DATA, chunk),
                ]
                .concat(),
                Effect::Chunk {
                    id,
                    len: chunk.len() as u32,
                },
            ));
            if a.fin != Some(0) {
                self.send_gen(GenReq::new(
                    cmd::LOAD_ABORT,
                    nla_u32(attr::UPLOAD_ID, id),
                    Effect::Abort { id },
                ));
                return a.fin;
            }
        }
        self.send_gen(GenReq::new(
            cmd::LOAD_COMMIT,
            nla_u32(attr::UPLOAD_ID, id),
            Effect::Commit { id },
        ))
        .fin
    }

    /// The expensive cases, a few times per run: BASE replaced by itself while rules are bound
    /// to it; the real package with its script mutated (the compiled guest is reused); the real
    /// package with its module mutated (compiled from scratch).
    fn real_package_event(&mut self, kind: usize, n: usize) {
        let t = Instant::now();
        let (what, name, result) = match kind {
            0 => {
                let package = self.package.clone();
                let r = self.upload_package(BASE, &package, true);
                ("replace (rules bound)", BASE.to_string(), r)
            }
            1 => {
                let name = format!("{FUZZ_PREFIX}-mut{n}");
                let mut script = BASE_SCRIPT.to_vec();
                mutate(&mut self.rng, &mut script);
                let r = match runtime::package::build(guest_lua::LUA_WASM, &name, &script) {
                    Ok(p) => self.upload_package(&name, &p, false),
                    Err(_) => None,
                };
                ("mutated script", name, r)
            }
            _ => {
                let name = format!("{FUZZ_PREFIX}-modmut{n}");
                let mut module = guest_lua::LUA_WASM.to_vec();
                for _ in 0..self.rng.range(1, 3) {
                    let i = self.rng.range(8, module.len() - 1);
                    module[i] ^= 1 << self.rng.below(8);
                }
                let r = match runtime::package::build(&module, &name, BASE_SCRIPT) {
                    Ok(p) => self.upload_package(&name, &p, false),
                    Err(_) => None,
                };
                ("mutated guest module", name, r)
            }
        };
        if kind != 0 && result == Some(0) {
            self.send_gen(GenReq::new(
                cmd::UNLOAD,
                nla_str(attr::NAME, &name),
                Effect::None,
            ));
        }
        let result = match result {
            Some(0) => "loaded".to_string(),
            Some(e) => errno_label(e),
            None => "not uploaded".to_string(),
        };
        self.events.push(format!(
            "fuzz package: {what} {name}: {result} ({:.1} s)",
            t.elapsed().as_secs_f64()
        ));
    }

    // ---- nf_tables --------------------------------------------------------------------------

    /// One batch: BATCH_BEGIN, `msgs` (type, flags, attributes; family inet), BATCH_END. Returns
    /// each message's errno, or what became of the batch when the socket failed.
    fn nft_batch(&mut self, msgs: &[(u8, u16, Vec<u8>)]) -> Result<Vec<Option<i32>>, Got> {
        let chan = self.nft.as_mut().ok_or(Got::Lost)?;
        let res = NFNL_SUBSYS_NFTABLES.to_be_bytes();
        let batch_hdr = [0, 0, res[0], res[1]];
        let begin = chan.next_seq();
        let mut d = nlmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, &batch_hdr);
        let mut seqs = Vec::new();
        for (kind, flags, attrs) in msgs {
            let seq = chan.next_seq();
            seqs.push(seq);
            let mut payload = vec![NFPROTO_INET, 0, 0, 0];
            payload.extend_from_slice(attrs);
            pad4(&mut d);
            d.extend(nlmsg(
                (NFNL_SUBSYS_NFTABLES << 8) | u16::from(*kind),
                *flags,
                seq,
                &payload,
            ));
        }
        pad4(&mut d);
        let end = chan.next_seq();
        d.extend(nlmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, end, &batch_hdr));
        let t = Instant::now();
        let r = chan.transact(&d, None, &seqs, None, Some(begin));
        let took = t.elapsed();
        self.nf.busy += took;
        if self.trace {
            println!(
                "trace {} nf_tables {} ({} us)",
                self.total(),
                hex(&d),
                took.as_micros()
            );
        }
        match r {
            Ok(answers) => Ok(answers.into_iter().map(|a| a.fin).collect()),
            Err(e) => Err(self.socket_trouble(true, e)),
        }
    }

    fn rule_attrs(chain: &str, data: &[u8]) -> Vec<u8> {
        let elem = nla_nested(
            NFTA_LIST_ELEM,
            &[
                nla_str(NFTA_EXPR_NAME, abi::netlink::EXPR_NAME),
                nla(NFTA_EXPR_DATA | NLA_F_NESTED, data),
            ],
        );
        [
            nla_str(NFTA_RULE_TABLE, TABLE),
            nla_str(NFTA_RULE_CHAIN, chain),
            nla_nested(NFTA_RULE_EXPRESSIONS, &[elem]),
        ]
        .concat()
    }

    /// The lpfuzz table with its two chains, and the rule that keeps BASE in use. Ok(false):
    /// the kernel refused (the reason is printed).
    fn nft_setup(&mut self) -> bool {
        let create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        let keep = nla_str(lua_attr::SCRIPT, BASE);
        let keep_lim = nla_str(lua_attr::SCRIPT, LIM);
        let msgs = vec![
            (NFT_MSG_NEWTABLE, create, nla_str(NFTA_TABLE_NAME, TABLE)),
            (
                NFT_MSG_NEWCHAIN,
                create,
                [
                    nla_str(NFTA_CHAIN_TABLE, TABLE),
                    nla_str(NFTA_CHAIN_NAME, CHAIN),
                ]
                .concat(),
            ),
            (
                NFT_MSG_NEWCHAIN,
                create,
                [
                    nla_str(NFTA_CHAIN_TABLE, TABLE),
                    nla_str(NFTA_CHAIN_NAME, KEEP_CHAIN),
                ]
                .concat(),
            ),
            (
                NFT_MSG_NEWRULE,
                create | NLM_F_APPEND,
                Self::rule_attrs(KEEP_CHAIN, &keep),
            ),
            (
                NFT_MSG_NEWRULE,
                create | NLM_F_APPEND,
                Self::rule_attrs(KEEP_CHAIN, &keep_lim),
            ),
        ];
        match self.nft_batch(&msgs) {
            Ok(r) if r.iter().all(|e| *e == Some(0)) => true,
            Ok(r) => {
                let why: Vec<String> = r
                    .iter()
                    .map(|e| e.map_or("no answer".into(), errno_label))
                    .collect();
                println!(
                    "fuzz nf_tables lua: setup refused ({}): not fuzzed",
                    why.join(", ")
                );
                false
            }
            Err(got) => {
                println!("fuzz nf_tables lua: setup failed ({got}): not fuzzed");
                false
            }
        }
    }

    fn nft_delete_table(&mut self) -> Option<i32> {
        let msgs = vec![(
            NFT_MSG_DELTABLE,
            NLM_F_REQUEST | NLM_F_ACK,
            nla_str(NFTA_TABLE_NAME, TABLE),
        )];
        self.nft_batch(&msgs).ok()?.pop().flatten()
    }

    /// The attributes of a `lua` expression: valid, missing, unknown, overlong, unterminated...
    fn lua_data(&mut self) -> Vec<u8> {
        let rng = &mut self.rng;
        let mut parts = Vec::new();
        let long = |rng: &mut Rng, lo: usize, hi: usize| {
            let mut v = FUZZ_PREFIX.as_bytes().to_vec();
            v.resize(rng.range(lo, hi), b'f');
            v
        };
        let script: Option<Vec<u8>> = match rng.weighted(&[45, 8, 8, 4, 5, 5, 5, 5, 4, 4, 4, 3, 1])
        {
            0 => Some(format!("{BASE}\0").into_bytes()),
            12 => Some(format!("{LIM}\0").into_bytes()),
            1 => None,
            2 => Some(format!("{FUZZ_PREFIX}-nope\0").into_bytes()),
            3 => Some(b"\0".to_vec()),
            4 => Some([long(rng, 64, 300), vec![0]].concat()),
            5 => Some(BASE.as_bytes().to_vec()),
            6 => Some(name_value(rng)),
            7 => {
                let mut v = format!("{BASE}\0").into_bytes();
                v.extend(rng.bytes_in(1, 16));
                Some(v)
            }
            8 => Some(rng.u32().to_ne_bytes().to_vec()),
            9 => Some([long(rng, 63, 63), vec![0]].concat()),
            10 => Some([long(rng, 64, 64), vec![0]].concat()),
            _ => Some(rng.bytes_in(0, 80)),
        };
        if let Some(s) = script {
            parts.push(nla(lua_attr::SCRIPT, &s));
        }
        if rng.chance(60) {
            // (a function the script lacks is looked up in it all the same: a call each time)
            let func: Vec<u8> = match rng.weighted(&[24, 14, 14, 2, 2, 3, 6, 6, 5, 5, 3, 5]) {
                0 => b"process_packet\0".to_vec(),
                1 => b"f1\0".to_vec(),
                2 => b"f2\0".to_vec(),
                3 => b"x\0".to_vec(),
                4 => rng
                    .pick(&[&b"print\0"[..], b"lp\0", b"_G\0", b"string.len\0"])
                    .to_vec(),
                5 => b"nope\0".to_vec(),
                6 => b"\0".to_vec(),
                7 => [long(rng, 64, 1000), vec![0]].concat(),
                8 => b"f1".to_vec(),
                9 => b"f1\0zz".to_vec(),
                10 => [long(rng, 63, 63), vec![0]].concat(),
                _ => rng.bytes_in(0, 100),
            };
            parts.push(nla(lua_attr::FUNC, &func));
        }
        if rng.chance(50) {
            // Every new (function, argument) pair is bound by a call into the script and kept
            // for the script's lifetime. Binds run on a small fixed fuel budget, and past a few
            // dozen pairs the Lua heap's collector step no longer fits in it: every new pair
            // then traps, poisons the instance and costs a rebuild (a fraction of a second
            // under TCG; see the report of the first VM runs). So the arguments the kernel
            // accepts come from a small set and rarely something new and short; the lengths
            // around ARG_MAX are all there.
            let max = abi::netlink::ARG_MAX;
            let arg = match rng.weighted(&[700, 1, 100, 150]) {
                0 => match rng.pick(&[0, 1, 4, 16, max]) {
                    4 => b"drop".to_vec(),
                    len => Rng::new(len as u64).bytes(len),
                },
                1 => rng.bytes_in(1, 16),
                2 => filler(max + 1),
                _ => filler(rng.range(max + 2, 4000)),
            };
            parts.push(nla(lua_attr::ARG, &arg));
        }
        if rng.chance(30) {
            let flags = match rng.below(4) {
                0 => 0,
                1 => 1 << rng.below(32),
                2 => u32::MAX,
                _ => rng.u32(),
            };
            let mut v = flags.to_be_bytes().to_vec();
            if rng.chance(15) {
                v.resize(rng.pick(&[0, 1, 2, 3, 8]), 0);
            }
            parts.push(nla(lua_attr::FLAGS, &v));
        }
        if rng.chance(8) {
            let kind = rng.pick(&[0, 5, 6, 31, 0x3fff, lua_attr::SCRIPT | NLA_F_NESTED]);
            let v = rng.bytes_in(0, 40);
            parts.push(nla(kind, &v));
        }
        if rng.chance(4) {
            parts.push(random_attr(rng, 1));
        }
        if rng.chance(10) {
            for i in (1..parts.len()).rev() {
                let j = rng.below(i + 1);
                parts.swap(i, j);
            }
        }
        let mut data = parts.concat();
        if rng.chance(25) {
            mutate(rng, &mut data);
        }
        // the expression's nests must stay under 64 KiB
        data.truncate(16 << 10);
        data
    }

    /// One batch adding a rule with a fuzzed `lua` expression to the lpfuzz chain.
    /// One batch of rules with fuzzed `lua` expressions for the lpfuzz chain. nf_tables
    /// processes every message of a batch and answers each, then commits the batch only if all
    /// of them passed: otherwise it aborts, which waits for an RCU grace period (milliseconds,
    /// tens under TCG) whatever the batch's size. So most batches carry many rules, and an
    /// aborted batch's accepted expressions are destroyed again (the abort path); a few carry
    /// one, and sometimes all pass and commit.
    fn one_nft(&mut self, left: u64) {
        let k = self.rng.pick(&[512, 512, 512, 512, 512, 256, 64, 16, 4, 1]);
        let k = k.min(left.max(1) as usize);
        let mut msgs: Vec<(u8, u16, Vec<u8>)> = Vec::with_capacity(k);
        let mut bytes = 0;
        while msgs.len() < k && bytes < BATCH_MAX {
            let data = self.lua_data();
            let mut flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
            if self.rng.chance(10) {
                flags |= NLM_F_ECHO;
            }
            let attrs = Self::rule_attrs(CHAIN, &data);
            bytes += attrs.len() + 32;
            msgs.push((NFT_MSG_NEWRULE, flags, attrs));
        }
        let k = msgs.len();
        self.nf.sent += k as u64;
        let outcomes: Vec<Got> = match self.nft_batch(&msgs) {
            Ok(r) => r
                .into_iter()
                .map(|e| match e {
                    Some(0) => Got::Accepted,
                    Some(e) => Got::Refused(e),
                    None => Got::Unanswered,
                })
                .collect(),
            Err(got) => vec![got; k],
        };
        for &o in &outcomes {
            self.nf.record(o);
        }
        if self.trace {
            let o: Vec<String> = outcomes.iter().map(Got::to_string).collect();
            println!("trace {} nf_tables -> {}", self.total(), o.join(" "));
        }
        if outcomes.iter().all(|o| *o == Got::Accepted) {
            self.nf_committed += k as u64;
            self.rules_in_chain += k as u32;
            if self.rules_in_chain >= RULES_BEFORE_FLUSH {
                // DELRULE with a chain and no handle: the chain's rules
                let msgs = vec![(
                    NFT_MSG_DELRULE,
                    NLM_F_REQUEST | NLM_F_ACK,
                    [
                        nla_str(NFTA_RULE_TABLE, TABLE),
                        nla_str(NFTA_RULE_CHAIN, CHAIN),
                    ]
                    .concat(),
                )];
                let _ = self.nft_batch(&msgs);
                self.rules_in_chain = 0;
            }
        }
    }
}

use lpctl::output::hex;

/// Scripts of the namespace, by name (None when the family cannot be reached).
fn script_names() -> Option<BTreeSet<String>> {
    let mut lp = Luapkt::open().ok()?;
    Some(lp.list().ok()?.into_iter().map(|s| s.name).collect())
}

/// Unloads `names`, retrying while rules that nf_tables destroys in the background still hold
/// them (EBUSY). Returns what was unloaded and what could not be.
fn unload_all(names: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut done, mut failed) = (Vec::new(), Vec::new());
    let Ok(mut lp) = Luapkt::open() else {
        return (done, names.to_vec());
    };
    for name in names {
        let mut tries = 0;
        loop {
            match lp.unload(name) {
                Ok(()) => {
                    done.push(name.clone());
                    break;
                }
                Err(e) if e.errno() == Some(16) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    failed.push(format!("{name} ({e})"));
                    break;
                }
            }
        }
    }
    (done, failed)
}

/// `lpctl selftest fuzz-netlink`: Err only when the socket layer itself fails.
pub(crate) fn fuzz_netlink(count: u64, seed: u64, nft_share: u64, trace: bool) -> Result<()> {
    println!(
        "fuzz-netlink: seed {seed:#x}, {count} requests, {nft_share}% of them nf_tables rules"
    );
    let mut probe = Socket::open(Protocol::Generic).context("generic netlink socket")?;
    let family = match nft_plugin::resolve_family(&mut probe, abi::netlink::GENL_NAME) {
        Ok(f) => f.id,
        Err(Error::FamilyNotFound { .. }) => {
            println!(
                "fuzz luapkt: generic netlink family {} not found (ENOENT): is nft_lua loaded? nothing sent",
                abi::netlink::GENL_NAME
            );
            println!("fuzz nf_tables lua: not fuzzed (without nft_lua each batch would autoload modules)");
            return Ok(());
        }
        Err(e) => return Err(e).context("luapkt family lookup"),
    };
    drop(probe);
    let before = script_names().unwrap_or_default();
    let package = runtime::package::build(guest_lua::LUA_WASM, BASE, BASE_SCRIPT)
        .context("packing the fuzzer's base script")?;
    let mut f = Fuzz {
        rng: Rng::new(seed),
        trace,
        gen: Chan::open(Protocol::Generic).context("generic netlink socket")?,
        family,
        nft: Some(Chan::open(Protocol::Netfilter).context("nf_tables netlink socket")?),
        lp: Tally::default(),
        nf: Tally::default(),
        uploads: Vec::new(),
        garbage_commits: 0,
        rules_in_chain: 0,
        nf_committed: 0,
        package,
        socket_errors: Vec::new(),
        events: Vec::new(),
        base_limits: None,
        limits_touched: false,
        broken: None,
    };

    // A clean slate: what an interrupted run may have left, then BASE and its table.
    f.nft_delete_table();
    let leftovers: Vec<String> = before
        .iter()
        .filter(|n| n.starts_with(FUZZ_PREFIX))
        .cloned()
        .collect();
    unload_all(&leftovers);
    let t0 = Instant::now();
    let base = f.package.clone();
    match f.upload_package(BASE, &base, true) {
        Some(0) => {}
        other => println!(
            "fuzz luapkt: loading {BASE} failed ({}): rules will not bind",
            other.map_or("no answer".into(), errno_label)
        ),
    }
    let lim = runtime::package::build(guest_lua::LUA_WASM, LIM, BASE_SCRIPT)
        .context("packing the fuzzer's second script")?;
    if let Some(e) = f.upload_package(LIM, &lim, true).filter(|e| *e != 0) {
        println!("fuzz luapkt: loading {LIM} failed ({})", errno_label(e));
    }
    if let Ok(s) = Luapkt::open().and_then(|mut lp| lp.get(BASE)) {
        let l = s.limits;
        let mut attrs = [
            nla_str(attr::NAME, BASE),
            nla(attr::FUEL, &l.fuel.to_ne_bytes()),
            nla_u32(attr::INSTRUCTIONS, l.instructions),
            nla(attr::MEMORY, &l.memory.to_ne_bytes()),
            nla_u32(attr::RECURSION, l.recursion),
            nla_u32(attr::PCALL_DEPTH, l.pcall_depth),
            nla(attr::ON_ERROR, &[s.on_error.number()]),
        ]
        .concat();
        if l.load_fuel != 0 {
            attrs.extend(nla(attr::LOAD_FUEL, &l.load_fuel.to_ne_bytes()));
        }
        f.base_limits = Some(attrs);
    }
    if !f.nft_setup() {
        f.nft = None;
    }

    // The expensive real-package cases, spread over the run.
    let mut events: Vec<(u64, usize, usize)> = Vec::new();
    for (kind, per, max) in [(0, 20_000, 4), (1, 20_000, 4), (2, 50_000, 2)] {
        let n = (count / per).min(max) as usize;
        for i in 0..n {
            let at = u128::from(count) * (i as u128 + 1) / (n as u128 + 1);
            events.push((at as u64, kind, i));
        }
    }
    events.sort();
    let mut next_event = 0;

    while f.total() < count && f.broken.is_none() {
        while next_event < events.len() && events[next_event].0 <= f.total() {
            let (_, kind, n) = events[next_event];
            f.real_package_event(kind, n);
            next_event += 1;
        }
        if f.limits_touched {
            f.restore_base();
        }
        // nft_share percent of the requests are rules
        if f.nft.is_some() && f.nf.sent * 100 < nft_share.min(100) * f.total().max(1) {
            f.one_nft(count - f.total());
        } else {
            f.one_gen();
        }
    }
    let elapsed = t0.elapsed();
    // What the storm left the two scripts with (limits, instances rebuilt).
    let script_lines: Vec<String> = [BASE, LIM]
        .iter()
        .map(
            |name| match Luapkt::open().and_then(|mut lp| lp.get(name)) {
                Ok(s) => format!(
                    "fuzz {name}: refs {}, limits fuel {} instructions {} memory {} recursion {} \
                 pcall_depth {} load_fuel {}, on-error {}, rebuilds {} (failed {})",
                    s.refs,
                    s.limits.fuel,
                    s.limits.instructions,
                    s.limits.memory,
                    s.limits.recursion,
                    s.limits.pcall_depth,
                    s.limits.load_fuel,
                    s.on_error,
                    s.stats.rebuilds,
                    s.stats.rebuild_failures,
                ),
                Err(e) => format!("fuzz {name}: {e}"),
            },
        )
        .collect();

    // Clean up: the table (its rules release BASE), the uploads (with the socket), the scripts.
    let table = match f.nft_delete_table() {
        Some(0) => "table lpfuzz deleted".to_string(),
        Some(e) => format!("table lpfuzz not deleted ({})", errno_label(e)),
        None => "table lpfuzz: nf_tables socket unusable".to_string(),
    };
    let lp_line = f.lp.summary(
        "luapkt",
        &format!(" ({} garbage-package commits)", f.garbage_commits),
    );
    let nf_line = f.nf.summary(
        "nf_tables lua",
        &format!(" ({} in batches that committed)", f.nf_committed),
    );
    let sent = f.total();
    let (reopens, socket_errors, events, broken) = (
        f.gen.reopens + f.nft.as_ref().map_or(0, |c| c.reopens),
        std::mem::take(&mut f.socket_errors),
        std::mem::take(&mut f.events),
        f.broken.take(),
    );
    drop(f);
    let after = script_names().unwrap_or_default();
    let ours: Vec<String> = after
        .iter()
        .filter(|n| n.starts_with(FUZZ_PREFIX) || !before.contains(*n))
        .cloned()
        .collect();
    let (unloaded, stuck) = unload_all(&ours);

    println!("{lp_line}");
    println!("{nf_line}");
    for l in &script_lines {
        println!("{l}");
    }
    for e in &events {
        println!("{e}");
    }
    let mut cleanup = format!("fuzz cleanup: {table}");
    if !unloaded.is_empty() {
        cleanup += &format!(", unloaded {}", unloaded.join(" "));
    }
    if !stuck.is_empty() {
        cleanup += &format!(", NOT unloaded: {}", stuck.join(", "));
    }
    println!("{cleanup}");
    for e in &socket_errors {
        println!("fuzz socket error: {e}");
    }
    println!(
        "fuzz-netlink: {sent} requests in {:.1} s ({:.0}/s), {reopens} socket reopen(s)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    match broken {
        Some(why) => anyhow::bail!("the netlink socket layer failed: {why}"),
        None => Ok(()),
    }
}
