"""Paper reproductions: an experiment's published table beside our estimators' figures for the same models.

``experiments/<name>/published.csv`` holds one row per published model (figures as printed, with their
source); :func:`compare` builds each model whose structure we know (``build``: ``reference:<key>`` from
:mod:`estimators.reference_models`, ``named:<name>`` from :mod:`search_spaces.named`) and estimates it on
the row's board and runtime; :func:`ours_markdown` renders published vs ours vs Δ% and is what
``experiments/<name>/ours.md`` holds (``python -m tinynas.experiments`` rewrites every one).
"""

from __future__ import annotations

import csv
import dataclasses
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from tinynas.errors import ConfigError
from tinynas.paths import MCU_DIR, ROOT

EXPERIMENTS_DIR = ROOT / "experiments"
#: published.csv header; every figure column is as printed (empty: not published).
COLUMNS = ("model", "task", "build", "exact", "params_counting", "board", "runtime", "macs_m", "params_m",
           "sram_kb", "flash_kb", "model_kb", "latency_ms", "accuracy", "source")
#: (column, label) of the figures both sides can have; our figures use the same keys.
FIGURES = (("macs_m", "MACs (M)"), ("params_m", "params (M)"), ("sram_kb", "peak SRAM (kB)"),
           ("flash_kb", "flash (kB)"), ("model_kb", "model file (kB)"), ("latency_ms", "latency (ms)"))
PARAMS_COUNTING = ("file", "torch")


def available() -> list[str]:
    """Experiment folders (each has a README.md; those with a published.csv also an ours.md)."""
    return sorted(p.parent.name for p in EXPERIMENTS_DIR.glob("*/README.md"))


def with_published() -> list[str]:
    """Experiments with a published table."""
    return sorted(p.parent.name for p in EXPERIMENTS_DIR.glob("*/published.csv"))


def resolve(name: str) -> str:
    """The experiment folder for ``name``: a folder name, or an experiment config named ``<folder>_...``
    (``mcunet_vww_stm32f746`` → ``mcunet``)."""
    names = available()
    if name in names:
        return name
    prefixes = [n for n in names if name.startswith(n + "_")]
    if not prefixes:
        raise ConfigError(f"no experiment {name!r} in {EXPERIMENTS_DIR}; allowed: {', '.join(names)} "
                          f"(or a config named <one of them>_...)")
    return max(prefixes, key=len)


def read_published(name: str) -> list[dict[str, str]]:
    """The rows of ``experiments/<name>/published.csv``, checked against :data:`COLUMNS`."""
    path = EXPERIMENTS_DIR / name / "published.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ConfigError(f"{path}: header {reader.fieldnames} differs from the expected {list(COLUMNS)}")
        rows = list(reader)
    for i, r in enumerate(rows, start=2):
        if not r["source"]:
            raise ConfigError(f"{path} line {i}: every row needs a source")
        if r["build"] and r["params_counting"] not in PARAMS_COUNTING:
            raise ConfigError(f"{path} line {i}: params_counting={r['params_counting']!r}; allowed: "
                              f"{', '.join(PARAMS_COUNTING)}")
    return rows


def half_unit(figure: str) -> float:
    """Half a unit of the last printed digit of ``figure`` ('6.4' → 0.05, '2.656768' → 5e-7)."""
    return float(Decimal(1).scaleb(Decimal(figure).as_tuple().exponent)) / 2


@lru_cache(maxsize=None)
def build_graph(build: str):
    """The IR named by a ``build`` cell."""
    kind, _, key = build.partition(":")
    if kind == "reference":
        from estimators.reference_models import reference_model

        return reference_model(key)
    if kind == "named":
        from search_spaces.named import named_arch

        return named_arch(key).to_ir()
    raise ConfigError(f"build={build!r}: give reference:<key> (estimators.reference_models) or "
                      f"named:<name> (search_spaces.named)")


def count_params(graph, counting: str) -> int:
    """Parameters as the publisher counted them: ``file`` every constant of the .tflite (weights, biases, a
    Flatten's shape); ``torch`` the PyTorch model before batch-norm folding (weights, biases where the conv
    has none folded in count as BN β, plus BN γ per conv channel)."""
    from estimators.macs import total_params

    if counting == "file":
        return sum(t.numel for t in graph.constants())
    batch_norm = sum(graph.tensors[op.outputs[0]].shape[-1] for op in graph.ops
                     if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"))
    return total_params(graph) + batch_norm


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One published row and our figures for it (``ours`` empty when the structure is not known)."""

    row: dict[str, str]
    ours: dict[str, float]


def ours_for(row: dict[str, str]) -> dict[str, float]:
    """Our estimator figures for a published row (MACs and params in M, memory in kB, latency in ms)."""
    if not row["build"]:
        return {}
    from estimators import estimate, load_mcu

    graph = build_graph(row["build"])
    est = estimate(graph, load_mcu(row["board"], MCU_DIR), row["runtime"])
    return {"macs_m": est.macs / 1e6, "params_m": count_params(graph, row["params_counting"]) / 1e6,
            "sram_kb": est.sram.total_bytes / 1024, "flash_kb": est.flash.total_bytes / 1024,
            "model_kb": est.flash.model_bytes / 1024, "latency_ms": est.latency_ms}


def compare(name: str) -> list[Comparison]:
    return [Comparison(r, ours_for(r)) for r in read_published(name)]


def _fmt(x: float, like: str = "") -> str:
    """``x`` with as many decimals as the published figure ``like`` (one more when that is whole)."""
    if like:
        decimals = max(-Decimal(like).as_tuple().exponent, 0)
        return f"{x:,.{decimals or 1}f}"
    return f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"


def _cell(published: str, ours: float | None) -> tuple[str, str, str]:
    """(published, ours, Δ%) cells of one figure."""
    if ours is None:
        return published, "", ""
    if not published:
        return "", _fmt(ours), ""
    p = float(published)
    return published, _fmt(ours, published), f"{100 * (ours - p) / p:+.1f}%" if p else ""


def table_rows(comparisons: list[Comparison]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the side-by-side table: model, board/runtime, then published / ours / Δ% of each
    figure either side has, then the published accuracy."""
    # a figure with a published value, and peak SRAM and flash wherever we have an estimate
    figures = [f for f in FIGURES if any(c.row[f[0]] or (c.ours and f[0] in ("sram_kb", "flash_kb"))
                                         for c in comparisons)]
    header = ["model", "board / runtime"]
    for _, label in figures:
        header += [f"{label} pub.", "ours", "Δ"]
    header.append("accuracy pub.")
    rows = []
    for c in comparisons:
        cells = [c.row["model"], f"{c.row['board']} / {c.row['runtime']}"]
        for col, _ in figures:
            # structure figures (MACs, params) are shown once per model: where they are published
            shown = c.ours and (c.row[col] or col not in ("macs_m", "params_m"))
            cells += _cell(c.row[col], c.ours[col] if shown else None)
        cells.append(c.row["accuracy"])
        rows.append(cells)
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---", "---"] + ["---:"] * (len(header) - 2)
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align, *rows])


def sources_markdown(comparisons: list[Comparison]) -> str:
    seen: dict[str, list[str]] = {}
    for c in comparisons:
        seen.setdefault(c.row["source"], []).append(c.row["model"])
    return "\n".join(f"- {', '.join(dict.fromkeys(models))}: {src}" for src, models in seen.items())


def column_notes(name: str) -> dict[str, str]:
    """What each published table measured, by task (``experiments/<name>/columns.md``: a ``## <task>``
    section per table; none when the file is absent), printed under that table in ``ours.md``."""
    path = EXPERIMENTS_DIR / name / "columns.md"
    if not path.is_file():
        return {}
    notes: dict[str, str] = {}
    for section in path.read_text().split("\n## "):
        title, _, body = section.removeprefix("## ").partition("\n")
        if body.strip():
            notes[title.strip()] = body.strip()
    return notes


def ours_markdown(name: str) -> str:
    """The ``ours.md`` page of experiment ``name``: the side-by-side table and the sources."""
    comparisons = compare(name)
    tasks = list(dict.fromkeys(c.row["task"] for c in comparisons))
    parts = [f"# {name}: published vs ours\n",
             "Generated by `python -m tinynas.experiments` from `published.csv` (do not edit). \"pub.\": the "
             "figure as published; \"ours\": our estimators on the same board and runtime (empty where the "
             "published model's structure was not released); Δ = (ours − pub.) / pub. Accuracy needs the "
             "dataset and training: see README.md for the commands.\n"]
    notes = column_notes(name)
    for task in tasks:
        header, rows = table_rows([c for c in comparisons if c.row["task"] == task])
        parts.append(f"## {task}\n\n{markdown_table(header, rows)}\n")
        if task in notes:
            parts.append(f"{notes[task]}\n")
    parts.append(f"## Sources\n\n{sources_markdown(comparisons)}\n")
    return "\n".join(parts)


def write_ours(name: str) -> Path:
    path = EXPERIMENTS_DIR / name / "ours.md"
    path.write_text(ours_markdown(name))
    return path


# -- the experiment page (`tinynas report experiment=NAME`) ---------------------------------------------
def find_runs(name: str, runs_dir: Path) -> list[tuple[Path, dict]]:
    """Finished search runs of experiment ``name`` under ``runs_dir``: (run dir, results.json), by path."""
    import json

    runs = []
    for path in sorted(Path(runs_dir).glob("**/results.json")):
        try:
            doc = json.loads(path.read_text())
            if doc.get("experiment") and resolve(doc["experiment"]) == name:
                runs.append((path.parent, doc))
        except (ValueError, ConfigError, AttributeError):
            continue  # not a search run's results.json, or another experiment's
    return runs


def run_table(doc: dict) -> tuple[list[str], list[list[str]]]:
    header = ["trial", "accuracy", "SRAM kB", "flash kB", "latency ms", "MMACs", "params"]
    rows = [[str(r["trial"]), f"{r['accuracy']:.4f}", f"{r['sram_bytes'] / 1024:.1f}", f"{r['flash_bytes'] / 1024:.1f}",
             f"{r['latency_ms']:.1f}", f"{r['macs'] / 1e6:.2f}", f"{r['params']:,}"] for r in doc.get("pareto", [])]
    return header, rows


def published_accuracy(cell: str) -> float | None:
    """A published accuracy cell in % ('61.8', '90% top-1 (target)'); None for AUC or an empty cell."""
    import re

    m = re.match(r"\s*([0-9.]+)", cell)
    return float(m[1]) if m and "AUC" not in cell else None


def plot_experiment(path: Path, comparisons: list[Comparison], runs: list[tuple[Path, dict]]) -> Path | None:
    """Accuracy against peak SRAM: each run's Pareto front and the published models that print both figures
    (their SRAM as published, on their own board and runtime). None when there is nothing to draw."""
    points = [(float(c.row["sram_kb"]), published_accuracy(c.row["accuracy"]), c.row["model"], c.row["task"])
              for c in comparisons if c.row["sram_kb"] and published_accuracy(c.row["accuracy"]) is not None]
    fronts = [(doc.get("study", {}).get("name", d.name), sorted(doc.get("pareto", []), key=lambda r: r["sram_bytes"]))
              for d, doc in runs if doc.get("pareto")]
    if not points and not fronts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, front in fronts:
        ax.step([r["sram_bytes"] / 1024 for r in front], [100 * r["accuracy"] for r in front], where="post",
                marker="o", label=f"ours: {label}")
    for i, task in enumerate(dict.fromkeys(p[3] for p in points)):  # one marker per task: accuracies differ
        mine = [p for p in points if p[3] == task]
        ax.scatter([p[0] for p in mine], [p[1] for p in mine], marker="*^sD"[i % 4], s=70, label=f"published: {task}")
        for x, y, model, _ in mine:
            ax.annotate(model.split(" ")[0], (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    from tinynas.report import save_axes

    return save_axes(fig, ax, path, "peak SRAM (kB)", "accuracy (%)")


def page_sections(name: str, runs_dir: Path, out: Path) -> list[tuple]:
    """The page as sections: ("h1"|"h2"|"h3"|"p", text), ("table", header, rows), ("img", path, alt)."""
    comparisons = compare(name) if (EXPERIMENTS_DIR / name / "published.csv").is_file() else []
    sections: list[tuple] = [("h1", f"Experiment {name}"),
                             ("p", f"Published figures beside our estimates (experiments/{name}/published.csv, "
                                   f"README.md), then the Pareto fronts of the finished search runs in {runs_dir}.")]
    notes = column_notes(name)
    for task in dict.fromkeys(c.row["task"] for c in comparisons):
        sections += [("h2", task), ("table", *table_rows([c for c in comparisons if c.row["task"] == task]))]
        if task in notes:
            sections.append(("p", notes[task]))
    if comparisons:
        sections += [("h2", "Sources"), ("p", sources_markdown(comparisons))]
    runs = find_runs(name, runs_dir)
    sections.append(("h2", "Search runs"))
    if not runs:
        sections.append(("p", f"No finished search run of this experiment under {runs_dir}: run "
                              f"`tinynas search experiment={name}_...` (see experiments/{name}/README.md)."))
    for run_dir, doc in runs:
        study = doc.get("study", {})
        b = doc.get("budgets", {})
        sections += [("h3", f"{study.get('name', run_dir.name)} ({doc.get('mcu')}, {doc.get('runtime')})"),
                     ("p", f"{study.get('n_trials', '?')} trials; budgets SRAM {(b.get('sram_bytes') or 0) / 1024:.1f} kB, "
                           f"flash {(b.get('flash_bytes') or 0) / 1024:.1f} kB; run dir {run_dir}"),
                     ("table", *run_table(doc))]
        if (run_dir / "pareto.png").is_file():
            sections.append(("img", run_dir / "pareto.png", f"Pareto front of {study.get('name', run_dir.name)}"))
    plot = plot_experiment(out / f"{name}-accuracy-sram.png", comparisons, runs)
    if plot:
        sections += [("h2", "Accuracy vs peak SRAM"), ("img", plot, "our fronts and the published models")]
    return sections


def render_markdown(sections: list[tuple], out: Path) -> str:
    """Markdown of ``sections``; images are copied beside the page (``out``)."""
    import shutil

    parts = []
    for kind, *args in sections:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + args[0])
        elif kind == "p":
            parts.append(args[0])
        elif kind == "table":
            parts.append(markdown_table(*args))
        elif kind == "img":
            target = args[0]
            if target.parent.resolve() != out.resolve():  # a run's pareto.png: copied beside the page
                target = out / f"{args[0].parent.name}-pareto.png"
                shutil.copyfile(args[0], target)
            parts.append(f"![{args[1]}]({target.name})")
    return "\n\n".join(parts) + "\n"


def render_html(sections: list[tuple]) -> str:
    """One self-contained HTML page of ``sections`` (images inlined)."""
    import base64
    import html

    body = []
    for kind, *args in sections:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(args[0])}</{kind}>")
        elif kind == "p":
            body.append("<p>" + html.escape(args[0]).replace("\n", "<br>") + "</p>")
        elif kind == "table":
            header, rows = args
            body.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" + "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
        elif kind == "img":
            data = base64.b64encode(args[0].read_bytes()).decode()
            body.append(f'<img alt="{html.escape(args[1])}" src="data:image/png;base64,{data}">')
    title = html.escape(sections[0][1])
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
            "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}td:first-child{text-align:left}"
            "</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_page(name: str, fmt: str, out: Path, runs_dir: Path) -> Path:
    """Write experiment ``name``'s page as ``out/<name>.md`` or ``.html`` and return its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = page_sections(name, Path(runs_dir), out)
    path = out / f"{name}.{fmt}"
    path.write_text(render_markdown(sections, out) if fmt == "md" else render_html(sections))
    return path


if __name__ == "__main__":
    for experiment in with_published():
        print(write_ours(experiment))
