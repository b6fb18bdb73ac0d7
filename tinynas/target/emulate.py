"""Run a firmware ELF in ``qemu-system-arm`` with the instruction-counting plugin and parse what it prints."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tinynas.errors import TinyNASError
from tinynas.target.sources import digest, tool_version

DATA = Path(__file__).with_name("data")
MARKERS = ("tinynas_invoke_begin", "tinynas_invoke_end", "tinynas_op_begin", "tinynas_op_end")
TIMEOUT_S = 1800
_ARENA = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


@dataclasses.dataclass(frozen=True)
class Emulation:
    arena_used_bytes: int
    arena: dict[str, int]          # total, head, tail
    instructions: int              # one Invoke
    per_op: list[int]              # one entry per operator, in execution order
    outputs: list[bytes]
    total_instructions: int        # the whole run, start-up included
    wall_s: float


class EmulationError(TinyNASError, RuntimeError):
    """The emulated firmware did not run to its end (timeout, crash, missing markers)."""


def plugin(cache: Path, source: Path = DATA / "insn_count.c") -> Path:
    """A TCG plugin (by default the instruction counter) built with the system's gcc against glib, cached by its
    source and QEMU's version."""
    key = digest(source, DATA / "qemu_plugin_v1.h", extra=tool_version("qemu-system-arm"))
    so = cache / "plugin" / key / f"{source.stem}.so"
    if not so.is_file():
        so.parent.mkdir(parents=True, exist_ok=True)
        cflags = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True, text=True,
                                check=True).stdout.split()
        tmp = so.with_suffix(".tmp")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", f"-I{DATA}", *cflags, "-o", str(tmp), str(source)],
                       check=True, capture_output=True, text=True)
        tmp.rename(so)
    return so


def qemu_command(elf: Path, board: str, plugin_so: Path, plugin_args: str) -> list[str]:
    """``qemu-system-arm`` running ``elf`` on machine ``board`` with semihosting and the plugin (``a=b,c=d``)."""
    return ["qemu-system-arm", "-M", board, "-display", "none", "-monitor", "none", "-serial", "none",
            "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
            "-plugin", f"{plugin_so},{plugin_args}"]


def marker_addresses(elf: Path) -> list[int]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    syms = {parts[2]: int(parts[0], 16) for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}
    missing = [m for m in MARKERS if m not in syms]
    if missing:
        raise EmulationError(f"{elf}: marker symbols {missing} missing")
    return [syms[m] & ~1 for m in MARKERS]  # Thumb bit off: the instruction's address


def run(elf: Path, board: str, cache: Path, timeout_s: int = TIMEOUT_S) -> Emulation:
    import time

    marks = marker_addresses(elf)
    with tempfile.TemporaryDirectory(prefix="tinynas-qemu-") as tmp:
        log = Path(tmp) / "insns.txt"
        cmd = qemu_command(elf, board, plugin(cache), f"out={log},marks={':'.join(f'{a:x}' for a in marks)}")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise EmulationError(f"{board}: no exit within {timeout_s} s running {elf}") from None
        wall = time.monotonic() - t0
        text = proc.stdout + proc.stderr
        if "tinynas:ok" not in text or not log.is_file():
            tail = "\n".join(text.strip().splitlines()[-12:])
            raise EmulationError(f"{board}: the firmware did not finish (exit {proc.returncode}):\n{tail}")
        counts = log.read_text().split("\n")
    arena = {k: int(v) for k, v in _ARENA.findall(text)}
    used = int(re.search(r"tinynas:arena_used (\d+)", text).group(1))
    outputs = [bytes.fromhex(h) for _, h in sorted(
        (int(i), h) for i, h in re.findall(r"tinynas:output (\d+) ([0-9a-f]*)", text))]
    entries = [tuple(int(x) for x in line.split()) for line in counts if line and not line.startswith("total")]
    total = int(next(line.split()[1] for line in counts if line.startswith("total")))
    instructions, per_op = _spans(entries)
    return Emulation(used, arena, instructions, per_op, outputs, total, wall)


def _spans(entries: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """Instructions of the Invoke span (markers 0..1) and of each op span (markers 2..3) inside it."""
    begin = next(i for i, (m, _) in enumerate(entries) if m == 0)
    end = next(i for i, (m, _) in enumerate(entries) if m == 1 and i > begin)
    per_op, start = [], None
    for m, count in entries[begin + 1:end]:
        if m == 2:
            start = count
        elif m == 3 and start is not None:
            per_op.append(count - start)
            start = None
    return entries[end][1] - entries[begin][1], per_op


def have_qemu() -> bool:
    return shutil.which("qemu-system-arm") is not None
