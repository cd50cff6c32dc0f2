//! What the public API cannot show without nft_lua: the kernel echoes a rule added with
//! NLM_F_ECHO inside a batch (followed by NEWGEN), and `commit`'s exchange collects it with its
//! handle. The rule
//! here holds a `counter` expression instead of `lua`. Runs in a fresh network namespace.

use super::*;

#[test]
fn echoed_rule_carries_its_handle() {
    std::thread::spawn(|| {
        // SAFETY: unshare only changes this thread's namespaces; it takes no pointers.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNET) },
            0,
            "needs root"
        );
        let mut nft = Nftables::open().unwrap();
        let mut batch = Batch::new();
        batch
            .add_table(Family::Ip, "t")
            .add_chain(Chain::regular(Family::Ip, "t", "c"));
        nft.commit(&batch).unwrap();

        let conn = &mut nft.conn;
        let begin = conn.next_seq();
        let mut datagram = batch_control(NFNL_MSG_BATCH_BEGIN, begin);
        let seq = conn.next_seq();
        let mut m = nft_request(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK | NLM_F_ECHO,
            seq,
            Family::Ip.number(),
        );
        m.attr_str(NFTA_RULE_TABLE, "t")
            .attr_str(NFTA_RULE_CHAIN, "c")
            .begin_nest(NFTA_RULE_EXPRESSIONS)
            .begin_nest(NFTA_LIST_ELEM)
            .attr_str(NFTA_EXPR_NAME, "counter")
            .end_nest()
            .end_nest();
        datagram.extend_from_slice(&m.finish());
        datagram.extend_from_slice(&batch_control(NFNL_MSG_BATCH_END, conn.next_seq()));
        let answers = conn
            .exchange(
                &datagram,
                &[Pending::new(seq, "rule")],
                Some(&Pending::new(begin, "batch")),
                Expect::Ack,
            )
            .unwrap();
        // The echo holds the new rule, and a NEWGEN message with the new generation.
        let types: Vec<u16> = answers.replies.iter().map(|r| r.message_type).collect();
        assert_eq!(types, [nft_type(NFT_MSG_NEWRULE), nft_type(NFT_MSG_NEWGEN)]);
        let reply = &answers.replies[0];
        let echoed = decode_rule(&reply.payload).unwrap();
        assert_eq!(echoed.exprs, [Expr::Other("counter".into())]);
        let listed = nft.list_rules(None, None, None).unwrap();
        assert_eq!(listed, [echoed]);
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}
