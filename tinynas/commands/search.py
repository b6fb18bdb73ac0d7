"""`tinynas search`: search, then distil, export and verify the chosen Pareto point."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from tinynas.commands.common import load_common, run_dir
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.loggers import make_logger, trial_rows
from tinynas.report import (pareto_row, plot_pareto, summary_markdown, write_json, write_pareto_csv)
from tinynas.samplers import make_sampler
from tinynas.search import (Budgets, CandidateObjective, objective_directions, pareto_trials, run_study,
                            study_counts)
from tinynas.storage import StorageOptions, make_storage
from tinynas.train import TrainConfig
from tinynas.warm_start import enqueue_warm_start

log = logging.getLogger("tinynas.search")


def check_budget_reachable(objective: CandidateObjective) -> None:
    """Fail early, naming the numbers, when even the smallest arch of the space misses a budget."""
    space, budgets = objective.space, objective.budgets
    attrs, violations = objective.measure(space.smallest())
    if any(v > 0 for v in violations.values()):
        raise ConfigError(
            f"no candidate of search space {space.name!r} can meet the budgets on {objective.mcu.name} "
            f"({objective.runtime}): its smallest arch needs SRAM {attrs['sram_bytes']:,} B (budget "
            f"{budgets.sram_bytes:,}), flash {attrs['flash_bytes']:,} B (budget {budgets.flash_bytes:,}), latency "
            f"{attrs['latency_ms']:.1f} ms (budget {budgets.latency_ms}). Raise budgets.*, pick a larger mcu=, or "
            f"shrink the space (search_space.options.resolutions / widths).")


def trial_line(n_trials: int):
    def show(number: int, a: dict) -> None:
        arch = a["arch"]
        head = (f"trial {number + 1:>3}/{n_trials}  {a['arch_hash'][:8]}  res {arch.get('resolution', '-')} "
                f"w {arch.get('width', '-')}  SRAM {a['sram_bytes'] / 1024:6.1f} kB  flash {a['flash_bytes'] / 1024:6.1f} kB"
                f"  {a['latency_ms']:7.1f} ms")
        if a.get("infeasible"):
            log.info("%s  over budget (%s): not scored%s", head, a["infeasible"],
                     f"; enqueued {a['resampled_to'][:8]} that fits" if a.get("resampled_to") else "")
        elif a.get("pruned"):
            rungs = a.get("rung_accuracies", {})
            log.info("%s  stopped after %s epochs (successive halving), acc %s  (%.1f s)", head,
                     a.get("stopped_at_epoch", "?"), ", ".join(f"{v:.3f}@{k}" for k, v in rungs.items()), a["seconds"])
        else:
            log.info("%s  acc %.3f%s  (%.1f s)", head, a["accuracy"], " (reused)" if a.get("reused") else "",
                     a["seconds"])

    return show


def run(cfg) -> Path:
    ctx = load_common(cfg)
    out = run_dir()
    budgets = Budgets.resolve(OmegaConf.to_container(cfg.budgets, resolve=True), ctx.mcu)
    directions = objective_directions(list(cfg.objectives))
    evaluator_cfg = OmegaConf.to_container(cfg.evaluator, resolve=True)
    evaluator = make_evaluator(evaluator_cfg, EvaluationContext(ctx.space, ctx.data, ctx.device, cfg.seed,
                                                                TrainConfig.from_cfg(cfg.train), out))
    objective = CandidateObjective(ctx.space, ctx.data, ctx.mcu, ctx.runtime, budgets, evaluator,
                                   list(cfg.objectives), seed=cfg.seed,
                                   resample_attempts=int(cfg.search.get("resample_attempts", 0)),
                                   max_trials=cfg.n_trials)
    check_budget_reachable(objective)
    storage_options = StorageOptions.from_cfg(OmegaConf.to_container(cfg.get("storage_options") or {}))
    storage, storage_url = make_storage(cfg.storage, out, **dataclasses.asdict(storage_options))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, directions=directions,
                                sampler=make_sampler(OmegaConf.to_container(cfg.search), cfg.seed, space=ctx.space),
                                load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(f"study {cfg.study_name!r} in {storage_url} was created with other objectives; "
                          f"use the same objectives or another study_name")
    earlier = study.user_attrs.get("settings", {}).get("evaluator", {}).get("name")
    if earlier and earlier != evaluator.name:
        raise ConfigError(f"study {cfg.study_name!r} in {storage_url} was scored with evaluator={earlier}, not "
                          f"evaluator={evaluator.name}: their accuracies do not compare; use evaluator={earlier} "
                          f"or another study_name")
    study.set_user_attr("settings", {"objectives": list(cfg.objectives), "mcu": ctx.mcu.name, "runtime": ctx.runtime,
                                     "budgets": dataclasses.asdict(budgets), "search_space": ctx.space.name,
                                     "evaluator": evaluator_cfg})
    logger = make_logger(OmegaConf.to_container(cfg.logger), out, cfg.study_name,
                         OmegaConf.to_container(cfg, resolve=True))
    show = trial_line(cfg.n_trials)

    def on_trial(number, attrs):
        show(number, attrs)
        logger.log_trial(number, attrs)

    objective.on_trial = on_trial

    def fits_and_macs(arch):
        attrs, violations = objective.measure(arch)
        return all(v <= 0 for v in violations.values()), attrs["macs"]

    for arch in enqueue_warm_start(study, ctx.space, cfg.search.get("enqueue"), fits_and_macs):
        log.info("warm start: enqueued %s (res %s, w %s)", arch.hash[:8], getattr(arch, "resolution", "-"),
                 getattr(arch, "width", "-"))
    log.info("search %s: %d trials on %s (%s), SRAM ≤ %.0f kB, flash ≤ %.0f kB, storage %s", cfg.study_name,
             cfg.n_trials, ctx.mcu.name, ctx.runtime, budgets.sram_bytes / 1024, budgets.flash_bytes / 1024,
             storage_url)
    run_study(study, objective, cfg.n_trials, max_retry=storage_options.max_retry)

    trials = study.get_trials(deepcopy=False)
    front = pareto_trials(study)
    pareto = [pareto_row(t) for t in front]
    results = {
        "experiment": cfg.name, "mcu": ctx.mcu.name, "runtime": ctx.runtime,
        "budgets": {"sram_bytes": budgets.sram_bytes, "flash_bytes": budgets.flash_bytes,
                    "latency_ms": budgets.latency_ms},
        "study": {"name": cfg.study_name, "storage": storage_url, **study_counts(study)},
        "pareto": pareto,
        "deployed": None,
    }
    if not front:
        raise ConfigError(f"the search finished {len(trials)} trials but none was feasible and scored; "
                          f"raise n_trials or the budgets")
    if cfg.deploy:
        from tinynas.deploy import deploy, run_target

        chosen = front[0]
        arch = ctx.space.decode(chosen.user_attrs["arch"])
        dep = deploy(arch, ctx.space, ctx.data, ctx.mcu, ctx.host, ctx.runtime, TrainConfig.from_cfg(cfg.train),
                     OmegaConf.to_container(cfg.distill), OmegaConf.to_container(cfg.export), out, ctx.device,
                     seed=cfg.seed)
        ex = dep.export
        results["deployed"] = {
            "trial": chosen.number, "arch": arch.to_dict(),
            "tflite": str(Path(ex.tflite_path).resolve().relative_to(out.resolve())),
            "c_source": str(Path(ex.model_data_cc).resolve().relative_to(out.resolve())),
            "tflite_bytes": ex.tflite_bytes, "tflm_arena_bytes": ex.arena.total_bytes,
            # Estimates for what was measured (the host interpreter, the .tflite file) ...
            "estimated_sram_bytes": dep.host_estimate.sram.total_bytes,
            "estimated_flash_bytes": dep.host_estimate.flash.model_bytes,
            # ... and for the target MCU and runtime (the figures the search constrained).
            "target_sram_bytes": dep.target_estimate.sram.total_bytes,
            "target_flash_bytes": dep.target_estimate.flash.total_bytes,
            "teacher_accuracy": dep.teacher_accuracy, "fp32_accuracy": dep.fp32_accuracy,
            "int8_accuracy": ex.int8_accuracy_tflm,
            # Side by side (distill.baseline_without_kd), and the optional pruning / QAT stages.
            "student_no_kd_accuracy": dep.student_no_kd_accuracy, "student_kd_accuracy": dep.student_kd_accuracy,
            "pruning": dep.pruning, "qat": dep.qat,
            # The firmware built for the MCU's core and run in QEMU (null with no TFLM tree configured).
            "target": run_target(Path(ex.tflite_path), ctx.mcu, OmegaConf.to_container(cfg.tflm, resolve=True), out),
        }
    results_path = write_json(out / "results.json", results)
    write_pareto_csv(out / "pareto.csv", pareto)
    plot = plot_pareto(out / "pareto.png", trials, pareto, budgets.sram_bytes,
                       deployed=(results["deployed"] or {}).get("trial"),
                       title=f"{cfg.study_name}: {ctx.mcu.name}, {ctx.runtime}")
    (out / "summary.md").write_text(summary_markdown(results))
    logger.log_results(results, plot, trial_rows(trials))
    logger.close()
    print(results_path.resolve(), file=sys.stdout, flush=True)
    return results_path
