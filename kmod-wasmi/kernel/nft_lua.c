// SPDX-License-Identifier: GPL-2.0-only
/*
 * nft_lua: the nf_tables expression "lua" runs a Lua script, sandboxed in WebAssembly, on
 * each packet and turns its return value into a verdict.
 *
 * Scripts are loaded by name into a per-netns registry through the "luapkt" generic netlink
 * family (luapkt_genl.c); a rule's expression holds a reference to its script. Each script
 * has one instance per possible CPU: a packet runs in its CPU's instance with bottom halves
 * disabled, so the hot path takes no lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bottom_half.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netdevice.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <net/genetlink.h>
#include <net/netfilter/nf_tables.h>
#include <net/net_namespace.h>
#include <net/netfilter/nf_conntrack.h>
#include <net/ip.h>
#include <net/ipv6.h>

#include "luapkt.h"

struct nft_lua {
	struct luapkt_script	*script;
	u32			entry;
	u32			flags;
	u16			arg_len;
	bool			has_func;
	bool			has_arg;
	bool			may_queue;	/* the script named lp.QUEUE when the rule was added */
	char			*func;
	u8			*arg;
};

/*
 * Stack probe (measurement only): with stack_probe=1 every call fills its CPU's script stack
 * (lp_call_on_cpu_stack) with a pattern first; stack_max_bytes keeps the deepest use seen.
 */
static bool stack_probe;
module_param(stack_probe, bool, 0644);
MODULE_PARM_DESC(stack_probe, "measure the stack used by script calls (slow)");
static unsigned int stack_max_bytes;
module_param(stack_max_bytes, uint, 0644);
MODULE_PARM_DESC(stack_max_bytes,
		 "deepest stack use of one script call seen by stack_probe (write 0 to reset)");

/*
 * Set on a CPU while it transmits what a script sent: a lua rule the packet meets on its way
 * out (synchronously, inside ip_local_out) runs its script but cannot send, so a script that
 * answers every packet cannot recurse through its own answers.
 */
static DEFINE_PER_CPU(bool, nft_lua_sending);

struct nft_lua_call {
	const struct luapkt_version	*v;
	u32				entry;
	bool				queue_ok;
	struct lp_pkt			*pkt;
	struct lp_outcome		out;
};

void nft_lua_call_fn(void *arg)
{
	struct nft_lua_call *c = arg;
	u32 cpu = smp_processor_id();

	c->pkt->may_send = !__this_cpu_read(nft_lua_sending);
	lp_rt_run_on_cpu(c->v->rt, cpu, c->entry, c->pkt, &c->out);
	/* an error like any invalid return value: counted, resolved by the on-error policy */
	if (unlikely(c->out.verdict >= LUAPKT_VERDICT_QUEUE_BASE && !c->queue_ok))
		lp_rt_refuse_verdict(c->v->rt, cpu, &c->out);
}

/*
 * The hooks of @family where nf_queue can reinject a packet, as nft_queue_validate() has
 * them: none at netdev (no okfn) nor at inet ingress, which runs as a netdev hook. One mask
 * for the rule's validation (nft_lua_validate) and each packet's check.
 */
static u32 nft_lua_queue_hooks(u8 family)
{
	switch (family) {
	case NFPROTO_IPV4:
	case NFPROTO_IPV6:
	case NFPROTO_INET:
	case NFPROTO_BRIDGE:
		return (1 << NF_INET_PRE_ROUTING) | (1 << NF_INET_LOCAL_IN) |
		       (1 << NF_INET_FORWARD) | (1 << NF_INET_LOCAL_OUT) |
		       (1 << NF_INET_POST_ROUTING);
	default:
		return 0;
	}
}

static bool nft_lua_can_queue(const struct nft_pktinfo *pkt)
{
	return nft_lua_queue_hooks(nft_pf(pkt)) & (1U << nft_hook(pkt));
}

/*
 * Conntrack as nft's `ct state`, `ct mark` and `ct id` see it (nft_ct_get_eval()), for packets
 * conntrack has an entry for, and untracked ones (state only). Without an entry (conntrack does
 * not run in this netns, or found the packet invalid; a template only carries zone/helper
 * settings) pkt.ct is nil: nft would say `invalid`.
 */
static void nft_lua_pkt_ct(struct lp_pkt *p, const struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	enum ip_conntrack_info ctinfo;
	const struct nf_conn *ct = nf_ct_get(skb, &ctinfo);

	if (ct && !nf_ct_is_template(ct)) {
		p->has_ct = 1;
		p->ct_state = NF_CT_STATE_BIT(ctinfo);
#if IS_ENABLED(CONFIG_NF_CONNTRACK_MARK)
		p->ct_mark = READ_ONCE(ct->mark);
#endif
		p->ct_id = nf_ct_get_id(ct);
	} else if (!ct && ctinfo == IP_CT_UNTRACKED) {
		p->has_ct = 1;
		p->ct_state = NF_CT_STATE_UNTRACKED_BIT;
	}
#endif
}

/*
 * The Ethernet header of hooks with a link layer: netdev, bridge and inet ingress (where the
 * mac header lies before skb->data), netdev egress (at skb->data).
 */
static void nft_lua_pkt_eth(struct lp_pkt *p, const struct nft_pktinfo *pkt)
{
	const struct sk_buff *skb = pkt->skb;

	switch (nft_pf(pkt)) {
	case NFPROTO_NETDEV:
	case NFPROTO_BRIDGE:
		break;
	case NFPROTO_IPV4:
	case NFPROTO_IPV6:
		/* inet ingress runs as the netdev ingress hook does */
		if (nft_hook(pkt) == NF_INET_INGRESS)
			break;
		return;
	default:
		return;
	}
	if (!skb->dev || skb->dev->type != ARPHRD_ETHER || !skb_mac_header_was_set(skb) ||
	    skb_mac_header_len(skb) != ETH_HLEN)
		return;
	if (skb_copy_bits(skb, skb_mac_offset(skb), p->eth, ETH_HLEN) == 0)
		p->has_eth = 1;
}

static void nft_lua_pkt(struct lp_pkt *p, const struct nft_pktinfo *pkt)
{
	const struct net_device *in = nft_in(pkt), *out = nft_out(pkt);
	struct sk_buff *skb = pkt->skb;
	int noff = skb_network_offset(skb);
	int len = (int)skb->len - noff;

	/*
	 * Field by field, not memset(): every field is set below (ct_*, eth only with their
	 * has_ flag; sendq and net by nft_lua_eval(), may_send by the call), and rep stos costs
	 * a packet more than the fields do under emulation.
	 */
	p->skb = skb;
	p->noff = noff;
	p->len = len > 0 ? len : 0;
	p->mark = skb->mark;
	p->nfproto = nft_pf(pkt);
	if (p->nfproto != NFPROTO_IPV4 && p->nfproto != NFPROTO_IPV6) {
		/*
		 * netdev, bridge: a frame is IP when its protocol says so, not when its first
		 * nibble looks like a version (VLAN tags, MPLS labels). Anything else keeps the
		 * hook's family, which the runtime reads as "no IP header".
		 */
		if (skb->protocol == htons(ETH_P_IP))
			p->nfproto = NFPROTO_IPV4;
		else if (skb->protocol == htons(ETH_P_IPV6))
			p->nfproto = NFPROTO_IPV6;
	}
	p->hook = nft_hook(pkt);
	/*
	 * The guest leaves the transport checksum to whoever finishes it only when the offload
	 * starts at this packet's transport header (not at a tunnel's inner one).
	 */
	p->csum_partial = skb->ip_summed == CHECKSUM_PARTIAL &&
			  (!(pkt->flags & NFT_PKTINFO_L4PROTO) ||
			   skb_checksum_start_offset(skb) == nft_thoff(pkt));
	/* whole names: the runtime zeroes what follows the NUL (lp_pkt's contract) */
	BUILD_BUG_ON(sizeof(p->iifname) != IFNAMSIZ || sizeof(p->oifname) != IFNAMSIZ);
	if (in)
		memcpy(p->iifname, in->name, IFNAMSIZ);
	else
		memset(p->iifname, 0, IFNAMSIZ);
	if (out)
		memcpy(p->oifname, out->name, IFNAMSIZ);
	else
		memset(p->oifname, 0, IFNAMSIZ);
	p->has_ct = 0;
	p->ct_state = 0;
	p->ct_mark = 0;
	p->ct_id = 0;
	p->has_eth = 0;
	nft_lua_pkt_ct(p, skb);
	nft_lua_pkt_eth(p, pkt);
}

/*
 * What the call sent, as locally generated packets (the output hooks see them), after the
 * instance was released. Bottom halves stay disabled so that nft_lua_sending is this CPU's
 * for the whole transmission.
 */
void nft_lua_transmit(struct net *net, struct sk_buff_head *q)
{
	struct sk_buff *skb;

	local_bh_disable();
	__this_cpu_write(nft_lua_sending, true);
	while ((skb = __skb_dequeue(q))) {
		if (skb->protocol == htons(ETH_P_IP))
			ip_local_out(net, NULL, skb);
		else
			ip6_local_out(net, NULL, skb);
	}
	__this_cpu_write(nft_lua_sending, false);
	local_bh_enable();
}

static void nft_lua_eval(const struct nft_expr *expr, struct nft_regs *regs,
			 const struct nft_pktinfo *pkt)
{
	const struct nft_lua *priv = nft_expr_priv(expr);
	struct luapkt_version *v;
	/*
	 * Not zeroed on entry (CONFIG_INIT_STACK_ALL_ZERO would: a `rep stosq` that costs more
	 * than the call's own fields under emulation): nft_lua_pkt() and the lines below set
	 * every field the runtime reads.
	 */
	struct nft_lua_call call __uninitialized;
	struct sk_buff_head sendq;
	struct lp_pkt p __uninitialized;
	unsigned int used;
	bool bh;

	/* nf_hook_slow() holds the RCU read side: the version lives until we return */
	v = rcu_dereference(priv->script->cur);
	if (unlikely(!v)) {
		regs->verdict.code = NFT_BREAK;
		return;
	}
	nft_lua_pkt(&p, pkt);
	__skb_queue_head_init(&sendq);
	p.sendq = &sendq;
	p.net = nft_net(pkt);
	call.v = v;
	call.entry = priv->entry;
	call.queue_ok = nft_lua_can_queue(pkt);
	call.pkt = &p;
	/* what a call that never ran (lp_call_on_cpu_stack refused it) leaves: no match */
	call.out.verdict = LUAPKT_VERDICT_BREAK;
	call.out.error = 0;
	call.out.poisoned = 0;
	call.out.fuel = 0;

	/*
	 * One instance per CPU: disabling bottom halves pins us to this CPU and keeps its
	 * softirqs (the only other users of the instance and of the CPU's script stack) out
	 * until the call returns. Hooks that run in process context need it; in softirq context
	 * (or with bottom halves already disabled) all of that holds already.
	 */
	bh = !in_softirq();
	if (bh)
		local_bh_disable();
	used = lp_call_on_cpu_stack(nft_lua_call_fn, &call, READ_ONCE(stack_probe));
	if (bh)
		local_bh_enable();
	if (unlikely(used > READ_ONCE(stack_max_bytes)))
		WRITE_ONCE(stack_max_bytes, used);
	if (unlikely(!skb_queue_empty(&sendq)))
		nft_lua_transmit(nft_net(pkt), &sendq);

	if (unlikely(call.out.poisoned))
		luapkt_version_schedule_rebuild(v);

	switch (call.out.verdict) {
	case LUAPKT_VERDICT_ACCEPT:
		regs->verdict.code = NF_ACCEPT;
		break;
	case LUAPKT_VERDICT_DROP:
		regs->verdict.code = NF_DROP;
		break;
	case LUAPKT_VERDICT_CONTINUE:
		break;
	case LUAPKT_VERDICT_QUEUE_BASE ...
	     LUAPKT_VERDICT_QUEUE_BASE + LUAPKT_VERDICT_QUEUE_MAX:
		regs->verdict.code = NF_QUEUE_NR(call.out.verdict - LUAPKT_VERDICT_QUEUE_BASE);
		break;
	case LUAPKT_VERDICT_BREAK:
	default:
		regs->verdict.code = NFT_BREAK;
		break;
	}
}

static const struct nla_policy nft_lua_policy[NFTA_LUA_MAX + 1] = {
	[NFTA_LUA_SCRIPT]	= { .type = NLA_NUL_STRING, .len = LUAPKT_NAME_MAX },
	[NFTA_LUA_FUNC]		= { .type = NLA_NUL_STRING, .len = LUAPKT_NAME_MAX },
	[NFTA_LUA_ARG]		= { .type = NLA_BINARY, .len = LUAPKT_ARG_MAX },
	[NFTA_LUA_FLAGS]	= { .type = NLA_U32 },
};

struct nft_lua_bind {
	struct nft_lua			*priv;
	struct luapkt_version		*v;
	char				msg[128];
};

static int nft_lua_bind_on_stack(void *arg)
{
	struct nft_lua_bind *b = arg;
	struct nft_lua *priv = b->priv;
	int err;

	/* lp_rt_bind_on_cpu() validates in this CPU's instance: own it like eval does */
	lp_nofail_atomic(true);
	local_bh_disable();
	err = lp_rt_bind_on_cpu(b->v->rt, smp_processor_id(), priv->func, strlen(priv->func),
				priv->has_arg ? priv->arg : NULL, priv->arg_len,
				&priv->entry, b->msg, sizeof(b->msg));
	local_bh_enable();
	lp_nofail_atomic(false);
	return err;
}

/* Binds (func, arg) in the script's current version; under ln->mutex. */
static int nft_lua_bind(struct nft_lua *priv)
{
	struct nft_lua_bind *b;
	int err, tries;

	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	b->priv = priv;
	b->v = rcu_dereference_protected(priv->script->cur, 1);
	for (tries = 0; tries < 2; tries++) {
		err = lp_call_on_big_stack(nft_lua_bind_on_stack, b);
		if (err != -EBUSY)
			break;
		/* this CPU's instance trapped: let the rebuild finish and try again */
		flush_delayed_work(&b->v->rebuild);
	}
	if (err) {
		/* a trap while binding poisoned this CPU's instance: rebuild it */
		luapkt_version_schedule_rebuild(b->v);
		pr_info_ratelimited("script %s: cannot bind %s: %s\n",
				    priv->script->name, priv->func, b->msg);
	}
	kfree(b);
	return err;
}

static int nft_lua_init(const struct nft_ctx *ctx, const struct nft_expr *expr,
			const struct nlattr * const tb[])
{
	struct luapkt_net *ln = luapkt_pernet(ctx->net);
	struct nft_lua *priv = nft_expr_priv(expr);
	struct luapkt_script *s;
	int err;

	if (!tb[NFTA_LUA_SCRIPT])
		return -EINVAL;
	if (tb[NFTA_LUA_FLAGS]) {
		priv->flags = ntohl(nla_get_be32(tb[NFTA_LUA_FLAGS]));
		if (priv->flags & ~NFT_LUA_F_ALL)
			return -EOPNOTSUPP;
	}

	priv->has_func = tb[NFTA_LUA_FUNC] != NULL;
	priv->func = kstrdup(priv->has_func ? nla_data(tb[NFTA_LUA_FUNC]) :
			     NFT_LUA_DEFAULT_FUNC, GFP_KERNEL_ACCOUNT);
	if (!priv->func)
		return -ENOMEM;
	if (priv->has_func && !priv->func[0]) {
		err = -EINVAL;
		goto err_func;
	}
	if (tb[NFTA_LUA_ARG]) {
		priv->has_arg = true;
		priv->arg_len = nla_len(tb[NFTA_LUA_ARG]);
		priv->arg = priv->arg_len ?
			    kmemdup(nla_data(tb[NFTA_LUA_ARG]), priv->arg_len, GFP_KERNEL_ACCOUNT) :
			    kzalloc(1, GFP_KERNEL_ACCOUNT);
		if (!priv->arg) {
			err = -ENOMEM;
			goto err_func;
		}
	}

	/*
	 * nft_ctx carries no extack: a missing script fails with ENOENT and nf_tables points
	 * at this expression in its error.
	 */
	mutex_lock(&ln->mutex);
	s = luapkt_script_lookup(ln, nla_data(tb[NFTA_LUA_SCRIPT]));
	if (!s) {
		err = -ENOENT;
		goto err_unlock;
	}
	priv->script = s;
	err = nft_lua_bind(priv);
	if (err < 0)
		goto err_unlock;
	priv->may_queue = lp_rt_may_queue(rcu_dereference_protected(s->cur, 1)->rt);
	kref_get(&s->ref);
	atomic_inc(&s->users);
	mutex_unlock(&ln->mutex);
	return 0;

err_unlock:
	mutex_unlock(&ln->mutex);
	priv->script = NULL;
	kfree(priv->arg);
err_func:
	kfree(priv->func);
	return err;
}

/*
 * A script that names lp.QUEUE is refused at hooks where nf_queue cannot reinject a packet,
 * as nft_queue_validate() refuses `queue` there: netdev (no okfn) and inet ingress, which
 * runs as a netdev hook. Called at rule add and whenever nf_tables revalidates the table (for
 * a non-base chain: from each base chain that jumps to it), on what the script was when the
 * rule was added, so that a later replacement cannot make unrelated rule changes fail. A
 * queue name the chunk does not show (built at run time), or one a replacement brings in,
 * fails at run time instead (nft_lua_call_fn).
 */
static int nft_lua_validate(const struct nft_ctx *ctx, const struct nft_expr *expr)
{
	const struct nft_lua *priv = nft_expr_priv(expr);
	u32 hooks = nft_lua_queue_hooks(ctx->family);

	if (!priv->may_queue)
		return 0;
	return hooks ? nft_chain_validate_hooks(ctx->chain, hooks) : -EOPNOTSUPP;
}

static void nft_lua_destroy(const struct nft_ctx *ctx, const struct nft_expr *expr)
{
	struct nft_lua *priv = nft_expr_priv(expr);

	atomic_dec(&priv->script->users);
	luapkt_script_put(priv->script);
	kfree(priv->arg);
	kfree(priv->func);
}

static int nft_lua_dump(struct sk_buff *skb, const struct nft_expr *expr, bool reset)
{
	const struct nft_lua *priv = nft_expr_priv(expr);

	if (nla_put_string(skb, NFTA_LUA_SCRIPT, priv->script->name))
		goto nla_put_failure;
	if (priv->has_func && nla_put_string(skb, NFTA_LUA_FUNC, priv->func))
		goto nla_put_failure;
	if (priv->has_arg && nla_put(skb, NFTA_LUA_ARG, priv->arg_len, priv->arg))
		goto nla_put_failure;
	if (priv->flags && nla_put_be32(skb, NFTA_LUA_FLAGS, htonl(priv->flags)))
		goto nla_put_failure;
	return 0;

nla_put_failure:
	return -1;
}

#ifdef NFT_REDUCE_READONLY
/*
 * Register tracking, where nf_tables has it (6.1; gone by 6.12): a script may change any
 * packet byte and the marks, so nothing a register held before it is known to hold after it.
 */
static bool nft_lua_reduce(struct nft_regs_track *track, const struct nft_expr *expr)
{
	unsigned int i;

	for (i = 0; i < NFT_REG32_NUM; i++)
		__nft_reg_track_cancel(track, i);
	return false;
}
#endif

static struct nft_expr_type nft_lua_type;
static const struct nft_expr_ops nft_lua_ops = {
	.type		= &nft_lua_type,
	.size		= NFT_EXPR_SIZE(sizeof(struct nft_lua)),
	.eval		= nft_lua_eval,
	.init		= nft_lua_init,
	.destroy	= nft_lua_destroy,
	.validate	= nft_lua_validate,
	.dump		= nft_lua_dump,
#ifdef NFT_REDUCE_READONLY
	.reduce		= nft_lua_reduce,
#endif
};

static struct nft_expr_type nft_lua_type __read_mostly = {
	.name		= NFT_LUA_EXPR_NAME,
	.ops		= &nft_lua_ops,
	.policy		= nft_lua_policy,
	.maxattr	= NFTA_LUA_MAX,
	.owner		= THIS_MODULE,
};

static int __init nft_lua_module_init(void)
{
	int err;

	err = lp_cpu_stacks_init();
	if (err < 0)
		return err;
	err = lp_reserve_init();
	if (err < 0)
		goto err_reserve;

	luapkt_cache = lp_rt_cache_new(nr_cpu_ids);
	if (!luapkt_cache) {
		err = -ENOMEM;
		goto err_cache;
	}

	err = register_pernet_subsys(&luapkt_net_ops);
	if (err < 0)
		goto err_pernet;

	err = genl_register_family(&luapkt_genl_family);
	if (err < 0)
		goto err_genl;

	err = netlink_register_notifier(&luapkt_netlink_notifier);
	if (err < 0)
		goto err_notifier;

	err = nft_register_expr(&nft_lua_type);
	if (err < 0)
		goto err_expr;

	return 0;

err_expr:
	netlink_unregister_notifier(&luapkt_netlink_notifier);
err_notifier:
	genl_unregister_family(&luapkt_genl_family);
err_genl:
	unregister_pernet_subsys(&luapkt_net_ops);
err_pernet:
	lp_rt_cache_free(luapkt_cache);
err_cache:
	lp_reserve_free();
err_reserve:
	lp_cpu_stacks_free();
	return err;
}

static void __exit nft_lua_module_exit(void)
{
	/* a load running now would hold up genl_unregister_family() for up to its load fuel */
	lp_loads_stop();
	nft_unregister_expr(&nft_lua_type);
	netlink_unregister_notifier(&luapkt_netlink_notifier);
	genl_unregister_family(&luapkt_genl_family);
	unregister_pernet_subsys(&luapkt_net_ops);
	lp_rt_cache_free(luapkt_cache);
	lp_reserve_free();
	lp_cpu_stacks_free();
}

module_init(nft_lua_module_init);
module_exit(nft_lua_module_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("nftables expression running Lua scripts sandboxed in WebAssembly");
MODULE_ALIAS_NFT_EXPR("lua");
MODULE_ALIAS_GENL_FAMILY(LUAPKT_GENL_NAME);
