"""`tinynas search`: search, then distil, export and verify the chosen Pareto point."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path

import optuna
from omegaconf import OmegaConf

from search_spaces import arch_summary
from tinynas.commands.common import load_common, run_dir
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.loggers import make_logger, trial_rows
from tinynas.report import (pareto_row, plot_pareto, summary_markdown, write_json, write_pareto_csv)
from tinynas.run_lock import check_run_dir_free, hold_run_dir
from tinynas.samplers import make_sampler
from tinynas.search import (Budgets, CandidateObjective, objective_directions, pareto_trials, run_study,
                            study_counts)
from tinynas.storage import StorageOptions, counted_trials, make_storage
from tinynas.workers import Worker, retire, sampler_seed
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


def trial_line(n_trials: int, study: optuna.Study):
    """The console line of a finished trial: Optuna's trial number (the one summary.md, results.json, reports
    and W&B use), the arch hash, and how many of the study's ``n_trials`` are done with it."""
    def show(number: int, a: dict) -> None:
        arch = a["arch"]
        done = counted_trials(study.get_trials(deepcopy=False)) + 1  # this one is still RUNNING
        retry = f" (retry of {a['retry_of']})" if a.get("retry_of") is not None else ""
        head = (f"trial {number:>3}{retry}  {a['arch_hash'][:8]}  [{done}/{n_trials}]  {arch_summary(arch)}  "
                f"SRAM {a['sram_bytes'] / 1024:6.1f} kB  flash {a['flash_bytes'] / 1024:6.1f} kB"
                f"  {a['latency_ms']:7.1f} ms")
        if a.get("infeasible"):
            log.info("%s  over budget (%s): not scored%s", head, a["infeasible"],
                     f"; enqueued {a['resampled_to'][:8]} that fits" if a.get("resampled_to") else "")
        elif a.get("pruned"):
            rungs = a.get("rung_accuracies", {})
            log.info("%s  stopped after %s epochs (successive halving), acc %s  (%.1f s)", head,
                     a.get("stopped_at_epoch", "?"), ", ".join(f"{v:.3f}@{k}" for k, v in rungs.items()), a["seconds"])
        else:
            reused = f" (reused from trial {a['reused_from']})" if a.get("reused") else ""
            log.info("%s  acc %.3f%s  (%.1f s)", head, a["accuracy"], reused, a["seconds"])

    return show


def storage_url_of(cfg) -> str | None:
    """``storage=``; unset in a multirun that sweeps ``worker`` (a Hydra launcher starting N workers), a journal
    in the sweep dir, so that every job of the sweep works on the same study. Otherwise ``None``: the run dir's."""
    if cfg.storage:
        return cfg.storage
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and any(o.split("=", 1)[0].lstrip("+") == "worker" for o in hc.overrides.task):
        return f"journal://{(Path(hc.sweep.dir) / 'study.journal').resolve()}"
    return None


def run(cfg) -> Path:
    out = run_dir()
    check_run_dir_free(out, "tinynas search")  # a second writer of the outputs stops before any work
    worker = int(cfg.get("worker", 0))
    ctx = load_common(cfg)
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
    storage, storage_url = make_storage(storage_url_of(cfg), out, **dataclasses.asdict(storage_options))
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
    me = Worker.this(f"{cfg.run_id}#{worker}" if worker else cfg.run_id)
    seed, peers = sampler_seed(study, cfg.seed, me)
    if peers:  # beside other live workers: a seed of its own, so that they do not draw the same archs
        study.sampler = make_sampler(OmegaConf.to_container(cfg.search), seed, space=ctx.space)
        log.info("worker %s (pid %d on %s) joins %d other live worker(s) of study %s: sampler seed %d, derived "
                 "from seed=%d and its identity", me.run_id, me.pid, me.host, len(peers), cfg.study_name, seed,
                 cfg.seed)
    study.set_user_attr("settings", {"objectives": list(cfg.objectives), "mcu": ctx.mcu.name, "runtime": ctx.runtime,
                                     "budgets": dataclasses.asdict(budgets), "search_space": ctx.space.name,
                                     "evaluator": evaluator_cfg})
    logger = make_logger(OmegaConf.to_container(cfg.logger), out, cfg.study_name,
                         OmegaConf.to_container(cfg, resolve=True))
    show = trial_line(cfg.n_trials, study)

    def on_trial(number, attrs):
        show(number, attrs)
        logger.log_trial(number, attrs)

    objective.on_trial = on_trial

    def fits_and_macs(arch):
        attrs, violations = objective.measure(arch)
        return all(v <= 0 for v in violations.values()), attrs["macs"]

    for arch in enqueue_warm_start(study, ctx.space, cfg.search.get("enqueue"), fits_and_macs):
        log.info("warm start: enqueued %s (%s)", arch.hash[:8], arch.summary())
    log.info("search %s: %d trials on %s (%s), SRAM ≤ %.0f kB, flash ≤ %.0f kB, storage %s", cfg.study_name,
             cfg.n_trials, ctx.mcu.name, ctx.runtime, budgets.sram_bytes / 1024, budgets.flash_bytes / 1024,
             storage_url)
    try:
        if cfg.n_trials == 0:  # no new trial: rebuild the outputs (and deploy) from the trials the study holds
            held = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
            if not held:
                raise ConfigError(f"n_trials=0 runs no new trial, and study {cfg.study_name!r} in {storage_url} "
                                  f"holds none to report or deploy; set n_trials to the study's total (≥ 1)")
            log.info("n_trials=0: no new trial; the outputs come from the %d finished trials of study %s", held,
                     cfg.study_name)
        else:
            run_study(study, objective, cfg.n_trials, max_retry=storage_options.max_retry,
                      timeout_s=cfg.get("timeout_s"))
    finally:
        retire(study, me)

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
    outputs = hold_run_dir(out, "tinynas search writing its outputs")  # until they are all written
    if cfg.deploy and worker:
        log.info("worker %d: the study is complete; worker 0 deploys its best point", worker)
    if cfg.deploy and not worker:
        from tinynas.deploy import deploy, run_target

        chosen = front[0]
        arch = ctx.space.decode(chosen.user_attrs["arch"])
        dep = deploy(arch, ctx.space, ctx.data, ctx.mcu, ctx.host, ctx.runtime, TrainConfig.from_cfg(cfg.train),
                     OmegaConf.to_container(cfg.distill), OmegaConf.to_container(cfg.export), out, ctx.device,
                     seed=cfg.seed)
        ex = dep.export
        results["deployed"] = {
            "trial": chosen.number, "arch_hash": arch.hash, "arch": arch.to_dict(),
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
            "model_fingerprints": dep.fingerprints, "test_samples": dep.test_samples,
            # The firmware built for the MCU's core and run in QEMU (null with no TFLM tree configured).
            "target": run_target(Path(ex.tflite_path), ctx.mcu, OmegaConf.to_container(cfg.tflm, resolve=True), out),
        }
    results_path = write_json(out / "results.json", results)
    write_pareto_csv(out / "pareto.csv", pareto)
    plot = plot_pareto(out / "pareto.png", trials, list(cfg.objectives), dataclasses.asdict(budgets),
                       deployed=(results["deployed"] or {}).get("trial"),
                       title=f"{cfg.study_name}: {ctx.mcu.name}, {ctx.runtime}")
    (out / "summary.md").write_text(summary_markdown(results))
    logger.log_results(results, plot, trial_rows(trials))
    logger.close()
    outputs.release()
    print(results_path.resolve(), file=sys.stdout, flush=True)
    return results_path
