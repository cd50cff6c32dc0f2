//! The single source of truth for every number two sides of luapkt must agree on.
//!
//! `guest` is the contract between the wasm guest (`guest-lua/`, C) and the hosts that run it
//! (`kmod-wasmi/`, the kernel, `lpctl`). The C side mirrors these values in
//! `guest-lua/c/lp_abi.h`; a test in `guest-lua` checks that both agree.
#![no_std]

pub mod guest;
pub mod limits;
pub mod module_caps;
pub mod netlink;
pub mod package;
pub mod verdict;
