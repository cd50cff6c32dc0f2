//! Against the running kernel, each test in a network namespace of its own (the host's ruleset
//! is never touched). Needs root, nf_tables and the `nft` tool, so it only builds with
//! `--features host-kernel-tests`:
//!
//! ```sh
//! cargo test -p luapkt-nft-plugin --features host-kernel-tests --test host_kernel
//! ```
#![cfg(feature = "host-kernel-tests")]

use std::{process::Command, thread};

use nft_plugin::{
    resolve_family, BaseChain, Batch, Chain, ChainType, Error, Expr, Family, Hook, LuaExpr, Luapkt,
    Nftables, Policy, Protocol, Socket,
};

const COMMENT: &str = "lua script web: lpctl rule list shows it";

/// Runs `body` on a thread moved into a fresh network namespace. Sockets opened and commands
/// started on that thread live in the namespace, which disappears with them.
fn in_netns(body: impl FnOnce() + Send + 'static) {
    thread::spawn(move || {
        // SAFETY: unshare only changes this thread's namespaces; it takes no pointers.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {} (these tests need root)",
            std::io::Error::last_os_error()
        );
        body();
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

fn nft(args: &[&str]) -> String {
    let out = Command::new("nft")
        .args(args)
        .output()
        .expect("running nft (apt-get install nftables)");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn input_chain() -> Chain {
    Chain::regular(Family::Inet, "lp", "input").with_base(BaseChain {
        chain_type: ChainType::Filter,
        hook: Hook::Input,
        priority: -5,
        policy: Some(Policy::Accept),
        device: None,
    })
}

#[test]
fn chains_with_comments_round_trip() {
    in_netns(|| {
        let mut nft_lib = Nftables::open().unwrap();
        let mut batch = Batch::new();
        batch
            .add_table(Family::Inet, "lp")
            .add_chain(Chain::regular(Family::Inet, "lp", "lua-web").with_comment(COMMENT))
            .add_chain(input_chain());
        assert_eq!(nft_lib.commit(&batch).unwrap(), []);

        let chains = nft_lib.list_chains(Some(Family::Inet), Some("lp")).unwrap();
        let mut by_name: Vec<_> = chains.iter().map(|c| (c.name.as_str(), c)).collect();
        by_name.sort_by_key(|(name, _)| *name);
        let [(_, input), (_, web)] = by_name[..] else {
            panic!("{chains:?}")
        };
        assert_eq!(web.comment.as_deref(), Some(COMMENT));
        assert_eq!(web.base, None);
        assert!(web.handle.is_some());
        assert_eq!(input.base, input_chain().base);
        assert_eq!(input.comment, None);
        assert_eq!(
            nft_lib.get_chain(Family::Inet, "lp", "lua-web").unwrap(),
            *web
        );

        // nft reads our comment and hook back as its own.
        let listed = nft(&["list", "chain", "inet", "lp", "lua-web"]);
        assert!(
            listed.contains(&format!("comment \"{COMMENT}\"")),
            "{listed}"
        );
        let listed = nft(&["list", "chain", "inet", "lp", "input"]);
        assert!(
            listed.contains("type filter hook input priority filter - 5; policy accept;"),
            "{listed}"
        );

        // add is idempotent, create is not.
        nft_lib.commit(&batch).unwrap();
        let mut create = Batch::new();
        create.create_chain(Chain::regular(Family::Inet, "lp", "lua-web"));
        let err = nft_lib.commit(&create).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chain inet lp lua-web: File exists (os error 17)"
        );

        // A chain in a table that does not exist: extack points at the table.
        let mut missing = Batch::new();
        missing.add_chain(Chain::regular(Family::Ip, "nope", "c"));
        let err = nft_lib.commit(&missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chain ip nope c: table nope: No such file or directory (os error 2)"
        );
    });
}

#[test]
fn lua_rule_without_the_module_is_refused_whole() {
    in_netns(|| {
        let mut nft_lib = Nftables::open().unwrap();
        let mut batch = Batch::new();
        batch
            .add_table(Family::Inet, "lp")
            .add_chain(Chain::regular(Family::Inet, "lp", "lua-web").with_comment(COMMENT))
            .add_rule(
                Family::Inet,
                "lp",
                "lua-web",
                LuaExpr::new("web").with_arg("port=80"),
            );
        let err = nft_lib.commit(&batch).unwrap_err();
        eprintln!("the kernel without nft_lua: {err}");
        assert!(
            matches!(err.errno(), Some(libc::ENOENT | libc::EOPNOTSUPP)),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "rule inet lp lua-web: expression lua: No such file or directory (os error 2) \
             (nft_lua is not loaded, or no script web is loaded)"
        );

        // Nothing of the batch was applied: neither the chain nor the table exists.
        let err = nft_lib
            .get_chain(Family::Inet, "lp", "lua-web")
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");
        assert_eq!(nft_lib.list_chains(None, None).unwrap(), []);
        assert_eq!(nft(&["list", "ruleset"]), "");
    });
}

#[test]
fn rules_listed_by_expression_name_and_deleted_by_handle() {
    in_netns(|| {
        let mut nft_lib = Nftables::open().unwrap();
        let mut batch = Batch::new();
        batch
            .add_table(Family::Inet, "lp")
            .add_chain(Chain::regular(Family::Inet, "lp", "c"));
        nft_lib.commit(&batch).unwrap();
        nft(&["add", "rule", "inet", "lp", "c", "counter", "accept"]);
        nft(&[
            "add", "rule", "inet", "lp", "c", "tcp", "dport", "22", "drop", "comment", "\"ssh\"",
        ]);

        let rules = nft_lib
            .list_rules(Some(Family::Inet), Some("lp"), Some("c"))
            .unwrap();
        let names = |i: usize| -> Vec<String> {
            rules[i]
                .exprs
                .iter()
                .map(|e| match e {
                    Expr::Other(name) => name.clone(),
                    Expr::Lua(_) => "lua".into(),
                })
                .collect()
        };
        assert_eq!(rules.len(), 2, "{rules:?}");
        assert_eq!(names(0), ["counter", "immediate"]);
        assert_eq!(names(1), ["meta", "cmp", "payload", "cmp", "immediate"]);
        assert_eq!(rules[1].comment.as_deref(), Some("ssh"));
        assert!(rules.iter().all(|r| r.lua().next().is_none()));
        assert_eq!(nft_lib.list_lua_rules(None, None, None).unwrap(), []);
        // Filters: another table, another family.
        assert_eq!(nft_lib.list_rules(None, Some("other"), None).unwrap(), []);
        assert_eq!(
            nft_lib.list_rules(Some(Family::Ip), None, None).unwrap(),
            []
        );
        assert_eq!(nft_lib.list_rules(None, None, None).unwrap(), rules);

        // The handles are nft's.
        let listed = nft(&["-a", "list", "chain", "inet", "lp", "c"]);
        assert!(
            listed.contains(&format!(
                "counter packets 0 bytes 0 accept # handle {}",
                rules[0].handle
            )),
            "{listed}"
        );

        // Rules go by handle; a handle that is gone is named in the error.
        let mut delete = Batch::new();
        delete.delete_rule(Family::Inet, "lp", "c", rules[0].handle);
        nft_lib.commit(&delete).unwrap();
        assert_eq!(nft_lib.list_rules(None, None, None).unwrap(), rules[1..]);
        let err = nft_lib.commit(&delete).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "rule inet lp c handle {0}: handle {0}: No such file or directory (os error 2)",
                rules[0].handle
            )
        );

        // A chain goes with its rules, but not while another chain jumps to it.
        nft(&["add", "chain", "inet", "lp", "j"]);
        nft(&["add", "rule", "inet", "lp", "j", "jump", "c"]);
        let mut delete_chain = Batch::new();
        delete_chain.delete_chain(Family::Inet, "lp", "c");
        let err = nft_lib.commit(&delete_chain).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chain inet lp c: Device or resource busy (os error 16)"
        );
        let mut both = Batch::new();
        both.delete_chain(Family::Inet, "lp", "j")
            .delete_chain(Family::Inet, "lp", "c");
        nft_lib.commit(&both).unwrap();
        assert_eq!(nft_lib.list_chains(None, None).unwrap(), []);
        assert_eq!(nft_lib.list_rules(None, None, None).unwrap(), []);
    });
}

/// Thousands of rules: the dump spans many datagrams, and one batch deletes them all (its
/// datagram exceeds the default send buffer, its acks the default receive buffer).
#[test]
fn large_dump_and_large_batch() {
    const RULES: usize = 5000;
    in_netns(|| {
        let mut nft_lib = Nftables::open().unwrap();
        let mut batch = Batch::new();
        batch
            .add_table(Family::Inet, "lp")
            .add_chain(Chain::regular(Family::Inet, "lp", "c"));
        nft_lib.commit(&batch).unwrap();
        let script: String = (0..RULES)
            .map(|i| format!("add rule inet lp c tcp dport {} counter accept\n", i + 1))
            .collect();
        let path = std::env::temp_dir().join(format!("lp-rules-{}.nft", std::process::id()));
        std::fs::write(&path, script).unwrap();
        nft(&["-f", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();

        let rules = nft_lib.list_rules(None, None, None).unwrap();
        assert_eq!(rules.len(), RULES);
        assert!(rules.windows(2).all(|w| w[0].handle < w[1].handle));

        let mut delete = Batch::new();
        for rule in &rules {
            delete.delete_rule(Family::Inet, "lp", "c", rule.handle);
        }
        nft_lib.commit(&delete).unwrap();
        assert_eq!(nft_lib.list_rules(None, None, None).unwrap(), []);
    });
}

#[test]
fn generic_netlink_lookup() {
    in_netns(|| {
        let socket = Socket::open(Protocol::Generic).unwrap();
        let nlctrl = resolve_family(socket, "nlctrl").unwrap();
        assert_eq!(nlctrl.id, 0x10);
        let socket = Socket::open(Protocol::Generic).unwrap();
        let err = resolve_family(socket, "no-such-family").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no-such-family: generic netlink family not found"
        );
        let err = Luapkt::open().err().unwrap();
        assert!(matches!(err, Error::FamilyNotFound { .. }));
        assert_eq!(
            err.to_string(),
            "luapkt: generic netlink family not found (is nft_lua loaded?)"
        );
    });
}
