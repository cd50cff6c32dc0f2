//! Fuel in the guest: a post-link pass (after the regions pass) that makes `lua.wasm` count
//! its own fuel, so that fuel is the same number under every engine (wasmi, wasmtime, code
//! compiled ahead of time) and bounds a call without the engine's help.
//!
//! The pass adds a mutable `i64` global, exported as `lp_fuel`, and charges it where a region
//! starts — a function body, a `loop` body, each arm of an `if` — with the number of wasm
//! instructions the region holds directly (those of nested `block`s included, those of nested
//! loops and arms not: they charge when entered), as wasmi charges its own fuel; instructions
//! that are no work in a register machine (structure, locals, constants) do not count, calls
//! and bulk-memory instructions count more ([`cost`]). The regions
//! pass has already made the code after each `block` a region of its own. `memory.copy` and
//! `memory.fill` also charge their length, one unit per [`BULK_BYTES_PER_FUEL`] bytes. When
//! the counter drops below zero the guest calls the host import `lp.out_of_fuel`, which either
//! traps (a packet's call is out of fuel) or refills the counter and returns (a load running
//! in slices): the guest then goes on where it stopped.
//!
//! A charge, with `$f` the counter, `$t` a scratch local and `N` the region's cost:
//! `global.get $f  i64.const N  i64.sub  local.tee $t  global.set $f  local.get $t  i64.const 0
//! i64.lt_s  if  call $out_of_fuel  end`; only the charges of loops and of the bodies of
//! functions that call test the counter, the others are `global.get $f  i64.const N  i64.sub
//! global.set $f` ([`region_costs`] says why that still bounds every call). Instrumentation
//! instructions are not charged.

use wasm_encoder::reencode::{utils, Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, ConstExpr, ExportKind, ExportSection, Function, GlobalSection, GlobalType,
    Instruction, Module, RawSection, ValType as EncValType,
};
use wasmparser::{Operator, Parser, Payload, TypeRef};

/// Bytes of a `memory.copy` or `memory.fill` per unit of fuel (a power of two: a shift).
pub(crate) const BULK_BYTES_PER_FUEL: u32 = abi::guest::FUEL_BULK_BYTES;
const _: () = assert!(BULK_BYTES_PER_FUEL.is_power_of_two());
/// A direct call, an indirect one (type check, table lookup), and a bulk-memory instruction
/// before its length is counted (see [`cost`]).
const CALL_COST: u64 = 3;
const CALL_INDIRECT_COST: u64 = 4;
/// A load or store: a bounds-checked access to linear memory.
const MEMORY_COST: u64 = 2;
const BULK_BASE_COST: u64 = 16;

/// Statistics for the build log.
pub(crate) struct Report {
    pub functions: usize,
    /// Region charges inserted (function bodies, loops, `if` arms).
    pub charges: usize,
    /// Bulk-memory instructions charged by length.
    pub bulk: usize,
}

/// Instruments `wasm`. `export` names the counter's export; `import` is the name, in module
/// `import_module`, of the function import called when the counter goes negative (it must be
/// imported by the module already, with type `[] -> []`).
pub(crate) fn add_fuel(
    wasm: &[u8],
    export: &str,
    import_module: &str,
    import: &str,
) -> Result<(Vec<u8>, Report), String> {
    let mut out = Module::new();
    let mut report = Report {
        functions: 0,
        charges: 0,
        bulk: 0,
    };
    let mut type_params: Vec<u32> = Vec::new();
    let mut type_is_unit: Vec<bool> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut n_imported_funcs = 0u32;
    let mut n_globals = 0u32;
    let mut out_of_fuel: Option<u32> = None;
    let mut fuel_global: Option<u32> = None;
    let mut code = CodeSection::new();
    let mut code_index = 0usize;
    let mut code_started = false;

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        match payload {
            Payload::Version { .. } | Payload::End(_) | Payload::CustomSection(_) => {}
            Payload::TypeSection(r) => {
                for rec in r.clone().into_iter_err_on_gc_types() {
                    let ft = rec.map_err(|e| e.to_string())?;
                    type_params.push(ft.params().len() as u32);
                    type_is_unit.push(ft.params().is_empty() && ft.results().is_empty());
                }
                raw(&mut out, wasm, r.range(), 1);
            }
            Payload::ImportSection(r) => {
                for imp in r.clone() {
                    let imp = imp.map_err(|e| e.to_string())?;
                    match imp.ty {
                        TypeRef::Func(t) => {
                            if imp.module == import_module && imp.name == import {
                                if !type_is_unit.get(t as usize).copied().unwrap_or(false) {
                                    return Err(format!("{import_module}.{import}: not [] -> []"));
                                }
                                out_of_fuel = Some(n_imported_funcs);
                            }
                            func_types.push(t);
                            n_imported_funcs += 1;
                        }
                        TypeRef::Global(_) => n_globals += 1,
                        _ => {}
                    }
                }
                raw(&mut out, wasm, r.range(), 2);
            }
            Payload::FunctionSection(r) => {
                for t in r.clone() {
                    func_types.push(t.map_err(|e| e.to_string())?);
                }
                raw(&mut out, wasm, r.range(), 3);
            }
            Payload::GlobalSection(r) => {
                let mut globals = GlobalSection::new();
                n_globals += r.count();
                utils::parse_global_section(&mut RoundtripReencoder, &mut globals, r)
                    .map_err(|e| format!("{e:?}"))?;
                globals.global(
                    GlobalType {
                        val_type: EncValType::I64,
                        mutable: true,
                        shared: false,
                    },
                    &ConstExpr::i64_const(0),
                );
                fuel_global = Some(n_globals);
                out.section(&globals);
            }
            Payload::ExportSection(r) => {
                let Some(g) = fuel_global else {
                    return Err("the module has no global section to add the counter to".into());
                };
                let mut exports = ExportSection::new();
                utils::parse_export_section(&mut RoundtripReencoder, &mut exports, r)
                    .map_err(|e| format!("{e:?}"))?;
                exports.export(export, ExportKind::Global, g);
                out.section(&exports);
            }
            Payload::CodeSectionStart { .. } => code_started = true,
            Payload::CodeSectionEntry(body) => {
                let (Some(g), Some(oof)) = (fuel_global, out_of_fuel) else {
                    return Err(format!(
                        "the module lacks the counter's global or the {import_module}.{import} import"
                    ));
                };
                let ty = func_types[n_imported_funcs as usize + code_index];
                code_index += 1;
                let params = type_params[ty as usize];
                let f = instrument(&body, params, g, oof, &mut report)?;
                code.function(&f);
                report.functions += 1;
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    if code_started && id == 11 {
                        // the data section follows the code section
                        out.section(&code);
                        code_started = false;
                    }
                    raw(&mut out, wasm, range, id);
                }
            }
        }
    }
    if code_started {
        out.section(&code);
    }
    Ok((out.finish(), report))
}

fn raw(out: &mut Module, wasm: &[u8], range: std::ops::Range<usize>, id: u8) {
    out.section(&RawSection {
        id,
        data: &wasm[range],
    });
}

/// What an instruction adds to its region's cost. Structure (`block`, `loop`, `end`, `else`,
/// `nop`) and the stack machine's moves (locals, constants, `drop`) compile to no work of their
/// own in a register machine (wasmi's translation) or in native code: counting them would make
/// fuel follow the encoding rather than the work. A call costs more than an instruction in
/// every engine (a frame, arguments, a return): weighted so that a unit of fuel takes about
/// the same time whatever a script makes the guest do (`cargo bench -p luapkt-runtime --bench
/// fuel_ceiling` measures it).
fn cost(op: &Operator<'_>) -> u64 {
    match op {
        Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::End
        | Operator::Else
        | Operator::Nop
        | Operator::LocalGet { .. }
        | Operator::LocalSet { .. }
        | Operator::LocalTee { .. }
        | Operator::I32Const { .. }
        | Operator::I64Const { .. }
        | Operator::F32Const { .. }
        | Operator::F64Const { .. }
        | Operator::Drop => 0,
        Operator::I32Load { .. }
        | Operator::I64Load { .. }
        | Operator::I32Load8S { .. }
        | Operator::I32Load8U { .. }
        | Operator::I32Load16S { .. }
        | Operator::I32Load16U { .. }
        | Operator::I64Load8S { .. }
        | Operator::I64Load8U { .. }
        | Operator::I64Load16S { .. }
        | Operator::I64Load16U { .. }
        | Operator::I64Load32S { .. }
        | Operator::I64Load32U { .. }
        | Operator::F32Load { .. }
        | Operator::F64Load { .. }
        | Operator::I32Store { .. }
        | Operator::I64Store { .. }
        | Operator::I32Store8 { .. }
        | Operator::I32Store16 { .. }
        | Operator::I64Store8 { .. }
        | Operator::I64Store16 { .. }
        | Operator::I64Store32 { .. }
        | Operator::F32Store { .. }
        | Operator::F64Store { .. } => MEMORY_COST,
        Operator::Call { .. } => CALL_COST,
        Operator::CallIndirect { .. } => CALL_INDIRECT_COST,
        Operator::MemoryCopy { .. } | Operator::MemoryFill { .. } => BULK_BASE_COST,
        _ => 1,
    }
}

/// Regions cheaper than this that run at most once per entry of their parent (an `if` arm, or
/// a `loop` nothing branches back to: the regions pass's continuations) are charged with their
/// parent instead: a charge is four instructions in a register machine, more than the region.
/// That over-charges the parent by less than this per arm not taken.
const MERGE_BELOW: u64 = 4;

struct Region {
    cost: u64,
    parent: usize,
    /// Runs at most once per entry of its parent.
    once: bool,
}

/// A region's charge: its cost, and whether the counter is tested after it.
#[derive(Clone, Copy)]
struct Charge {
    cost: u64,
    check: bool,
}

/// What each region of a function body is charged, in the order the regions open: `None` for
/// a region charged with its parent.
///
/// Only two kinds of charge test the counter: a loop something branches back to, and the
/// body of a function that calls (recursion goes through it). Between two tests a call can
/// only run a path without a cycle through one function body, so the counter overshoots
/// zero by at most that path's cost before a test sees it; the test is a compare and a
/// branch in every engine, a quarter of a charge.
fn region_costs(ops: &[Operator<'_>]) -> Vec<Option<Charge>> {
    // per open control frame: the region its own instructions count toward, and the region
    // it opened if it is a loop (a branch to a loop's label repeats it)
    let mut regions = vec![Region {
        cost: 0,
        parent: 0,
        once: false,
    }];
    let mut frames: Vec<(usize, Option<usize>)> = vec![(0, None)];
    let open = |regions: &mut Vec<Region>, parent: usize, once: bool| {
        regions.push(Region {
            cost: 0,
            parent,
            once,
        });
        regions.len() - 1
    };
    for op in ops {
        let region = frames.last().map_or(0, |f| f.0);
        regions[region].cost += cost(op);
        let branch_to = |depth: u32, regions: &mut Vec<Region>| {
            let target = frames.len().checked_sub(1 + depth as usize);
            if let Some((_, Some(looped))) = target.and_then(|t| frames.get(t)) {
                regions[*looped].once = false;
            }
        };
        match op {
            Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => {
                branch_to(*relative_depth, &mut regions)
            }
            Operator::BrTable { targets } => {
                for t in targets.targets().flatten() {
                    branch_to(t, &mut regions);
                }
                branch_to(targets.default(), &mut regions);
            }
            _ => {}
        }
        match op {
            Operator::End => {
                frames.pop();
            }
            Operator::Else => {
                let parent = regions[region].parent;
                let r = open(&mut regions, parent, true);
                if let Some(top) = frames.last_mut() {
                    top.0 = r;
                }
            }
            Operator::If { .. } => {
                let r = open(&mut regions, region, true);
                frames.push((r, None));
            }
            Operator::Loop { .. } => {
                let r = open(&mut regions, region, true);
                frames.push((r, Some(r)));
            }
            Operator::Block { .. } => frames.push((region, None)),
            _ => {}
        }
    }
    // children open after their parents: merging from the last region up lets a merged
    // child's cost reach its parent before the parent is considered
    let mut charged = vec![true; regions.len()];
    for r in (1..regions.len()).rev() {
        if regions[r].once && regions[r].cost < MERGE_BELOW {
            let (cost, parent) = (regions[r].cost, regions[r].parent);
            regions[parent].cost += cost;
            charged[r] = false;
        }
    }
    let calls = ops
        .iter()
        .any(|op| matches!(op, Operator::Call { .. } | Operator::CallIndirect { .. }));
    regions
        .iter()
        .enumerate()
        .zip(charged)
        .map(|((i, r), c)| {
            c.then_some(Charge {
                cost: r.cost,
                check: if i == 0 { calls } else { !r.once },
            })
        })
        .collect()
}

/// Stores the decremented counter (on the stack) and calls the host if it went negative. The
/// new value goes through the scratch local `tmp`, so the counter is read once per charge
/// (a register machine turns this into: subtract, store, compare-and-branch).
fn charge(f: &mut Function, fuel: u32, tmp: u32, out_of_fuel: u32) {
    f.instruction(&Instruction::LocalTee(tmp));
    f.instruction(&Instruction::GlobalSet(fuel));
    f.instruction(&Instruction::LocalGet(tmp));
    f.instruction(&Instruction::I64Const(0));
    f.instruction(&Instruction::I64LtS);
    f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
    f.instruction(&Instruction::Call(out_of_fuel));
    f.instruction(&Instruction::End);
}

/// A region's charge; one that is not tested is a subtraction alone.
fn charge_region(f: &mut Function, c: Charge, fuel: u32, tmp: u32, out_of_fuel: u32) {
    f.instruction(&Instruction::GlobalGet(fuel));
    f.instruction(&Instruction::I64Const(c.cost.max(1) as i64));
    f.instruction(&Instruction::I64Sub);
    if c.check {
        charge(f, fuel, tmp, out_of_fuel);
    } else {
        f.instruction(&Instruction::GlobalSet(fuel));
    }
}

fn instrument(
    body: &wasmparser::FunctionBody<'_>,
    params: u32,
    fuel: u32,
    out_of_fuel: u32,
    report: &mut Report,
) -> Result<Function, String> {
    let mut locals = Vec::new();
    let mut n_locals = params;
    let lr = body.get_locals_reader().map_err(|e| e.to_string())?;
    for l in lr {
        let (n, t) = l.map_err(|e| e.to_string())?;
        let t = RoundtripReencoder
            .val_type(t)
            .map_err(|e| format!("{e:?}"))?;
        locals.push((n, t));
        n_locals += n;
    }
    let mut ops = Vec::new();
    let mut reader = body.get_operators_reader().map_err(|e| e.to_string())?;
    while !reader.eof() {
        ops.push(reader.read().map_err(|e| e.to_string())?);
    }
    let bulk = ops.iter().any(|op| {
        matches!(
            op,
            Operator::MemoryCopy { .. } | Operator::MemoryFill { .. }
        )
    });
    // scratch locals: the counter's new value, and a bulk instruction's length
    let tmp = n_locals;
    locals.push((1, EncValType::I64));
    let len_local = n_locals + 1;
    if bulk {
        locals.push((1, EncValType::I32));
    }
    let costs = region_costs(&ops);
    let mut next = 0usize;
    let mut f = Function::new(locals);
    let entry = costs[next].unwrap_or(Charge {
        cost: 0,
        check: true,
    });
    charge_region(&mut f, entry, fuel, tmp, out_of_fuel);
    next += 1;
    report.charges += 1;
    for op in &ops {
        if matches!(
            op,
            Operator::MemoryCopy { .. } | Operator::MemoryFill { .. }
        ) {
            // the length is on top of the stack: keep it, charge by it
            f.instruction(&Instruction::LocalTee(len_local));
            f.instruction(&Instruction::GlobalGet(fuel));
            f.instruction(&Instruction::LocalGet(len_local));
            f.instruction(&Instruction::I64ExtendI32U);
            f.instruction(&Instruction::I64Const(i64::from(
                BULK_BYTES_PER_FUEL.trailing_zeros(),
            )));
            f.instruction(&Instruction::I64ShrU);
            f.instruction(&Instruction::I64Sub);
            charge(&mut f, fuel, tmp, out_of_fuel);
            report.bulk += 1;
        }
        let ins = RoundtripReencoder
            .instruction(op.clone())
            .map_err(|e| format!("{e:?}"))?;
        f.instruction(&ins);
        if matches!(
            op,
            Operator::Loop { .. } | Operator::If { .. } | Operator::Else
        ) {
            let cost = *costs.get(next).ok_or("region count mismatch")?;
            next += 1;
            if let Some(cost) = cost {
                charge_region(&mut f, cost, fuel, tmp, out_of_fuel);
                report.charges += 1;
            }
        }
    }
    if next != costs.len() {
        return Err("region count mismatch".into());
    }
    Ok(f)
}
