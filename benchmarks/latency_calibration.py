"""Fit the latency model on latency_calibration.csv, print leave-one-out errors, write the coefficients YAML.

    python benchmarks/latency_calibration.py            # fit + leave-one-out report
    python benchmarks/latency_calibration.py --write    # ... and write estimators/data/latency_coefficients.yaml

The first table is the instruction model's (runtime=tflm on DSP-class cores): each published point's cycles per
instruction (latency × clock ÷ the model's TFLM + CMSIS-NN instructions), one constant per board (geometric
mean of its points, the value in conf/mcu/<board>.yaml) and each point's leave-one-out error (the constant of
the board's other points). The second is the MAC-based model that still prices the other runtimes and cores.

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

from estimators.latency import COEFFICIENTS, DATA_DIR, LatencyModel, core_families, core_family, graph_terms
from estimators.mcu import load_mcu
from estimators.reference_models import model_key, reference_model

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


def cpi_report(path: Path = CSV) -> dict[str, float]:
    """Print the per-point cycles per instruction and leave-one-out errors; return each board's constant."""
    from estimators.instructions import estimate_instructions

    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["runtime"] == "tflm"]
    by_board: dict[str, list[tuple[dict, float, float]]] = {}
    skipped = set()
    for r in rows:
        isa = load_mcu(r["mcu"], ROOT / "conf" / "mcu").instruction_class
        if isa is None:
            skipped.add(f"{r['mcu']} ({r['core']})")
            continue
        n = estimate_instructions(reference_model(r["model"]), isa)
        cycles = float(r["latency_ms"]) * 1e-3 * float(r["clock_mhz"]) * 1e6
        by_board.setdefault(r["mcu"], []).append((r, n, cycles))
    print(f"{'mcu':10s} {'model':32s} {'instructions':>13s} {'meas ms':>8s} {'cyc/instr':>9s} {'LOO ms':>8s} "
          f"{'LOO err':>8s}")
    constants, all_errs, e_errs = {}, [], []
    for board, pts in by_board.items():
        power = load_mcu(board, ROOT / "conf" / "mcu").active_power_mw
        logs = [math.log(c / n) for _, n, c in pts]
        constants[board] = math.exp(sum(logs) / len(logs))
        errs = []
        for i, (r, n, c) in enumerate(pts):
            rest = logs[:i] + logs[i + 1:]
            loo_ms = math.exp(sum(rest) / len(rest)) * n / (float(r["clock_mhz"]) * 1e3)
            errs.append(loo_ms / float(r["latency_ms"]) - 1)
            if r["energy_uj"]:
                e_errs.append(loo_ms * power / float(r["energy_uj"]) - 1)  # ms × mW = µJ
            print(f"{board:10s} {model_key(r['model']):32s} {n:13,.0f} {float(r['latency_ms']):8.2f} "
                  f"{c / n:9.3f} {loo_ms:8.2f} {errs[-1]:+8.1%}")
        all_errs += errs
        print(f"{board:10s} cycles_per_instruction {constants[board]:.3f} ({pts[0][0]['source']}); leave-one-out "
              f"mean |err| {np.mean(np.abs(errs)):.1%}, max {np.max(np.abs(errs)):.1%}\n")
    print(f"instruction model: leave-one-out latency mean |err| {np.mean(np.abs(all_errs)):.1%}, median "
          f"{np.median(np.abs(all_errs)):.1%}, max {np.max(np.abs(all_errs)):.1%} over {len(all_errs)} points"
          + (f"; no instruction model for {', '.join(sorted(skipped))}" if skipped else ""))
    if e_errs:
        print(f"energy (leave-one-out latency x datasheet active power vs measured energy_uj, {len(e_errs)} points): "
              f"mean |err| {np.mean(np.abs(e_errs)):.1%}, max {np.max(np.abs(e_errs)):.1%}")
    print()
    return constants


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
