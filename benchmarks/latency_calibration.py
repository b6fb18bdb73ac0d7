"""Fit the latency model on latency_calibration.csv, print leave-one-out errors, write the coefficients YAML.

    python benchmarks/latency_calibration.py            # fit + leave-one-out report
    python benchmarks/latency_calibration.py --write    # ... and write estimators/data/latency_coefficients.yaml

The first tables are the instruction model's (runtime=tflm on DSP-class cores):
* each published point's cycles per instruction (latency × clock ÷ the model's TFLM + CMSIS-NN instructions),
  each board's fit — cycles_per_instruction and fully_connected_cpi_ratio, the values in conf/mcu/<board>.yaml
  (estimators.latency.fit_cycles_per_instruction) — and each point's leave-one-out error (the fit of the board's
  other points; with no FC-heavy point left, FC ops run at the others' rate);
* one-point calibration: each board calibrated on one model alone (one constant, as `tinynas calibrate` with one
  measurement), its error on each of the board's other models;
* the flash-term check: cycles = a × instructions + s × weight bytes CMSIS-NN's loops read, fitted per board.
A point's instructions are those of the runtime its setup itself ran where
estimators/data/published_runtime_instructions.csv has them (benchmarks/published_runtime.py builds a
submission's own TFLM + CMSIS-NN and counts it), else the pinned runtime's (the instruction model); the
one-point matrix is printed again with the pinned runtime's counts for those boards, which shows what the
runtime version alone moved.
The last is the MAC-based model that still prices the other runtimes and cores.

Residuals are relative (log latency), so a 10 ms and a 600 ms point weigh alike. The energy check multiplies
latency by the board's active power from conf/mcu and compares with the csv's measured energy_uj.
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
import math

import numpy as np
import yaml
from scipy.optimize import least_squares

from estimators.latency import (COEFFICIENTS, DATA_DIR, LatencyModel, core_families, core_family,
                                fit_cycles_per_instruction, fully_connected_instructions, graph_terms,
                                published_runtime_instructions)
from estimators.mcu import load_mcu
from estimators.reference_models import model_key, reference_model
from estimators.table import table_of

ROOT = Path(__file__).resolve().parents[1]
CSV = DATA_DIR / "latency_calibration.csv"


def load_points(path: Path = CSV) -> list[dict]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    points = []
    for r in rows:
        clock = float(r["clock_mhz"])
        points.append(dict(row=r, family=core_family(r["core"]), runtime=r["runtime"],
                           terms=graph_terms(reference_model(r["model"]), r["runtime"]),
                           cycles=float(r["latency_ms"]) * 1e-3 * clock * 1e6, clock=clock))
    return points


def fit(points: list[dict]) -> LatencyModel:
    """Least squares on log cycles: one scale per (family, runtime), an FC ratio per ISA, one element cost."""
    fams = core_families()
    pairs = sorted({(p["family"], p["runtime"]) for p in points})
    isas = sorted({fams["families"][p["family"]]["isa"] for p in points if p["terms"]["fc_mac"]})
    all_isas = sorted({spec["isa"] for spec in fams["families"].values()})

    def model(x: np.ndarray) -> LatencyModel:
        ratio = dict(zip(isas, np.exp(x[len(pairs):len(pairs) + len(isas)])))
        fallback = ratio.get("dsp", next(iter(ratio.values()), 1.0))
        return LatencyModel(dict(zip(pairs, np.exp(x[:len(pairs)]))),
                            {i: float(ratio.get(i, fallback)) for i in all_isas}, float(np.exp(x[-1])))

    def residuals(x: np.ndarray) -> np.ndarray:
        m = model(x)
        return np.array([math.log(m.cycles(p["terms"], p["family"], p["runtime"]) / p["cycles"]) for p in points])

    x0 = np.zeros(len(pairs) + len(isas) + 1)
    x0[-1] = math.log(10.0)
    return model(least_squares(residuals, x0).x)


def predict(m: LatencyModel, p: dict) -> float:
    """Predicted latency in ms of calibration point ``p``."""
    return m.cycles(p["terms"], p["family"], p["runtime"]) / (p["clock"] * 1e6) * 1e3


def instruction_points(path: Path = CSV) -> tuple[dict[str, list[dict]], list[str]]:
    """The runtime=tflm points on boards with an instruction model (their core's class), by board: row,
    instructions and FC instructions (``n``, ``fc``: the setup's own runtime's where counted, else the pinned
    runtime's; ``counts`` says which), the pinned runtime's (``pinned_n``, ``pinned_fc``), cycles and the bytes of
    weights CMSIS-NN's loops read (for the flash-term check); and the boards left out ("mcu (core)": no
    instruction model)."""
    from estimators.instructions import instruction_model_for

    own = published_runtime_instructions()
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["runtime"] == "tflm"]
    by_board: dict[str, list[dict]] = {}
    unpriced = set()
    for r in rows:
        model = instruction_model_for(load_mcu(r["mcu"], ROOT / "conf" / "mcu"), "tflm")
        if model is None:
            unpriced.add(f"{r['mcu']} ({r['core']})")
            continue
        table = table_of(reference_model(r["model"]))
        pinned = (model.graph_instructions(table), fully_connected_instructions(model, table))
        n, fc = own.get((r["mcu"], r["model"])) or pinned
        by_board.setdefault(r["mcu"], []).append(dict(
            row=r, model=model_key(r["model"]), n=n, fc=fc, pinned_n=pinned[0], pinned_fc=pinned[1],
            weight_reads=weight_reads(table), counts="own" if (r["mcu"], r["model"]) in own else "pinned",
            cycles=float(r["latency_ms"]) * 1e-3 * float(r["clock_mhz"]) * 1e6))
    return by_board, sorted(unpriced)


def weight_reads(table) -> int:
    """Weight bytes CMSIS-NN's DSP loops read per Invoke: conv kernels (1x1 and im2col) each weight once per two
    output pixels (2 x 2 output tiles), depthwise once per output pixel, fully connected once."""
    total = 0
    for op in table.ops:
        if op.kind == "CONV_2D":
            total += op.macs // 2
        elif op.kind in ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            total += op.macs
    return total


def _ms(p: dict, cpi: float, ratio: float | None) -> float:
    return (p["n"] + ((ratio or 1.0) - 1) * p["fc"]) * cpi / (float(p["row"]["clock_mhz"]) * 1e3)


def _fit(pts: list[dict]) -> tuple[float, float | None]:
    return fit_cycles_per_instruction([(p["cycles"], p["n"], p["fc"]) for p in pts])


def cpi_report(path: Path = CSV) -> dict[str, tuple[float, float | None]]:
    """Print each point's cycles per instruction, each board's fit and leave-one-out errors, the one-point
    calibration matrix and the flash-term check; return each board's (cycles_per_instruction, FC ratio)."""
    by_board, skipped = instruction_points(path)
    print(f"{'mcu':10s} {'model':32s} {'instructions':>13s} {'counted':>7s} {'FC share':>8s} {'meas ms':>8s} "
          f"{'cyc/instr':>9s} {'LOO ms':>8s} {'LOO err':>8s}")
    fitted, all_errs, conv_errs, e_errs = {}, [], [], []
    for board, pts in by_board.items():
        power = load_mcu(board, ROOT / "conf" / "mcu").active_power_mw
        fitted[board] = _fit(pts)
        errs = []
        for i, p in enumerate(pts):
            loo_ms = _ms(p, *_fit(pts[:i] + pts[i + 1:]))  # no FC-heavy point left: FC ops at the others' rate
            meas = float(p["row"]["latency_ms"])
            errs.append(loo_ms / meas - 1)
            if 2 * p["fc"] <= p["n"]:
                conv_errs.append(errs[-1])
            if p["row"]["energy_uj"]:
                e_errs.append(loo_ms * power / float(p["row"]["energy_uj"]) - 1)  # ms × mW = µJ
            print(f"{board:10s} {p['model']:32s} {p['n']:13,.0f} {p['counts']:>7s} {p['fc'] / p['n']:8.1%} {meas:8.2f} "
                  f"{p['cycles'] / p['n']:9.3f} {loo_ms:8.2f} {errs[-1]:+8.1%}")
        all_errs += errs
        cpi, ratio = fitted[board]
        print(f"{board:10s} cycles_per_instruction {cpi:.3f}, fully_connected_cpi_ratio "
              f"{'null' if ratio is None else f'{ratio:.3f}'} ({pts[0]['row']['source']}); leave-one-out mean |err| "
              f"{np.mean(np.abs(errs)):.1%}, max {np.max(np.abs(errs)):.1%}\n")
    print(f"instruction model: leave-one-out latency mean |err| {np.mean(np.abs(all_errs)):.1%}, median "
          f"{np.median(np.abs(all_errs)):.1%}, max {np.max(np.abs(all_errs)):.1%} over {len(all_errs)} points; "
          f"conv models (FC share < 50%): mean {np.mean(np.abs(conv_errs)):.1%}, max {np.max(np.abs(conv_errs)):.1%} "
          f"over {len(conv_errs)}" + (f"; no instruction model for {', '.join(skipped)}" if skipped else ""))
    if e_errs:
        print(f"energy (leave-one-out latency x datasheet active power vs measured energy_uj, {len(e_errs)} points): "
              f"mean |err| {np.mean(np.abs(e_errs)):.1%}, max {np.max(np.abs(e_errs)):.1%}")
    print()
    one_point_report(by_board)
    own_boards = {b for b, pts in by_board.items() if any(p["counts"] == "own" for p in pts)}
    if own_boards:
        print("the same, with the pinned runtime's instructions on the boards whose own runtime was counted:")
        one_point_report({b: [{**p, "n": p["pinned_n"], "fc": p["pinned_fc"], "counts": "pinned"} for p in pts]
                          for b, pts in by_board.items() if b in own_boards})
    flash_term_report(by_board)
    return fitted


def one_point_report(by_board: dict[str, list[dict]]) -> None:
    """Calibrate each board on one model alone (what `tinynas calibrate` does with one measurement: one constant,
    FC ops at the same rate) and predict the board's other models."""
    print("one-point calibration: cycles_per_instruction from the row's model alone, error on each other model")
    every, conv = [], []
    for board, pts in by_board.items():
        names = [p["model"][:14] for p in pts]
        print(f"{board:10s} {'calibrated on':32s} " + " ".join(f"{n:>14s}" for n in names) + f" {'mean':>6s}")
        board_errs = []
        for i, p in enumerate(pts):
            cpi, _ = _fit([p])
            errs = [_ms(q, cpi, None) / float(q["row"]["latency_ms"]) - 1 if j != i else None
                    for j, q in enumerate(pts)]
            got = [e for e in errs if e is not None]
            board_errs += got
            conv += [e for e, q in zip(errs, pts) if e is not None and 2 * q["fc"] <= q["n"] and 2 * p["fc"] <= p["n"]]
            print(f"{'':10s} {p['model']:32s} " + " ".join(f"{'-' if e is None else f'{e:+.1%}':>14s}" for e in errs)
                  + f" {np.mean(np.abs(got)):6.1%}")
        every += board_errs
        print(f"{board:10s} one-point mean |err| {np.mean(np.abs(board_errs)):.1%}, "
              f"max {np.max(np.abs(board_errs)):.1%}")
    print(f"one-point calibration: mean |err| {np.mean(np.abs(every)):.1%}, max {np.max(np.abs(every)):.1%} over "
          f"{len(every)} predictions; conv model to conv model: mean {np.mean(np.abs(conv)):.1%}, max "
          f"{np.max(np.abs(conv)):.1%} over {len(conv)}\n")


def flash_term_report(by_board: dict[str, list[dict]]) -> None:
    """The candidate flash term: cycles = a x instructions + s x weight bytes read, fitted per board (relative
    least squares). A negative s (reading flash would save cycles) means the data refute it on that board."""
    print("flash term check: cycles = a x instructions + s x weight bytes read (fitted per board)")
    errs = []
    for board, pts in by_board.items():
        def solve(sub):
            a = np.array([[q["n"] / q["cycles"], q["weight_reads"] / q["cycles"]] for q in sub])
            return np.linalg.lstsq(a, np.ones(len(sub)), rcond=None)[0]
        a, s = solve(pts)
        loo = []
        for i, p in enumerate(pts):
            ai, si = solve(pts[:i] + pts[i + 1:])
            loo.append((ai * p["n"] + si * p["weight_reads"]) / p["cycles"] - 1)
        errs += loo
        print(f"{board:10s} a {a:.3f} cycles/instruction, s {s:+.3f} cycles/byte "
              f"({'refuted: negative' if s < 0 else 'positive'}); weight bytes per instruction "
              + ", ".join(f"{p['model'][:10]} {p['weight_reads'] / p['n']:.2f}" for p in pts)
              + f"; leave-one-out mean |err| {np.mean(np.abs(loo)):.1%}, max {np.max(np.abs(loo)):.1%}")
    print(f"flash term: leave-one-out mean |err| {np.mean(np.abs(errs)):.1%}, max {np.max(np.abs(errs)):.1%}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"write {COEFFICIENTS.relative_to(ROOT)}")
    args = ap.parse_args()

    cpi_report()

    points = load_points()
    full = fit(points)
    loo = [predict(fit(points[:i] + points[i + 1:]), p) for i, p in enumerate(points)]

    print(f"{'mcu':10s} {'runtime':10s} {'model':32s} {'meas ms':>8s} {'fit ms':>8s} {'LOO ms':>8s} {'LOO err':>8s}"
          f" {'E meas uJ':>9s} {'E(meas lat)':>11s} {'E(LOO lat)':>10s}")
    errs, e_errs, e_loo_errs = [], [], []
    for p, lo in zip(points, loo):
        r = p["row"]
        meas = float(r["latency_ms"])
        err = lo / meas - 1
        errs.append(abs(err))
        power = load_mcu(r["mcu"], ROOT / "conf" / "mcu").active_power_mw
        e_txt = ""
        if r["energy_uj"]:
            e_meas = float(r["energy_uj"])
            e_lat, e_lo = meas * power, lo * power  # ms × mW = µJ
            e_errs.append(abs(e_lat / e_meas - 1))
            e_loo_errs.append(abs(e_lo / e_meas - 1))
            e_txt = f" {e_meas:9.0f} {e_lat / e_meas - 1:+11.1%} {e_lo / e_meas - 1:+10.1%}"
        print(f"{r['mcu']:10s} {r['runtime']:10s} {model_key(r['model']):32s} {meas:8.2f} {predict(full, p):8.2f}"
              f" {lo:8.2f} {err:+8.1%}{e_txt}")
    fit_err = np.mean([abs(predict(full, p) / float(p["row"]["latency_ms"]) - 1) for p in points])
    print(f"\nlatency: fit mean |err| = {fit_err:.1%}; leave-one-out mean |err| = {np.mean(errs):.1%}, "
          f"median {np.median(errs):.1%}, max {np.max(errs):.1%} over {len(points)} points")
    print(f"energy (latency x datasheet active power vs measured energy_uj, {len(e_errs)} points): "
          f"mean |err| {np.mean(e_errs):.1%} with measured latency, {np.mean(e_loo_errs):.1%} with LOO latency")

    doc = {
        "generated_by": "benchmarks/latency_calibration.py --write",
        "generated_on": datetime.date.today().isoformat(),
        "form": "cycles(op) = scale[family, runtime] * (ratio[kind, isa] * MACs + element_cycles * output_elements); "
                "ratio = 1 for CONV_2D / DEPTHWISE_CONV_2D, fc_ratio[isa] for FULLY_CONNECTED",
        "calibration_data": "estimators/data/latency_calibration.csv",
        "scale": [{"family": f, "runtime": rt, "scale": float(s)} for (f, rt), s in sorted(full.scale.items())],
        "fc_ratio": {k: float(v) for k, v in full.fc_ratio.items()},
        "fc_ratio_note": "fitted for the ISA classes with FC points (dsp, mve); 'generic' copies dsp",
        "element_cycles": float(full.element_cycles),
        "leave_one_out_mean_abs_error": float(np.mean(errs)),
        "fit_mean_abs_error": float(fit_err),
    }
    if args.write:
        with open(COEFFICIENTS, "w") as f:
            f.write("# Generated by benchmarks/latency_calibration.py --write; do not edit by hand.\n")
            yaml.safe_dump(doc, f, sort_keys=False, width=120)
        print(f"wrote {COEFFICIENTS}")


if __name__ == "__main__":
    main()
