"""Build TFLM + CMSIS-NN objects for one core with TFLM's own Makefile, only those a model needs.

The read-only tree is copied once per tree digest into the cache (the Makefile writes ``gen/`` into its
tree); its ``downloads/`` links to ``tflm.downloads`` and ``gcc_embedded/bin`` to the system's Arm GCC.
``make -f Makefile -f tinynas.mk`` then prints the Makefile's flags and object lists and builds the objects
asked for, with the Makefile's own rules: the core runtime, the kernel files that register the model's ops
and the CMSIS-NN and kernel files the link asks for. Objects stay in the copy's ``gen/``: later builds reuse them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tinynas.target.sources import DOWNLOADS_IN_TREE, MAKEFILE, BuildFailed, Sources, TargetUnavailable, digest

DATA = Path(__file__).with_name("data")
BUILD_TYPE = "release_with_logs"  # TFLM's default figures: keeps PrintAllocations and the profiler hooks
# Library objects only the TFLM tests use.
TEST_ONLY = ("fake_micro_context", "mock_micro_graph", "test_helper_custom_ops", "test_helpers")
# Kernel files some ops need besides the one that registers them and its *_common sibling.
EXTRA_KERNELS = {
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("lstm_eval", "lstm_eval_common", "micro_tensor_utils"),
    "SVDF": ("micro_tensor_utils",),
}
ALWAYS_KERNELS = ("kernel_util",)
_UNDEFINED = re.compile(r"undefined reference to `([^']+)'")


@dataclasses.dataclass(frozen=True)
class Core:
    """A Cortex-M core as TFLM's Makefile names it and the QEMU board that runs its code."""

    name: str         # the MCU catalogue's core, e.g. cortex-m4f
    target_arch: str  # TFLM TARGET_ARCH (gcc -mcpu)
    board: str        # qemu-system-arm -M
    memory: str       # the board's memory map: data/<memory>.ld

    @property
    def linker_script(self) -> str:
        return f"{self.memory}.ld"


# Each catalogue core: the build (TARGET_ARCH) and the emulated board that runs it. ARMv6-M code (M0+) runs
# on the M3 board; the Cortex-M85 (Armv8.1-M + MVE, like the M55; GCC 12 has no -mcpu=cortex-m85) runs
# Cortex-M55 code on the M55 board.
CORES = {c.name: c for c in (
    Core("cortex-m0plus", "cortex-m0plus", "mps2-an385", "mps2"),
    Core("cortex-m3", "cortex-m3", "mps2-an385", "mps2"),
    Core("cortex-m4f", "cortex-m4", "mps2-an386", "mps2"),
    Core("cortex-m4", "cortex-m4", "mps2-an386", "mps2"),
    Core("cortex-m7", "cortex-m7", "mps2-an500", "mps2-an500"),
    Core("cortex-m33", "cortex-m33", "mps2-an505", "mps2-an505"),
    Core("cortex-m55", "cortex-m55", "mps3-an547", "mps3-an547"),
    Core("cortex-m85", "cortex-m55", "mps3-an547", "mps3-an547"),
)}


def core_for(name: str) -> Core:
    key = str(name).split()[0]
    if key not in CORES:
        raise TargetUnavailable(f"core {name!r}: no firmware build for it yet; supported cores: {', '.join(CORES)}")
    return CORES[key]


@dataclasses.dataclass(frozen=True)
class Flags:
    """What the Makefile prints for one configuration (paths relative to the tree copy)."""

    cxxflags: list[str]
    ccflags: list[str]
    includes: list[str]
    ldflags: list[str]
    core_objs: list[str]
    kernel_objs: list[str]
    cmsis_objs: list[str]


class Tree:
    """A writable copy of the TFLM tree in the cache, and the Makefile run in it for one core."""

    def __init__(self, src: Sources, core: Core, log=None):
        self.sources, self.core = src, core
        self.log = log or (lambda msg: print(f"tinynas firmware: {msg}", file=sys.stderr, flush=True))
        self.key = digest(src.root, extra="tree") + "-" + digest(*(src.downloads / d for d in (
            "cmsis_nn", "flatbuffers")), extra="downloads")
        self.base = src.cache / "tflm" / self.key
        self.dir = self.base / "src"
        self._flags: Flags | None = None

    # -- the copy ---------------------------------------------------------------------------------------
    def prepare(self) -> None:
        if (self.base / "READY").is_file():
            return
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / "src.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        root, make_dir = self.sources.root, self.sources.root / Path(DOWNLOADS_IN_TREE).parent
        shutil.copytree(root, tmp, symlinks=True, ignore=lambda d, names: [
            n for n in names if (n == "gen" and Path(d) == root) or (n == "downloads" and Path(d) == make_dir)])
        dl = tmp / DOWNLOADS_IN_TREE
        shutil.rmtree(dl, ignore_errors=True)
        (dl / "gcc_embedded" / "bin").mkdir(parents=True)
        (dl / "pigweed").mkdir()  # the Makefile git-clones it otherwise; nothing built here needs it
        for entry in self.sources.downloads.iterdir():
            if entry.name not in ("gcc_embedded", "pigweed"):
                (dl / entry.name).symlink_to(entry)
        for tool in Path(shutil.which("arm-none-eabi-gcc")).parent.glob("arm-none-eabi-*"):
            (dl / "gcc_embedded" / "bin" / tool.name).symlink_to(tool)
        shutil.rmtree(self.dir, ignore_errors=True)
        tmp.rename(self.dir)
        (self.base / "READY").write_text(str(self.sources.root) + "\n")

    @contextlib.contextmanager
    def locked(self):
        """Held while building for this core: the copy is made once, then one process at a time builds a core's
        objects (each core has its own ``gen/`` folder, so other cores build beside it)."""
        self.base.mkdir(parents=True, exist_ok=True)
        if not (self.base / "READY").is_file():
            with _flock(self.base / "lock"):
                self.prepare()
        with _flock(self.base / f"lock-{self.core.target_arch}"):
            yield

    # -- the Makefile -----------------------------------------------------------------------------------
    def make_args(self) -> list[str]:
        return ["make", "-f", MAKEFILE, "-f", str(DATA / "tinynas.mk"), "TARGET=cortex_m_qemu",
                f"TARGET_ARCH={self.core.target_arch}", "OPTIMIZED_KERNEL_DIR=cmsis_nn", f"BUILD_TYPE={BUILD_TYPE}"]

    def _env(self) -> dict:
        # The Makefile runs generate_cc_arrays.py with `python3` at start-up; it imports Pillow (in our venv).
        env = dict(os.environ)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def flags(self) -> Flags:
        if self._flags is None:
            proc = subprocess.run([*self.make_args(), "tinynas_print"], cwd=self.dir, env=self._env(),
                                  capture_output=True, text=True)
            vals = dict(line.split("=", 1) for line in proc.stdout.splitlines() if line.startswith("TINYNAS_"))
            if proc.returncode != 0 or len(vals) != 7:
                raise BuildFailed("TFLM's Makefile (tinynas_print)", proc.stdout + proc.stderr, self.dir / "logs")
            s = {k: v.split() for k, v in vals.items()}
            self._flags = Flags(s["TINYNAS_CXXFLAGS"], s["TINYNAS_CCFLAGS"], s["TINYNAS_INCLUDES"],
                                s["TINYNAS_LDFLAGS"], s["TINYNAS_CORE"], s["TINYNAS_KERNELS"],
                                s["TINYNAS_THIRD_PARTY_KERNELS"])
        return self._flags

    def build(self, objs: list[str], what: str) -> None:
        """Build ``objs`` (paths from :meth:`flags`) with the Makefile's rules; progress on stderr."""
        todo = [o for o in objs if not (self.dir / o).is_file()]
        if not todo:
            return
        jobs = max(1, min(2, os.cpu_count() or 1))
        self.log(f"compiling {len(todo)} {what} files for {self.core.target_arch} (make -j{jobs}; cached after)")
        t0 = time.monotonic()
        cmd = ["nice", *self.make_args(), f"-j{jobs}", "V=1", "tinynas_objs", "TINYNAS_OBJS=" + " ".join(todo)]
        proc = subprocess.Popen(cmd, cwd=self.dir, env=self._env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        done, output = 0, []
        for line in proc.stdout:
            output.append(line)
            m = re.search(r" -c (\S+) -o ", line)
            if m:
                done += 1
                self.log(f"[{done}/{len(todo)}] {m.group(1).split('/')[-1]}")
        if proc.wait() != 0:
            raise BuildFailed(f"building {what} files", "".join(output), self.dir / "logs")
        self.log(f"compiled {len(todo)} files in {time.monotonic() - t0:.0f} s")

    # -- which objects ----------------------------------------------------------------------------------
    def core_objs(self) -> list[str]:
        return [o for o in self.flags().core_objs if Path(o).stem not in TEST_ONLY]

    def kernel_objs(self, ops: list[str]) -> list[str]:
        """The kernel objects that register ``ops`` (TFLite builtin names), their *_common files and helpers."""
        objs = self.flags().kernel_objs
        by_stem = {Path(o).stem: o for o in objs}
        wanted = list(ALWAYS_KERNELS)
        for op in ops:
            src = self._registering_source(op, objs)
            wanted += [Path(src).stem, Path(src).stem + "_common", *EXTRA_KERNELS.get(op, ())]
        return sorted({by_stem[s] for s in wanted if s in by_stem})

    def _registering_source(self, op: str, objs: list[str]) -> str:
        pattern = re.compile(rf"\bRegister_{re.escape(op)}\s*\(\s*\)\s*\{{")
        for o in objs:
            src = self._source_of(o)
            if src is not None and src.suffix == ".cc" and pattern.search(src.read_text(errors="replace")):
                return str(src)
        raise TargetUnavailable(f"op {op}: no TFLM kernel registers it in {self.sources.root} (Register_{op})")

    def _source_of(self, obj: str) -> Path | None:
        rel = re.sub(r"^gen/[^/]+/obj/[^/]+/", "", obj)[:-2]
        for suffix in (".cc", ".c", ".S"):
            p = self.dir / (rel + suffix)
            if p.is_file():
                return p
        return None

    def kernel_objs_defining(self, symbols: set[str]) -> list[str]:
        """TFLM kernel objects whose sources define, at file scope, any of the (demangled) ``symbols``."""
        names = {re.sub(r"\(.*", "", s).split("::")[-1] for s in symbols if not s.startswith("arm_")}
        if not names:
            return []
        pattern = re.compile(rf"^(?!extern\b)[A-Za-z_][^;\n]*\b({'|'.join(map(re.escape, names))})\s*[=(\[]", re.M)
        found = []
        for o in self.flags().kernel_objs:
            src = self._source_of(o)
            if src is not None and src.suffix == ".cc" and pattern.search(src.read_text(errors="replace")):
                found.append(o)
        return found

    def cmsis_objs_defining(self, symbols: set[str]) -> list[str]:
        """CMSIS-NN objects whose sources define any of ``symbols`` (undefined at link): functions and tables."""
        found = []
        for o in self.flags().cmsis_objs:
            name = Path(o).stem
            if name in symbols:
                found.append(o)
                continue
            src = self._source_of(o)
            text = src.read_text(errors="replace") if src else ""
            # a function (arm_*) or a table (e.g. sigmoid_table_uint16, arm_nntables.c) defined at file scope
            if any(re.search(rf"^[A-Za-z_][\w \t\*]*\b{re.escape(s)}\s*(\(|\[[^\]]*\]\s*=)", text, re.M)
                   for s in symbols if "::" not in s and "(" not in s):
                found.append(o)
        return found


@contextlib.contextmanager
def _flock(path: Path):
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def undefined_symbols(link_stderr: str) -> set[str]:
    return set(_UNDEFINED.findall(link_stderr))
