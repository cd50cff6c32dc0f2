;; A module that breaks every rule the compiled engine's runtime must enforce, translated by
;; wasm2c like the guest and run by kmod-wasmi/runtime/tests/compiled_checks.rs through the same
;; runtime (wasm-rt.h, lp_w2c_rt.c, lp_w2c_jmp.c): each export hits one check.
(module
  (type $i2i (func (param i32) (result i32)))
  (type $v2i (func (result i32)))
  (memory (export "memory") 1 4)
  (table 2 funcref)
  (elem (i32.const 0) $ident $seven)
  (func $ident (type $i2i) (local.get 0))
  (func $seven (type $v2i) (i32.const 7))
  ;; bounds-checked memory
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "store") (param i32) (result i32)
    (i32.store (local.get 0) (i32.const 1))
    (i32.const 0))
  ;; typed call_indirect: entry 0 has the type, entry 1 does not, 2 is past the table
  (func (export "call") (param i32) (result i32)
    (call_indirect (type $i2i) (i32.const 5) (local.get 0)))
  ;; unbounded recursion: the prologue's depth and native-stack checks
  (func $rec (export "recurse") (param i32) (result i32)
    (call $rec (i32.add (local.get 0) (i32.const 1))))
  ;; memory.grow: refused, even within the room the host allocated
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
  (func (export "unreachable") (param i32) (result i32) (unreachable))
)
