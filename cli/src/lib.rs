//! `lpctl` as a library: the commands and engines, used by the binary and its tests.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
// the binary's own: `lpctl generate man|completion` (main.rs, where the command line is)
use clap_complete as _;
use clap_mangen as _;
pub mod bench;
pub mod check;
pub mod engine;
pub mod log_cmd;
pub mod lua_api;
pub mod map_cmd;
pub mod nft_cmd;
pub mod nft_text;
pub mod output;
pub mod pack;
pub mod pcap;
pub mod rule_cmd;
pub mod run;
pub mod save_cmd;
pub mod script_cmd;
pub mod serve;
