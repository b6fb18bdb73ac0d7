"""Emulate exported archs of every search space on a Cortex-M target, fit the per-op instruction model of its class.

    python benchmarks/instruction_model.py --emulate   # export + firmware + QEMU: writes instruction_samples.csv
    python benchmarks/instruction_model.py             # fit on the samples, report, write instruction_model.yaml
    python benchmarks/instruction_model.py --held-out  # the shipped model on archs of seeds it was not fitted on
    python benchmarks/instruction_model.py --class mve --emulate   # the same for another class (armv6m, mve)
    python benchmarks/instruction_model.py --core cortex-m7 --emulate   # a core whose build departs from its class's

Ground truth: ``tinynas.target`` (TFLM + CMSIS-NN built with TFLM's Makefile for the class's core, run in
qemu-system-arm with the instruction-counting plugin): the DSP class on cortex-m4 (mps2-an386), ARMv6-M on
cortex-m0plus (mps2-an385), MVE on cortex-m55 (mps3-an547). A core of the DSP class whose own build departs from
the M4's (GCC schedules and selects for its ``-mcpu``: the M7 on mps2-an500, the M33 on mps2-an505) gets a model
of its own, same form, fitted on the same archs emulated on its firmware (``--core``). Each sample is one op of an exported arch
(its facts as the estimators read them from the .tflite, and its emulated instructions); each model adds one
row of Invoke overhead (Invoke minus the sum of its op spans). The MLPerf Tiny reference models
(tests/tflite_models.py) are emulated too and take part in the fit. The fit is per op variant
(:mod:`estimators.instructions`), least squares on relative error. Needs the TFLM tree (``$TINYNAS_TFLM_ROOT``,
else ``../shared/third_party``) and the Arm toolchain; the first run compiles the kernels (minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/estimators.py would shadow the `estimators` package: keep this script's folder off the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import csv
import datetime
import os
import random
import subprocess
import time

import numpy as np
import yaml

from estimators.instructions import (CORE_MODEL_FILES, DATA_DIR, ELEMENTWISE, MODEL_FILES, ROW_FIELDS, WINDOWED,
                                     InstructionModel, facts_from_row, facts_row, fit_groups, generic_features,
                                     op_features)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "third_party"
# Per instruction class: the catalogue board whose core is emulated (its core's build and QEMU board).
BOARDS = {"dsp": "stm32f412",    # Cortex-M4F, mps2-an386
          "armv6m": "stm32g0b1",  # Cortex-M0+, mps2-an385
          "mve": "ra8d1"}         # Cortex-M85: Cortex-M55 code (Armv8.1-M + MVE), mps3-an547
# Per core with a model of its own (estimators.instructions.CORE_MODEL_FILES): the catalogue board emulated.
CORE_BOARDS = {"cortex-m7": "stm32f746",   # mps2-an500
               "cortex-m33": "ra6m4"}      # mps2-an505


def samples_path(target: str) -> Path:
    """The sample CSV of an instruction class or a core (``cortex-m7``)."""
    return DATA_DIR / ("instruction_samples.csv" if target == "dsp" else f"instruction_samples_{target}.csv")

# Search spaces narrowed to sizes that export and emulate in seconds; every layer kind of each space remains.
SPACES = {
    "mcunet": ({"resolutions": [48, 64, 80, 96], "widths": [0.3, 0.5, 0.75]}, 3),
    "mcunet_mnist": ({"resolutions": [16, 20, 24], "widths": [0.3, 0.5, 1.0], "depth_choices": [1, 2],
                      "head_channels": 256}, 1),
    "mobilenetv1": ({"resolutions": [64, 80, 96], "widths": [0.25, 0.35, 0.5]}, 3),
    "mobilenetv3": ({"resolutions": [64, 80, 96], "widths": [0.35, 0.5]}, 3),
    "efficientnet_lite": ({"resolutions": [96, 128], "widths": [0.25, 0.35], "depth_coefficients": [0.5, 0.75]}, 3),
    "dscnn": ({}, 1),
}
FIT_SEEDS = (1, 2, 3)
TEST_SEEDS = (100,)  # held out: tests/test_instruction_model.py


def sources():
    from tinynas.target.sources import resolve

    root = os.environ.get("TINYNAS_TFLM_ROOT") or str(SHARED / "tflite-micro")
    downloads = os.environ.get("TINYNAS_TFLM_DOWNLOADS") or (str(SHARED / "downloads")
                                                            if (SHARED / "downloads").is_dir() else None)
    return resolve(root, downloads)


def sample_arch(space_name: str, seed: int):
    """(space, arch, input channels) of the random arch of ``space_name`` drawn with ``seed``."""
    from search_spaces import get_space

    options, in_ch = SPACES[space_name]
    space = get_space(space_name.replace("_mnist", ""), options)
    return space, space.random(random.Random(seed)), in_ch


def export_arch(space_name: str, seed: int, out: Path) -> Path:
    """A random arch of ``space_name`` (seed ``seed``), exported to full-int8 .tflite with fresh weights."""
    space, arch, in_ch = sample_arch(space_name, seed)
    return export_space_arch(space, arch, in_ch, seed, out / f"{space_name}-{seed}")


def export_space_arch(space, arch, in_ch: int, seed: int, out_dir: Path) -> Path:
    """``arch`` of ``space`` with random weights as after training (:func:`trained_like`), exported to
    ``out_dir/model_int8.tflite`` (kept when it exists)."""
    import torch

    from tinynas.export import export_model

    torch.manual_seed(seed)
    model = trained_like(space.build_torch(arch, in_ch, 10), seed)
    h, w, c = space.input_shape(arch, in_ch)
    calib = np.random.default_rng(seed).standard_normal((8, c, h, w)).astype(np.float32)
    tflite = out_dir / "model_int8.tflite"
    if not tflite.is_file():
        export_model(model, calib, tflite.parent)
    return tflite


def trained_like(model, seed: int):
    """``model`` with random batch-norm statistics and biases, as after training. A freshly built model's folded
    biases are all zero: the converter then stores equal bias buffers once and drops zero fully-connected biases,
    which no trained model's file does."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def emulate(tflite: Path, src, board: str = BOARDS["dsp"]) -> dict:
    """The firmware report of ``tflite`` on the emulated core of catalogue board ``board``."""
    from estimators import load_mcu
    from tinynas.paths import MCU_DIR
    from tinynas.target.firmware import run_firmware

    return run_firmware(tflite, load_mcu(board, MCU_DIR), src)


def sample_rows(name: str, tflite: Path, report: dict) -> list[dict]:
    """One row per op (facts + emulated instructions) and one ``INVOKE`` row (overhead beyond the op spans)."""
    from estimators.table import table_of
    from estimators.tflite_reader import read_tflite

    ops = table_of(read_tflite(tflite)).ops
    per_op = report["per_op"]
    if [f.kind for f in ops] != [p["kind"] for p in per_op]:
        raise RuntimeError(f"{name}: the reader's ops differ from the firmware's")
    rows = [{"model": name, "index": p["index"], **facts_row(f), "instructions": p["instructions"]}
            for f, p in zip(ops, per_op)]
    rows.append({"model": name, "index": len(ops), "kind": "INVOKE", "out_numel": len(ops),
                 "instructions": report["instructions"] - sum(p["instructions"] for p in per_op)})
    return rows


def run_emulation(work: Path, seeds=FIT_SEEDS, spaces=tuple(SPACES), out: Path | None = None,
                  board: str = BOARDS["dsp"]) -> list[dict]:
    src = sources()
    rows = []
    for space_name in spaces:
        for seed in seeds:
            t0 = time.monotonic()
            tflite = export_arch(space_name, seed, work)
            report = emulate(tflite, src, board)
            rows += sample_rows(f"{space_name}-{seed}", tflite, report)
            if out is not None:
                write_samples(rows, out)  # after every model: an interrupted run keeps what it measured
            print(f"{space_name}-{seed}: {len(report['per_op'])} ops, {report['instructions']:,} instructions, "
                  f"{time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
    return rows


def emulate_references(work: Path, board: str = BOARDS["dsp"]) -> list[dict]:
    """Rows of the MLPerf Tiny reference models (tests/tflite_models.py builds them with Keras)."""
    sys.path.insert(0, str(ROOT))
    from tests.tflite_models import build_mlperf_tiny

    src = sources()
    rows = []
    for name, tflite in build_mlperf_tiny(work / "mlperf_tiny").items():
        report = emulate(tflite, src, board)
        rows += sample_rows(f"mlperf-{name}", tflite, report)
        print(f"mlperf-{name}: {len(report['per_op'])} ops, {report['instructions']:,} instructions", file=sys.stderr)
    return rows


def write_samples(rows: list[dict], path: Path) -> None:
    fields = ["model", "index", *ROW_FIELDS, "instructions"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fields, restval="")
        w.writeheader()
        w.writerows(rows)


def read_samples(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def provenance(src, board: str = BOARDS["dsp"]) -> dict:
    def head(repo: Path) -> str:
        """The checkout's commit: git, else the snapshot table of a third_party README beside it."""
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
        for readme in (repo.parent / "README.md", repo.parent.parent / "README.md"):
            if readme.is_file():
                for line in readme.read_text().splitlines():
                    cells = [c.strip() for c in line.split("|")]
                    if len(cells) > 3 and cells[1].strip("`/") in (repo.name, f"downloads/{repo.name}"):
                        return cells[3].split()[0]
        return "unknown"

    from tinynas.target.build import BUILD_TYPE, Tree, core_for
    from tinynas.target.sources import tool_version

    from estimators import load_mcu
    from tinynas.paths import MCU_DIR

    core = core_for(load_mcu(board, MCU_DIR).core)
    flags = Tree(src, core).flags()
    return {"tflm_commit": head(src.root), "cmsis_nn_commit": head(src.downloads / "cmsis_nn"),
            "compiler": tool_version("arm-none-eabi-gcc"), "emulator": tool_version("qemu-system-arm"),
            "target": f"TARGET=cortex_m_qemu TARGET_ARCH={core.target_arch} OPTIMIZED_KERNEL_DIR=cmsis_nn "
                      f"BUILD_TYPE={BUILD_TYPE}",
            "cxxflags": " ".join(flags.cxxflags), "board": f"qemu-system-arm -M {core.board} ({core.target_arch})"}


def fit(rows: list[dict], isa: str = "dsp") -> dict:
    """Coefficients per op variant from the sample rows; prints each variant's in-sample error."""
    by_variant: dict[str, list[tuple[np.ndarray, float]]] = {}
    for r in rows:
        facts = facts_from_row(r)
        variant, x = op_features(facts, isa) if facts is not None else ("INVOKE", [1.0, float(r["out_numel"])])
        by_variant.setdefault(variant, []).append((np.asarray(x, float), float(r["instructions"])))
    # Kinds met later without a variant of their own: one generic fit over every elementwise-like op.
    generic = [(np.asarray(generic_features(f), float), float(r["instructions"]))
               for r in rows if (f := facts_from_row(r)) is not None and f.kind not in WINDOWED]
    by_variant.setdefault(ELEMENTWISE, []).extend(generic)
    coefs = {}
    for variant, (coef, median, worst) in fit_groups(by_variant).items():
        coefs[variant] = coef
        print(f"{variant:<34} n={len(by_variant[variant]):>4}  median {100 * median:5.2f}%  max {100 * worst:6.2f}%")
    return coefs


def model_errors(model: InstructionModel, rows: list[dict]) -> dict[str, tuple[int, float]]:
    """Per model: (emulated Invoke instructions, predicted / emulated − 1)."""
    return {m: (t, p / t - 1) for m, (t, p) in model.sample_totals(rows).items()}


def print_errors(errs: dict[str, dict[str, tuple[int, float]]], fitted: dict[str, set[str]]) -> None:
    """One line per emulated model: its instructions and each model's error (``*``: in that model's fit); then
    each model's median and max |error| over the models it was not fitted on."""
    names = list(errs)
    models = sorted({m for e in errs.values() for m in e})
    for m in models:
        row = "  ".join(f"{n} {100 * errs[n][m][1]:+6.2f}%{'*' if m in fitted[n] else ' '}" for n in names)
        print(f"{m:<24} {errs[names[0]][m][0]:>14,} instructions  {row}")
    for n in names:
        out = [abs(e) for m, (_, e) in errs[n].items() if m not in fitted[n]]
        if out:
            print(f"{n}: held out ({len(out)} models) median |error| {100 * np.median(out):.2f}%, "
                  f"max {100 * max(out):.2f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--class", dest="isa", choices=sorted(BOARDS), default="dsp",
                    help="instruction class: dsp (Cortex-M4/M7/M33), armv6m (M0/M0+), mve (M55/M85)")
    ap.add_argument("--core", choices=sorted(CORE_BOARDS), default=None,
                    help="a DSP-class core with a model of its own, emulated on its own build (instead of --class)")
    ap.add_argument("--emulate", action="store_true", help="export and emulate the sample archs first")
    ap.add_argument("--work", default=None, help="folder for the exports (default: $TINYNAS_CACHE/instruction_model)")
    ap.add_argument("--no-write", action="store_true", help="report only; do not write the model YAML")
    ap.add_argument("--held-out", action="store_true",
                    help="only emulate the held-out seeds (TEST_SEEDS) and the MLPerf Tiny references, and report "
                         "the shipped model's error on them (with --core: the class's model's too)")
    args = ap.parse_args()
    if args.core:
        isa, board, target = "dsp", CORE_BOARDS[args.core], args.core
        model_yaml = CORE_MODEL_FILES[args.core]
    else:
        isa, board, target, model_yaml = args.isa, BOARDS[args.isa], args.isa, MODEL_FILES[args.isa]
    samples = samples_path(target)
    src = sources()
    if args.emulate or args.held_out:
        from tinynas.target.sources import cache_dir

        work = Path(args.work) if args.work else cache_dir() / "instruction_model"
    if args.held_out:
        rows = run_emulation(work, seeds=TEST_SEEDS, board=board) + emulate_references(work, board)
        shipped = {f"{isa} model": MODEL_FILES[isa]} if args.core else {}
        if model_yaml.is_file():
            shipped[f"{target} model"] = model_yaml
        models = {name: InstructionModel.from_yaml(path) for name, path in shipped.items()}
        print(f"emulated on {board}; * = in that model's fit")
        print_errors({n: model_errors(m, rows) for n, m in models.items()},
                     {n: set(m.meta.get("fitted_on", ())) if m.meta.get("board") == provenance(src, board)["board"]
                      else set() for n, m in models.items()})
        return
    if args.emulate:
        rows = run_emulation(work, out=samples, board=board)
        write_samples(rows + emulate_references(work, board), samples)
    rows = read_samples(samples)
    coefs = fit(rows, isa)
    doc = {"generated_by": "benchmarks/instruction_model.py", "generated_at": datetime.date.today().isoformat(),
           "isa": isa, **({"core": args.core} if args.core else {}), "fitted_on": sorted({r["model"] for r in rows}),
           **provenance(src, board),
           "features": "estimators/instructions.py op_features (order of each variant's coefficients)",
           "coefficients": {k: [float(c) for c in v] for k, v in coefs.items()}}
    model = InstructionModel.from_dict(doc)
    errs = model_errors(model, rows)
    for m, (total, e) in sorted(errs.items()):
        print(f"{m:<24} {total:>14,} instructions  model {100 * e:+6.2f}%")
    print(f"whole models: median |error| {100 * np.median([abs(e) for _, e in errs.values()]):.2f}%, "
          f"max {100 * max(abs(e) for _, e in errs.values()):.2f}% (in sample)")
    if not args.no_write:
        with open(model_yaml, "w") as f:
            f.write("# Generated by benchmarks/instruction_model.py; do not edit.\n")
            yaml.safe_dump(doc, f, sort_keys=False, width=120)
        print(f"wrote {model_yaml.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
