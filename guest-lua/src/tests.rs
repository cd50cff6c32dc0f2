//! The guest's contract: no imports outside `lp`, every ABI export present, fuel counted in
//! every function and loop. (`c/lp_abi.h` is generated from `abi`: luapkt-tests' c_headers.)

use crate::LUA_WASM;
use abi::guest as g;
use wasmparser::{Parser, Payload, TypeRef};

#[test]
fn imports_only_the_lp_module() {
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(LUA_WASM) {
        if let Payload::ImportSection(reader) = payload.expect("valid wasm") {
            for imp in reader {
                let imp = imp.expect("valid import");
                assert!(
                    matches!(imp.ty, TypeRef::Func(_)),
                    "{} {} is not a function",
                    imp.module,
                    imp.name
                );
                imports.push(format!("{}.{}", imp.module, imp.name));
            }
        }
    }
    let outside: Vec<_> = imports.iter().filter(|i| !i.starts_with("lp.")).collect();
    assert!(
        outside.is_empty(),
        "imports outside the lp module (WASI?): {outside:?}"
    );
    let mut expected: Vec<String> = [
        g::IMPORT_TRY,
        g::IMPORT_THROW,
        g::IMPORT_LOG,
        g::IMPORT_NOW,
        g::IMPORT_PKT_READ,
        g::IMPORT_PKT_WRITE,
        g::IMPORT_OUT_OF_FUEL,
        g::IMPORT_MAP_DECLARE,
        g::IMPORT_MAP_OP,
        g::IMPORT_SEND,
        g::IMPORT_TIMER,
    ]
    .iter()
    .map(|n| format!("lp.{n}"))
    .collect();
    expected.sort();
    imports.sort();
    assert_eq!(imports, expected);
}

#[test]
fn exports_what_the_hosts_call() {
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(LUA_WASM) {
        if let Payload::ExportSection(reader) = payload.expect("valid wasm") {
            for e in reader {
                exports.push(e.expect("valid export").name.to_string());
            }
        }
    }
    for name in [
        g::EXPORT_TRAMPOLINE,
        g::EXPORT_INIT,
        g::EXPORT_CTX,
        g::EXPORT_ALLOC,
        g::EXPORT_FREE,
        g::EXPORT_LOAD,
        g::EXPORT_REF_GLOBAL,
        g::EXPORT_REF_STRING,
        g::EXPORT_RUN,
        g::EXPORT_RECOVER,
        g::EXPORT_ERRMSG,
        g::EXPORT_ERRLEN,
        g::EXPORT_MEM_USED,
        g::EXPORT_STACK_POINTER,
        g::EXPORT_MEMORY,
    ] {
        assert!(exports.iter().any(|e| e == name), "missing export {name}");
    }
}

/// The charge the fuel pass puts at the start of a region, and whether it tests the counter:
/// `global.get $fuel  i64.const N  i64.sub  local.tee  global.set $fuel  local.get  i64.const 0
/// i64.lt_s  if  call $oof  end` (tested) or `global.get $fuel  i64.const N  i64.sub
/// global.set $fuel` (not).
fn charge_at(
    ops: &[wasmparser::Operator<'_>],
    i: usize,
    fuel: u32,
    oof: u32,
) -> Option<(i64, bool)> {
    use wasmparser::Operator as O;
    if let Some(
        [O::GlobalGet { global_index: g1 }, O::I64Const { value }, O::I64Sub, O::LocalTee { local_index: t1 }, O::GlobalSet { global_index: g2 }, O::LocalGet { local_index: t2 }, O::I64Const { value: 0 }, O::I64LtS, O::If { .. }, O::Call { function_index }, O::End],
    ) = ops.get(i..i + 11)
    {
        if *g1 == fuel && *g2 == fuel && t1 == t2 && *function_index == oof {
            return Some((*value, true));
        }
    }
    match ops.get(i..i + 4)? {
        [O::GlobalGet { global_index: g1 }, O::I64Const { value }, O::I64Sub, O::GlobalSet { global_index: g2 }]
            if *g1 == fuel && *g2 == fuel =>
        {
            Some((*value, false))
        }
        _ => None,
    }
}

#[test]
fn the_guest_counts_its_own_fuel_in_every_function_and_loop() {
    use wasmparser::{ExternalKind, Operator as O};
    let (mut fuel, mut oof, mut funcs_imported) = (None, None, 0u32);
    let (mut functions, mut loops, mut sets) = (0, 0, 0);
    for payload in Parser::new(0).parse_all(LUA_WASM) {
        match payload.expect("valid wasm") {
            Payload::ImportSection(r) => {
                for imp in r {
                    let imp = imp.expect("import");
                    if imp.name == g::IMPORT_OUT_OF_FUEL {
                        oof = Some(funcs_imported);
                    }
                    funcs_imported += 1;
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.expect("export");
                    if e.name == g::EXPORT_FUEL {
                        assert_eq!(e.kind, ExternalKind::Global);
                        fuel = Some(e.index);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let (fuel, oof) = (fuel.expect("lp_fuel exported"), oof.expect("out_of_fuel"));
                let ops: Vec<_> = body
                    .get_operators_reader()
                    .expect("ops")
                    .into_iter()
                    .map(|o| o.expect("op"))
                    .collect();
                let (entry, tested) =
                    charge_at(&ops, 0, fuel, oof).expect("a charge at function entry");
                assert!(entry >= 1);
                // recursion goes through a function's entry: one that calls tests there
                let calls = ops.iter().any(|o| match o {
                    O::Call { function_index } => *function_index != oof,
                    O::CallIndirect { .. } => true,
                    _ => false,
                });
                assert!(
                    tested || !calls,
                    "a function that calls without a test at entry"
                );
                functions += 1;
                // per open control frame: (a loop's first op, whether a branch repeats it);
                // a loop nothing branches back to (the regions pass's continuations) runs once
                // and may be charged with its parent
                let mut frames: Vec<(Option<usize>, bool)> = vec![(None, false)];
                let repeat = |frames: &mut Vec<(Option<usize>, bool)>, depth: u32| {
                    let n = frames.len();
                    if let Some(f) = n
                        .checked_sub(1 + depth as usize)
                        .and_then(|t| frames.get_mut(t))
                    {
                        f.1 = true;
                    }
                };
                for (i, op) in ops.iter().enumerate() {
                    match op {
                        O::Block { .. } | O::If { .. } => frames.push((None, false)),
                        O::Loop { .. } => frames.push((Some(i + 1), false)),
                        O::Br { relative_depth } | O::BrIf { relative_depth } => {
                            repeat(&mut frames, *relative_depth)
                        }
                        O::BrTable { targets } => {
                            for t in targets.targets() {
                                repeat(&mut frames, t.expect("target"));
                            }
                            repeat(&mut frames, targets.default());
                        }
                        O::End => {
                            if let Some((Some(first), true)) = frames.pop() {
                                let c = charge_at(&ops, first, fuel, oof);
                                assert!(
                                    c.is_some_and(|(c, tested)| c >= 1 && tested),
                                    "a loop without a tested charge"
                                );
                                loops += 1;
                            }
                        }
                        // the counter is written by charges only
                        O::GlobalSet { global_index } if *global_index == fuel => {
                            assert!(
                                i.checked_sub(4)
                                    .and_then(|at| charge_at(&ops, at, fuel, oof))
                                    .is_some_and(|c| c.1)
                                    || charge_at(&ops, i - 3, fuel, oof).is_some_and(|c| !c.1)
                                    || {
                                        // a bulk-memory charge: `... i64.sub  local.tee  global.set`
                                        matches!(ops.get(i + 5), Some(O::Call { function_index }) if *function_index == oof)
                                    }
                            );
                            sets += 1;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    assert!(
        functions > 500 && loops > 500,
        "{functions} functions, {loops} loops"
    );
    assert!(sets >= functions + loops);
}
