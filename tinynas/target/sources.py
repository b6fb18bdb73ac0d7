"""Where the target's inputs come from: the TFLM tree, its downloads, the host tools and the cache folder.

Every check fails with :class:`TargetUnavailable`: one line naming what to install, clone or set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from tinynas.errors import ConfigError, TinyNASError

ENV_ROOT = "TINYNAS_TFLM_ROOT"
ENV_DOWNLOADS = "TINYNAS_TFLM_DOWNLOADS"
ENV_CACHE = "TINYNAS_CACHE"
MAKEFILE = "tensorflow/lite/micro/tools/make/Makefile"
DOWNLOADS_IN_TREE = "tensorflow/lite/micro/tools/make/downloads"
# What TFLM's Makefile for cortex_m_qemu + cmsis_nn reads from its downloads folder.
NEEDED_DOWNLOADS = ("cmsis", "cmsis_nn", "flatbuffers", "gemmlowp", "kissfft", "ruy")
APT = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "libstdc++-arm-none-eabi-newlib", "qemu-system-arm",
       "libglib2.0-dev")
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar", "arm-none-eabi-nm", "arm-none-eabi-readelf",
         "qemu-system-arm", "gcc", "make", "pkg-config")


class TargetUnavailable(ConfigError):
    """No TFLM tree, downloads or tools to build and emulate firmware; the message says what to do."""


class BuildFailed(TinyNASError, RuntimeError):
    """A compiler, the linker or TFLM's Makefile failed: one line with the first error, the whole log in a file."""

    def __init__(self, what: str, output: str, log_dir: Path):
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', what)}.log"
        log.write_text(output)
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "no output")
        super().__init__(f"{what} failed: {first[:300]} (the whole log: {log})")
        self.log = log


@dataclasses.dataclass(frozen=True)
class Sources:
    root: Path       # a tflite-micro checkout (read only)
    downloads: Path  # the libraries its Makefile downloads (cmsis, cmsis_nn, flatbuffers, ...)
    cache: Path      # writable: build trees, objects, plugin, firmware


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "tinynas")


def configured_root(root=None) -> str | None:
    """``tflm.root`` as given, else ``$TINYNAS_TFLM_ROOT``, else None (no tree configured)."""
    return str(root) if root else (os.environ.get(ENV_ROOT) or None)


def resolve(root=None, downloads=None) -> Sources:
    """The checked TFLM tree and downloads (``tflm.root`` / ``tflm.downloads`` or their environment variables)."""
    given = configured_root(root)
    if not given:
        raise TargetUnavailable(
            f"no TFLite Micro tree: clone https://github.com/tensorflow/tflite-micro and pass tflm.root=DIR "
            f"(or set {ENV_ROOT})")
    tree = Path(given).expanduser().resolve()
    if not (tree / MAKEFILE).is_file():
        raise TargetUnavailable(f"tflm.root={given}: not a tflite-micro checkout (no {MAKEFILE}); clone "
                                "https://github.com/tensorflow/tflite-micro there")
    dl = downloads or os.environ.get(ENV_DOWNLOADS) or tree / DOWNLOADS_IN_TREE
    dl = Path(dl).expanduser().resolve()
    missing = [name for name in NEEDED_DOWNLOADS if not (dl / name).is_dir()]
    if missing:
        raise TargetUnavailable(
            f"tflm.downloads={dl}: missing {', '.join(missing)}; run TFLM's Makefile once with network "
            f"(make -f {MAKEFILE} third_party_downloads) or pass tflm.downloads=DIR (or set {ENV_DOWNLOADS})")
    require_tools()
    return Sources(tree, dl, cache_dir())


def require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing and subprocess.run(["pkg-config", "--exists", "glib-2.0"]).returncode != 0:
        missing = ["glib-2.0 headers"]
    if missing:
        raise TargetUnavailable(f"missing {', '.join(missing)}: install them with `apt-get install {' '.join(APT)} "
                                "make pkg-config gcc`")


def digest(*paths: Path, extra: str = "") -> str:
    """sha256 over the relative names and contents of every file under ``paths`` (gen/ and downloads/ skipped)."""
    h = hashlib.sha256(extra.encode())
    for base in paths:
        files = [base] if base.is_file() else sorted(
            p for p in base.rglob("*") if p.is_file() and not _skipped(p.relative_to(base)))
        for p in files:
            h.update(str(p.relative_to(base) if p != base else p.name).encode() + b"\0")
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _skipped(rel: Path) -> bool:
    return rel.parts[:1] == ("gen",) or str(rel).startswith(DOWNLOADS_IN_TREE + "/")


def tool_version(tool: str) -> str:
    out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else tool
