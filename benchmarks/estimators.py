"""Throughput of the analytical path (arch → IR → estimate) versus building the PyTorch module and counting MACs.

    python benchmarks/estimators.py [--archs 2000] [--torch-archs 30] [--mcu stm32f746] [--runtime tflm] [--profile]

Single process, one core. The builder computes each layer and block configuration's facts once and reuses
them across archs (estimators/builder.py), so a process starts slow and speeds up as it meets the space:

* cold start: ``--archs`` random archs estimated from empty caches (a new process's first archs);
* steady state: the next ``--archs`` random archs, as a running search (or ``tinynas rank_space``) sees them.

Both are printed; the last line, ``archs_per_s=<float> speedup_vs_torch=<float>``, is the steady state.
``TINYNAS_PURE_PYTHON=1`` measures the pure-Python arena placer instead of the compiled one.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

# This file is named like the package it measures: keep its own folder off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from estimators import estimate, load_mcu
from estimators.builder import clear_caches
from estimators.planner import PLACER
from estimators.flash import estimate_flash
from estimators.latency import estimate_latency
from estimators.sram import estimate_sram
from search_spaces import get_space

ROOT = Path(__file__).resolve().parents[1]


def analytic(space, archs, mcu, runtime) -> float:
    t0 = time.perf_counter()
    for arch in archs:
        estimate(space.to_ir(arch, 3, 10), mcu, runtime)
    return time.perf_counter() - t0


def stage_split(space, archs, mcu, runtime) -> str:
    """ms per arch of each stage of the analytical path, timed separately."""
    def timed(fn, items):
        t0 = time.perf_counter()
        out = [fn(x) for x in items]
        return (time.perf_counter() - t0) / len(items) * 1e3, out

    t_ir, graphs = timed(lambda a: space.to_ir(a, 3, 10), archs)
    t_sram, _ = timed(lambda g: estimate_sram(g, runtime, mcu), graphs)
    t_flash, _ = timed(lambda g: estimate_flash(g, runtime, mcu), graphs)
    t_lat, _ = timed(lambda g: estimate_latency(g, mcu, runtime), graphs)
    t_all, _ = timed(lambda g: estimate(g, mcu, runtime), graphs)
    return (f"ms/arch: to_ir {t_ir:.3f} | estimate {t_all:.3f} = sram {t_sram:.3f} + flash {t_flash:.3f} "
            f"+ latency {t_lat:.3f} + MACs/params/layers {t_all - t_sram - t_flash - t_lat:.3f}")


def torch_macs(space, archs) -> float:
    import torch

    torch.set_num_threads(1)

    def count(model, res):
        macs = 0

        def hook(mod, inp, out):
            nonlocal macs
            if isinstance(mod, torch.nn.Conv2d):
                macs += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            elif isinstance(mod, torch.nn.Linear):
                macs += out.numel() * mod.in_features

        hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        with torch.no_grad():
            model(torch.zeros(1, 3, res, res))
        for h in hooks:
            h.remove()
        return macs

    t0 = time.perf_counter()
    for arch in archs:
        count(space.build_torch(arch, 3, 10).eval(), arch.resolution)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=2000)
    ap.add_argument("--torch-archs", type=int, default=30)
    ap.add_argument("--mcu", default="stm32f746")
    ap.add_argument("--runtime", default="tflm")
    ap.add_argument("--profile", action="store_true", help="print the top functions of the analytical path")
    args = ap.parse_args()

    space = get_space("mcunet", {})
    mcu = load_mcu(args.mcu, ROOT / "conf" / "mcu")
    rng = random.Random(0)
    archs = [space.random(rng) for _ in range(args.archs)]
    later = [space.random(rng) for _ in range(args.archs)]
    analytic(space, [space.smallest()], mcu, args.runtime)  # YAML loads, imports
    clear_caches()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        analytic(space, archs[:500], mcu, args.runtime)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        print(stage_split(space, archs[:500], mcu, args.runtime))
        clear_caches()  # the cold-start pass below starts from empty caches again
    t_cold = analytic(space, archs, mcu, args.runtime)
    t_steady = analytic(space, later, mcu, args.runtime)
    t_torch = torch_macs(space, archs[:args.torch_archs])
    per_cold, per_steady, per_torch = t_cold / len(archs), t_steady / len(later), t_torch / args.torch_archs
    print(f"analytic ({PLACER} arena placer), cold start: the first {len(archs)} archs from empty caches in "
          f"{t_cold:.2f} s ({1 / per_cold:.1f} archs/s, {per_cold * 1e3:.3f} ms/arch, "
          f"{per_torch / per_cold:.1f}x torch)")
    print(f"analytic, steady state: the next {len(later)} archs in {t_steady:.2f} s ({1 / per_steady:.1f} archs/s, "
          f"{per_steady * 1e3:.3f} ms/arch)")
    print(f"torch build + MAC hooks: {args.torch_archs} archs in {t_torch:.2f} s ({per_torch * 1e3:.1f} ms/arch)")
    print(f"archs_per_s={1 / per_steady:.1f} speedup_vs_torch={per_torch / per_steady:.1f}")


if __name__ == "__main__":
    main()
