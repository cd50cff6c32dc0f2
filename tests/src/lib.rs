//! Test support shared across the workspace: the hostile wasm modules the runtime's tests
//! and the VM suite's packages are built from.

pub mod hostile;
