"""`tinynas sample search_space=NAME n=K seed=S out=DIR`: random arch-spec JSON files."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from tinynas.commands.common import load_space
from tinynas.errors import ConfigError


def run(cfg) -> list[Path]:
    if int(cfg.n) < 1:
        raise ConfigError(f"n={cfg.n} must be a positive number of archs")
    space = load_space(cfg)
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"out={cfg.out}: cannot create the folder ({e.strerror})") from None
    rng = random.Random(cfg.seed)
    paths = []
    for _ in range(int(cfg.n)):
        arch = space.random(rng)
        path = out / f"{space.name}-{arch.hash}.json"
        path.write_text(json.dumps(arch.to_dict(), indent=1) + "\n")
        paths.append(path)
        print(path, file=sys.stdout)
    return paths
