/* QEMU TCG plugin: exact executed-instruction counts between marker addresses.
 *
 * Every translation block adds its instruction count to one counter inline (no helper call). When an
 * instruction at a marker address executes, the counter minus the block's instructions after the marker
 * (counted ahead by the inline add) is appended to a log. Arguments: out=FILE, marks=A1:A2:... (hex
 * addresses, Thumb bit cleared). At exit the log is written as "<marker index> <instructions>" lines.
 * Single vCPU only (the Cortex-M boards have one). */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_v1.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MAX_MARKS 16

static uint64_t counter;
static uint64_t marks[MAX_MARKS];
static int n_marks;
static char *out_path;
static GArray *log_entries; /* pairs of uint64: marker index, count */

static void on_mark(unsigned int vcpu, void *udata) {
  uintptr_t v = (uintptr_t)udata;
  uint64_t entry[2] = {v & 0xff, counter - (v >> 8)};
  (void)vcpu;
  g_array_append_vals(log_entries, entry, 2);
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  size_t n = qemu_plugin_tb_n_insns(tb);
  (void)id;
  qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counter, n);
  for (size_t i = 0; i < n; i++) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    for (int m = 0; m < n_marks; m++) {
      if (marks[m] == pc) {
        uintptr_t after = (uintptr_t)(n - i - 1); /* counted ahead, not yet executed */
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                               (void *)((after << 8) | (uintptr_t)m));
      }
    }
  }
}

static void write_log(qemu_plugin_id_t id, void *udata) {
  FILE *f = fopen(out_path, "w");
  (void)id;
  (void)udata;
  if (!f) return;
  for (guint i = 0; i + 1 < log_entries->len; i += 2) {
    fprintf(f, "%llu %llu\n", (unsigned long long)g_array_index(log_entries, uint64_t, i),
            (unsigned long long)g_array_index(log_entries, uint64_t, i + 1));
  }
  fprintf(f, "total %llu\n", (unsigned long long)counter);
  fclose(f);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  (void)info;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "out=", 4) == 0) {
      out_path = g_strdup(argv[i] + 4);
    } else if (strncmp(argv[i], "marks=", 6) == 0) {
      char **parts = g_strsplit(argv[i] + 6, ":", MAX_MARKS + 1);
      for (int k = 0; parts[k] && n_marks < MAX_MARKS; k++) marks[n_marks++] = strtoull(parts[k], NULL, 16);
      g_strfreev(parts);
    } else {
      fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
      return -1;
    }
  }
  if (!out_path || n_marks == 0) {
    fprintf(stderr, "insn_count: needs out=FILE and marks=ADDR:ADDR...\n");
    return -1;
  }
  log_entries = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
  qemu_plugin_register_atexit_cb(id, write_log, NULL);
  return 0;
}
