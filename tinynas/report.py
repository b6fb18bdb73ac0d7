"""Run-dir reports: results.json (the contract), pareto.csv, the Pareto plot and summary.md."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

PARETO_FIELDS = ("trial", "arch_hash", "accuracy", "sram_bytes", "flash_bytes", "latency_ms", "energy_mj", "macs",
                 "params")


def pareto_row(t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    return {"trial": t.number, "arch_hash": a["arch_hash"], "arch": a["arch"], "accuracy": float(a["accuracy"]),
            "sram_bytes": int(a["sram_bytes"]), "flash_bytes": int(a["flash_bytes"]), "latency_ms": float(a["latency_ms"]),
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


#: Objective → (trial attribute, axis label, scale to the axis unit).
AXES: dict[str, tuple[str, str, float]] = {
    "accuracy": ("accuracy", "validation accuracy", 1.0),
    "sram": ("sram_bytes", "estimated peak SRAM (kB)", 1 / 1024),
    "flash": ("flash_bytes", "estimated flash (kB)", 1 / 1024),
    "latency": ("latency_ms", "estimated latency (ms)", 1.0),
    "energy": ("energy_mj", "estimated energy (mJ)", 1.0),
    "macs": ("macs", "MACs (M)", 1e-6),
}


@dataclasses.dataclass(frozen=True)
class Panel:
    """One pair of objectives as plotted: ``x`` against ``y`` (objective names), points as (trial, x, y) in axis
    units. ``front``: the scored feasible points no other one beats on both axes, by x; ``budgets``: the
    budget lines on this panel's axes, {objective: value in axis units}."""

    x: str
    y: str
    scored: tuple[tuple[int, float, float], ...]
    over_budget: tuple[tuple[int, float, float], ...]
    front: tuple[tuple[int, float, float], ...]
    budgets: dict[str, float]
    deployed: tuple[int, float, float] | None = None


def _better(objective: str) -> int:
    """+1 where larger is better (accuracy), -1 where smaller is (the costs)."""
    return 1 if objective == "accuracy" else -1


def non_dominated(points, x: str, y: str) -> list[tuple[int, float, float]]:
    """The (trial, x, y) points no other point matches or beats on both objectives while beating on one."""
    sx, sy = _better(x), _better(y)

    def dominates(q, p):
        return (sx * q[1] >= sx * p[1] and sy * q[2] >= sy * p[2]) and (q[1] != p[1] or q[2] != p[2])

    return sorted((p for p in points if not any(dominates(q, p) for q in points)), key=lambda p: (p[1], p[2]))


def pareto_panels(trials: list[FrozenTrial], objectives: list[str], budgets: dict[str, float | None],
                  deployed: int | None = None) -> list[Panel]:
    """The panels of the Pareto plot: one per pair of ``objectives`` (accuracy on the y axis where it is one of
    the pair), with each panel's own non-dominated front and the budgets (``budgets``: by trial attribute,
    e.g. ``sram_bytes``; None or 0: none) of its axes. PRUNED trials (successive halving) have no comparable
    accuracy and are left out; over-budget trials are not scored and sit at accuracy 0."""
    from tinynas.search import is_scored

    unknown = [o for o in objectives if o not in AXES]
    if unknown:
        raise ValueError(f"objectives {unknown} have no plot axis; known: {', '.join(AXES)}")
    ordered = sorted(objectives, key=lambda o: (o != "accuracy", objectives.index(o)))
    pairs = [(b, a) if a == "accuracy" else (a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]
    scored = [t for t in trials if is_scored(t) and "accuracy" in t.user_attrs and not t.user_attrs.get("infeasible")]
    over = [t for t in trials if t.user_attrs.get("infeasible")]

    def point(t, x, y):
        (kx, _, fx), (ky, _, fy) = AXES[x], AXES[y]
        return t.number, float(t.user_attrs.get(kx, 0.0)) * fx, float(t.user_attrs.get(ky, 0.0)) * fy

    panels = []
    for x, y in pairs:
        pts = [point(t, x, y) for t in scored]
        lines = {o: float(budgets[AXES[o][0]]) * AXES[o][2] for o in (x, y) if budgets.get(AXES[o][0])}
        dep = next((p for p in pts if p[0] == deployed), None)
        panels.append(Panel(x, y, tuple(pts), tuple(point(t, x, y) for t in over), tuple(non_dominated(pts, x, y)),
                            lines, dep))
    return panels


def draw_pareto(panels: list[Panel], title: str = ""):
    """The matplotlib figure of ``panels`` (one axes per panel, three to a row) with one legend outside them
    all, so no point hides under it."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), dpi=120, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.remove()
    for ax, p in zip(axes.flat, panels):
        if p.scored:
            ax.scatter([q[1] for q in p.scored], [q[2] for q in p.scored], s=18, c="#9db4c0", label="scored candidates")
        if p.over_budget:
            ax.scatter([q[1] for q in p.over_budget], [q[2] for q in p.over_budget], marker="x", s=18, c="#c44e52",
                       label="over budget (not scored)")
        if p.front:
            ax.step([q[1] for q in p.front], [q[2] for q in p.front], where="post", c="#2a6f97", marker="o",
                    label="Pareto front (this pair)")
        if p.deployed:
            ax.scatter([p.deployed[1]], [p.deployed[2]], s=120, facecolors="none", edgecolors="k",
                       label=f"deployed (trial {p.deployed[0]})")
        for o, v in p.budgets.items():
            label = f"{o} budget"
            (ax.axvline if o == p.x else ax.axhline)(v, ls="--", c="#c44e52", lw=1, label=label)
        ax.set_xlabel(AXES[p.x][1])
        ax.set_ylabel(AXES[p.y][1])
        ax.grid(alpha=0.3)
    handles = {}
    for ax in fig.axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    return fig


def plot_pareto(path: Path, trials: list[FrozenTrial], objectives: list[str], budgets: dict[str, float | None],
                deployed: int | None = None, title: str = "") -> Path:
    """pareto.png: the chosen objectives pairwise (:func:`pareto_panels`), saved to ``path``."""
    import matplotlib.pyplot as plt

    fig = draw_pareto(pareto_panels(trials, objectives, budgets, deployed), title)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


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
            f"(estimated from the .tflite: {est.get('sram_total_bytes', 0):,}), {report['instructions']:,} instructions per inference, "
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
        f"{s['n_failed']} failed" + (f", {s['n_retried']} retried (a worker died; not counted)"
                                     if s.get("n_retried") else "") + ".",
        "",
        "## Pareto front",
        "",
        "| trial | arch | val acc | SRAM kB | flash kB | latency ms | energy mJ | MMACs | params |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["pareto"]:
        lines.append(f"| {r['trial']} | `{r['arch_hash'][:8]}` | {r['accuracy']:.3f} | {r['sram_bytes'] / 1024:.1f} | "
                     f"{r['flash_bytes'] / 1024:.1f} | {r['latency_ms']:.1f} | {r['energy_mj']:.3f} | "
                     f"{r['macs'] / 1e6:.2f} | {r['params']:,} |")
    d = results.get("deployed")
    if d:
        fp = d.get("model_fingerprints") or {}

        def model(key: str) -> str:  # which weights an accuracy was measured on
            return f" (model `{fp[key]}`)" if key in fp else ""

        same = fp.get("exported") is not None and fp.get("exported") == fp.get("student_kd")
        on = f"test, {d['test_samples']} samples" if d.get("test_samples") else "test"
        lines += [
            "",
            f"## Deployed: trial {d['trial']} (`{d['arch_hash'][:8]}`)" if d.get("arch_hash") else
            f"## Deployed: trial {d['trial']}",
            "",
            "Each accuracy names the model it was measured on (a hash of its weights): equal accuracies of "
            "different models are a tie on the test split, not one model counted twice.",
            "",
            "| | value |",
            "|---|---:|",
            f"| teacher accuracy ({on}){model('teacher')} | {d['teacher_accuracy']:.3f} |",
            *([f"| student without KD, fp32 ({on}){model('student_no_kd')} | {d['student_no_kd_accuracy']:.3f} |"]
              if d.get("student_no_kd_accuracy") is not None else []),
            *([f"| student with KD, fp32 ({on}){model('student_kd')} | {d['student_kd_accuracy']:.3f} |"]
              if d.get("student_kd_accuracy") is not None else []),
            f"| exported student fp32 accuracy ({on}){' after QAT' if d.get('qat') else ''}{model('exported')}"
            f"{' = the KD student (no pruning or QAT)' if same else ''} | {d['fp32_accuracy']:.3f} |",
            f"| student int8 accuracy in TFLM (test) | {d['int8_accuracy']:.3f} |",
            f"| .tflite bytes: measured (estimated) | {d['tflite_bytes']:,} ({d['estimated_flash_bytes']:,}) |",
            f"| TFLM arena on the host: measured (estimated) | {d['tflm_arena_bytes']:,} ({d['estimated_sram_bytes']:,}) |",
            f"| on {results['mcu']} ({results['runtime']}): SRAM, flash incl. runtime, as the search estimated them "
            f"(from the arch) | "
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
