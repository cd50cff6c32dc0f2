//! nf_tables against the fake kernel: exact request bytes, canned and broken replies.

use super::*;
use crate::fake::{self, FakeKernel};
use netlink_packet_core::{NLM_F_DUMP_INTR, NLM_F_MULTIPART};

fn client(kernel: &mut FakeKernel) -> Nftables<&mut FakeKernel> {
    Nftables::with_transport(kernel)
}

/// A message as the kernel sends it in dumps and echoes.
fn kernel_msg(msg: u8, flags: u16, seq: u32, family: Family) -> MessageBuilder {
    MessageBuilder::new(nft_type(msg), flags, seq).fixed_header(&nfgenmsg(family.number(), 0))
}

fn expr(m: &mut MessageBuilder, name: &str, data: impl FnOnce(&mut MessageBuilder)) {
    m.begin_nest(NFTA_LIST_ELEM)
        .attr_str(NFTA_EXPR_NAME, name)
        .begin_nest(NFTA_EXPR_DATA);
    data(m);
    m.end_nest().end_nest();
}

fn rule_msg(seq: u32, flags: u16, chain: &str, handle: u64, exprs: &[&str]) -> Vec<u8> {
    let mut m = kernel_msg(NFT_MSG_NEWRULE, flags, seq, Family::Inet);
    m.attr_str(NFTA_RULE_TABLE, "filter")
        .attr_str(NFTA_RULE_CHAIN, chain)
        .attr_u64_be(NFTA_RULE_HANDLE, handle)
        .begin_nest(NFTA_RULE_EXPRESSIONS);
    for name in exprs {
        match *name {
            "lua" => expr(&mut m, "lua", |m| {
                m.attr_str(lua_attr::SCRIPT, "web")
                    .attr_str(lua_attr::FUNC, "process_packet")
                    .attr(lua_attr::ARG, b"x=1");
            }),
            "counter" => expr(&mut m, "counter", |m| {
                m.attr_u64_be(1, 0).attr_u64_be(2, 0);
            }),
            other => expr(&mut m, other, |m| {
                m.attr_u32_be(1, 1);
            }),
        }
    }
    m.end_nest();
    m.finish()
}

fn lua_rule_batch() -> Batch {
    let mut batch = Batch::new();
    batch
        .add_table(Family::Inet, "filter")
        .add_chain(Chain::regular(Family::Inet, "filter", "lua-web").with_comment("web"))
        .add_rule(
            Family::Inet,
            "filter",
            "lua-web",
            LuaExpr::new("web").with_arg("x=1"),
        );
    batch
}

#[rustfmt::skip]
const LUA_RULE_BATCH: &[u8] = &[
    // NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq 1; nfgenmsg AF_UNSPEC, res_id NFNL_SUBSYS_NFTABLES
    20, 0, 0, 0, 0x10, 0, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 10,
    // NFT_MSG_NEWTABLE, REQUEST|ACK|CREATE, seq 2; inet
    32, 0, 0, 0, 0x00, 0x0a, 0x05, 0x04, 2, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0,
    11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0, // NFTA_TABLE_NAME
    // NFT_MSG_NEWCHAIN, REQUEST|ACK|CREATE, seq 3; inet
    56, 0, 0, 0, 0x03, 0x0a, 0x05, 0x04, 3, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0,
    11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0, // NFTA_CHAIN_TABLE
    12, 0, 3, 0, b'l', b'u', b'a', b'-', b'w', b'e', b'b', 0, // NFTA_CHAIN_NAME
    // NFTA_CHAIN_USERDATA: nftnl_udata { type COMMENT, len 4, "web\0" }
    10, 0, 12, 0, 0, 4, b'w', b'e', b'b', 0, 0, 0,
    // NFT_MSG_NEWRULE, REQUEST|ACK|ECHO|CREATE|APPEND, seq 4; inet
    80, 0, 0, 0, 0x06, 0x0a, 0x0d, 0x0c, 4, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0,
    11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0, // NFTA_RULE_TABLE
    12, 0, 2, 0, b'l', b'u', b'a', b'-', b'w', b'e', b'b', 0, // NFTA_RULE_CHAIN
    36, 0, 4, 0x80, // NFTA_RULE_EXPRESSIONS
    32, 0, 1, 0x80, // NFTA_LIST_ELEM
    8, 0, 1, 0, b'l', b'u', b'a', 0, // NFTA_EXPR_NAME "lua"
    20, 0, 2, 0x80, // NFTA_EXPR_DATA
    8, 0, 1, 0, b'w', b'e', b'b', 0, // NFTA_LUA_SCRIPT "web"
    7, 0, 3, 0, b'x', b'=', b'1', 0, // NFTA_LUA_ARG "x=1", binary: no NUL
    // NFNL_MSG_BATCH_END, seq 5
    20, 0, 0, 0, 0x11, 0, 0x01, 0, 5, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 10,
];

/// Offset of the rule's NFTA_LIST_ELEM in its message: where the kernel points extack when it
/// has no `lua` expression.
const LUA_ELEM_OFFSET: u32 = 16 + 4 + 12 + 12 + 4;

#[test]
fn batch_bytes_and_echoed_rule() {
    let mut kernel = FakeKernel::new();
    let mut newgen = kernel_msg(NFT_MSG_NEWGEN, 0, 4, Family::Inet);
    newgen.attr_u32_be(1, 12);
    kernel.reply(vec![fake::datagram(&[
        rule_msg(4, 0, "lua-web", 7, &["lua"]),
        newgen.finish(),
        fake::ack(2),
        fake::ack(3),
        fake::ack(4),
    ])]);
    let rules = client(&mut kernel).commit(&lua_rule_batch()).unwrap();
    assert_eq!(kernel.sent(), [LUA_RULE_BATCH.to_vec()]);
    assert_eq!(kernel.unused_replies(), 0);
    assert_eq!(
        rules,
        [Rule {
            family: Family::Inet,
            table: "filter".into(),
            chain: "lua-web".into(),
            handle: 7,
            comment: None,
            exprs: vec![Expr::Lua(
                LuaExpr::new("web")
                    .with_func("process_packet")
                    .with_arg("x=1")
            )],
        }]
    );
}

#[test]
fn acks_may_come_one_datagram_each() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::ack(2), fake::ack(3), fake::ack(4)]);
    assert_eq!(client(&mut kernel).commit(&lua_rule_batch()).unwrap(), []);
}

#[test]
fn refusal_names_the_object() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        fake::ack(2),
        fake::error(3, libc::ENOENT, None),
        fake::ack(4),
    ])]);
    let err = client(&mut kernel).commit(&lua_rule_batch()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain inet filter lua-web: No such file or directory (os error 2)"
    );
    assert_eq!(err.errno(), Some(libc::ENOENT));
}

#[test]
fn refusal_names_the_attribute_and_carries_extack() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        fake::ack(2),
        fake::ack(3),
        fake::error_at(4, libc::ENOENT, None, LUA_ELEM_OFFSET),
    ])]);
    let err = client(&mut kernel).commit(&lua_rule_batch()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rule inet filter lua-web: expression lua: No such file or directory (os error 2) \
         (nft_lua is not loaded, or no script web is loaded)"
    );

    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        fake::ack(2),
        fake::error_at(3, libc::EOPNOTSUPP, Some("chain type not supported"), 20),
        fake::ack(4),
    ])]);
    let err = client(&mut kernel).commit(&lua_rule_batch()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain inet filter lua-web: table filter: Operation not supported (os error 95): \
         chain type not supported"
    );
    let Error::Kernel(k) = err else {
        panic!("not a kernel error")
    };
    assert_eq!(k.message.as_deref(), Some("chain type not supported"));
    assert_eq!(k.attribute.as_deref(), Some("table filter"));
}

#[test]
fn first_refusal_in_batch_order_wins() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        fake::ack(2),
        fake::error(3, libc::EEXIST, None),
        fake::error(4, libc::ENOENT, None),
    ])]);
    let err = client(&mut kernel).commit(&lua_rule_batch()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("chain inet filter lua-web: File exists"),
        "{err}"
    );
}

#[test]
fn refusal_of_the_whole_batch() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::error(1, libc::EPERM, None)]);
    let err = client(&mut kernel).commit(&lua_rule_batch()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nf_tables transaction: Operation not permitted (os error 1)"
    );
}

#[test]
fn stale_replies_are_skipped() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        fake::error(77, libc::EBUSY, None),
        fake::ack(2),
        fake::ack(3),
        fake::ack(4),
    ])]);
    client(&mut kernel).commit(&lua_rule_batch()).unwrap();
}

#[test]
fn missing_acks_end_in_an_error_not_a_hang() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::ack(2)]);
    let err = client(&mut kernel).commit(&lua_rule_batch()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain inet filter lua-web: netlink receive: fake kernel: no reply queued"
    );
}

#[test]
fn base_chain_delete_rule_delete_chain_bytes() {
    let mut batch = Batch::new();
    batch
        .create_chain(Chain::regular(Family::Ip, "t", "in").with_base(BaseChain {
            chain_type: ChainType::Filter,
            hook: Hook::Input,
            priority: -10,
            policy: Some(Policy::Drop),
            device: None,
        }))
        .delete_rule(Family::Ip, "t", "c", 0x0102_0304_0506_0708)
        .delete_chain(Family::Ip, "t", "c");
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        fake::ack(2),
        fake::ack(3),
        fake::ack(4),
    ])]);
    client(&mut kernel).commit(&batch).unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        20, 0, 0, 0, 0x10, 0, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10,
        // NFT_MSG_NEWCHAIN, REQUEST|ACK|EXCL|CREATE, seq 2; ip
        76, 0, 0, 0, 0x03, 0x0a, 0x05, 0x06, 2, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0,
        6, 0, 1, 0, b't', 0, 0, 0, // NFTA_CHAIN_TABLE
        7, 0, 3, 0, b'i', b'n', 0, 0, // NFTA_CHAIN_NAME
        20, 0, 4, 0x80, // NFTA_CHAIN_HOOK
        8, 0, 1, 0, 0, 0, 0, 1, // NFTA_HOOK_HOOKNUM: NF_INET_LOCAL_IN
        8, 0, 2, 0, 0xff, 0xff, 0xff, 0xf6, // NFTA_HOOK_PRIORITY: -10
        8, 0, 5, 0, 0, 0, 0, 0, // NFTA_CHAIN_POLICY: NF_DROP
        11, 0, 7, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0, // NFTA_CHAIN_TYPE
        // NFT_MSG_DELRULE, REQUEST|ACK, seq 3; ip
        48, 0, 0, 0, 0x08, 0x0a, 0x05, 0x00, 3, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0,
        6, 0, 1, 0, b't', 0, 0, 0, // NFTA_RULE_TABLE
        6, 0, 2, 0, b'c', 0, 0, 0, // NFTA_RULE_CHAIN
        12, 0, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, // NFTA_RULE_HANDLE, big endian
        // NFT_MSG_DELCHAIN, REQUEST|ACK, seq 4; ip
        36, 0, 0, 0, 0x05, 0x0a, 0x05, 0x00, 4, 0, 0, 0, 0, 0, 0, 0,
        2, 0, 0, 0,
        6, 0, 1, 0, b't', 0, 0, 0, // NFTA_CHAIN_TABLE
        6, 0, 3, 0, b'c', 0, 0, 0, // NFTA_CHAIN_NAME
        20, 0, 0, 0, 0x11, 0, 0x01, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10,
    ];
    assert_eq!(kernel.sent(), [expected.to_vec()]);
}

#[test]
fn invalid_requests_are_refused_before_sending() {
    let too_long = "x".repeat(256);
    let cases: Vec<(Batch, &str)> = vec![
        (
            {
                let mut b = Batch::new();
                b.add_table(Family::Inet, "");
                b
            },
            "table inet : table name must be 1 to 255 bytes without NUL",
        ),
        (
            {
                let mut b = Batch::new();
                b.add_chain(Chain::regular(Family::Inet, "t", too_long.as_str()));
                b
            },
            "chain name must be 1 to 255 bytes",
        ),
        (
            {
                let mut b = Batch::new();
                b.add_chain(Chain::regular(Family::Inet, "t", "c").with_comment("c".repeat(129)));
                b
            },
            "chain inet t c: comment must be at most 128 bytes without NUL",
        ),
        (
            {
                let mut b = Batch::new();
                b.add_rule(Family::Inet, "t", "c", LuaExpr::new("no spaces"));
                b
            },
            "script no spaces: a script name is 1 to 63 characters",
        ),
        (
            {
                let mut b = Batch::new();
                b.add_rule(
                    Family::Inet,
                    "t",
                    "c",
                    LuaExpr::new("ok").with_arg("a".repeat(257)),
                );
                b
            },
            "rule inet t c: argument of 257 bytes, at most 256 allowed",
        ),
        (
            {
                let mut b = Batch::new();
                b.add_rule(Family::Inet, "t", "c", LuaExpr::new("ok").with_func("f\0"));
                b
            },
            "rule inet t c: function name must be 1 to 63 bytes without NUL",
        ),
        (
            {
                let mut b = Batch::new();
                b.add_chain(
                    Chain::regular(Family::Netdev, "t", "c").with_base(BaseChain {
                        chain_type: ChainType::Filter,
                        hook: Hook::Input,
                        priority: 0,
                        policy: None,
                        device: None,
                    }),
                );
                b
            },
            "chain netdev t c: no input hook in family netdev",
        ),
    ];
    for (batch, expected) in cases {
        let mut kernel = FakeKernel::new();
        let err = client(&mut kernel).commit(&batch).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
        assert!(kernel.sent().is_empty());
    }
    // The longest accepted argument, and an empty batch sends nothing.
    let mut batch = Batch::new();
    batch.add_rule(
        Family::Inet,
        "t",
        "c",
        LuaExpr::new("ok").with_arg("a".repeat(256)),
    );
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::ack(2)]);
    client(&mut kernel).commit(&batch).unwrap();
    client(&mut kernel).commit(&Batch::new()).unwrap();
    assert_eq!(kernel.sent().len(), 1);
}

#[test]
fn lua_func_and_flags_are_encoded() {
    let mut batch = Batch::new();
    let lua = LuaExpr {
        flags: 0x0102_0304,
        ..LuaExpr::new("web").with_func("on_dns")
    };
    batch.add_rule(Family::Inet, "t", "c", lua);
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::ack(2)]);
    client(&mut kernel).commit(&batch).unwrap();
    let sent = &kernel.sent()[0];
    #[rustfmt::skip]
    let data: &[u8] = &[
        32, 0, 2, 0x80, // NFTA_EXPR_DATA
        8, 0, 1, 0, b'w', b'e', b'b', 0, // NFTA_LUA_SCRIPT
        11, 0, 2, 0, b'o', b'n', b'_', b'd', b'n', b's', 0, 0, // NFTA_LUA_FUNC, NUL-terminated
        8, 0, 4, 0, 1, 2, 3, 4, // NFTA_LUA_FLAGS, big endian
    ];
    assert!(sent.windows(data.len()).any(|w| w == data), "{sent:?}");
}

#[test]
fn list_rules_request_and_multipart_dump() {
    let multi = NLM_F_MULTIPART;
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![
        fake::datagram(&[
            rule_msg(1, multi, "input", 2, &["payload", "cmp", "counter"]),
            rule_msg(1, multi, "lua-web", 5, &["lua"]),
        ]),
        fake::datagram(&[
            rule_msg(1, multi, "lua-dns", 9, &["meta", "lua", "counter"]),
            fake::done(1),
        ]),
    ]);
    let rules = client(&mut kernel)
        .list_rules(Some(Family::Inet), Some("filter"), None)
        .unwrap();
    #[rustfmt::skip]
    let expected: &[u8] = &[
        // NFT_MSG_GETRULE, REQUEST|DUMP, seq 1; inet
        32, 0, 0, 0, 0x07, 0x0a, 0x01, 0x03, 1, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 0, 0,
        11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0, // NFTA_RULE_TABLE
    ];
    assert_eq!(kernel.sent(), [expected.to_vec()]);
    let names: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            r.exprs
                .iter()
                .map(|e| match e {
                    Expr::Lua(lua) => format!("lua:{}", lua.script),
                    Expr::Other(name) => name.clone(),
                })
                .collect()
        })
        .collect();
    assert_eq!(
        names,
        [
            vec!["payload", "cmp", "counter"],
            vec!["lua:web"],
            vec!["meta", "lua:web", "counter"]
        ]
    );
    assert_eq!(rules[2].handle, 9);
    assert_eq!(rules[2].chain, "lua-dns");
}

#[test]
fn list_lua_rules_flattens() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        rule_msg(1, NLM_F_MULTIPART, "input", 2, &["counter"]),
        rule_msg(1, NLM_F_MULTIPART, "lua-web", 5, &["lua"]),
        fake::done(1),
    ])]);
    let lua = client(&mut kernel)
        .list_lua_rules(None, None, None)
        .unwrap();
    assert_eq!(
        lua,
        [LuaRule {
            family: Family::Inet,
            table: "filter".into(),
            chain: "lua-web".into(),
            handle: 5,
            script: "web".into(),
            func: Some("process_packet".into()),
            arg: Some("x=1".into()),
        }]
    );
    // All families, no filter attribute.
    assert_eq!(kernel.sent()[0][16..20], [0, 0, 0, 0]);
    assert_eq!(kernel.sent()[0].len(), 20);
    let json = serde_json::to_value(&lua[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"family": "inet", "table": "filter", "chain": "lua-web", "handle": 5,
            "script": "web", "func": "process_packet", "arg": "x=1"})
    );
}

#[test]
fn interrupted_dump_is_retried() {
    let mut kernel = FakeKernel::new();
    kernel
        .reply(vec![fake::datagram(&[
            rule_msg(1, NLM_F_MULTIPART | NLM_F_DUMP_INTR, "a", 1, &["lua"]),
            fake::done(1),
        ])])
        .reply(vec![fake::datagram(&[
            rule_msg(2, NLM_F_MULTIPART, "a", 1, &["lua"]),
            rule_msg(2, NLM_F_MULTIPART, "a", 2, &["lua"]),
            fake::done(2),
        ])]);
    let rules = client(&mut kernel).list_rules(None, None, None).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(kernel.sent().len(), 2);

    let mut kernel = FakeKernel::new();
    for seq in 1..=3 {
        kernel.reply(vec![fake::datagram(&[
            rule_msg(seq, NLM_F_MULTIPART | NLM_F_DUMP_INTR, "a", 1, &["lua"]),
            fake::done(seq),
        ])]);
    }
    let err = client(&mut kernel)
        .list_rules(None, None, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list rules: the data changed during each of 3 dumps"
    );
}

#[test]
fn dump_errors() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::error(1, libc::EPERM, None)]);
    let err = client(&mut kernel)
        .list_rules(Some(Family::Ip), Some("t"), Some("c"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list rules ip t c: Operation not permitted (os error 1)"
    );

    // A dump that fails midway reports it in NLMSG_DONE.
    let mut done = MessageBuilder::new(
        netlink_packet_core::NLMSG_DONE,
        NLM_F_MULTIPART | netlink_packet_core::NLM_F_ACK_TLVS,
        1,
    )
    .fixed_header(&(-libc::EINTR).to_ne_bytes());
    done.attr_str(1, "dump interrupted");
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        rule_msg(1, NLM_F_MULTIPART, "a", 1, &["lua"]),
        done.finish(),
    ])]);
    let err = client(&mut kernel)
        .list_rules(None, None, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "list rules: Interrupted system call (os error 4): dump interrupted"
    );
}

#[test]
fn malformed_rules_are_errors() {
    let good = rule_msg(1, NLM_F_MULTIPART, "a", 1, &["lua", "counter"]);
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    // Cut inside the expressions: the message's length exceeds the datagram.
    cases.push((good[..good.len() - 6].to_vec(), "invalid netlink buffer"));
    // Without NFTA_RULE_HANDLE.
    let mut m = kernel_msg(NFT_MSG_NEWRULE, NLM_F_MULTIPART, 1, Family::Inet);
    m.attr_str(NFTA_RULE_TABLE, "t")
        .attr_str(NFTA_RULE_CHAIN, "c");
    cases.push((m.finish(), "NFTA_RULE_HANDLE missing"));
    // A handle of 4 bytes.
    let mut m = kernel_msg(NFT_MSG_NEWRULE, NLM_F_MULTIPART, 1, Family::Inet);
    m.attr_str(NFTA_RULE_TABLE, "t")
        .attr_str(NFTA_RULE_CHAIN, "c")
        .attr_u32_be(NFTA_RULE_HANDLE, 1);
    cases.push((
        m.finish(),
        "NFTA_RULE_HANDLE: 4 bytes where 8 were expected",
    ));
    // A lua expression without its script.
    let mut m = kernel_msg(NFT_MSG_NEWRULE, NLM_F_MULTIPART, 1, Family::Inet);
    m.attr_str(NFTA_RULE_TABLE, "t")
        .attr_str(NFTA_RULE_CHAIN, "c")
        .attr_u64_be(NFTA_RULE_HANDLE, 1)
        .begin_nest(NFTA_RULE_EXPRESSIONS);
    expr(&mut m, "lua", |m| {
        m.attr_str(lua_attr::FUNC, "f");
    });
    m.end_nest();
    cases.push((m.finish(), "NFTA_LUA_SCRIPT missing"));
    // An expression attribute whose length overruns its nest.
    let mut bad = good.clone();
    let elem = 16 + 4 + 12 + 8 + 12 + 4; // first NFTA_LIST_ELEM
    bad[elem] = 0xff;
    cases.push((bad, "bad attribute"));
    // An unknown family.
    let mut bad = good.clone();
    bad[16] = 99;
    cases.push((bad, "unknown family 99"));
    // A message that is not a rule.
    cases.push((
        kernel_msg(NFT_MSG_NEWCHAIN, NLM_F_MULTIPART, 1, Family::Inet).finish(),
        "unexpected message type 0x0a03",
    ));
    // Shorter than nfgenmsg.
    let mut short = MessageBuilder::new(nft_type(NFT_MSG_NEWRULE), NLM_F_MULTIPART, 1).finish();
    short[0] = 17;
    short.extend_from_slice(&[1, 0, 0, 0]);
    cases.push((short, "shorter than nfgenmsg"));
    for (message, reason) in cases {
        let mut kernel = FakeKernel::new();
        kernel.reply(vec![fake::datagram(&[message, fake::done(1)])]);
        let err = client(&mut kernel)
            .list_rules(None, None, None)
            .unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("list rules: malformed reply from the kernel: "),
            "{err}"
        );
        assert!(err.to_string().contains(reason), "{err} lacks {reason}");
    }
}

fn chain_msg(seq: u32, flags: u16, base: bool, udata: Option<&[u8]>) -> Vec<u8> {
    let mut m = kernel_msg(NFT_MSG_NEWCHAIN, flags, seq, Family::Inet);
    m.attr_str(NFTA_CHAIN_TABLE, "filter")
        .attr_str(NFTA_CHAIN_NAME, if base { "input" } else { "lua-web" })
        .attr_u64_be(NFTA_CHAIN_HANDLE, 3);
    if base {
        m.begin_nest(NFTA_CHAIN_HOOK)
            .attr_u32_be(NFTA_HOOK_HOOKNUM, 1)
            .attr_u32_be(NFTA_HOOK_PRIORITY, 0)
            .end_nest()
            .attr_u32_be(NFTA_CHAIN_POLICY, 1)
            .attr_str(NFTA_CHAIN_TYPE, "filter");
    }
    m.attr_u32_be(6, 1); // NFTA_CHAIN_USE, skipped
    if let Some(udata) = udata {
        m.attr(NFTA_CHAIN_USERDATA, udata);
    }
    m.finish()
}

#[test]
fn chains_listed_with_hooks_and_comments() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        chain_msg(1, NLM_F_MULTIPART, true, None),
        chain_msg(
            1,
            NLM_F_MULTIPART,
            false,
            Some(&comment_udata("", "runs lua script web").unwrap()),
        ),
        fake::done(1),
    ])]);
    let chains = client(&mut kernel)
        .list_chains(Some(Family::Inet), Some("filter"))
        .unwrap();
    assert_eq!(
        chains,
        [
            Chain {
                family: Family::Inet,
                table: "filter".into(),
                name: "input".into(),
                handle: Some(3),
                base: Some(BaseChain {
                    chain_type: ChainType::Filter,
                    hook: Hook::Input,
                    priority: 0,
                    policy: Some(Policy::Accept),
                    device: None,
                }),
                comment: None,
            },
            Chain {
                handle: Some(3),
                ..Chain::regular(Family::Inet, "filter", "lua-web")
                    .with_comment("runs lua script web")
            },
        ]
    );
    assert_eq!(
        serde_json::to_value(&chains[0]).unwrap(),
        serde_json::json!({"family": "inet", "table": "filter", "name": "input", "handle": 3,
            "type": "filter", "hook": "input", "priority": 0, "policy": "accept"})
    );
}

#[test]
fn get_chain_and_enoent() {
    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::datagram(&[
        chain_msg(1, 0, false, None),
        fake::ack(1),
    ])]);
    let chain = client(&mut kernel)
        .get_chain(Family::Inet, "filter", "lua-web")
        .unwrap();
    assert_eq!(chain.name, "lua-web");
    #[rustfmt::skip]
    let expected: &[u8] = &[
        // NFT_MSG_GETCHAIN, REQUEST|ACK, seq 1; inet
        44, 0, 0, 0, 0x04, 0x0a, 0x05, 0x00, 1, 0, 0, 0, 0, 0, 0, 0,
        1, 0, 0, 0,
        11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0,
        12, 0, 3, 0, b'l', b'u', b'a', b'-', b'w', b'e', b'b', 0,
    ];
    assert_eq!(kernel.sent(), [expected.to_vec()]);

    let mut kernel = FakeKernel::new();
    kernel.reply(vec![fake::error(1, libc::ENOENT, None)]);
    let err = client(&mut kernel)
        .get_chain(Family::Inet, "filter", "lua-web")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "chain inet filter lua-web: No such file or directory (os error 2)"
    );
}

#[test]
fn udata_comments() {
    let udata = comment_udata("", "web").unwrap();
    assert_eq!(udata, [0, 4, b'w', b'e', b'b', 0]);
    assert_eq!(udata_comment(&udata).as_deref(), Some("web"));
    // Another TLV first (a future nft's), then the comment.
    let mut two = vec![5, 2, 9, 9];
    two.extend_from_slice(&udata);
    assert_eq!(udata_comment(&two).as_deref(), Some("web"));
    let longest = "c".repeat(COMMENT_MAX);
    assert_eq!(
        udata_comment(&comment_udata("", &longest).unwrap()).as_deref(),
        Some(longest.as_str())
    );
    // Not NUL-terminated, truncated, not UTF-8, empty: no comment, no panic.
    for bad in [
        &[0u8, 3, b'w', b'e', b'b'][..],
        &[0, 9, b'w'],
        &[0],
        &[0, 0],
        &[0, 2, 0xff, 0],
        &[],
    ] {
        assert_eq!(udata_comment(bad), None, "{bad:?}");
    }
}

#[test]
fn names_parse_and_print() {
    for family in Family::ALL {
        assert_eq!(family.name().parse::<Family>().unwrap(), family);
        assert_eq!(Family::from_number(family.number()), Some(family));
    }
    assert!("ipv4".parse::<Family>().is_err());
    assert_eq!(Hook::from_number(Family::Netdev, 0), Hook::Ingress);
    assert_eq!(Hook::from_number(Family::Inet, 5), Hook::Ingress);
    assert_eq!(Hook::from_number(Family::Arp, 1), Hook::Output);
    assert_eq!(Hook::from_number(Family::Ip, 9), Hook::Other(9));
    assert_eq!("postrouting".parse::<Hook>().unwrap(), Hook::Postrouting);
    assert_eq!(serde_json::to_string(&Hook::Other(9)).unwrap(), "9");
    assert_eq!(
        serde_json::to_string(&[Expr::Lua(LuaExpr::new("web")), Expr::Other("cmp".into())])
            .unwrap(),
        r#"[{"lua":{"script":"web"}},{"cmp":null}]"#
    );
}

/// xorshift64*: deterministic noise for the robustness test.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Damaged dumps (flipped bytes, cuts, garbage tails) decode or fail: they never panic.
#[test]
fn damaged_replies_never_panic() {
    let rules = fake::datagram(&[
        rule_msg(
            1,
            NLM_F_MULTIPART,
            "input",
            2,
            &["payload", "cmp", "counter"],
        ),
        rule_msg(1, NLM_F_MULTIPART, "lua-web", 5, &["lua"]),
        fake::done(1),
    ]);
    let chains = fake::datagram(&[
        chain_msg(1, NLM_F_MULTIPART, true, None),
        chain_msg(
            1,
            NLM_F_MULTIPART,
            false,
            Some(&[0, 4, b'w', b'e', b'b', 0]),
        ),
        fake::done(1),
    ]);
    let mut noise = Noise(0x5eed);
    let (mut ok, mut failed) = (0, 0);
    for round in 0..4000 {
        let original = if round % 2 == 0 { &rules } else { &chains };
        let mut bytes = original.clone();
        match noise.below(3) {
            0 => {
                for _ in 0..=noise.below(4) {
                    let at = noise.below(bytes.len());
                    bytes[at] ^= 1 << noise.below(8);
                }
            }
            1 => bytes.truncate(noise.below(bytes.len())),
            _ => {
                let at = noise.below(bytes.len());
                bytes[at] = noise.next() as u8;
                bytes.extend((0..noise.below(12)).map(|_| noise.next() as u8));
            }
        }
        let mut kernel = FakeKernel::new();
        kernel.reply(vec![bytes]);
        let result = if round % 2 == 0 {
            client(&mut kernel).list_rules(None, None, None).map(|_| ())
        } else {
            client(&mut kernel).list_chains(None, None).map(|_| ())
        };
        match result {
            Ok(()) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    // Both outcomes occur: the noise reaches the decoders, not just the framing.
    assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
}
