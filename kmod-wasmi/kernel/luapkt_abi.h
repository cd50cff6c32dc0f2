/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * luapkt netlink ABI: the nft expression "lua" and the generic netlink family "luapkt"
 * (abi/src/netlink.rs, abi/src/verdict.rs).
 * Generated from abi/ by `cargo run -p luapkt-tests --bin abi-headers`: do not edit.
 */
#ifndef _LUAPKT_ABI_H
#define _LUAPKT_ABI_H

#define NFT_LUA_EXPR_NAME "lua"

/* attributes of the "lua" expression */
enum nft_lua_attributes {
	NFTA_LUA_UNSPEC = 0,
	NFTA_LUA_SCRIPT = 1, /* NLA_NUL_STRING, script name */
	NFTA_LUA_FUNC = 2, /* NLA_NUL_STRING, entry function */
	NFTA_LUA_ARG = 3, /* NLA_BINARY, argument passed to the entry */
	NFTA_LUA_FLAGS = 4, /* NLA_U32 (big endian), NFT_LUA_F_* */
	__NFTA_LUA_MAX
};
#define NFTA_LUA_MAX (__NFTA_LUA_MAX - 1)

#define LUAPKT_NAME_MAX 63 /* bytes, without the terminating NUL */
#define LUAPKT_ARG_MAX 256
#define NFT_LUA_F_ALL 0 /* no flag defined yet */
#define NFT_LUA_DEFAULT_FUNC "process_packet"

#define LUAPKT_GENL_NAME "luapkt"
#define LUAPKT_GENL_VERSION 1

enum luapkt_commands {
	LUAPKT_CMD_UNSPEC = 0,
	LUAPKT_CMD_LOAD_BEGIN = 1,
	LUAPKT_CMD_LOAD_CHUNK = 2,
	LUAPKT_CMD_LOAD_COMMIT = 3,
	LUAPKT_CMD_UNLOAD = 4,
	LUAPKT_CMD_GET = 5,
	LUAPKT_CMD_SET_LIMITS = 6,
	LUAPKT_CMD_LOAD_ABORT = 7,
	LUAPKT_CMD_LOG_READ = 8,
	LUAPKT_CMD_ERRORS_READ = 9,
	LUAPKT_CMD_MAP_LIST = 10,
	LUAPKT_CMD_MAP_DUMP = 11,
	LUAPKT_CMD_MAP_GET = 12,
	LUAPKT_CMD_MAP_SET = 13,
	LUAPKT_CMD_MAP_DELETE = 14,
	__LUAPKT_CMD_MAX
};
#define LUAPKT_CMD_MAX (__LUAPKT_CMD_MAX - 1)

enum luapkt_attributes {
	LUAPKT_A_UNSPEC = 0,
	LUAPKT_A_NAME = 1, /* NLA_NUL_STRING */
	LUAPKT_A_UPLOAD_ID = 2, /* NLA_U32 */
	LUAPKT_A_SIZE = 3, /* NLA_U32 */
	LUAPKT_A_OFFSET = 4, /* NLA_U32 */
	LUAPKT_A_DATA = 5, /* NLA_BINARY */
	LUAPKT_A_FUEL = 6, /* NLA_U64 */
	LUAPKT_A_INSTRUCTIONS = 7, /* NLA_U32 */
	LUAPKT_A_MEMORY = 8, /* NLA_U64 */
	LUAPKT_A_RECURSION = 9, /* NLA_U32 */
	LUAPKT_A_PCALL_DEPTH = 10, /* NLA_U32 */
	LUAPKT_A_ON_ERROR = 11, /* NLA_U8 */
	LUAPKT_A_FLAGS = 12, /* NLA_U32 */
	LUAPKT_A_STATS = 13, /* nested, LUAPKT_STAT_* */
	LUAPKT_A_TAG = 14, /* NLA_BINARY, 8 bytes */
	LUAPKT_A_REFS = 15, /* NLA_U32 */
	LUAPKT_A_MEM_BYTES = 16, /* NLA_U64 */
	LUAPKT_A_INSTANCES = 17, /* NLA_U32 */
	LUAPKT_A_PAD = 18,
	LUAPKT_A_LOAD_FUEL = 19, /* NLA_U64 */
	LUAPKT_A_ENGINE = 20, /* NLA_U8, LUAPKT_ENGINE_* */
	LUAPKT_A_LOG_SEQ = 21, /* NLA_U64, a record's sequence number */
	LUAPKT_A_LOG_DATA = 22, /* NLA_BINARY, records (abi/src/records.rs) */
	LUAPKT_A_LOG_LOST = 23, /* NLA_U64, records overwritten unread */
	LUAPKT_A_MAP_NAME = 24, /* NLA_NUL_STRING, a map of the script */
	LUAPKT_A_MAP_KEY = 25, /* NLA_BINARY, a map key */
	LUAPKT_A_MAP_VALUE = 26, /* NLA_BINARY, a map value */
	__LUAPKT_A_MAX
};
#define LUAPKT_A_MAX (__LUAPKT_A_MAX - 1)

enum luapkt_stat_attributes {
	LUAPKT_STAT_UNSPEC = 0,
	LUAPKT_STAT_RUN_CNT = 1,
	LUAPKT_STAT_RUN_TIME_NS = 2,
	LUAPKT_STAT_ACCEPT = 3,
	LUAPKT_STAT_DROP = 4,
	LUAPKT_STAT_CONTINUE = 5,
	LUAPKT_STAT_BREAK = 6,
	LUAPKT_STAT_QUEUE = 7,
	LUAPKT_STAT_ERR_LUA = 8,
	LUAPKT_STAT_ERR_MEMORY = 9,
	LUAPKT_STAT_ERR_FUEL = 10,
	LUAPKT_STAT_ERR_INSTRUCTIONS = 11,
	LUAPKT_STAT_ERR_STACK = 12,
	LUAPKT_STAT_ERR_RETURN = 13,
	LUAPKT_STAT_ERR_TRAP = 14,
	LUAPKT_STAT_FUEL_TOTAL = 15,
	LUAPKT_STAT_FUEL_MAX = 16,
	LUAPKT_STAT_REBUILDS = 17,
	LUAPKT_STAT_PAD = 18,
	LUAPKT_STAT_REBUILD_FAILURES = 19,
	LUAPKT_STAT_RUN_TIME_MAX_NS = 20,
	LUAPKT_STAT_LOG_LINES = 21,
	LUAPKT_STAT_LOG_DROPPED = 22,
	__LUAPKT_STAT_MAX
};
#define LUAPKT_STAT_MAX (__LUAPKT_STAT_MAX - 1)

#define LUAPKT_ON_ERROR_BREAK 0
#define LUAPKT_ON_ERROR_ACCEPT 1
#define LUAPKT_ON_ERROR_DROP 2

#define LUAPKT_ENGINE_WASMI 1
#define LUAPKT_ENGINE_COMPILED 2

#define LUAPKT_FLAG_REPLACE 1

#define LUAPKT_PACKAGE_MAX 4194304
#define LUAPKT_CHUNK_MAX 32768
#define LUAPKT_UPLOADS_MAX 16
#define LUAPKT_READ_MAX 16384 /* record bytes in one LOG_READ/ERRORS_READ reply */
#define LUAPKT_MAP_KEY_MAX 256
#define LUAPKT_MAP_VALUE_MAX 4096
#define LUAPKT_MAP_NAME_MAX 63

/* verdict codes the runtime returns */
#define LUAPKT_VERDICT_ACCEPT 1
#define LUAPKT_VERDICT_DROP 2
#define LUAPKT_VERDICT_CONTINUE 3
#define LUAPKT_VERDICT_BREAK 4
#define LUAPKT_VERDICT_QUEUE_BASE 0x10000
#define LUAPKT_VERDICT_QUEUE_MAX 0xffff

#endif /* _LUAPKT_ABI_H */
