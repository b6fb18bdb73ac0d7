"""Run-dir reports: results.json (the contract), pareto.csv, the Pareto plot and summary.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

PARETO_FIELDS = ("trial", "accuracy", "sram_bytes", "flash_bytes", "latency_ms", "energy_mj", "macs", "params")


def pareto_row(t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    return {"trial": t.number, "arch": a["arch"], "accuracy": float(a["accuracy"]), "sram_bytes": int(a["sram_bytes"]),
            "flash_bytes": int(a["flash_bytes"]), "latency_ms": float(a["latency_ms"]),
            "energy_mj": float(a["energy_mj"]), "macs": int(a["macs"]), "params": int(a["params"])}


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return path


def write_pareto_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*PARETO_FIELDS, "arch"])
        w.writeheader()
        for r in rows:
            w.writerow({**{k: r[k] for k in PARETO_FIELDS}, "arch": json.dumps(r["arch"], sort_keys=True)})
    return path


def plot_pareto(path: Path, trials: list[FrozenTrial], pareto: list[dict[str, Any]], sram_budget: int,
                deployed: int | None = None, title: str = "") -> Path:
    """Accuracy against estimated peak SRAM: every scored trial, infeasible ones at zero, the front. Trials
    stopped by successive halving (PRUNED) have no comparable accuracy and are left out."""
    import matplotlib

    from tinynas.search import is_scored

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    trained = [t for t in trials if is_scored(t) and "accuracy" in t.user_attrs]
    infeasible = [t for t in trials if t.user_attrs.get("infeasible")]
    ax.scatter([t.user_attrs["sram_bytes"] / 1024 for t in trained], [t.user_attrs["accuracy"] for t in trained],
               s=18, c="#9db4c0", label="scored candidates")
    if infeasible:
        ax.scatter([t.user_attrs["sram_bytes"] / 1024 for t in infeasible], [0.0] * len(infeasible), marker="x",
                   s=18, c="#c44e52", label="over budget (not scored)")
    front = sorted(pareto, key=lambda r: r["sram_bytes"])
    ax.step([r["sram_bytes"] / 1024 for r in front], [r["accuracy"] for r in front], where="post", c="#2a6f97",
            marker="o", label="Pareto front")
    if deployed is not None:
        d = next((r for r in pareto if r["trial"] == deployed), None)
        if d:
            ax.scatter([d["sram_bytes"] / 1024], [d["accuracy"]], s=120, facecolors="none", edgecolors="k",
                       label=f"deployed (trial {deployed})")
    ax.axvline(sram_budget / 1024, ls="--", c="#c44e52", lw=1, label="SRAM budget")
    ax.set_title(title, fontsize=9)
    return save_axes(fig, ax, path, "estimated peak SRAM (kB)", "validation accuracy")


def save_axes(fig, ax, path: Path, xlabel: str, ylabel: str) -> Path:
    """Label, grid and legend ``ax`` the way every accuracy-vs-memory plot of ours is, save ``fig`` to
    ``path`` and close it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def firmware_verdict(report: dict | None) -> str:
    """One line on the emulated firmware, for logs and summary.md."""
    if report is None:
        return "not built (no TFLite Micro tree configured: tflm.root=DIR or TINYNAS_TFLM_ROOT)"
    if "error" in report:
        return f"not built: {report['error']}"
    est = report.get("estimate") or {}
    return (f"{report['core']} in {report['emulator'].split(' (')[0]}: arena {report['arena_used_bytes']:,} B "
            f"(estimated {est.get('sram_total_bytes', 0):,}), {report['instructions']:,} instructions per inference, "
            f"outputs {'bit-exact' if report['outputs_match_interpreter'] else 'DIFFER from the interpreter'}")


def summary_markdown(results: dict[str, Any]) -> str:
    b, s = results["budgets"], results["study"]
    lines = [
        f"# {results['experiment']} on {results['mcu']} ({results['runtime']})",
        "",
        f"Budgets: SRAM {b['sram_bytes'] / 1024:.0f} kB, flash {b['flash_bytes'] / 1024:.0f} kB"
        + (f", latency {b['latency_ms']} ms" if b["latency_ms"] else "") + ".",
        f"Study `{s['name']}`: {s['n_trials']} trials — {s['n_complete']} complete "
        f"({s['n_infeasible']} over budget, not scored), {s['n_pruned']} pruned (stopped early, off the front), "
        f"{s['n_failed']} failed.",
        "",
        "## Pareto front",
        "",
        "| trial | val acc | SRAM kB | flash kB | latency ms | energy mJ | MMACs | params |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["pareto"]:
        lines.append(f"| {r['trial']} | {r['accuracy']:.3f} | {r['sram_bytes'] / 1024:.1f} | "
                     f"{r['flash_bytes'] / 1024:.1f} | {r['latency_ms']:.1f} | {r['energy_mj']:.3f} | "
                     f"{r['macs'] / 1e6:.2f} | {r['params']:,} |")
    d = results.get("deployed")
    if d:
        lines += [
            "",
            f"## Deployed: trial {d['trial']}",
            "",
            "| | value |",
            "|---|---:|",
            f"| teacher accuracy (test) | {d['teacher_accuracy']:.3f} |",
            *([f"| student without KD, fp32 (test) | {d['student_no_kd_accuracy']:.3f} |"]
              if d.get("student_no_kd_accuracy") is not None else []),
            *([f"| student with KD, fp32 (test) | {d['student_kd_accuracy']:.3f} |"]
              if d.get("student_kd_accuracy") is not None else []),
            f"| exported student fp32 accuracy (test){' after QAT' if d.get('qat') else ''} | {d['fp32_accuracy']:.3f} |",
            f"| student int8 accuracy in TFLM (test) | {d['int8_accuracy']:.3f} |",
            f"| .tflite bytes: measured (estimated) | {d['tflite_bytes']:,} ({d['estimated_flash_bytes']:,}) |",
            f"| TFLM arena on the host: measured (estimated) | {d['tflm_arena_bytes']:,} ({d['estimated_sram_bytes']:,}) |",
            f"| on {results['mcu']} ({results['runtime']}): estimated SRAM, flash incl. runtime | "
            f"{d['target_sram_bytes']:,}, {d['target_flash_bytes']:,} |",
            "",
            f"Files: `{d['tflite']}`, `{d['c_source']}`.",
            "",
            f"Firmware: {firmware_verdict(d.get('target'))}.",
        ]
        if d.get("pruning"):
            lines += ["", "Structured pruning (estimated on the target; accuracy on test):", "",
                      "| | accuracy | flash kB | SRAM kB | latency ms | params |", "|---|---:|---:|---:|---:|---:|"]
            lines += [f"| {k} | {p['accuracy']:.3f} | {p['flash_bytes'] / 1024:.1f} | {p['sram_bytes'] / 1024:.1f} | "
                      f"{p['latency_ms']:.1f} | {p['params']:,} |" for k, p in
                      (("before", d["pruning"]["before"]), ("after", d["pruning"]["after"]))]
    return "\n".join(lines) + "\n"


def normalised_losses(rows: list[dict[str, Any]], objectives: list[str], scales: dict[str, float]) -> list[list[float]]:
    """Each row as a point to minimise: 1 - accuracy, and every cost divided by its budget (or scale)."""
    from tinynas.search import OBJECTIVES

    pts = []
    for r in rows:
        p = []
        for o in objectives:
            key = OBJECTIVES[o][0]
            p.append(1.0 - r[key] if o == "accuracy" else r[key] / scales[key])
        pts.append(p)
    return pts


def hypervolume(rows: list[dict[str, Any]], objectives: list[str], scales: dict[str, float]) -> float:
    """Hypervolume of the feasible front in normalised objective space, reference point 1 on every axis
    (zero accuracy, the whole budget): bigger is better, at most 1."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    pts = [p for p in normalised_losses(rows, objectives, scales) if all(v < 1.0 for v in p)]
    if not pts:
        return 0.0
    return float(compute_hypervolume(np.asarray(pts), np.ones(len(objectives))))
