//! Fuel regions: a post-link pass over `lua.wasm` that makes wasmi's fuel follow the work done.
//!
//! wasmi charges fuel when a `loop`, an `if` arm or a function body is entered, for every
//! instruction of that region up front; a `block` is not a region of its own. C `switch`es
//! compile to a `br_table` inside nested blocks, with each case's code after the `end` of its
//! block, so all of those cases belong to the enclosing region: every iteration of Lua's
//! interpreter loop was charged for every opcode's code (~8,400 fuel per Lua instruction).
//!
//! The pass wraps the code that follows a `block`'s `end` (up to the end of the enclosing
//! construct) in a `loop` that nothing branches to: semantically a block, but for wasmi a region
//! of its own, charged only when control actually reaches that code. It applies only where that
//! is trivially valid — the block has no results, nothing is left on the operand stack, and the
//! enclosing construct's type is empty or a single result — and shifts branch depths past the
//! inserted loops. The output is validated by the caller.

use std::collections::HashMap;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    BlockType as EncBlockType, CodeSection, Function, Instruction, Module, RawSection,
};
use wasmparser::{
    BlockType, FrameKind, FuncValidatorAllocations, Operator, Parser, Payload, ValType, Validator,
    WasmFeatures,
};

/// One original control frame and the loops this pass opened directly inside it.
struct Frame {
    inserted: u32,
    /// The loop type for a continuation inside this frame, when there can be one.
    continuation: Option<EncBlockType>,
}

/// Statistics for the build log.
pub(crate) struct Report {
    pub functions: usize,
    pub loops: usize,
}

fn enc_val(t: ValType) -> Option<wasm_encoder::ValType> {
    RoundtripReencoder.val_type(t).ok()
}

pub(crate) fn add_fuel_regions(wasm: &[u8]) -> Result<(Vec<u8>, Report), String> {
    let mut validator = Validator::new_with_features(WasmFeatures::default());
    let mut out = Module::new();
    let mut code = CodeSection::new();
    let mut report = Report {
        functions: 0,
        loops: 0,
    };
    let mut allocs = FuncValidatorAllocations::default();
    // function index -> result types, for the continuation type of function bodies
    let mut func_results: Vec<Vec<ValType>> = Vec::new();
    let mut types: Vec<Vec<ValType>> = Vec::new();
    let mut type_params: Vec<usize> = Vec::new();
    let mut n_imported = 0usize;
    let mut code_index = 0usize;
    let mut code_emitted = false;
    let _ = HashMap::<u32, u32>::new;

    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        let valid = validator.payload(&payload).map_err(|e| e.to_string())?;
        match &payload {
            Payload::TypeSection(r) => {
                for rec in r.clone().into_iter_err_on_gc_types() {
                    let ft = rec.map_err(|e| e.to_string())?;
                    types.push(ft.results().to_vec());
                    type_params.push(ft.params().len());
                }
            }
            Payload::ImportSection(r) => {
                for imp in r.clone() {
                    let imp = imp.map_err(|e| e.to_string())?;
                    if let wasmparser::TypeRef::Func(t) = imp.ty {
                        func_results.push(types[t as usize].clone());
                        n_imported += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for t in r.clone() {
                    let t = t.map_err(|e| e.to_string())?;
                    func_results.push(types[t as usize].clone());
                }
            }
            _ => {}
        }
        match payload {
            Payload::CodeSectionStart { .. } => {}
            Payload::CodeSectionEntry(body) => {
                let wasmparser::ValidPayload::Func(func, body_ref) = valid else {
                    return Err("code entry without validator".into());
                };
                let _ = body_ref;
                let mut fv = func.into_validator(std::mem::take(&mut allocs));
                let results = &func_results[n_imported + code_index];
                code_index += 1;
                let f = rewrite(&body, &mut fv, results, &mut report)?;
                code.function(&f);
                allocs = fv.into_allocations();
                report.functions += 1;
            }
            Payload::CustomSection(_) => {}
            Payload::End(_) => {}
            Payload::Version { .. } => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    if !code_emitted && id == 11 {
                        // data section comes after code
                        out.section(&code);
                        code_emitted = true;
                    }
                    out.section(&RawSection {
                        id,
                        data: &wasm[range],
                    });
                }
            }
        }
    }
    if !code_emitted {
        out.section(&code);
    }
    let _ = type_params;
    Ok((out.finish(), report))
}

fn continuation_type(results: &[ValType]) -> Option<EncBlockType> {
    match results {
        [] => Some(EncBlockType::Empty),
        [t] => enc_val(*t).map(EncBlockType::Result),
        _ => None,
    }
}

fn block_continuation(bt: BlockType) -> Option<EncBlockType> {
    match bt {
        BlockType::Empty => Some(EncBlockType::Empty),
        BlockType::Type(t) => enc_val(t).map(EncBlockType::Result),
        BlockType::FuncType(_) => None,
    }
}

fn rewrite(
    body: &wasmparser::FunctionBody<'_>,
    fv: &mut wasmparser::FuncValidator<wasmparser::ValidatorResources>,
    results: &[ValType],
    report: &mut Report,
) -> Result<Function, String> {
    let mut locals = Vec::new();
    let mut lr = body.get_locals_reader().map_err(|e| e.to_string())?;
    for _ in 0..lr.get_count() {
        let offset = lr.original_position();
        let (n, t) = lr.read().map_err(|e| e.to_string())?;
        fv.define_locals(offset, n, t).map_err(|e| e.to_string())?;
        locals.push((n, enc_val(t).ok_or("local type")?));
    }
    let mut f = Function::new(locals);
    let mut ops = Vec::new();
    let mut reader = body.get_operators_reader().map_err(|e| e.to_string())?;
    while !reader.eof() {
        let offset = reader.original_position();
        ops.push((offset, reader.read().map_err(|e| e.to_string())?));
    }
    let mut frames = vec![Frame {
        inserted: 0,
        continuation: continuation_type(results),
    }];
    for (i, (offset, op)) in ops.iter().enumerate() {
        // close this pass's loops before the construct they live in ends or changes arm
        if matches!(op, Operator::End | Operator::Else) {
            if let Some(top) = frames.last_mut() {
                for _ in 0..top.inserted {
                    f.instruction(&Instruction::End);
                }
                top.inserted = 0;
            }
        }
        let closing_block = matches!(op, Operator::End)
            && fv
                .get_control_frame(0)
                .is_some_and(|fr| fr.kind == FrameKind::Block && fr.block_type == BlockType::Empty);
        let shifted = shift_branches(op, &frames)?;
        f.instruction(&shifted);
        fv.op(*offset, op).map_err(|e| e.to_string())?;
        match op {
            Operator::Block { blockty } | Operator::Loop { blockty } | Operator::If { blockty } => {
                frames.push(Frame {
                    inserted: 0,
                    continuation: block_continuation(*blockty),
                });
            }
            Operator::End => {
                frames.pop();
                let next_ends = matches!(
                    ops.get(i + 1),
                    None | Some((_, Operator::End | Operator::Else))
                );
                if closing_block && !next_ends {
                    let settled = fv.get_control_frame(0).is_some_and(|fr| {
                        !fr.unreachable && fr.height == fv.operand_stack_height() as usize
                    });
                    if let (true, Some(top)) = (settled, frames.last_mut()) {
                        if let Some(ty) = top.continuation {
                            f.instruction(&Instruction::Loop(ty));
                            top.inserted += 1;
                            report.loops += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    fv.finish(body.range().end).map_err(|e| e.to_string())?;
    Ok(f)
}

/// The instruction with its branch depths moved past the loops inserted between it and its
/// target (a branch to frame `d` leaves the loops open in frames 0..=d).
fn shift_branches<'a>(op: &Operator<'a>, frames: &[Frame]) -> Result<Instruction<'a>, String> {
    let shift = |d: u32| -> u32 {
        let extra: u32 = frames
            .iter()
            .rev()
            .take(d as usize + 1)
            .map(|f| f.inserted)
            .sum();
        d + extra
    };
    Ok(match op {
        Operator::Br { relative_depth } => Instruction::Br(shift(*relative_depth)),
        Operator::BrIf { relative_depth } => Instruction::BrIf(shift(*relative_depth)),
        Operator::BrTable { targets } => {
            let ts: Vec<u32> = targets
                .targets()
                .map(|t| t.map(shift))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            Instruction::BrTable(ts.into(), shift(targets.default()))
        }
        other => RoundtripReencoder
            .instruction(other.clone())
            .map_err(|e| format!("{e:?}"))?,
    })
}
