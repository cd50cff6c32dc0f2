// SPDX-License-Identifier: GPL-2.0-only
/*
 * The wake-ups of a script version's timers (lp.timer). The runtime keeps the timers
 * (kmod-wasmi/runtime/src/timers.rs: which entry is armed, by which instance, for what); each
 * of a version's LP_TIMERS_MAX entries has a delayed work item here, queued on the CPU whose
 * instance armed it. The work runs the timer in that CPU's instance as a packet's call runs:
 * bottom halves disabled (the instance belongs to the CPU's softirqs), on the CPU's script
 * stack; then it transmits what the timer sent. The work runs in process context (a kworker),
 * so a timer's call never lengthens a softirq; the runtime bounds how many a script may arm
 * per second, and each is a call under the fuel ceiling.
 *
 * Stopping (a version replaced, unloaded, or its namespace going): the runtime refuses new
 * timers and makes wake-ups run nothing (lp_rt_timers_close), timers_stopping keeps any wake-up
 * from being queued again, and every work item is cancelled synchronously, so none runs or
 * waits once luapkt_timers_stop() returns.
 */
#include <linux/cpumask.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <linux/spinlock.h>
#include <linux/workqueue.h>

#include "luapkt.h"

struct luapkt_timer_call {
	struct luapkt_version	*v;
	struct lp_pkt		*pkt;
	u32			index;
	u32			other_cpu;
	int			result;
};

static void luapkt_timer_fire(void *arg)
{
	struct luapkt_timer_call *c = arg;

	c->result = lp_rt_timer_fire(c->v->rt, c->index, smp_processor_id(), c->pkt,
				     &c->other_cpu);
}

/* Queues entry @index's wake-up on @cpu unless the version's timers are stopping. */
static bool luapkt_timer_queue(struct luapkt_version *v, u32 index, u32 cpu, u32 delay_ms)
{
	bool ok = false;

	if (index >= LP_TIMERS_MAX || cpu >= nr_cpu_ids)
		return false;
	spin_lock_bh(&v->timer_lock);
	if (!v->timers_stopping) {
		mod_delayed_work_on(cpu, system_wq, &v->timers[index].work,
				    msecs_to_jiffies(delay_ms));
		ok = true;
	}
	spin_unlock_bh(&v->timer_lock);
	return ok;
}

static void luapkt_timer_work(struct work_struct *work)
{
	struct luapkt_timer *t = container_of(to_delayed_work(work), struct luapkt_timer, work);
	struct luapkt_version *v = t->v;
	struct luapkt_timer_call c = {
		.v = v,
		.index = t->index,
		.result = LP_TIMER_NOTHING,
	};
	struct sk_buff_head sendq;
	struct lp_pkt p = {};

	/* no packet: the timer's call gets a means of sending and its namespace */
	__skb_queue_head_init(&sendq);
	p.sendq = &sendq;
	p.net = v->net;
	p.may_send = 1;
	c.pkt = &p;
	local_bh_disable();
	lp_call_on_cpu_stack(luapkt_timer_fire, &c, false);
	local_bh_enable();
	if (!skb_queue_empty(&sendq))
		nft_lua_transmit(v->net, &sendq);

	switch (c.result) {
	case LP_TIMER_POISONED:
		luapkt_version_schedule_rebuild(v);
		break;
	case LP_TIMER_ELSEWHERE:
		/* a work item still running elsewhere when it was queued again runs there */
		if (!cpu_online(c.other_cpu) || !luapkt_timer_queue(v, t->index, c.other_cpu, 0))
			lp_rt_timer_drop(v->rt, t->index);
		break;
	}
}

void luapkt_timers_init(struct luapkt_version *v)
{
	u32 i;

	spin_lock_init(&v->timer_lock);
	v->timers_stopping = false;
	for (i = 0; i < LP_TIMERS_MAX; i++) {
		v->timers[i].v = v;
		v->timers[i].index = i;
		INIT_DELAYED_WORK(&v->timers[i].work, luapkt_timer_work);
	}
	lp_rt_timers_start(v->rt, v);
}

void luapkt_timers_stop(struct luapkt_version *v)
{
	u32 i;

	if (!v)
		return;
	lp_rt_timers_close(v->rt);
	spin_lock_bh(&v->timer_lock);
	v->timers_stopping = true;
	spin_unlock_bh(&v->timer_lock);
	for (i = 0; i < LP_TIMERS_MAX; i++)
		cancel_delayed_work_sync(&v->timers[i].work);
}

/* The runtime's driver (lp_rt.h): any context. */
bool lp_timer_arm(void *owner, u32 index, u32 cpu, u32 delay_ms)
{
	return luapkt_timer_queue(owner, index, cpu, delay_ms);
}

bool lp_timer_cancel(void *owner, u32 index)
{
	struct luapkt_version *v = owner;

	if (index >= LP_TIMERS_MAX)
		return false;
	return cancel_delayed_work(&v->timers[index].work);
}
