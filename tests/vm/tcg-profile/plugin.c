/*
 * A qemu TCG plugin for scripts/tcg-profile.sh: how many times each translation block ran (and
 * its instruction count), counted between two marker programs the scenario runs (the first,
 * at 0x13370000, zeroes the counts; the second, at 0x13380000, writes them to out=FILE as
 * "vaddr instructions executions" lines): the guest's own instructions and blocks per packet,
 * which the host's speed does not move (what runs in a window still varies a little). The plugin API's few declarations are spelled here
 * (Debian ships no qemu-plugin.h); version 1 of the API, as qemu 7.2 has it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct { const char *target_name; struct { int min; int cur; } version; int system_emulation; } qemu_info_t;
typedef void (*tb_trans_cb)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb)(qemu_plugin_id_t, void *);
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, enum qemu_plugin_op, void *, uint64_t);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb, void *);
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*vcpu_udata_cb)(unsigned int, void *);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, vcpu_udata_cb, enum qemu_plugin_cb_flags, void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

struct ent { uint64_t vaddr; uint64_t n; uint64_t count; };
#define CAP (1u << 22)
static struct ent *tab;
static void mark(unsigned int cpu, void *u);
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char outpath[512] = "/tmp/hot.out";

static void trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t va = qemu_plugin_tb_vaddr(tb), n = qemu_plugin_tb_n_insns(tb);
	uint64_t h = (va * 0x9E3779B97F4A7C15ull) >> 42;
	struct ent *e = NULL;
	pthread_mutex_lock(&mu);
	for (;; h = (h + 1) & (CAP - 1)) {
		e = &tab[h & (CAP - 1)];
		if (e->vaddr == va && e->n == n) break;
		if (!e->vaddr) { e->vaddr = va; e->n = n; break; }
	}
	pthread_mutex_unlock(&mu);
	if (va == 0x13370000) qemu_plugin_register_vcpu_tb_exec_cb(tb, mark, QEMU_PLUGIN_CB_NO_REGS, (void *)1);
	if (va == 0x13380000) qemu_plugin_register_vcpu_tb_exec_cb(tb, mark, QEMU_PLUGIN_CB_NO_REGS, (void *)2);
	qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &e->count, 1);
}

static void at_exit(qemu_plugin_id_t id, void *u);
static int dumped;
static void mark(unsigned int cpu, void *u)
{
	if (u == (void *)1) {
		for (uint64_t i = 0; i < CAP; i++) tab[i].count = 0;
	} else if (!dumped) {
		at_exit(0, NULL);
		dumped = 1;
	}
}
static void at_exit(qemu_plugin_id_t id, void *u)
{
	if (dumped) return;
	FILE *f = fopen(outpath, "w");
	if (!f) return;
	for (uint64_t i = 0; i < CAP; i++)
		if (tab[i].vaddr && tab[i].count)
			fprintf(f, "%lx %lu %lu\n", tab[i].vaddr, tab[i].n, tab[i].count);
	fclose(f);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4)) snprintf(outpath, sizeof outpath, "%s", argv[i] + 4);
	tab = calloc(CAP, sizeof *tab);
	qemu_plugin_register_vcpu_tb_trans_cb(id, trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
