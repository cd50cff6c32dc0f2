// SPDX-License-Identifier: GPL-2.0-only
/*
 * luapkt control plane: the per-netns script registry and the "luapkt" generic netlink
 * family that loads, lists, tunes and unloads scripts.
 *
 * A script is uploaded in chunks (LOAD_BEGIN, LOAD_CHUNK..., LOAD_COMMIT) into a buffer
 * owned by the uploading socket; LOAD_COMMIT compiles it into one instance per CPU and
 * publishes it, or swaps it in for the loaded script of the same name (FLAG_REPLACE).
 * Reading (GET) needs CAP_NET_ADMIN over the namespace's user namespace; changing anything
 * (load, unload, limits) needs CAP_NET_ADMIN in the initial user namespace unless the
 * allow_userns parameter lets namespaced admins in, and a package whose guest is not the
 * built-in Lua VM needs CAP_SYS_ADMIN in the initial user namespace (docs/security.md).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpumask.h>
#include <linux/ctype.h>
#include <linux/kernel.h>
#include <linux/memcontrol.h>
#include <linux/module.h>
#include <linux/mm.h>
#include <linux/netlink.h>
#include <linux/notifier.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/sock.h>

#include "luapkt.h"

/* 6.1 extack messages must be static; 6.2+ can format one */
#ifdef NL_SET_ERR_MSG_FMT_MOD
#define luapkt_set_err(extack, fixed, fmt, args...) \
	NL_SET_ERR_MSG_FMT_MOD(extack, fmt, ##args)
#else
#define luapkt_set_err(extack, fixed, fmt, args...) \
	NL_SET_ERR_MSG_MOD(extack, fixed)
#endif

/*
 * Who may change scripts. Off (the default), as Debian's unprivileged_bpf_disabled: only
 * CAP_NET_ADMIN in the initial user namespace. On: also an admin of the network namespace's
 * own user namespace (containers); their scripts' memory is charged to their memory cgroup
 * and bounded by the per-namespace caps below.
 */
static bool allow_userns;
module_param(allow_userns, bool, 0644);
MODULE_PARM_DESC(allow_userns,
		 "let CAP_NET_ADMIN over a network namespace's user namespace load scripts (default: initial namespace only)");

/*
 * The engine of a script loaded without LUAPKT_A_ENGINE (LUAPKT_ENGINE_*): compiled, which
 * runs only the built-in guest; a package that carries another one runs on wasmi then.
 */
static unsigned int default_engine = LUAPKT_ENGINE_COMPILED;

static int luapkt_set_engine(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, LUAPKT_ENGINE_WASMI, LUAPKT_ENGINE_COMPILED);
}

static const struct kernel_param_ops luapkt_engine_ops = {
	.set	= luapkt_set_engine,
	.get	= param_get_uint,
};
module_param_cb(default_engine, &luapkt_engine_ops, &default_engine, 0644);
MODULE_PARM_DESC(default_engine,
		 "engine of scripts loaded without one: 1 wasmi, 2 compiled (default; packages with another guest: wasmi)");

static unsigned int max_scripts = 64;
module_param(max_scripts, uint, 0644);
MODULE_PARM_DESC(max_scripts, "scripts per network namespace (default 64)");

static unsigned int max_netns_mbytes = 1024;
module_param(max_netns_mbytes, uint, 0644);
MODULE_PARM_DESC(max_netns_mbytes,
		 "linear memory all scripts of a network namespace may reserve, in MiB: each script counts its memory limit times its instances (default 1024)");

/* retries of a failed instance rebuild: 1 s, 2 s, 4 s, ... then given up (counted) */
#define LUAPKT_REBUILD_TRIES	8

DEFINE_MUTEX(luapkt_load_mutex);
struct lp_cache *luapkt_cache;

static unsigned int luapkt_net_id __read_mostly;

struct luapkt_upload {
	struct list_head	list;		/* luapkt_net.uploads */
	u32			id;
	u32			portid;		/* owning socket */
	u32			size;
	u32			received;
	u32			flags;
	u8			engine;		/* LUAPKT_ENGINE_*, 0: default_engine */
	struct lp_limits	limits;
	u8			*buf;		/* kvmalloc'd, @size bytes */
	char			name[LUAPKT_NAME_MAX + 1];
};

struct luapkt_net *luapkt_pernet(struct net *net)
{
	return net_generic(net, luapkt_net_id);
}

/* ---- versions and scripts ---- */

struct luapkt_build {
	const struct lp_script	*rt;
	struct lp_spare		*spare;
};

static int luapkt_build_on_stack(void *arg)
{
	struct luapkt_build *b = arg;

	return lp_rt_build_instance(b->rt, &b->spare);
}

static void luapkt_rebuild_work(struct work_struct *work)
{
	struct luapkt_version *v = container_of(to_delayed_work(work),
						struct luapkt_version, rebuild);
	struct luapkt_build b = { .rt = v->rt };
	u32 cpu, n = lp_rt_instances(v->rt);
	struct lp_spare *old;
	struct mem_cgroup *memcg;
	bool failed = false;

	memcg = set_active_memcg(v->memcg);
	for (cpu = 0; cpu < n; cpu++) {
		if (!lp_rt_needs_rebuild(v->rt, cpu))
			continue;
		if (lp_call_on_big_stack(luapkt_build_on_stack, &b) < 0) {
			failed = true;
			continue;
		}
		old = lp_rt_install(v->rt, cpu, b.spare);
		/* a call that started before the install may still hold the old instance */
		synchronize_rcu();
		lp_rt_spare_free(old);
	}
	set_active_memcg(memcg);
	if (!failed) {
		v->rebuild_streak = 0;
		return;
	}
	atomic_inc(&v->rebuild_failures);
	if (++v->rebuild_streak >= LUAPKT_REBUILD_TRIES) {
		/* the slots stay poisoned: their packets get the on-error policy's verdict */
		pr_warn_ratelimited("instance rebuild failed %u times: giving up\n",
				    v->rebuild_streak);
		return;
	}
	queue_delayed_work(system_unbound_wq, &v->rebuild, HZ << min(v->rebuild_streak, 6u));
}

/* Softirq or process context. */
void luapkt_version_schedule_rebuild(struct luapkt_version *v)
{
	queue_delayed_work(system_unbound_wq, &v->rebuild, 0);
}

static struct luapkt_version *luapkt_version_alloc(struct lp_script *rt, struct net *net)
{
	struct luapkt_version *v;

	v = kzalloc(sizeof(*v), GFP_KERNEL_ACCOUNT);
	if (!v)
		return NULL;
	v->rt = rt;
	/* the loader's cgroup (the root one for a kernel thread) */
	v->memcg = get_mem_cgroup_from_mm(current->mm);
	INIT_DELAYED_WORK(&v->rebuild, luapkt_rebuild_work);
	v->net = net;
	luapkt_timers_init(v);
	lp_rt_tag(rt, v->tag);
	return v;
}

/* Process context; no packet may still use @v (unpublished + grace period, or never seen). */
static void luapkt_version_free(struct luapkt_version *v)
{
	if (!v)
		return;
	/* first: a running timer may schedule a rebuild */
	luapkt_timers_stop(v);
	cancel_delayed_work_sync(&v->rebuild);
	lp_rt_script_free(v->rt);
	mem_cgroup_put(v->memcg);
	kfree(v);

	mutex_lock(&luapkt_load_mutex);
	lp_rt_cache_prune(luapkt_cache);
	mutex_unlock(&luapkt_load_mutex);
}

static void luapkt_script_release(struct kref *ref)
{
	struct luapkt_script *s = container_of(ref, struct luapkt_script, ref);

	/* last reference: no rule uses the script, so no packet can see its version */
	luapkt_version_free(rcu_dereference_protected(s->cur, 1));
	kfree(s);
}

/* Process context. */
void luapkt_script_put(struct luapkt_script *s)
{
	kref_put(&s->ref, luapkt_script_release);
}

struct luapkt_script *luapkt_script_lookup(struct luapkt_net *ln, const char *name)
{
	struct luapkt_script *s;

	lockdep_assert_held(&ln->mutex);
	list_for_each_entry(s, &ln->scripts, list)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

/*
 * The script a request's NAME names, with ln->mutex taken; NULL (the mutex released, "no
 * such script" in extack) when there is none. The caller checked that NAME is there.
 */
static struct luapkt_script *luapkt_script_named(struct luapkt_net *ln, struct genl_info *info)
{
	struct luapkt_script *s;

	mutex_lock(&ln->mutex);
	s = luapkt_script_lookup(ln, nla_data(info->attrs[LUAPKT_A_NAME]));
	if (!s) {
		mutex_unlock(&ln->mutex);
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[LUAPKT_A_NAME], "no such script");
	}
	return s;
}

static bool luapkt_valid_name(const char *name)
{
	size_t i, len = strlen(name);

	if (!len || len > LUAPKT_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum(name[i]) && name[i] != '_' && name[i] != '.' && name[i] != '-')
			return false;
	return true;
}

/* ---- uploads ---- */

static struct luapkt_upload *luapkt_upload_find(struct luapkt_net *ln, u32 id, u32 portid)
{
	struct luapkt_upload *up;

	lockdep_assert_held(&ln->mutex);
	list_for_each_entry(up, &ln->uploads, list)
		if (up->id == id && up->portid == portid)
			return up;
	return NULL;
}

static void luapkt_upload_free(struct luapkt_upload *up)
{
	kvfree(up->buf);
	kfree(up);
}

static void luapkt_upload_unlink(struct luapkt_net *ln, struct luapkt_upload *up)
{
	lockdep_assert_held(&ln->mutex);
	list_del(&up->list);
	ln->nuploads--;
}

static u32 luapkt_upload_next_id(struct luapkt_net *ln)
{
	struct luapkt_upload *up;
	u32 id;

again:
	id = ++ln->next_upload_id;
	if (!id)
		goto again;
	list_for_each_entry(up, &ln->uploads, list)
		if (up->id == id)
			goto again;
	return id;
}

/* ---- messages ---- */

static const struct nla_policy luapkt_genl_policy[LUAPKT_A_MAX + 1] = {
	[LUAPKT_A_NAME]		= { .type = NLA_NUL_STRING, .len = LUAPKT_NAME_MAX },
	[LUAPKT_A_UPLOAD_ID]	= { .type = NLA_U32 },
	[LUAPKT_A_SIZE]		= { .type = NLA_U32 },
	[LUAPKT_A_OFFSET]	= { .type = NLA_U32 },
	[LUAPKT_A_DATA]		= { .type = NLA_BINARY, .len = LUAPKT_CHUNK_MAX },
	[LUAPKT_A_FUEL]		= { .type = NLA_U64 },
	[LUAPKT_A_INSTRUCTIONS]	= { .type = NLA_U32 },
	[LUAPKT_A_MEMORY]	= { .type = NLA_U64 },
	[LUAPKT_A_RECURSION]	= { .type = NLA_U32 },
	[LUAPKT_A_PCALL_DEPTH]	= { .type = NLA_U32 },
	[LUAPKT_A_ON_ERROR]	= NLA_POLICY_MAX(NLA_U8, LUAPKT_ON_ERROR_DROP),
	[LUAPKT_A_FLAGS]	= NLA_POLICY_MASK(NLA_U32, LUAPKT_FLAG_REPLACE),
	/* replies only */
	[LUAPKT_A_STATS]	= { .type = NLA_REJECT },
	[LUAPKT_A_TAG]		= { .type = NLA_REJECT },
	[LUAPKT_A_REFS]		= { .type = NLA_REJECT },
	[LUAPKT_A_MEM_BYTES]	= { .type = NLA_REJECT },
	[LUAPKT_A_MAP_BYTES]	= { .type = NLA_REJECT },
	[LUAPKT_A_INSTANCES]	= { .type = NLA_REJECT },
	[LUAPKT_A_LOAD_FUEL]	= { .type = NLA_U64 },
	[LUAPKT_A_ENGINE]	= NLA_POLICY_RANGE(NLA_U8, LUAPKT_ENGINE_WASMI,
						   LUAPKT_ENGINE_COMPILED),
	[LUAPKT_A_LOG_SEQ]	= { .type = NLA_U64 },
	[LUAPKT_A_MAP_NAME]	= { .type = NLA_NUL_STRING, .len = LUAPKT_MAP_NAME_MAX },
	[LUAPKT_A_MAP_KEY]	= { .type = NLA_BINARY, .len = LUAPKT_MAP_KEY_MAX },
	[LUAPKT_A_MAP_VALUE]	= { .type = NLA_BINARY, .len = LUAPKT_MAP_VALUE_MAX },
	[LUAPKT_A_SEND_PACKETS]	= { .type = NLA_U32 },
	[LUAPKT_A_SEND_BYTES]	= { .type = NLA_U32 },
	[LUAPKT_A_SEND_RATE]	= { .type = NLA_U32 },
	[LUAPKT_A_SEND_BYTE_RATE] = { .type = NLA_U32 },
	[LUAPKT_A_LOG_DATA]	= { .type = NLA_REJECT },
	[LUAPKT_A_LOG_LOST]	= { .type = NLA_REJECT },
};

static void luapkt_parse_limits(struct nlattr **tb, struct lp_limits *l)
{
	if (tb[LUAPKT_A_FUEL])
		l->fuel = nla_get_u64(tb[LUAPKT_A_FUEL]);
	if (tb[LUAPKT_A_INSTRUCTIONS])
		l->instructions = nla_get_u32(tb[LUAPKT_A_INSTRUCTIONS]);
	if (tb[LUAPKT_A_MEMORY])
		l->memory = nla_get_u64(tb[LUAPKT_A_MEMORY]);
	if (tb[LUAPKT_A_RECURSION])
		l->recursion = nla_get_u32(tb[LUAPKT_A_RECURSION]);
	if (tb[LUAPKT_A_PCALL_DEPTH])
		l->pcall_depth = nla_get_u32(tb[LUAPKT_A_PCALL_DEPTH]);
	if (tb[LUAPKT_A_ON_ERROR])
		l->on_error = nla_get_u8(tb[LUAPKT_A_ON_ERROR]);
	if (tb[LUAPKT_A_LOAD_FUEL])
		l->load_fuel = nla_get_u64(tb[LUAPKT_A_LOAD_FUEL]);
	if (tb[LUAPKT_A_SEND_PACKETS])
		l->send_packets = nla_get_u32(tb[LUAPKT_A_SEND_PACKETS]);
	if (tb[LUAPKT_A_SEND_BYTES])
		l->send_bytes = nla_get_u32(tb[LUAPKT_A_SEND_BYTES]);
	if (tb[LUAPKT_A_SEND_RATE])
		l->send_rate = nla_get_u32(tb[LUAPKT_A_SEND_RATE]);
	if (tb[LUAPKT_A_SEND_BYTE_RATE])
		l->send_byte_rate = nla_get_u32(tb[LUAPKT_A_SEND_BYTE_RATE]);
}

/* Changing scripts: CAP_NET_ADMIN in the initial user namespace, or (allow_userns) over the
 * network namespace's own. */
static int luapkt_may_change(const struct sk_buff *skb, struct genl_info *info)
{
	if (netlink_capable(skb, CAP_NET_ADMIN))
		return 0;
	if (READ_ONCE(allow_userns) &&
	    netlink_ns_capable(skb, genl_info_net(info)->user_ns, CAP_NET_ADMIN))
		return 0;
	NL_SET_ERR_MSG_MOD(info->extack,
			   "needs CAP_NET_ADMIN in the initial user namespace (module parameter allow_userns)");
	return -EPERM;
}

/* Bytes the scripts of @ln reserve, but @skip: linear memory (limit x instances) and maps;
 * under ln->mutex. */
static u64 luapkt_netns_bytes(struct luapkt_net *ln, const struct luapkt_script *skip)
{
	const struct luapkt_version *v;
	struct luapkt_script *s;
	struct lp_limits l;
	u64 sum = 0;

	lockdep_assert_held(&ln->mutex);
	list_for_each_entry(s, &ln->scripts, list) {
		if (s == skip)
			continue;
		v = rcu_dereference_protected(s->cur, lockdep_is_held(&ln->mutex));
		lp_rt_get_limits(v->rt, &l);
		sum += l.memory * lp_rt_instances(v->rt) + lp_rt_map_bytes(v->rt);
	}
	return sum;
}

/*
 * 0, or -ENOSPC with a message when a script with @memory per instance and @maps bytes of
 * maps, in place of @replacing, would take @ln past its cap. @left (if not NULL) gets the
 * bytes the cap leaves after that: what a script being loaded may declare in maps.
 */
static int luapkt_netns_room(struct luapkt_net *ln, const struct luapkt_script *replacing,
			     u64 memory, u64 maps, struct netlink_ext_ack *extack, u64 *left)
{
	u64 cap = (u64)READ_ONCE(max_netns_mbytes) << 20;
	u64 used = luapkt_netns_bytes(ln, replacing);
	u64 want = memory * nr_cpu_ids + maps;

	if (used + want <= cap) {
		if (left)
			*left = cap - used - want;
		return 0;
	}
	luapkt_set_err(extack, "the network namespace's script memory cap is reached",
		       "the network namespace's script memory cap is reached: its scripts would reserve %llu MiB (memory limit x %u instances, and maps), max_netns_mbytes=%u",
		       (used + want) >> 20, nr_cpu_ids, READ_ONCE(max_netns_mbytes));
	return -ENOSPC;
}

static int luapkt_put_stats(struct sk_buff *skb, const struct lp_stats *st,
			    u64 rebuild_failures)
{
	static const u16 verdict_attr[5] = {
		LUAPKT_STAT_ACCEPT, LUAPKT_STAT_DROP, LUAPKT_STAT_CONTINUE,
		LUAPKT_STAT_BREAK, LUAPKT_STAT_QUEUE,
	};
	static const u16 error_attr[7] = {
		LUAPKT_STAT_ERR_LUA, LUAPKT_STAT_ERR_MEMORY, LUAPKT_STAT_ERR_FUEL,
		LUAPKT_STAT_ERR_INSTRUCTIONS, LUAPKT_STAT_ERR_STACK,
		LUAPKT_STAT_ERR_RETURN, LUAPKT_STAT_ERR_TRAP,
	};
	struct nlattr *nest;
	int i;

	nest = nla_nest_start(skb, LUAPKT_A_STATS);
	if (!nest)
		return -EMSGSIZE;
	if (nla_put_u64_64bit(skb, LUAPKT_STAT_RUN_CNT, st->run_cnt, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_RUN_TIME_NS, st->run_time_ns,
			      LUAPKT_STAT_PAD))
		goto nla_put_failure;
	for (i = 0; i < ARRAY_SIZE(verdict_attr); i++)
		if (nla_put_u64_64bit(skb, verdict_attr[i], st->verdicts[i], LUAPKT_STAT_PAD))
			goto nla_put_failure;
	for (i = 0; i < ARRAY_SIZE(error_attr); i++)
		if (nla_put_u64_64bit(skb, error_attr[i], st->errors[i], LUAPKT_STAT_PAD))
			goto nla_put_failure;
	if (nla_put_u64_64bit(skb, LUAPKT_STAT_FUEL_TOTAL, st->fuel_total, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_FUEL_MAX, st->fuel_max, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_REBUILDS, st->rebuilds, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_REBUILD_FAILURES, rebuild_failures,
			      LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_RUN_TIME_MAX_NS, st->run_time_max_ns,
			      LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_LOG_LINES, st->log_lines, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_LOG_DROPPED, st->log_dropped, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_SENT_PACKETS, st->sent_packets, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_SENT_BYTES, st->sent_bytes, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_SEND_REFUSED, st->send_refused, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_SEND_FAILED, st->send_failed, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_TIMERS_PENDING, st->timers_pending,
			      LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_TIMER_RUNS, st->timer_runs, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_TIMER_ERRORS, st->timer_errors, LUAPKT_STAT_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_STAT_TIMERS_DROPPED, st->timers_dropped,
			      LUAPKT_STAT_PAD))
		goto nla_put_failure;
	nla_nest_end(skb, nest);
	return 0;

nla_put_failure:
	nla_nest_cancel(skb, nest);
	return -EMSGSIZE;
}

/* Under ln->mutex (the script's version cannot change). */
static int luapkt_fill_script(struct sk_buff *skb, const struct luapkt_script *s,
			      u32 portid, u32 seq, int flags, u8 cmd)
{
	const struct luapkt_version *v = rcu_dereference_protected(s->cur, 1);
	struct lp_limits l;
	struct lp_stats st;
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &luapkt_genl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	lp_rt_get_limits(v->rt, &l);
	lp_rt_stats(v->rt, &st);
	if (nla_put_string(skb, LUAPKT_A_NAME, s->name) ||
	    nla_put(skb, LUAPKT_A_TAG, sizeof(v->tag), v->tag) ||
	    nla_put_u32(skb, LUAPKT_A_REFS, atomic_read(&s->users)) ||
	    nla_put_u32(skb, LUAPKT_A_INSTANCES, lp_rt_instances(v->rt)) ||
	    nla_put_u64_64bit(skb, LUAPKT_A_MEM_BYTES, st.mem_bytes, LUAPKT_A_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_A_MAP_BYTES, lp_rt_map_bytes(v->rt), LUAPKT_A_PAD) ||
	    nla_put_u64_64bit(skb, LUAPKT_A_FUEL, l.fuel, LUAPKT_A_PAD) ||
	    nla_put_u32(skb, LUAPKT_A_INSTRUCTIONS, l.instructions) ||
	    nla_put_u64_64bit(skb, LUAPKT_A_MEMORY, l.memory, LUAPKT_A_PAD) ||
	    nla_put_u32(skb, LUAPKT_A_RECURSION, l.recursion) ||
	    nla_put_u32(skb, LUAPKT_A_PCALL_DEPTH, l.pcall_depth) ||
	    nla_put_u8(skb, LUAPKT_A_ON_ERROR, l.on_error) ||
	    nla_put_u8(skb, LUAPKT_A_ENGINE, lp_rt_engine(v->rt)) ||
	    nla_put_u64_64bit(skb, LUAPKT_A_LOAD_FUEL, l.load_fuel, LUAPKT_A_PAD) ||
	    nla_put_u32(skb, LUAPKT_A_SEND_PACKETS, l.send_packets) ||
	    nla_put_u32(skb, LUAPKT_A_SEND_BYTES, l.send_bytes) ||
	    nla_put_u32(skb, LUAPKT_A_SEND_RATE, l.send_rate) ||
	    nla_put_u32(skb, LUAPKT_A_SEND_BYTE_RATE, l.send_byte_rate) ||
	    luapkt_put_stats(skb, &st, atomic_read(&v->rebuild_failures)))
		goto nla_put_failure;
	genlmsg_end(skb, hdr);
	return 0;

nla_put_failure:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

/* A reply like GET's for @s; under ln->mutex. */
static struct sk_buff *luapkt_script_reply(const struct luapkt_script *s,
					   struct genl_info *info, u8 cmd)
{
	struct sk_buff *msg;

	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return ERR_PTR(-ENOMEM);
	if (luapkt_fill_script(msg, s, info->snd_portid, info->snd_seq, 0, cmd) < 0) {
		nlmsg_free(msg);
		return ERR_PTR(-EMSGSIZE);
	}
	return msg;
}

/* ---- commands ---- */

static int luapkt_nl_load_begin(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct netlink_ext_ack *extack = info->extack;
	struct nlattr **tb = info->attrs;
	struct luapkt_upload *up;
	struct sk_buff *msg;
	char err_msg[128];
	const char *name;
	void *hdr;
	u32 id;
	int err;

	err = luapkt_may_change(skb, info);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_NAME) ||
	    GENL_REQ_ATTR_CHECK(info, LUAPKT_A_SIZE))
		return -EINVAL;
	name = nla_data(tb[LUAPKT_A_NAME]);
	if (!luapkt_valid_name(name)) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LUAPKT_A_NAME],
				    "script name must be [A-Za-z0-9_.-]{1,63}");
		return -EINVAL;
	}

	up = kzalloc(sizeof(*up), GFP_KERNEL_ACCOUNT);
	if (!up)
		return -ENOMEM;
	strscpy(up->name, name, sizeof(up->name));
	up->portid = info->snd_portid;
	up->size = nla_get_u32(tb[LUAPKT_A_SIZE]);
	if (!up->size || up->size > LUAPKT_PACKAGE_MAX) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LUAPKT_A_SIZE],
				    "package size must be 1..4 MiB");
		err = -EMSGSIZE;
		goto err_free;
	}
	if (tb[LUAPKT_A_FLAGS])
		up->flags = nla_get_u32(tb[LUAPKT_A_FLAGS]);
	if (tb[LUAPKT_A_ENGINE])
		up->engine = nla_get_u8(tb[LUAPKT_A_ENGINE]);
	lp_rt_default_limits(&up->limits);
	luapkt_parse_limits(tb, &up->limits);
	err = lp_rt_check_limits(&up->limits, err_msg, sizeof(err_msg));
	if (err < 0) {
		luapkt_set_err(extack, "limit out of range", "%s", err_msg);
		goto err_free;
	}
	up->buf = kvmalloc(up->size, GFP_KERNEL_ACCOUNT);
	if (!up->buf) {
		err = -ENOMEM;
		goto err_free;
	}
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto err_free;
	}

	mutex_lock(&ln->mutex);
	if (!(up->flags & LUAPKT_FLAG_REPLACE) && luapkt_script_lookup(ln, name)) {
		NL_SET_ERR_MSG_MOD(extack, "a script of that name is loaded (replace it?)");
		err = -EEXIST;
		goto err_unlock;
	}
	if (ln->nuploads >= LUAPKT_UPLOADS_MAX) {
		NL_SET_ERR_MSG_MOD(extack, "too many uploads in progress");
		err = -EBUSY;
		goto err_unlock;
	}
	up->id = luapkt_upload_next_id(ln);
	hdr = genlmsg_put_reply(msg, info, &luapkt_genl_family, 0, LUAPKT_CMD_LOAD_BEGIN);
	if (!hdr || nla_put_u32(msg, LUAPKT_A_UPLOAD_ID, up->id)) {
		err = -EMSGSIZE;
		goto err_unlock;
	}
	genlmsg_end(msg, hdr);
	list_add_tail(&up->list, &ln->uploads);
	ln->nuploads++;
	id = up->id;	/* @up may be freed (socket closed) once the mutex is released */
	mutex_unlock(&ln->mutex);

	err = genlmsg_reply(msg, info);
	if (err) {
		/* the client never learns the id: the upload must not wait for its socket */
		mutex_lock(&ln->mutex);
		up = luapkt_upload_find(ln, id, info->snd_portid);
		if (up)
			luapkt_upload_unlink(ln, up);
		mutex_unlock(&ln->mutex);
		if (up)
			luapkt_upload_free(up);
	}
	return err;

err_unlock:
	mutex_unlock(&ln->mutex);
	nlmsg_free(msg);
err_free:
	luapkt_upload_free(up);
	return err;
}

static int luapkt_nl_load_chunk(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct netlink_ext_ack *extack = info->extack;
	struct nlattr **tb = info->attrs;
	struct luapkt_upload *up;
	u32 off, len;
	int err;

	err = luapkt_may_change(skb, info);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_UPLOAD_ID) ||
	    GENL_REQ_ATTR_CHECK(info, LUAPKT_A_OFFSET) ||
	    GENL_REQ_ATTR_CHECK(info, LUAPKT_A_DATA))
		return -EINVAL;
	off = nla_get_u32(tb[LUAPKT_A_OFFSET]);
	len = nla_len(tb[LUAPKT_A_DATA]);

	mutex_lock(&ln->mutex);
	up = luapkt_upload_find(ln, nla_get_u32(tb[LUAPKT_A_UPLOAD_ID]), info->snd_portid);
	if (!up) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LUAPKT_A_UPLOAD_ID], "no such upload");
		err = -ENOENT;
		goto out;
	}
	if (off != up->received) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LUAPKT_A_OFFSET],
				    "offset must equal the bytes received so far");
		err = -EINVAL;
		goto out;
	}
	if (len > up->size - up->received) {
		NL_SET_ERR_MSG_ATTR(extack, tb[LUAPKT_A_DATA],
				    "chunk goes past the announced size");
		err = -EMSGSIZE;
		goto out;
	}
	memcpy(up->buf + off, nla_data(tb[LUAPKT_A_DATA]), len);
	up->received += len;
out:
	mutex_unlock(&ln->mutex);
	return err;
}

static void luapkt_load_error(struct netlink_ext_ack *extack, const char *name, int err,
			      const char *msg)
{
	pr_info_ratelimited("script %s not loaded: %s\n", name, msg);
	switch (err) {
	case -ETIME:
		luapkt_set_err(extack, "top-level chunk used its whole load fuel", "%s", msg);
		break;
	case -EINTR:
		luapkt_set_err(extack, "load interrupted by a signal", "%s", msg);
		break;
	case -EPERM:
		luapkt_set_err(extack,
			       "another guest than the built-in one needs CAP_SYS_ADMIN",
			       "%s", msg);
		break;
	case -ENOEXEC:
		luapkt_set_err(extack, "guest module rejected", "%s", msg);
		break;
	case -ERANGE:
		luapkt_set_err(extack, "limit out of range", "%s", msg);
		break;
	case -ENOENT:
		luapkt_set_err(extack, "the new script lacks a function rules use", "%s", msg);
		break;
	case -ENOMEM:
		luapkt_set_err(extack, "out of memory", "%s", msg);
		break;
	default:
		luapkt_set_err(extack, "invalid package or script (see the kernel log)",
			       "%s", msg);
		break;
	}
}

struct luapkt_load {
	const struct luapkt_upload	*up;
	const struct lp_script		*replaces;
	bool				foreign_ok;
	u64				map_room;
	struct lp_script		*rt;
	char				*msg;
	size_t				msg_len;
};

static int luapkt_load_on_stack(void *arg)
{
	struct luapkt_load *l = arg;

	/* one instance per possible CPU id (nr_cpu_ids also covers sparse masks) */
	return lp_rt_load(luapkt_cache, l->up->buf, l->up->size, l->up->name,
			  strlen(l->up->name), &l->up->limits,
			  l->up->engine ?: READ_ONCE(default_engine), l->up->engine != 0,
			  nr_cpu_ids, l->replaces, l->foreign_ok, l->map_room, &l->rt, l->msg,
			  l->msg_len);
}

static int luapkt_nl_load_commit(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct netlink_ext_ack *extack = info->extack;
	struct luapkt_version *v, *old = NULL;
	struct luapkt_script *s, *fresh = NULL;
	struct luapkt_load load = {};
	struct luapkt_upload *up;
	struct lp_script *rt;
	struct sk_buff *msg;
	char *err_msg;
	u64 t0;
	int err;

	err = luapkt_may_change(skb, info);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_UPLOAD_ID))
		return -EINVAL;
	err_msg = kzalloc(256, GFP_KERNEL);
	if (!err_msg)
		return -ENOMEM;

	mutex_lock(&ln->mutex);
	up = luapkt_upload_find(ln, nla_get_u32(info->attrs[LUAPKT_A_UPLOAD_ID]),
				info->snd_portid);
	if (!up) {
		NL_SET_ERR_MSG_ATTR(extack, info->attrs[LUAPKT_A_UPLOAD_ID], "no such upload");
		err = -ENOENT;
		goto err_unlock;
	}
	if (up->received != up->size) {
		NL_SET_ERR_MSG_MOD(extack, "upload is incomplete");
		err = -EINVAL;
		goto err_unlock;
	}
	luapkt_upload_unlink(ln, up);

	s = luapkt_script_lookup(ln, up->name);
	if (s && !(up->flags & LUAPKT_FLAG_REPLACE)) {
		NL_SET_ERR_MSG_MOD(extack, "a script of that name is loaded (replace it?)");
		err = -EEXIST;
		goto err_upload;
	}
	if (!s && ln->nscripts >= READ_ONCE(max_scripts)) {
		luapkt_set_err(extack, "too many scripts in this network namespace",
			       "too many scripts in this network namespace: %u (max_scripts=%u)",
			       ln->nscripts, READ_ONCE(max_scripts));
		err = -ENOSPC;
		goto err_upload;
	}
	/* the maps a replacement keeps count in its own (the replaced script's are not counted) */
	err = luapkt_netns_room(ln, s, up->limits.memory, 0, extack, &load.map_room);
	if (err)
		goto err_upload;
	if (s)
		old = rcu_dereference_protected(s->cur, lockdep_is_held(&ln->mutex));
	else {
		fresh = kzalloc(sizeof(*fresh), GFP_KERNEL_ACCOUNT);
		if (!fresh) {
			err = -ENOMEM;
			goto err_upload;
		}
	}

	/*
	 * This can take a while: compiling the guest (once per content, then cached) and
	 * running the top-level chunk in every instance.
	 */
	load.up = up;
	load.replaces = old ? old->rt : NULL;
	load.foreign_ok = netlink_capable(skb, CAP_SYS_ADMIN);
	load.msg = err_msg;
	load.msg_len = 256;
	t0 = ktime_get_ns();
	err = mutex_lock_killable(&luapkt_load_mutex);
	if (err) {
		err = -EINTR;
		goto err_fresh;
	}
	err = lp_call_on_big_stack(luapkt_load_on_stack, &load);
	mutex_unlock(&luapkt_load_mutex);
	rt = load.rt;
	/*
	 * Stopped because the module is going, not by a signal: netlink sends no ack for EINTR
	 * (its caller is dying), and this caller is alive and waiting for one.
	 */
	if (err == -EINTR && lp_loads_stopping()) {
		err = -ESHUTDOWN;
		strscpy(err_msg, "the module is being removed", 256);
	}
	if (err == -ENOMEM && !err_msg[0])
		strscpy(err_msg, "out of memory", 256);
	if (err < 0) {
		luapkt_load_error(extack, up->name, err, err_msg);
		goto err_fresh;
	}
	v = luapkt_version_alloc(rt, genl_info_net(info));
	if (!v) {
		lp_rt_script_free(rt);
		err = -ENOMEM;
		goto err_fresh;
	}
	pr_info_ratelimited("script %s %sloaded: %u instances in %llu us\n", up->name,
		old ? "re" : "", lp_rt_instances(rt),
		(ktime_get_ns() - t0) / NSEC_PER_USEC);

	if (fresh) {
		s = fresh;
		kref_init(&s->ref);
		atomic_set(&s->users, 0);
		strscpy(s->name, up->name, sizeof(s->name));
		RCU_INIT_POINTER(s->cur, v);
		s->registered = true;
		list_add_tail(&s->list, &ln->scripts);
		ln->nscripts++;
	} else {
		/* packets see the old version or the new one, never neither */
		rcu_assign_pointer(s->cur, v);
		/* the old version's timers run no more (their wake-ups stop when it is freed) */
		lp_rt_timers_close(old->rt);
	}
	msg = luapkt_script_reply(s, info, LUAPKT_CMD_LOAD_COMMIT);
	mutex_unlock(&ln->mutex);

	if (old) {
		synchronize_rcu();
		luapkt_version_free(old);
	}
	luapkt_upload_free(up);
	kfree(err_msg);
	/* the script is loaded whether or not the reply fits */
	if (IS_ERR(msg))
		return 0;
	return genlmsg_reply(msg, info);

err_fresh:
	kfree(fresh);
err_upload:
	mutex_unlock(&ln->mutex);
	luapkt_upload_free(up);
	kfree(err_msg);
	return err;
err_unlock:
	mutex_unlock(&ln->mutex);
	kfree(err_msg);
	return err;
}

static int luapkt_nl_load_abort(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct luapkt_upload *up;
	int err;

	err = luapkt_may_change(skb, info);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_UPLOAD_ID))
		return -EINVAL;
	mutex_lock(&ln->mutex);
	up = luapkt_upload_find(ln, nla_get_u32(info->attrs[LUAPKT_A_UPLOAD_ID]),
				info->snd_portid);
	if (up)
		luapkt_upload_unlink(ln, up);
	mutex_unlock(&ln->mutex);
	if (!up) {
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[LUAPKT_A_UPLOAD_ID],
				    "no such upload");
		return -ENOENT;
	}
	luapkt_upload_free(up);
	return 0;
}

static int luapkt_nl_unload(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct netlink_ext_ack *extack = info->extack;
	struct luapkt_script *s;
	int users, err;

	err = luapkt_may_change(skb, info);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_NAME))
		return -EINVAL;
	s = luapkt_script_named(ln, info);
	if (!s)
		return -ENOENT;
	/* rules take their reference under this mutex: the count cannot grow meanwhile */
	users = atomic_read(&s->users);
	if (users) {
		mutex_unlock(&ln->mutex);
		luapkt_set_err(extack, "script is in use by rules",
			       "script %s is in use by %d rule(s)", s->name, users);
		return -EBUSY;
	}
	list_del(&s->list);
	s->registered = false;
	ln->nscripts--;
	mutex_unlock(&ln->mutex);

	luapkt_script_put(s);
	return 0;
}

static int luapkt_nl_get(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct luapkt_script *s;
	struct sk_buff *msg;

	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_NAME))
		return -EINVAL;
	s = luapkt_script_named(ln, info);
	if (!s)
		return -ENOENT;
	msg = luapkt_script_reply(s, info, LUAPKT_CMD_GET);
	mutex_unlock(&ln->mutex);
	if (IS_ERR(msg))
		return PTR_ERR(msg);
	return genlmsg_reply(msg, info);
}

static int luapkt_nl_get_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct luapkt_net *ln = luapkt_pernet(sock_net(skb->sk));
	struct luapkt_script *s;
	long idx = 0, start = cb->args[0];

	mutex_lock(&ln->mutex);
	list_for_each_entry(s, &ln->scripts, list) {
		if (idx < start) {
			idx++;
			continue;
		}
		if (luapkt_fill_script(skb, s, NETLINK_CB(cb->skb).portid,
				       cb->nlh->nlmsg_seq, NLM_F_MULTI, LUAPKT_CMD_GET) < 0)
			break;
		idx++;
	}
	mutex_unlock(&ln->mutex);
	cb->args[0] = idx;
	return skb->len;
}

/*
 * A reply to @info for @cmd with attribute @type reserved for LUAPKT_READ_MAX bytes that the
 * runtime fills (*@data); NULL on failure (-ENOMEM or -EMSGSIZE in *@err).
 */
static struct sk_buff *luapkt_reserve_reply(struct genl_info *info, u8 cmd, int type,
					    struct nlattr **data, void **hdr, int *err)
{
	struct sk_buff *msg;

	*err = -ENOMEM;
	msg = genlmsg_new(nla_total_size(LUAPKT_READ_MAX) + NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return NULL;
	*err = -EMSGSIZE;
	*hdr = genlmsg_put_reply(msg, info, &luapkt_genl_family, 0, cmd);
	if (!*hdr)
		goto fail;
	*data = nla_reserve(msg, type, LUAPKT_READ_MAX);
	if (!*data)
		goto fail;
	return msg;

fail:
	nlmsg_free(msg);
	return NULL;
}

/*
 * Shrinks the attribute luapkt_reserve_reply() reserved to the @len bytes the runtime copied
 * (the reserved tail is the message's end), its padding zeroed: no stale kernel bytes reach
 * userspace. -EIO if the runtime claims more than it was given.
 */
static int luapkt_shrink_reply(struct sk_buff *msg, struct nlattr *data, u32 len)
{
	if (WARN_ON_ONCE(len > LUAPKT_READ_MAX))
		return -EIO;
	memset((u8 *)nla_data(data) + len, 0, nla_padlen(len));
	data->nla_len = nla_attr_size(len);
	skb_trim(msg, (unsigned char *)data - msg->data + nla_total_size(len));
	return 0;
}

/*
 * A read command's copy from a script's version into @buf (LUAPKT_READ_MAX bytes): the bytes
 * copied, or -errno (with its message in @info's extack).
 */
typedef int (*luapkt_copy_t)(const struct luapkt_version *v, void *buf,
			     struct genl_info *info, void *arg);

/*
 * The reply of a read command: NAME and attribute @type holding what @copy copied from the
 * script NAME names (ln->mutex held, which keeps its version), or NULL with the error in
 * *@err. The caller adds its own attributes and ends the message at *@hdr.
 */
static struct sk_buff *luapkt_read_reply(struct genl_info *info, int type, luapkt_copy_t copy,
					 void *arg, void **hdr, int *err)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct luapkt_script *s;
	struct sk_buff *msg;
	struct nlattr *data;
	int n;

	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_NAME)) {
		*err = -EINVAL;
		return NULL;
	}
	msg = luapkt_reserve_reply(info, info->genlhdr->cmd, type, &data, hdr, err);
	if (!msg)
		return NULL;
	s = luapkt_script_named(ln, info);
	if (!s) {
		*err = -ENOENT;
		goto fail;
	}
	n = copy(rcu_dereference_protected(s->cur, lockdep_is_held(&ln->mutex)), nla_data(data),
		 info, arg);
	mutex_unlock(&ln->mutex);
	*err = n < 0 ? n : luapkt_shrink_reply(msg, data, n);
	if (*err)
		goto fail;
	if (nla_put_string(msg, LUAPKT_A_NAME, nla_data(info->attrs[LUAPKT_A_NAME]))) {
		*err = -EMSGSIZE;
		goto fail;
	}
	return msg;

fail:
	nlmsg_free(msg);
	return NULL;
}

struct luapkt_records_read {
	u8		which;	/* LP_RECORDS_* */
	u64		from;
	struct lp_read	out;
};

static int luapkt_copy_records(const struct luapkt_version *v, void *buf,
			       struct genl_info *info, void *arg)
{
	struct luapkt_records_read *r = arg;
	int err = lp_rt_read_records(v->rt, r->which, r->from, buf, LUAPKT_READ_MAX, &r->out);

	return err ? err : (int)r->out.len;
}

/*
 * LOG_READ, ERRORS_READ: the script's log lines or kept errors from LOG_SEQ on, as records
 * copied by the runtime into LOG_DATA (at most LUAPKT_READ_MAX bytes; ask again from the
 * LOG_SEQ of the reply). Reading what a script logged needs what showing it needs.
 */
static int luapkt_nl_read(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_records_read r = {
		.which = info->genlhdr->cmd == LUAPKT_CMD_LOG_READ ? LP_RECORDS_LOG :
								     LP_RECORDS_ERRORS,
	};
	struct sk_buff *msg;
	void *hdr;
	int err;

	if (info->attrs[LUAPKT_A_LOG_SEQ])
		r.from = nla_get_u64(info->attrs[LUAPKT_A_LOG_SEQ]);
	msg = luapkt_read_reply(info, LUAPKT_A_LOG_DATA, luapkt_copy_records, &r, &hdr, &err);
	if (!msg)
		return err;
	if (nla_put_u64_64bit(msg, LUAPKT_A_LOG_SEQ, r.out.next, LUAPKT_A_PAD) ||
	    nla_put_u64_64bit(msg, LUAPKT_A_LOG_LOST, r.out.lost, LUAPKT_A_PAD)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

struct luapkt_source_read {
	u32	offset;
	u32	total;
};

static int luapkt_copy_source(const struct luapkt_version *v, void *buf,
			      struct genl_info *info, void *arg)
{
	struct luapkt_source_read *r = arg;
	int n = lp_rt_read_source(v->rt, r->offset, buf, LUAPKT_READ_MAX, &r->total);

	if (n < 0)
		NL_SET_ERR_MSG_ATTR(info->extack, info->attrs[LUAPKT_A_OFFSET],
				    "offset past the end of the source");
	return n;
}

/*
 * SOURCE_READ: the script's Lua source from OFFSET on, in DATA (at most LUAPKT_READ_MAX bytes),
 * with SIZE (its whole length) and OFFSET. The source never changes once loaded: a version
 * keeps it.
 */
static int luapkt_nl_source(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_source_read r = {};
	struct sk_buff *msg;
	void *hdr;
	int err;

	if (info->attrs[LUAPKT_A_OFFSET])
		r.offset = nla_get_u32(info->attrs[LUAPKT_A_OFFSET]);
	msg = luapkt_read_reply(info, LUAPKT_A_DATA, luapkt_copy_source, &r, &hdr, &err);
	if (!msg)
		return err;
	if (nla_put_u32(msg, LUAPKT_A_SIZE, r.total) || nla_put_u32(msg, LUAPKT_A_OFFSET, r.offset)) {
		nlmsg_free(msg);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);
}

/*
 * MAP_LIST, MAP_DUMP, MAP_GET, MAP_SET, MAP_DELETE: a script's maps (lp.map). Reads need what
 * showing a script needs, writes what loading one needs. The maps live as long as the script;
 * ln->mutex keeps its version while the runtime copies (under each stripe's own lock).
 */
static int luapkt_nl_map(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct netlink_ext_ack *extack = info->extack;
	u8 cmd = info->genlhdr->cmd;
	const struct luapkt_version *v;
	const char *map = NULL;
	struct luapkt_script *s;
	struct sk_buff *msg = NULL;
	struct nlattr *data = NULL;
	u64 cursor = 0, next = 0;
	const u8 *key = NULL;
	size_t map_len = 0;
	int klen = 0, err;
	void *hdr = NULL;

	if (cmd == LUAPKT_CMD_MAP_SET || cmd == LUAPKT_CMD_MAP_DELETE) {
		err = luapkt_may_change(skb, info);
		if (err)
			return err;
	}
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_NAME))
		return -EINVAL;
	if (cmd != LUAPKT_CMD_MAP_LIST) {
		if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_MAP_NAME))
			return -EINVAL;
		map = nla_data(info->attrs[LUAPKT_A_MAP_NAME]);
		map_len = strlen(map);
	}
	if (cmd == LUAPKT_CMD_MAP_GET || cmd == LUAPKT_CMD_MAP_SET ||
	    cmd == LUAPKT_CMD_MAP_DELETE) {
		if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_MAP_KEY))
			return -EINVAL;
		key = nla_data(info->attrs[LUAPKT_A_MAP_KEY]);
		klen = nla_len(info->attrs[LUAPKT_A_MAP_KEY]);
	}
	if (cmd == LUAPKT_CMD_MAP_SET && GENL_REQ_ATTR_CHECK(info, LUAPKT_A_MAP_VALUE))
		return -EINVAL;
	if (info->attrs[LUAPKT_A_LOG_SEQ])
		cursor = nla_get_u64(info->attrs[LUAPKT_A_LOG_SEQ]);

	if (cmd == LUAPKT_CMD_MAP_LIST || cmd == LUAPKT_CMD_MAP_DUMP ||
	    cmd == LUAPKT_CMD_MAP_GET) {
		msg = luapkt_reserve_reply(info, cmd, cmd == LUAPKT_CMD_MAP_GET ?
					   LUAPKT_A_MAP_VALUE : LUAPKT_A_LOG_DATA,
					   &data, &hdr, &err);
		if (!msg)
			return err;
	}

	s = luapkt_script_named(ln, info);
	if (!s) {
		nlmsg_free(msg);
		return -ENOENT;
	}
	v = rcu_dereference_protected(s->cur, lockdep_is_held(&ln->mutex));
	switch (cmd) {
	case LUAPKT_CMD_MAP_LIST:
		err = lp_rt_map_list(v->rt, nla_data(data), LUAPKT_READ_MAX);
		break;
	case LUAPKT_CMD_MAP_DUMP:
		err = lp_rt_map_dump(v->rt, map, map_len, cursor, nla_data(data), LUAPKT_READ_MAX,
				     &next);
		break;
	case LUAPKT_CMD_MAP_GET:
		err = lp_rt_map_op(v->rt, map, map_len, LP_MAP_GET, key, klen, nla_data(data),
				   LUAPKT_READ_MAX);
		break;
	case LUAPKT_CMD_MAP_SET:
		err = lp_rt_map_op(v->rt, map, map_len, LP_MAP_SET, key, klen,
				   nla_data(info->attrs[LUAPKT_A_MAP_VALUE]),
				   nla_len(info->attrs[LUAPKT_A_MAP_VALUE]));
		break;
	default:
		err = lp_rt_map_op(v->rt, map, map_len, LP_MAP_DELETE, key, klen, NULL, 0);
		break;
	}
	mutex_unlock(&ln->mutex);
	if (err < 0) {
		nlmsg_free(msg);
		if (err == -ENOENT && key)
			NL_SET_ERR_MSG_ATTR(extack, info->attrs[LUAPKT_A_MAP_KEY],
					    "no such key (or map)");
		else if (err == -ENOENT && map)
			NL_SET_ERR_MSG_ATTR(extack, info->attrs[LUAPKT_A_MAP_NAME], "no such map");
		return err;
	}
	if (!msg)
		return 0;
	err = luapkt_shrink_reply(msg, data, err);
	if (err) {
		nlmsg_free(msg);
		return err;
	}
	if (cmd == LUAPKT_CMD_MAP_DUMP &&
	    nla_put_u64_64bit(msg, LUAPKT_A_LOG_SEQ, next, LUAPKT_A_PAD))
		goto too_big;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

too_big:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

static int luapkt_nl_set_limits(struct sk_buff *skb, struct genl_info *info)
{
	struct luapkt_net *ln = luapkt_pernet(genl_info_net(info));
	struct netlink_ext_ack *extack = info->extack;
	const struct luapkt_version *v;
	struct luapkt_script *s;
	struct lp_limits l;
	char err_msg[128];
	int err;

	err = luapkt_may_change(skb, info);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(info, LUAPKT_A_NAME))
		return -EINVAL;
	s = luapkt_script_named(ln, info);
	if (!s)
		return -ENOENT;
	if (info->attrs[LUAPKT_A_ENGINE]) {
		mutex_unlock(&ln->mutex);
		NL_SET_ERR_MSG_ATTR(extack, info->attrs[LUAPKT_A_ENGINE],
				    "the engine is chosen when a script is loaded");
		return -EINVAL;
	}
	v = rcu_dereference_protected(s->cur, lockdep_is_held(&ln->mutex));
	lp_rt_get_limits(v->rt, &l);
	luapkt_parse_limits(info->attrs, &l);
	err = luapkt_netns_room(ln, s, l.memory, lp_rt_map_bytes(v->rt), extack, NULL);
	if (err) {
		mutex_unlock(&ln->mutex);
		return err;
	}
	err = lp_rt_set_limits(v->rt, &l, err_msg, sizeof(err_msg));
	mutex_unlock(&ln->mutex);
	if (err < 0)
		luapkt_set_err(extack, "limit out of range", "%s", err_msg);
	return err;
}

static const struct genl_ops luapkt_genl_ops[] = {
	{
		.cmd	= LUAPKT_CMD_LOAD_BEGIN,
		.doit	= luapkt_nl_load_begin,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_LOAD_CHUNK,
		.doit	= luapkt_nl_load_chunk,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_LOAD_COMMIT,
		.doit	= luapkt_nl_load_commit,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_UNLOAD,
		.doit	= luapkt_nl_unload,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_GET,
		.doit	= luapkt_nl_get,
		.dumpit	= luapkt_nl_get_dump,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_SET_LIMITS,
		.doit	= luapkt_nl_set_limits,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_LOG_READ,
		.doit	= luapkt_nl_read,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd	= LUAPKT_CMD_ERRORS_READ,
		.doit	= luapkt_nl_read,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
	{ .cmd = LUAPKT_CMD_MAP_LIST,	.doit = luapkt_nl_map, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = LUAPKT_CMD_MAP_DUMP,	.doit = luapkt_nl_map, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = LUAPKT_CMD_MAP_GET,	.doit = luapkt_nl_map, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = LUAPKT_CMD_MAP_SET,	.doit = luapkt_nl_map, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = LUAPKT_CMD_MAP_DELETE,	.doit = luapkt_nl_map, .flags = GENL_UNS_ADMIN_PERM },
	{ .cmd = LUAPKT_CMD_SOURCE_READ, .doit = luapkt_nl_source, .flags = GENL_UNS_ADMIN_PERM },
	{
		.cmd	= LUAPKT_CMD_LOAD_ABORT,
		.doit	= luapkt_nl_load_abort,
		.flags	= GENL_UNS_ADMIN_PERM,
	},
};

struct genl_family luapkt_genl_family __ro_after_init = {
	.name		= LUAPKT_GENL_NAME,
	.version	= LUAPKT_GENL_VERSION,
	.maxattr	= LUAPKT_A_MAX,
	.policy		= luapkt_genl_policy,
	.netnsok	= true,
	/* handlers lock per netns; loads can take long */
	.parallel_ops	= true,
	.module		= THIS_MODULE,
	.ops		= luapkt_genl_ops,
	.n_ops		= ARRAY_SIZE(luapkt_genl_ops),
};

/* ---- uploads die with their socket ---- */

static int luapkt_netlink_event(struct notifier_block *nb, unsigned long event, void *ptr)
{
	struct netlink_notify *n = ptr;
	struct luapkt_upload *up, *tmp;
	struct luapkt_net *ln;
	LIST_HEAD(dead);

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC || !n->portid)
		return NOTIFY_DONE;
	ln = luapkt_pernet(n->net);
	mutex_lock(&ln->mutex);
	list_for_each_entry_safe(up, tmp, &ln->uploads, list) {
		if (up->portid != n->portid)
			continue;
		luapkt_upload_unlink(ln, up);
		list_add(&up->list, &dead);
	}
	mutex_unlock(&ln->mutex);
	list_for_each_entry_safe(up, tmp, &dead, list)
		luapkt_upload_free(up);
	return NOTIFY_DONE;
}

struct notifier_block luapkt_netlink_notifier = {
	.notifier_call = luapkt_netlink_event,
};

/* ---- per netns ---- */

static int __net_init luapkt_net_init(struct net *net)
{
	struct luapkt_net *ln = luapkt_pernet(net);

	mutex_init(&ln->mutex);
	INIT_LIST_HEAD(&ln->scripts);
	INIT_LIST_HEAD(&ln->uploads);
	ln->nuploads = 0;
	ln->nscripts = 0;
	ln->next_upload_id = 0;
	return 0;
}

static void __net_exit luapkt_net_exit(struct net *net)
{
	struct luapkt_net *ln = luapkt_pernet(net);
	struct luapkt_upload *up, *utmp;
	struct luapkt_script *s, *stmp;
	LIST_HEAD(scripts);
	LIST_HEAD(uploads);

	mutex_lock(&ln->mutex);
	list_splice_init(&ln->uploads, &uploads);
	ln->nuploads = 0;
	list_splice_init(&ln->scripts, &scripts);
	ln->nscripts = 0;
	list_for_each_entry(s, &scripts, list)
		s->registered = false;
	mutex_unlock(&ln->mutex);

	list_for_each_entry_safe(up, utmp, &uploads, list)
		luapkt_upload_free(up);
	/* scripts that rules still use live on until nf_tables destroys those rules */
	list_for_each_entry_safe(s, stmp, &scripts, list) {
		/* nothing may send into the namespace once it is gone */
		luapkt_timers_stop(rcu_dereference_protected(s->cur, 1));
		list_del(&s->list);
		luapkt_script_put(s);
	}
	mutex_destroy(&ln->mutex);
}

struct pernet_operations luapkt_net_ops = {
	.init	= luapkt_net_init,
	.exit	= luapkt_net_exit,
	.id	= &luapkt_net_id,
	.size	= sizeof(struct luapkt_net),
};
