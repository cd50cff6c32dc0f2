//! Test support and repository tools shared across the workspace: the hostile wasm modules
//! the runtime's tests and the VM suite's packages are built from, the test packet builders, and
//! the C headers made from `abi/`.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// the binaries' (hostile-packages packs guests)
use guest_lua as _;

pub mod c_headers;
pub mod hostile;
pub mod packets;
