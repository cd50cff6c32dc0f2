/* The guest ABI for the guest's C (abi/src/guest.rs, abi/src/verdict.rs).
 * Generated from abi/ by `cargo run -p luapkt-tests --bin abi-headers`: do not edit. */
#ifndef LP_ABI_H
#define LP_ABI_H

/* verdict codes (lp.ACCEPT, ...) */
#define LP_ACCEPT 1
#define LP_DROP 2
#define LP_CONTINUE 3
#define LP_BREAK 4
#define LP_QUEUE_BASE 0x10000
#define LP_QUEUE_MAX 0xffff

/* what the `try` import returns */
#define LP_TRY_OK 0
#define LP_TRY_THREW 1

/* lp_features() bits */
#define LP_FEATURE_QUEUE 1

/* levels of the `log` import */
#define LP_LOG_INFO 0
#define LP_LOG_WARN 1
#define LP_LOG_DEBUG 2

/* lp.map: operations, values, the spec's layout and results (abi::guest::map) */
#define LP_MAP_GET (0)
#define LP_MAP_SET (1)
#define LP_MAP_DELETE (2)
#define LP_MAP_ADD (3)
#define LP_MAP_LEN (4)
#define LP_MAP_ABSENT (-1)
#define LP_MAP_E_KEY (-2)
#define LP_MAP_E_VALUE (-3)
#define LP_MAP_E_TYPE (-4)
#define LP_MAP_E_FULL (-5)
#define LP_MAP_E_ID (-6)
#define LP_MAP_E_RANGE (-7)
#define LP_MAP_E_SPEC (-8)
#define LP_MAP_E_LATE (-9)
#define LP_MAP_E_TOO_MANY (-10)
#define LP_MAP_E_REDECLARED (-11)
#define LP_MAP_E_MEMORY (-12)
#define LP_MAP_E_ROOM (-13)
#define LP_MAP_NUMBER 9
#define LP_MAP_INT 1
#define LP_MAP_FLOAT 2
#define LP_MAP_SPEC_NAME 12
#define LP_MAP_KIND_HASH 0
#define LP_MAP_KIND_LRU 1
#define LP_MAP_VALUE_NUMBER 0
#define LP_MAP_VALUE_BYTES 1
#define LP_MAP_NAME_MAX 63

/* lp.send: kinds and results (abi::guest::send) */
#define LP_SEND_KIND_SEND (0)
#define LP_SEND_KIND_REPLY (1)
#define LP_SEND_E_MALFORMED (-1)
#define LP_SEND_E_PACKETS (-2)
#define LP_SEND_E_BYTES (-3)
#define LP_SEND_E_RATE (-4)
#define LP_SEND_E_ROUTE (-5)
#define LP_SEND_E_MEMORY (-6)
#define LP_SEND_E_UNAVAILABLE (-7)
#define LP_SEND_E_RANGE (-8)
#define LP_SEND_PACKET_MAX 65535

/* lp.timer: operations and results (abi::guest::timer) */
#define LP_TIMER_ARM (0)
#define LP_TIMER_CANCEL (1)
#define LP_TIMER_E_TOO_MANY (-1)
#define LP_TIMER_E_RATE (-2)
#define LP_TIMER_E_RANGE (-3)
#define LP_TIMER_E_UNAVAILABLE (-4)
#define LP_TIMER_E_NOT_PENDING (-5)
#define LP_TIMER_ARG (-1)
#define LP_TIMER_DELAY_MAX_MS 3600000

/* statuses of a failed call (negative) */
#define LP_ERR_RUNTIME (-1)
#define LP_ERR_MEMORY (-2)
#define LP_ERR_RETURN (-3)
#define LP_ERR_INSTRUCTIONS (-4)
#define LP_ERR_STACK (-5)
#define LP_ERR_SYNTAX (-6)
#define LP_ERR_NO_FUNCTION (-7)
#define LP_ERR_HANDLER (-8)
#define LP_ERR_FUEL (-9)

/* the packet context: byte offsets of its fields */
#define LP_CTX_LEN 0
#define LP_CTX_WIN 4
#define LP_CTX_L4OFF 8
#define LP_CTX_MARK 12
#define LP_CTX_NFPROTO 16
#define LP_CTX_L4PROTO 17
#define LP_CTX_FLAGS 18
#define LP_CTX_HOOK 19
#define LP_CTX_CSUM 20
#define LP_CTX_CT_STATE 21
#define LP_CTX_OUT 22
#define LP_CTX_IIFNAME 24
#define LP_CTX_OIFNAME 40
#define LP_CTX_CT_MARK 56
#define LP_CTX_CT_ID 60
#define LP_CTX_DIRTY_LO 64
#define LP_CTX_DIRTY_HI 68
#define LP_CTX_ETH 72
#define LP_CTX_ETH_LEN 14
#define LP_CTX_WINDOW 128
#define LP_CTX_WINDOW_CAP 2048
#define LP_CTX_SIZE (LP_CTX_WINDOW + LP_CTX_WINDOW_CAP)

/* context flags (LP_CTX_FLAGS) */
#define LP_FLAG_FRAG 1
#define LP_FLAG_NONFIRST 2
#define LP_FLAG_L4 4
#define LP_FLAG_CT 8
#define LP_FLAG_ETH 16

/* checksum state (LP_CTX_CSUM) */
#define LP_CSUM_COMPLETE 0
#define LP_CSUM_PARTIAL 1

/* conntrack state bits (LP_CTX_CT_STATE), as nft's `ct state` */
#define LP_CT_INVALID 1
#define LP_CT_ESTABLISHED 2
#define LP_CT_RELATED 4
#define LP_CT_NEW 8
#define LP_CT_UNTRACKED 64

/* metadata the call changed (LP_CTX_OUT) */
#define LP_OUT_MARK 1
#define LP_OUT_CT_MARK 2
#define LP_OUT_ETH 4

/* families (LP_CTX_NFPROTO) */
#define LP_NFPROTO_IPV4 2
#define LP_NFPROTO_IPV6 10

#endif /* LP_ABI_H */
