"""What a linked firmware's flash image holds: the model, the runtime, and the test harness around them.

The linker map (``firmware.map`` beside the ELF) lists every input section placed in each output section with
its size and the object (or archive member) it came from; ``--gc-sections`` has already dropped what nothing
reaches. Each object of the link is one of:

``model``    ``model_data.o``: the ``.tflite`` as a C array (and its length and arena constants).
``harness``  what only the emulated test run needs, and a user's firmware replaces with its own or leaves out:
             the program (``main.o``: the export's main.cc with the emulator's hooks, ``tinynas_target.h``: the
             profiler markers, printing the report; a user's board has its own), its test input
             (``input_data.o``), the vector table (``startup.o``), the toolchain's start-up files (``crt*.o``),
             semihosting (``librdimon.a``: the host's console and exit), TFLM's ``Recording*`` allocator classes
             (PrintAllocations), and every C/C++ library member that only those reach (``printf`` and the rest
             of newlib's ``FILE`` output, ``exit``...).
``runtime``  TFLite Micro's other objects (interpreter, allocator, planner, kernels), the CMSIS-NN functions,
             and the C/C++ library members they reach (soft float, ``libm``, ``memcpy``, ``vsnprintf`` behind
             TFLM's ``DebugLog``, ``malloc`` behind newlib's formatting).

Reachability is object to object, through the global symbols each object leaves undefined (``nm``). An inline
function that every object defines (a COMDAT section: ``flatbuffers::Table::GetOptionalFieldOffset``) is
kept from the first object linked, often the program; its section counts for the runtime when a runtime object
defines the same symbol.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
import subprocess
from pathlib import Path

# Output sections of tinynas/target/data/cortex_m_sections.ld that the flash image holds (.vectors: the vector
# table, in the board's VECTORS region; .data: its initial values).
FLASH_OUTPUT = (".vectors", ".text", ".ARM.extab", ".ARM.exidx", ".rodata", ".preinit_array", ".init_array", ".fini_array",
                ".data")
MODEL_OBJECTS = ("model_data.o",)
HARNESS_OBJECTS = ("main.o", "input_data.o", "startup.o")
_HARNESS_MEMBER = re.compile(r"^(librdimon\.a\(.*|libtflm\.a\(recording_.*|crt\w*\.o|rdimon-crt0\.o)$")
_OUTPUT = re.compile(r"^(\.[\w.]+)(?:\s+0x[0-9a-f]+\s+0x([0-9a-f]+))?\s*$")
_INPUT = re.compile(r"^ (\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S.*?)\s*$")
_LINKED = re.compile(r"^LOAD (\S+)$")


@dataclasses.dataclass(frozen=True)
class InputSection:
    file: str      # the object: 'main.o', 'libtflm.a(conv.o)', 'libc.a(lib_a-memcpy.o)' (folders dropped)
    name: str      # e.g. '.text._ZN6tflite4EvalEP13TfLiteContextP10TfLiteNode', '.rodata.str1.1'
    size: int
    output: str    # the output section: '.text', '.rodata', ...


@dataclasses.dataclass(frozen=True)
class LinkMap:
    sections: list[InputSection]   # input sections of the flash image
    flash_bytes: int               # the output sections' sizes: the image
    paths: dict[str, Path]         # object → the file nm reads (an archive for a member)

    @property
    def other_bytes(self) -> int:
        """Alignment padding between input sections less the strings merged away (``.rodata.str*``)."""
        return self.flash_bytes - sum(s.size for s in self.sections)


def short_name(path: str) -> str:
    """'/usr/lib/.../libc.a(lib_a-memcpy.o)' → 'libc.a(lib_a-memcpy.o)'."""
    return re.sub(r"^.*/(?=[^/(]*(\(|$))", "", path)


def read_map(map_path: Path) -> LinkMap:
    """The flash image's input sections from a GNU ld map (``-Wl,-Map``). Paths of objects that were linked
    in a temporary folder since renamed resolve to the map's own folder."""
    text = Path(map_path).read_text()
    body = text.split("Linker script and memory map", 1)[1]
    sections, image, paths = [], 0, {}
    out, pending = None, None
    for line in body.splitlines():
        if not line.startswith(" "):
            m = _OUTPUT.match(line)
            if m:
                out = m.group(1)
                if out in FLASH_OUTPUT and m.group(2):
                    image += int(m.group(2), 16)
            elif line.strip():
                m = _LINKED.match(line)
                if m:
                    paths.setdefault(short_name(m.group(1)), _existing(Path(m.group(1)), Path(map_path).parent))
                out = None
            continue
        if out not in FLASH_OUTPUT:
            continue
        m = _INPUT.match(line)
        if m and (m.group(1) or pending) and not m.group(3).startswith("0x"):
            name, pending = m.group(1) or pending, None
            size = int(m.group(2), 16)
            if size:
                sections.append(InputSection(short_name(m.group(3)), name, size, out))
            continue
        m = re.match(r"^ (\.\S+)\s*$", line)
        pending = m.group(1) if m else None
    for s in sections:  # archive members: nm reads the archive
        if s.file not in paths and "(" in s.file:
            archive = s.file.split("(")[0]
            if archive in paths:
                paths[s.file] = paths[archive]
    return LinkMap(sections, image, paths)


def _existing(path: Path, beside: Path) -> Path:
    return path if path.exists() else beside / path.name


@functools.lru_cache(maxsize=64)
def _symbols_of(path: Path, mtime: float) -> dict[str, tuple[set[str], set[str], set[str]]]:
    """object or archive member → (strong defined, weak defined, undefined) global symbols."""
    out = subprocess.run(["arm-none-eabi-nm", "-A", "-g", str(path)], capture_output=True, text=True).stdout
    syms: dict[str, tuple[set, set, set]] = collections.defaultdict(lambda: (set(), set(), set()))
    archive = path.name
    for line in out.splitlines():
        where, _, rest = line.rpartition(":")
        parts = rest.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        member = where.rsplit(":", 1)[-1] if path.suffix == ".a" else None
        key = f"{archive}({member})" if member else archive
        strong, weak, undefined = syms[key]
        if kind in "Uw" and len(parts) == 2:
            undefined.add(name)
        elif kind in "WV":
            weak.add(name)
        else:
            strong.add(name)
    return dict(syms)


def symbols(path: Path) -> dict[str, tuple[set[str], set[str], set[str]]]:
    return _symbols_of(path, path.stat().st_mtime)


def classify(link: LinkMap) -> dict[str, str]:
    """Each object of the flash image → 'model', 'harness' or 'runtime' (see the module's docstring)."""
    files = list(dict.fromkeys([*(f for f in link.paths if f.endswith(".o") or "(" in f),
                                *(s.file for s in link.sections)]))
    table = {}
    for f in files:
        path = link.paths.get(f)
        if path is not None and path.exists():
            table[f] = symbols(path).get(f, (set(), set(), set()))
    definer: dict[str, str] = {}  # symbol → the object the linker takes it from: strong first, in link order
    for which in (0, 1):
        for f, defined in table.items():
            for sym in defined[which]:
                definer.setdefault(sym, f)
    kinds = {f: "model" if f in MODEL_OBJECTS else "harness" if _is_harness(f) else None for f in files}
    runtime = [f for f in files if f.startswith("libtflm.a(") and kinds[f] is None]
    seen = set(runtime)
    while runtime:
        f = runtime.pop()
        for s in table.get(f, (set(), set(), set()))[2]:
            g = definer.get(s)
            if g is not None and g not in seen and kinds.get(g) is None:
                seen.add(g)
                runtime.append(g)
    return {f: kinds[f] or ("runtime" if f in seen else "harness") for f in files}


def _is_harness(f: str) -> bool:
    return f in HARNESS_OBJECTS or bool(_HARNESS_MEMBER.match(f))


def section_kinds(link: LinkMap) -> list[tuple[InputSection, str, str]]:
    """Each flash input section with its object's kind and a key that names it across links: the symbol of a
    COMDAT section (an inline function any object may supply; it counts for the runtime when a runtime object
    defines it too), else object + section name."""
    kinds = classify(link)
    weak_syms: dict[str, set[str]] = {"runtime": set(), "any": set()}
    for f, k in kinds.items():
        if f in link.paths and link.paths[f].exists():
            weak = symbols(link.paths[f]).get(f, (set(), set(), set()))[1]
            weak_syms["any"] |= weak
            if k == "runtime":
                weak_syms["runtime"] |= weak
    out = []
    for s in link.sections:
        k = kinds.get(s.file, "harness")
        sym = section_symbol(s.name)
        if k == "harness" and sym in weak_syms["runtime"]:
            k = "runtime"
        out.append((s, k, f"comdat:{sym}" if sym and sym in weak_syms["any"] else f"{s.file}:{s.name}"))
    return out


def runtime_sections(link: LinkMap) -> dict[str, int]:
    """The runtime's flash input sections by key (:func:`section_kinds`) → bytes."""
    out: dict[str, int] = {}
    for s, kind, key in section_kinds(link):
        if kind == "runtime":
            out[key] = out.get(key, 0) + s.size
    return out


def section_symbol(name: str) -> str:
    """The symbol a -ffunction-sections / -fdata-sections section is named after ('' for a plain .text)."""
    m = re.match(r"^\.(?:text|rodata|data|ARM\.exidx|ARM\.extab)\.(.+?)(?:\.isra\.\d+|\.constprop\.\d+|\.part\.\d+)*$",
                 name)
    return m.group(1) if m else ""


def flash_breakdown(elf: Path) -> dict[str, int]:
    """Flash image bytes of a linked firmware by kind: model, runtime, harness, other (:attr:`LinkMap.other_bytes`)."""
    link = read_map(Path(elf).with_name("firmware.map"))
    out = {"model": 0, "runtime": 0, "harness": 0, "other": link.other_bytes}
    for s, kind, _ in section_kinds(link):
        out[kind] += s.size
    return out
