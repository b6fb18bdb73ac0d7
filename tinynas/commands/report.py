"""`tinynas report`: counts, Pareto front and hypervolume of any study, read back from its storage."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tinynas.errors import ConfigError
from tinynas.report import AXES, hypervolume, pareto_row, plot_pareto, write_pareto_csv
from tinynas.search import is_feasible, is_scored, pareto_trials
from tinynas.storage import counted_trials, make_storage


def open_study(storage_url: str | None, study_name: str | None) -> optuna.Study:
    if not storage_url or not study_name:
        raise ConfigError("report needs storage=URL (journal:///abs/path.log, sqlite:///..., postgresql://...) "
                          "and study_name=NAME")
    if storage_url.startswith("journal://") and not Path(storage_url[len("journal://"):]).is_file():
        raise ConfigError(f"storage={storage_url}: no such journal file")
    storage, _ = make_storage(storage_url, Path("."))
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study_name not in names:
        raise ConfigError(f"study_name={study_name!r} is not in {storage_url}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=study_name, storage=storage)


def _objectives_and_scales(study: optuna.Study, pareto: list[dict]) -> tuple[list[str], dict[str, float]]:
    """The study's objectives and the normalisation of each cost (its budget, else the front's largest value)."""
    settings = study.user_attrs.get("settings", {})
    budgets = settings.get("budgets", {})
    scales = {k: float(budgets.get(k) or max([r[k] for r in pareto] or [1]) or 1)
              for k in ("sram_bytes", "flash_bytes", "latency_ms", "energy_mj", "macs")}
    return settings.get("objectives", ["accuracy", "sram"]), scales


def hypervolume_history(study: optuna.Study) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible scored trials up to it) in trial order, normalised as
    :func:`study_document`'s hypervolume (the last value equals it)."""
    objectives, scales = _objectives_and_scales(study, [pareto_row(t) for t in pareto_trials(study)])
    rows, history, hv = [], [], 0.0
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state == TrialState.COMPLETE and is_feasible(t) and is_scored(t):
            rows.append(pareto_row(t))
            hv = hypervolume(rows, objectives, scales)
        history.append((t.number, hv))
    return history


def study_document(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    pareto = [pareto_row(t) for t in pareto_trials(study)]
    objectives, scales = _objectives_and_scales(study, pareto)
    return {
        "study": study.study_name,
        "n_trials": counted_trials(trials),  # as n_trials= counts: a retried attempt is not a trial
        "states": {s: sum(t.state == TrialState[s] for t in trials)
                   for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")},
        "n_infeasible": sum(t.state == TrialState.COMPLETE and not is_feasible(t) for t in trials),
        "pareto": pareto,
        "hypervolume": hypervolume(pareto, objectives, scales),
    }


FORMATS = ("json", "md", "html")


def markdown(doc: dict, about: list[str] = ()) -> str:
    """The study as markdown; ``about``: :func:`settings_lines` (board, runtime, objectives, budgets)."""
    return (f"# {doc['study']}\n\n" + "".join(f"- {line}\n" for line in about) + ("\n" if about else "")
            + f"{doc['n_trials']} trials {doc['states']}, {doc['n_infeasible']} over budget; "
            f"hypervolume {doc['hypervolume']:.4f}\n\n| trial | accuracy | SRAM kB | flash kB | latency ms |\n"
            "|---:|---:|---:|---:|---:|\n" + "\n".join(
                f"| {r['trial']} | {r['accuracy']:.3f} | {r['sram_bytes'] / 1024:.1f} | "
                f"{r['flash_bytes'] / 1024:.1f} | {r['latency_ms']:.1f} |" for r in doc["pareto"]))


COST_AXES = {k: v for k, v in AXES.items() if k != "accuracy"}  # cost objective → (attribute, label, scale)


def figures(study: optuna.Study) -> list:
    """Plotly figures: accuracy against each cost objective (Optuna's, infeasible trials marked), the hypervolume
    over trials, and Optuna's timeline of trials (which shows how workers shared the study)."""
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization import plot_pareto_front, plot_timeline

    objectives = study.user_attrs.get("settings", {}).get("objectives", ["accuracy", "sram"])
    costs = [o for o in objectives if o in COST_AXES] or ["sram"]
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "accuracy" in t.user_attrs]  # PRUNED trials (successive halving) have no final accuracy
    figs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        for cost in costs if complete else ():
            key, label, scale = COST_AXES[cost]
            sub = optuna.create_study(directions=["maximize", "minimize"])
            sub.add_trials(complete)
            fig = plot_pareto_front(
                sub, target_names=["validation accuracy", label],
                targets=lambda t, key=key, scale=scale: (t.user_attrs["accuracy"], t.user_attrs[key] * scale))
            fig.update_layout(title=f"accuracy vs {label} (infeasible: over budget, not scored)")
            figs.append(name_trial_colours(fig))
        if study.trials:
            figs.append(hypervolume_figure(hypervolume_history(study)))
            figs.append(plot_timeline(study))
    return figs


#: Optuna's names for its Pareto-plot traces → ours (its colour bars show trial numbers, not "best" ones).
TRACE_NAMES = {"Best Trial": "Pareto front", "Feasible Trial": "feasible, dominated",
               "Infeasible Trial": "over budget"}


def name_trial_colours(fig):
    """``fig`` (Optuna's Pareto front) with colour bars titled by what they show, the trial number, and
    hover labels that say which set a point is in."""
    for trace in fig.data:
        extra = (trace.hovertemplate or "").rpartition("<extra>")[2].removesuffix("</extra>")
        if extra in TRACE_NAMES:
            trace.hovertemplate = trace.hovertemplate.replace(f"<extra>{extra}</extra>",
                                                              f"<extra>{TRACE_NAMES[extra]}</extra>")
        if trace.marker.colorbar and trace.marker.colorbar.title.text:
            trace.marker.colorbar.title.text = f"trial number ({TRACE_NAMES.get(extra, extra)})"
    return fig


def hypervolume_figure(history: list[tuple[int, float]]):
    """Hypervolume of the feasible front after each trial: how fast the search found its trade-offs."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[n for n, _ in history], y=[v for _, v in history], mode="lines+markers",
                               line_shape="hv"))
    fig.update_layout(title="hypervolume over trials (normalised: reference = zero accuracy, the whole budget)",
                      xaxis_title="trial", yaxis_title="hypervolume")
    return fig


def _arch_cells(study: optuna.Study, rows: list[dict]) -> dict[int, tuple[str, str]]:
    """(arch hash, arch summary) of each Pareto row's trial; the arch as its fields where its space cannot read it."""
    from search_spaces import arch_summary

    attrs = {t.number: t.user_attrs for t in study.get_trials(deepcopy=False)}
    cells = {}
    for r in rows:
        try:
            summary = arch_summary(r["arch"])
        except (KeyError, TypeError, ValueError):
            summary = " ".join(f"{k} {v}" for k, v in r["arch"].items() if k != "space")
        cells[r["trial"]] = (str(attrs.get(r["trial"], {}).get("arch_hash", "")), f"{r['arch'].get('space', '?')}: {summary}")
    return cells


def settings_lines(study: optuna.Study) -> list[str]:
    """What the study is about, from the settings its search stored: board, runtime, space, objectives, budgets."""
    from tinynas.search import OBJECTIVES

    s = study.user_attrs.get("settings", {})
    b = s.get("budgets", {})

    def budget(key: str, unit: str, scale: float) -> str:
        return f"{b[key] * scale:,.1f} {unit}" if b.get(key) else "none"

    objectives = ", ".join(f"{o} ({OBJECTIVES[o][1][:3]})" if o in OBJECTIVES else o
                           for o in s.get("objectives", ["accuracy", "sram"]))
    return [f"MCU: {s.get('mcu', 'not recorded')}; runtime: {s.get('runtime', 'not recorded')}; "
            f"search space: {s.get('search_space', 'not recorded')}",
            f"objectives: {objectives}",
            f"budgets: SRAM {budget('sram_bytes', 'kB', 1 / 1024)}, flash {budget('flash_bytes', 'kB', 1 / 1024)}, "
            f"latency {budget('latency_ms', 'ms', 1.0)} (kB = 1024 B)"]


def write_html(path: Path, study: optuna.Study, doc: dict) -> Path:
    """One self-contained page (plotly.js inlined once: it opens offline): what the study is about (board,
    runtime, objectives, budgets), counts, hypervolume, the Pareto table with each arch and the plots."""
    import html

    states = "".join(f"<td>{n}</td>" for n in doc["states"].values())
    arch = _arch_cells(study, doc["pareto"])
    rows = "".join(
        f"<tr><td>{r['trial']}</td><td><code>{html.escape(arch[r['trial']][0])}</code></td>"
        f"<td style=\"text-align:left\">{html.escape(arch[r['trial']][1])}</td>"
        f"<td>{r['accuracy']:.3f}</td><td>{r['sram_bytes'] / 1024:.1f}</td>"
        f"<td>{r['flash_bytes'] / 1024:.1f}</td><td>{r['latency_ms']:.1f}</td><td>{r['energy_mj']:.3f}</td>"
        f"<td>{r['macs'] / 1e6:.2f}</td><td>{r['params']:,}</td></tr>" for r in doc["pareto"])
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures(study)))
    name = html.escape(doc["study"])
    about = "".join(f"<li>{html.escape(line)}</li>" for line in settings_lines(study))
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{name}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}</style></head><body>
<h1>Study {name}</h1>
<ul class="settings">{about}</ul>
<p>{doc['n_trials']} trials, {doc['n_infeasible']} over budget (not scored), {doc['states']['PRUNED']} pruned (stopped early); hypervolume {doc['hypervolume']:.4f}</p>
<table><tr>{"".join(f"<th>{s}</th>" for s in doc["states"])}</tr><tr>{states}</tr></table>
<h2>Pareto front (feasible, scored)</h2>
<table><tr><th>trial</th><th>arch hash</th><th>arch</th><th>accuracy</th><th>SRAM kB</th><th>flash kB</th>
<th>latency ms</th><th>energy mJ</th><th>MMACs</th><th>params</th></tr>{rows}</table>
{plots}
</body></html>
"""
    path.write_text(page)
    return path


def run_experiment(cfg) -> dict:
    """``report page=NAME``: the experiment's page (published vs ours, the Pareto fronts of its runs in
    ``runs``) written to ``out`` (default .) as NAME.md or NAME.html; json prints the comparison rows."""
    from tinynas import experiments

    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: {', '.join(FORMATS)}")
    name = experiments.resolve(str(cfg.page))
    if cfg.format == "json":
        doc = {"experiment": name, "rows": [{"published": c.row, "ours": c.ours} for c in experiments.compare(name)]}
        print(json.dumps(doc, indent=1))
        return doc
    path = experiments.write_page(name, cfg.format, Path(cfg.out or "."), Path(cfg.runs))
    print(path.resolve())
    return {"experiment": name, "page": str(path)}


def run(cfg) -> dict:
    if cfg.get("page"):
        return run_experiment(cfg)
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: {', '.join(FORMATS)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(cfg.storage, cfg.study_name)
    doc = study_document(study)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        write_pareto_csv(out / "pareto.csv", doc["pareto"])
        settings = study.user_attrs.get("settings", {})
        plot_pareto(out / "pareto.png", study.get_trials(deepcopy=False), settings.get("objectives", ["accuracy", "sram"]),
                    settings.get("budgets", {}), title=study.study_name)
    if cfg.format == "json":
        print(json.dumps(doc, indent=1))
    elif cfg.format == "md":
        print(markdown(doc, settings_lines(study)))
    else:
        out = Path(cfg.out or ".")
        out.mkdir(parents=True, exist_ok=True)
        print(write_html(out / "report.html", study, doc).resolve())
    return doc
