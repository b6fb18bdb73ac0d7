"""`tinynas report`: counts, Pareto front and hypervolume of any study, read back from its storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tinynas.errors import ConfigError
from tinynas.report import hypervolume, pareto_row, plot_pareto, write_pareto_csv
from tinynas.search import is_feasible, pareto_trials
from tinynas.storage import make_storage


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


def study_document(study: optuna.Study) -> dict:
    trials = study.get_trials(deepcopy=False)
    settings = study.user_attrs.get("settings", {})
    objectives = settings.get("objectives", ["accuracy", "sram"])
    budgets = settings.get("budgets", {})
    pareto = [pareto_row(t) for t in pareto_trials(study)]
    scales = {k: float(budgets.get(k) or max([r[k] for r in pareto] or [1]) or 1)
              for k in ("sram_bytes", "flash_bytes", "latency_ms", "energy_mj", "macs")}
    return {
        "study": study.study_name,
        "n_trials": len(trials),
        "states": {s: sum(t.state == TrialState[s] for t in trials)
                   for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")},
        "n_infeasible": sum(t.state == TrialState.COMPLETE and not is_feasible(t) for t in trials),
        "pareto": pareto,
        "hypervolume": hypervolume(pareto, objectives, scales),
    }


def run(cfg) -> dict:
    if cfg.format not in ("json", "md"):
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: json, md")
    study = open_study(cfg.storage, cfg.study_name)
    doc = study_document(study)
    if cfg.out:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        write_pareto_csv(out / "pareto.csv", doc["pareto"])
        budget = study.user_attrs.get("settings", {}).get("budgets", {}).get("sram_bytes") or 0
        plot_pareto(out / "pareto.png", study.get_trials(deepcopy=False), doc["pareto"], budget,
                    title=study.study_name)
    if cfg.format == "json":
        print(json.dumps(doc, indent=1))
    else:
        print(f"# {doc['study']}\n\n{doc['n_trials']} trials {doc['states']}, {doc['n_infeasible']} over budget; "
              f"hypervolume {doc['hypervolume']:.4f}\n\n| trial | accuracy | SRAM kB | flash kB | latency ms |\n"
              "|---:|---:|---:|---:|---:|\n" + "\n".join(
                  f"| {r['trial']} | {r['accuracy']:.3f} | {r['sram_bytes'] / 1024:.1f} | "
                  f"{r['flash_bytes'] / 1024:.1f} | {r['latency_ms']:.1f} |" for r in doc["pareto"]))
    return doc
