"""Calibrate the .tflite size model on real exports of every search space; print the errors; write the YAML.

    python benchmarks/flash_calibration.py --export          # export the archs not yet in the work dir (slow)
    python benchmarks/flash_calibration.py                   # fit, report fit and held-out error per space
    python benchmarks/flash_calibration.py --write           # ... and write estimators/data/flash_model.yaml

Files are real: random archs of every search space (the full ranges of widths and depths; resolution barely
changes a file), each with random weights as after training (``benchmarks/instruction_model.py``
``trained_like``), through the project's export path (PyTorch → ONNX → onnx2tf full int8,
:func:`tinynas.export.export_model`). Seeds ``FIT_SEEDS`` are fitted, ``HELD_OUT_SEEDS`` only checked.
Exports are kept under ``--work`` (default ``$TINYNAS_CACHE/flash_calibration``): reruns are instant.

The model (:mod:`estimators.flash`) prices every flatbuffer object it can count from the IR exactly; the fit
gives the rest: the mean length of the converter's tensor names per op pattern and a fixed part.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/estimators.py would shadow the `estimators` package: keep this script's folder off the path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import datetime
import importlib.util
import os
import random
import re
import time

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Search spaces over their whole range of model sizes (widths, depths, kernels, expansions); resolutions kept
# modest, as they change a file only through its few shape constants, and export time grows with them.
SPACES = {
    "mcunet": ({"resolutions": [48, 96, 128]}, 3),
    "mcunet_mnist": ({"resolutions": [20, 28], "widths": [0.3, 0.5, 0.75, 1.0], "depth_choices": [1, 2, 3],
                      "head_channels": 256}, 1),
    "mobilenetv1": ({"resolutions": [64, 96, 128]}, 3),
    "mobilenetv3": ({"resolutions": [64, 96, 128]}, 3),
    "efficientnet_lite": ({"resolutions": [96, 128]}, 3),
    "dscnn": ({}, 1),
}
FIT_SEEDS = tuple(range(8))
HELD_OUT_SEEDS = (1000, 1001, 1002)


def _instruction_model():
    spec = importlib.util.spec_from_file_location("instruction_model", ROOT / "benchmarks" / "instruction_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sample(space_name: str, seed: int):
    """(space, arch, input channels) of the random arch of ``space_name`` drawn with ``seed``."""
    from search_spaces import get_space

    options, in_ch = SPACES[space_name]
    space = get_space(space_name.replace("_mnist", ""), options)
    return space, space.random(random.Random(seed)), in_ch


def work_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    from tinynas.target.sources import cache_dir

    return cache_dir() / "flash_calibration"


def export_all(work: Path, seeds) -> None:
    """Export every (space, seed) not in ``work`` yet, round-robin over the spaces; one line per file."""
    bench = _instruction_model()
    for seed in seeds:
        for name in SPACES:
            out = work / f"{name}-{seed}"
            if (out / "model_int8.tflite").is_file():
                continue
            t0 = time.monotonic()
            space, arch, in_ch = sample(name, seed)
            try:
                path = bench.export_space_arch(space, arch, in_ch, seed, out)
            except Exception as e:  # noqa: BLE001 - one failed export is reported and skipped
                print(f"{name}-{seed}: export failed: {str(e).splitlines()[0][:200]}", flush=True)
                continue
            print(f"{name}-{seed}: {path.stat().st_size:,} B, {time.monotonic() - t0:.0f} s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)


def interleaved_seeds():
    """Fit and held-out seeds interleaved, so that a partial export run covers both."""
    fit, held = list(FIT_SEEDS), list(HELD_OUT_SEEDS)
    out = []
    while fit or held:
        out += fit[:2] + held[:1]
        fit, held = fit[2:], held[1:]
    return out


def _padded(name: bytes) -> int:
    """Bytes of a flatbuffer string: 4 + length + 1, padded to 4."""
    return -(-(len(name) + 5) // 4) * 4


_MODEL_PREFIX = re.compile(rb"(^|;)model_\d+/")
_PART = re.compile(r"^(model/)?(.*?)(?:_(\d+))?(/[A-Za-z0-9_]+)?$")


def name_parts(name: bytes) -> tuple[int, int, dict[str, list[int]], int]:
    """A tensor name as the converter joins it (``model/tf.nn.relu_3/Relu;...;Const_41``): its length without
    numeric suffixes and with the Keras model prefix as ``model/``, its parts under ``model/``, the suffix
    lengths per layer type (``tf.nn.relu``, ``Const``, ...) and the bytes the file's actual prefix
    (``model_1/``: however many Keras models onnx2tf built before the one it saved) adds."""
    plain = _MODEL_PREFIX.sub(rb"\1model/", name).decode()
    base, model_parts, suffixes = 0, 0, {}
    for part in plain.split(";"):
        prefix, layer, num, op = _PART.match(part).groups()
        base += len(prefix or "") + len(layer) + len(op or "") + 1
        model_parts += prefix is not None
        suffixes.setdefault(layer, []).append(len(num) + 1 if num else 0)
    return base - 1, model_parts, suffixes, len(name) - len(plain)


def output_names(path: Path, layouts_kinds: list[str]) -> list[tuple] | None:
    """:func:`name_parts` of each op's output name in the file at ``path`` (when its ops are ``layouts_kinds``)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    codes = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    buf = path.read_bytes()
    m = fb.Model.GetRootAsModel(buf, 0)
    sg = m.Subgraphs(0)
    kinds, names = [], []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        kinds.append(codes[m.OperatorCodes(op.OpcodeIndex()).BuiltinCode()])
        names.append(name_parts(sg.Tensors(int(op.OutputsAsNumpy()[0])).Name()))
    return names if kinds == layouts_kinds else None


def samples(work: Path, seeds) -> list[dict]:
    """(space, seed, file bytes, the IR's terms, the file's output name bytes per op) of every export there."""
    from estimators.flash import flash_terms
    from estimators.table import table_of

    out = []
    for seed in seeds:
        for name in SPACES:
            path = work / f"{name}-{seed}" / "model_int8.tflite"
            if not path.is_file():
                continue
            space, arch, in_ch = sample(name, seed)
            ir = space.to_ir(arch, in_ch, 10)
            t = table_of(ir)
            ops = [f for i, f in enumerate(t.ops) if not (f.kind == "RESHAPE" and i + 1 < len(t.ops)
                                                           and t.ops[i + 1].kind == "FULLY_CONNECTED")]
            names = output_names(path, [f.kind for f in ops])
            patterns = [f.kind if f.activation is None else f"{f.kind}/{f.activation}" for f in ops]
            out.append({"space": name, "seed": seed, "bytes": path.stat().st_size, "terms": flash_terms(ir),
                        "names": list(zip(patterns[:-1], names[:-1])) if names else None,
                        "params": sum(f.params for f in t.ops)})
    return out


def fit(rows: list[dict]) -> dict:
    """The op output names, measured on the files: per pattern the mean length without numeric suffixes,
    the mean parts under the Keras model prefix and the mean uses of each layer type; per layer type the span
    of its counter per use (least squares on the files' suffix bytes); the mean bytes of a ``model_N/``
    prefix's number per part and of a string's padding. Then the structure the names do not explain
    (zero-point vector alignment, vtables): least squares of the rest of the files' bytes on quantized
    constants, op kinds and 1."""
    from estimators.flash import QUANT_CHANNEL_BYTES, mean_suffix_bytes

    by_pattern: dict[str, list[tuple]] = {}
    for r in rows:
        for pattern, parts in r["names"] or ():
            by_pattern.setdefault(pattern, []).append(parts)
    every = [x for v in by_pattern.values() for x in v]
    types = sorted({t for x in every for t in x[2]})

    def entry(v: list[tuple]) -> dict:
        return {"base": round(float(np.mean([x[0] for x in v])), 3),
                "model_parts": round(float(np.mean([x[1] for x in v])), 3),
                "uses": {t: round(float(np.mean([len(x[2].get(t, ())) for x in v])), 4) for t in types
                         if any(t in x[2] for x in v)}}

    names = {p: entry(v) for p, v in sorted(by_pattern.items())}
    spans = {}
    for t in types:  # counter span per use: the file's suffix bytes of type t against n_t × mean suffix(span × n_t)
        pairs = [(sum(len(x[2].get(t, ())) for _, x in r["names"]), sum(sum(x[2].get(t, ())) for _, x in r["names"]))
                 for r in rows if r["names"]]
        grid = np.arange(0.5, 8.0, 0.01)
        cost = [sum((n * mean_suffix_bytes(round(g * n)) - y) ** 2 for n, y in pairs if n) for g in grid]
        spans[t] = round(float(grid[int(np.argmin(cost))]), 2)
    prefix = sum(x[3] for x in every) / max(sum(x[1] for x in every), 1)
    padding = float(np.mean([-(-(n + 5) // 4) * 4 - (n + 5) for x in every
                             for n in [x[0] + sum(sum(v) for v in x[2].values()) + x[3]]]))
    coef = {"output_names": names, "default_output_name": entry(every), "counter_span": spans,
            "model_prefix_bytes": round(prefix, 4),
            "string_padding_bytes": round(padding, 4),
            # a tensor of an op kind the layout does not model: the files' mean bytes per tensor beyond data
            "other_tensor_bytes": round(float(np.mean([(r["bytes"] - r["terms"]["const_bytes"] - QUANT_CHANNEL_BYTES
                                                        * r["terms"]["quant_channels"]) / r["terms"]["tensors"]
                                                       for r in rows])), 1)}
    # The rest, with the files' own output names.
    X, y = [], []
    for r in rows:
        if not r["names"]:
            continue
        t = r["terms"]
        actual = sum(-(-(x[0] + sum(sum(v) for v in x[2].values()) + x[3] + 5) // 4) * 4 for _, x in r["names"])
        y.append(r["bytes"] - t["const_bytes"] - QUANT_CHANNEL_BYTES * t["quant_channels"] - t["struct_bytes"]
                 - t["name_bytes"] - actual)
        X.append([t["quantized_consts"], t["op_kinds"], 1.0])
    (c_const, c_kind, fixed), *_ = np.linalg.lstsq(np.array(X, float), np.array(y, float), rcond=None)
    coef.update({"per_quantized_const_bytes": round(float(c_const), 3), "per_op_kind_bytes": round(float(c_kind), 2),
                 "fixed_bytes": round(float(fixed), 1)})
    return coef


def report(rows: list[dict], coef: dict, label: str) -> list[float]:
    from estimators.flash import priced_bytes

    errs = []
    print(f"{label}: {len(rows)} files")
    for space in SPACES:
        mine = [r for r in rows if r["space"] == space]
        if not mine:
            continue
        e = [priced_bytes(r["terms"], coef) / r["bytes"] - 1 for r in mine]
        errs += e
        sizes = [r["bytes"] for r in mine]
        print(f"  {space:<18} {len(mine):>2} files {min(sizes):>10,}..{max(sizes):>10,} B  "
              f"mean |err| {100 * np.mean(np.abs(e)):.3f}%  max {100 * np.max(np.abs(e)):.3f}%  "
              f"({', '.join(f'{100 * x:+.2f}' for x in e)})")
    print(f"  all: mean |err| {100 * np.mean(np.abs(errs)):.3f}%, max {100 * np.max(np.abs(errs)):.3f}%")
    return errs


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("onnx2tf", "tensorflow", "onnx", "torch")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", action="store_true", help="export the archs missing from the work dir first")
    ap.add_argument("--work", help="folder of the exports (default: $TINYNAS_CACHE/flash_calibration)")
    ap.add_argument("--write", action="store_true", help="write estimators/data/flash_model.yaml")
    args = ap.parse_args()
    work = work_dir(args.work)
    if args.export:
        export_all(work, interleaved_seeds())
    fit_rows, held = samples(work, FIT_SEEDS), samples(work, HELD_OUT_SEEDS)
    if not fit_rows:
        raise SystemExit(f"no exports under {work}: run with --export first")
    coef = fit(fit_rows)
    fit_err, held_err = report(fit_rows, coef, "fit"), report(held, coef, "held out") if held else []
    if args.write:
        from estimators.flash import FLASH_MODEL

        doc = {"generated_by": "benchmarks/flash_calibration.py --write",
               "generated_on": datetime.date.today().isoformat(), "sources": versions(),
               "default_exporter": "onnx2tf",
               "exporters": {"onnx2tf": {**coef, "files": len(fit_rows), "held_out_files": len(held),
                                         "fit_max_abs_error": round(float(np.max(np.abs(fit_err))), 5),
                                         "held_out_max_abs_error": round(float(np.max(np.abs(held_err))), 5)
                                         if held_err else None}}}
        with open(FLASH_MODEL, "w") as f:
            f.write("# Generated by benchmarks/flash_calibration.py --write; do not edit by hand.\n")
            yaml.safe_dump(doc, f, sort_keys=False)
        print(f"wrote {FLASH_MODEL}")


if __name__ == "__main__":
    main()
