/* QEMU TCG plugin for benchmarks/core_cycles.py: what executed between two markers, by instruction.
 *
 * Counts each executed instruction under a key made of its mnemonic (QEMU's disassembly) and what its timing
 * depends on: "+pipe" for a load or store right after another one in the same block (the Cortex-M3/M4 pipeline
 * overlaps them), "#N" for the registers of a register list (PUSH, POP, LDM, STM, VPUSH...; "pc" when it loads
 * the PC), "@pc" for a PC-relative load. Also counts "taken": block starts that do not follow on from the
 * previous block (taken branches, calls, returns). At each marker it writes one line "M <index> key=count ...".
 * Arguments: out=FILE, marks=A1:A2 (hex, Thumb bit cleared). Single vCPU. */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

char *qemu_plugin_insn_disas(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn, enum qemu_plugin_op op, void *ptr,
                                                uint64_t imm);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_KEYS 4096
#define MAX_MARKS 4

static uint64_t counts[MAX_KEYS];
static char *names[MAX_KEYS];
static int n_keys;
static GHashTable *index_of;
static uint64_t marks[MAX_MARKS];
static int n_marks;
static FILE *out;
static uint64_t last_end;

static int key_index(const char *key) {
  gpointer v;
  if (g_hash_table_lookup_extended(index_of, key, NULL, &v)) return GPOINTER_TO_INT(v);
  if (n_keys == MAX_KEYS) return 0;
  names[n_keys] = g_strdup(key);
  g_hash_table_insert(index_of, names[n_keys], GINT_TO_POINTER(n_keys));
  return n_keys++;
}

static void on_mark(unsigned int vcpu, void *udata) {
  (void)vcpu;
  fprintf(out, "M %d", (int)(uintptr_t)udata);
  for (int k = 0; k < n_keys; k++) {
    if (counts[k]) fprintf(out, " %s=%llu", names[k], (unsigned long long)counts[k]);
  }
  fprintf(out, "\n");
}

static void on_block(unsigned int vcpu, void *udata) {
  const uint64_t *start_end = udata;
  (void)vcpu;
  if (start_end[0] != last_end) counts[0]++; /* key 0 is "taken" */
  last_end = start_end[1];
}

static int is_load_store(const char *m) { return (m[0] == 'l' && m[1] == 'd') || strncmp(m, "str", 3) == 0; }

/* "#N" (and "pc") for a register list such as "{r4, r5, r6, lr}" or "{r4-r7, pc}" or "{d8-d9}" */
static void register_list(const char *text, char *hint, size_t size) {
  const char *brace = strchr(text, '{');
  int n = 0;
  if (!brace) return;
  for (const char *p = brace + 1; *p && *p != '}';) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p || *p == '}') break;
    char token[16];
    int t = 0;
    while (*p && *p != ',' && *p != '}' && t < 15) token[t++] = *p++;
    token[t] = 0;
    char *dash = strchr(token, '-');
    n += dash ? atoi(dash + 2) - atoi(token + 1) + 1 : 1;
  }
  snprintf(hint, size, "#%d%s", n, strstr(brace, "pc") ? "pc" : "");
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  size_t n = qemu_plugin_tb_n_insns(tb);
  uint64_t *start_end = g_new(uint64_t, 2);
  int previous_load_store = 0;
  (void)id;
  start_end[0] = start_end[1] = qemu_plugin_tb_vaddr(tb);
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    start_end[1] = pc + qemu_plugin_insn_size(insn);
    for (int m = 0; m < n_marks; m++) {
      if (marks[m] == pc) {
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)m);
      }
    }
    char *text = qemu_plugin_insn_disas(insn);
    char mnemonic[48], hint[32] = "", key[96];
    int j = 0;
    while (text[j] && text[j] != ' ' && j < 47) mnemonic[j] = text[j], j++;
    mnemonic[j] = 0;
    int load_store = is_load_store(mnemonic);
    if (load_store && strstr(text + j, "pc")) strcpy(hint, "@pc");
    register_list(text + j, hint, sizeof hint);
    snprintf(key, sizeof key, "%s%s%s", mnemonic, hint, load_store && previous_load_store ? "+pipe" : "");
    previous_load_store = load_store;
    g_free(text);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &counts[key_index(key)], 1);
  }
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, start_end);
}

static void at_exit(qemu_plugin_id_t id, void *udata) {
  (void)id;
  (void)udata;
  fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  const char *path = NULL;
  (void)info;
  index_of = g_hash_table_new(g_str_hash, g_str_equal);
  key_index("taken");
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      path = argv[i] + 4;
    } else if (strncmp(argv[i], "marks=", 6) == 0) {
      char **parts = g_strsplit(argv[i] + 6, ":", MAX_MARKS + 1);
      for (int k = 0; parts[k] && n_marks < MAX_MARKS; k++) marks[n_marks++] = strtoull(parts[k], NULL, 16);
      g_strfreev(parts);
    }
  }
  if (!path || !n_marks || !(out = fopen(path, "w"))) {
    fprintf(stderr, "core_cycles_plugin: needs out=FILE and marks=ADDR:ADDR\n");
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, at_exit, NULL);
  return 0;
}
