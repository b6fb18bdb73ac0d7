"""Ground truth from TensorFlow Lite Micro's own Python interpreter (reference kernels).

``measure_arena`` reports the arena the interpreter really allocates (total = head + tail);
``run_tflm`` runs int8 inputs through it. Both work in a child process: the interpreter writes its
allocation report to the C-level stderr, and a too-small arena or a bad model can abort the process.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinynas import children

# The first arena tried: generous for the models this project builds; doubled on failure up to the cap.
DEFAULT_ARENA_BYTES = 8 << 20
MAX_ARENA_BYTES = 1 << 30
FLATBUFFER_ID = b"TFL3"

_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_PART = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead \(requested (\d+) bytes for (\d+) ")
_NO_KERNEL = "Failed to get registration"  # an op TFLM has no kernel for: a bigger arena will not help
_ALLOC_FAILED = "TFLM failed to allocate tensors"


@dataclasses.dataclass(frozen=True)
class ArenaReport:
    """Arena bytes TFLM allocated: ``head`` (planned activations + scratch) + ``tail`` (persistent).

    ``parts`` is the recording allocator's breakdown of the tail: name → (bytes used, allocations).
    """

    total_bytes: int
    head_bytes: int
    tail_bytes: int
    parts: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict, compare=False, hash=False)


def _check_model(tflite_path) -> Path:
    path = Path(tflite_path)
    if not path.is_file():
        raise ValueError(f"TFLite model {str(path)!r} does not exist or is not a file")
    head = path.read_bytes()[:8]
    if len(head) < 8 or head[4:8] != FLATBUFFER_ID:
        raise ValueError(f"TFLite model {str(path)!r} is not a TFLite flatbuffer (no {FLATBUFFER_ID!r} identifier)")
    return path


def _child(args: list[str]) -> subprocess.CompletedProcess:
    return children.run([sys.executable, "-m", "tinynas.tflm", *args], capture_output=True, text=True)


def _with_arena(path: Path, arena_size: int | None, args: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run the child with ``arena_size`` (or grow from the default until allocation succeeds)."""
    size = arena_size or DEFAULT_ARENA_BYTES
    while True:
        proc = _child([str(path), str(size), *args])
        if proc.returncode == 0 or arena_size is not None or _ALLOC_FAILED not in proc.stderr \
                or _NO_KERNEL in proc.stderr or size >= MAX_ARENA_BYTES:
            return proc, size
        size *= 2


def _fail(path: Path, what: str, proc: subprocess.CompletedProcess, size: int):
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    raise ValueError(f"TFLM could not {what} {str(path)!r} (arena {size} bytes, exit code {proc.returncode}):\n{tail}")


def measure_arena(tflite_path, arena_size: int | None = None) -> ArenaReport:
    """Arena total/head/tail bytes of the model at ``tflite_path`` in TFLM's interpreter.

    The arena is sized from ``arena_size`` or, when None, from a generous default that grows on failure;
    the report does not depend on it.
    """
    path = _check_model(tflite_path)
    proc, size = _with_arena(path, arena_size, ["measure"])
    found = {k: int(v) for k, v in _LINE.findall(proc.stderr)}
    if proc.returncode != 0 or set(found) != {"total", "head", "tail"}:
        _fail(path, "allocate", proc, size)
    parts = {name: (int(used), int(count)) for name, used, _, count in _PART.findall(proc.stderr)}
    return ArenaReport(found["total"], found["head"], found["tail"], parts)


def run_tflm(tflite_path, x: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Outputs of the model at ``tflite_path`` for the batch ``x`` (N, *input_shape), one sample at a time."""
    path = _check_model(tflite_path)
    x = np.asarray(x)
    with tempfile.TemporaryDirectory(prefix="tflm-") as tmp:
        x_path, y_path = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(x_path, x)
        proc, size = _with_arena(path, arena_size, ["run", str(x_path), str(y_path)])
        if proc.returncode != 0:
            _fail(path, "run", proc, size)
        return np.load(y_path)


# -- child process ------------------------------------------------------------------------------------
def _child_main(argv: list[str]) -> int:
    from tflite_micro.python.tflite_micro import runtime

    model_path, arena, command = argv[0], int(argv[1]), argv[2]
    try:
        interp = runtime.Interpreter.from_file(model_path, arena_size=arena)
    except RuntimeError as e:
        print(f"{e}", file=sys.stderr)
        return 3
    if command == "measure":
        sys.stderr.flush()
        interp.print_allocations()
        return 0
    x = np.load(argv[3])
    spec = interp.get_input_details(0)
    if x.dtype != spec["dtype"] or tuple(x.shape[1:]) != tuple(int(d) for d in spec["shape"][1:]):
        print(f"input batch has dtype {x.dtype} and shape {x.shape}; the model wants {np.dtype(spec['dtype'])} "
              f"and (N, {', '.join(str(int(d)) for d in spec['shape'][1:])})", file=sys.stderr)
        return 2
    outs = []
    for sample in x:
        interp.set_input(sample[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0))[0])
    np.save(argv[4], np.stack(outs) if outs else np.zeros((0,), dtype=spec["dtype"]))
    print(json.dumps({"samples": len(outs)}))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
