//! The guest's exports as an interpreter's typed functions, written once for the engines that
//! have them (wasmi here, wasmtime in lpctl): both spell a typed export `TypedFunc<P, R>`,
//! look it up with `get_typed_func` and call it with `call(store, params)`, so one macro gives
//! each the struct, its lookup at instantiation and the dispatch of [`Exec::call`]. (The
//! compiled engine calls the translated exports by number instead: `compiled_exec.rs`.)
//!
//! [`Exec::call`]: crate::call::Exec::call

#[doc(hidden)]
pub use abi::guest as __names;

/// `guest_exports!(Name, TypedFunc, Func, Instance, Store, CallError, LookupError, lookup)`
/// defines `struct Name` with a typed function for each [`Export`](crate::call::Export) and:
/// - `Name::find(inst, store)`: each export by `lookup(inst, store, name)` (the engine's
///   `get_typed_func` with the loader's error), `lp_features` optional;
/// - `call(store, export, args)`: the call, missing arguments 0, `lp_free`'s no result 0, a
///   missing `lp_features` !0;
/// - `has(export)`, and `func(export)`: the untyped function (for calls taken in slices).
#[macro_export]
macro_rules! guest_exports {
    ($name:ident, $typed:ident, $func:ty, $inst:ty, $store:ty, $err:ty, $lerr:ty, $lookup:path) => {
        /// The guest's exports the call protocol uses (`runtime::guest_exports!`).
        struct $name {
            ctx: $typed<(), i32>,
            init: $typed<i32, i32>,
            load: $typed<(i32, i32, i32, i32), i32>,
            run: $typed<(i32, i32, i32, i32), i32>,
            recover: $typed<(), i32>,
            errmsg: $typed<(), i32>,
            errlen: $typed<(), i32>,
            mem_used: $typed<(), i32>,
            alloc: $typed<i32, i32>,
            free: $typed<i32, ()>,
            ref_global: $typed<(i32, i32), i32>,
            ref_string: $typed<(i32, i32), i32>,
            features: Option<$typed<(), i32>>,
        }

        impl $name {
            fn find(inst: &$inst, store: &mut $store) -> Result<Self, $lerr> {
                use $crate::exports::__names as n;
                Ok($name {
                    ctx: $lookup(inst, store, n::EXPORT_CTX)?,
                    init: $lookup(inst, store, n::EXPORT_INIT)?,
                    load: $lookup(inst, store, n::EXPORT_LOAD)?,
                    run: $lookup(inst, store, n::EXPORT_RUN)?,
                    recover: $lookup(inst, store, n::EXPORT_RECOVER)?,
                    errmsg: $lookup(inst, store, n::EXPORT_ERRMSG)?,
                    errlen: $lookup(inst, store, n::EXPORT_ERRLEN)?,
                    mem_used: $lookup(inst, store, n::EXPORT_MEM_USED)?,
                    alloc: $lookup(inst, store, n::EXPORT_ALLOC)?,
                    free: $lookup(inst, store, n::EXPORT_FREE)?,
                    ref_global: $lookup(inst, store, n::EXPORT_REF_GLOBAL)?,
                    ref_string: $lookup(inst, store, n::EXPORT_REF_STRING)?,
                    // a guest without the export may do anything
                    features: $lookup(inst, store, n::EXPORT_FEATURES).ok(),
                })
            }

            fn call(
                &self,
                s: &mut $store,
                f: $crate::call::Export,
                args: &[i32],
            ) -> Result<i32, $err> {
                use $crate::call::Export;
                let a = |i: usize| args.get(i).copied().unwrap_or(0);
                match f {
                    Export::Run => self.run.call(s, (a(0), a(1), a(2), a(3))),
                    Export::Recover => self.recover.call(s, ()),
                    Export::ErrMsg => self.errmsg.call(s, ()),
                    Export::ErrLen => self.errlen.call(s, ()),
                    Export::Ctx => self.ctx.call(s, ()),
                    Export::Init => self.init.call(s, a(0)),
                    Export::Load => self.load.call(s, (a(0), a(1), a(2), a(3))),
                    Export::MemUsed => self.mem_used.call(s, ()),
                    Export::Alloc => self.alloc.call(s, a(0)),
                    Export::Free => self.free.call(s, a(0)).map(|()| 0),
                    Export::RefGlobal => self.ref_global.call(s, (a(0), a(1))),
                    Export::RefString => self.ref_string.call(s, (a(0), a(1))),
                    Export::Features => match &self.features {
                        Some(f) => f.call(s, ()),
                        None => Ok(!0),
                    },
                }
            }

            fn has(&self, f: $crate::call::Export) -> bool {
                f != $crate::call::Export::Features || self.features.is_some()
            }

            #[allow(dead_code)] // wasmtime's runs give their slices at once (lpctl)
            fn func(&self, f: $crate::call::Export) -> Option<$func> {
                use $crate::call::Export;
                Some(match f {
                    Export::Ctx => *self.ctx.func(),
                    Export::Init => *self.init.func(),
                    Export::Load => *self.load.func(),
                    Export::Run => *self.run.func(),
                    Export::Recover => *self.recover.func(),
                    Export::ErrMsg => *self.errmsg.func(),
                    Export::ErrLen => *self.errlen.func(),
                    Export::MemUsed => *self.mem_used.func(),
                    Export::Alloc => *self.alloc.func(),
                    Export::Free => *self.free.func(),
                    Export::RefGlobal => *self.ref_global.func(),
                    Export::RefString => *self.ref_string.func(),
                    Export::Features => *self.features.as_ref()?.func(),
                })
            }
        }
    };
}
