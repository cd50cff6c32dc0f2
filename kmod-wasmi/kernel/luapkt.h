/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * luapkt internals shared by the nft expression (nft_lua.c) and the control family
 * (luapkt_genl.c): the per-netns script registry.
 *
 * Lifetimes and locks (docs/contexts.md has the full table):
 *  - luapkt_net.mutex serializes writers of one netns: the script list, the upload table,
 *    binds of rules to scripts, limit changes, replacement. Process context.
 *  - luapkt_load_mutex (global) serializes use of the compiled-guest cache; taken inside
 *    luapkt_net.mutex, never the other way round. nf_tables' commit mutex may be held
 *    outside both (expression init/destroy).
 *  - a script (luapkt_script) is refcounted: one reference for the registry, one per rule.
 *    Its current version is RCU-published; the packet path reads it under the RCU read
 *    side nf_hook_slow() holds. A replaced version is freed after synchronize_rcu().
 */
#ifndef _LUAPKT_H
#define _LUAPKT_H

#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/workqueue.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>

#include "luapkt_abi.h"
#include "lp_rt.h"
#include "lp_shim.h"

struct mem_cgroup;
struct luapkt_version;

/* the wake-up of one of a version's timers (luapkt_timers.c) */
struct luapkt_timer {
	struct delayed_work	work;
	struct luapkt_version	*v;
	u32			index;
};

/* one loaded version of a script */
struct luapkt_version {
	struct lp_script	*rt;
	/* rebuilds instances that trapped; queued from the packet path */
	struct delayed_work	rebuild;
	/* rebuilds that failed, and the failures in a row (the retry delay grows with them) */
	atomic_t		rebuild_failures;
	unsigned int		rebuild_streak;
	/* the loader's memory cgroup: rebuilds (a kworker) charge their memory to it as well */
	struct mem_cgroup	*memcg;
	/* the namespace it was loaded in: where its timers send (they stop before it goes) */
	struct net		*net;
	/* timers_stopping (under timer_lock): no wake-up may be queued any more */
	spinlock_t		timer_lock;
	bool			timers_stopping;
	struct luapkt_timer	timers[LP_TIMERS_MAX];
	u8			tag[8];
};

struct luapkt_script {
	struct list_head	list;		/* luapkt_net.scripts, under its mutex */
	struct kref		ref;		/* registry + rules */
	atomic_t		users;		/* rules bound to the script */
	bool			registered;	/* still in the registry (under mutex) */
	struct luapkt_version __rcu *cur;
	char			name[LUAPKT_NAME_MAX + 1];
};

struct luapkt_net {
	struct mutex		mutex;
	struct list_head	scripts;
	struct list_head	uploads;
	u32			nuploads;
	u32			nscripts;
	u32			next_upload_id;
};

extern struct mutex luapkt_load_mutex;
extern struct lp_cache *luapkt_cache;

struct luapkt_net *luapkt_pernet(struct net *net);
/* under ln->mutex */
struct luapkt_script *luapkt_script_lookup(struct luapkt_net *ln, const char *name);
void luapkt_script_put(struct luapkt_script *s);
void luapkt_version_schedule_rebuild(struct luapkt_version *v);

/* luapkt_timers.c. Process context: before @v is published (init), and when it is replaced,
 * unloaded or its namespace goes (stop: no timer runs after it returns; may sleep). */
void luapkt_timers_init(struct luapkt_version *v);
void luapkt_timers_stop(struct luapkt_version *v);

/* nft_lua.c: transmits what a call sent, queued on @q (any context; disables bottom halves) */
void nft_lua_transmit(struct net *net, struct sk_buff_head *q);

/* registered by the module init in nft_lua.c, defined in luapkt_genl.c */
extern struct pernet_operations luapkt_net_ops;
extern struct genl_family luapkt_genl_family;
extern struct notifier_block luapkt_netlink_notifier;

#endif /* _LUAPKT_H */
