//! The single source of truth for every number two sides of luapkt must agree on.
//!
//! `guest` is the contract between the wasm guest (`guest-lua/`, C) and the hosts that run it
//! (`kmod-wasmi/`, the kernel, `lpctl`). The C headers (`guest-lua/c/lp_abi.h`,
//! `kmod-wasmi/kernel/luapkt_abi.h`) are generated from these modules by
//! `cargo run -p luapkt-tests --bin abi-headers`, and `cargo test` fails when they are stale.
// (not for the kernel target, whose build-std adds crates of its own)
#![cfg_attr(not(any(test, target_os = "none")), warn(unused_crate_dependencies))]
#![no_std]

pub mod guest;
pub mod limits;
pub mod module_caps;
pub mod netlink;
pub mod package;
pub mod records;
pub mod verdict;
