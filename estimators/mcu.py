"""The MCU catalogue: one YAML file per board (``conf/mcu/<name>.yaml``), loaded into :class:`MCU`.

Every number in those files carries its source; nothing about a board is a constant in code.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml

# Cores whose CMSIS-NN kernels use the DSP (SIMD) extension, and those with the MVE (Helium) extension.
DSP_CORES = frozenset({"cortex-m4f", "cortex-m4", "cortex-m7", "cortex-m33"})
MVE_CORES = frozenset({"cortex-m55", "cortex-m85"})
# Cores that run ARMv6-M code (Thumb-1, no DSP): CMSIS-NN's plain-C paths.
ARMV6M_CORES = frozenset({"cortex-m0", "cortex-m0plus"})


@dataclasses.dataclass(frozen=True)
class MCU:
    """One target: budgets in bytes, clock in MHz, active power in mW (0 where not applicable)."""

    name: str
    board: str
    core: str
    clock_mhz: float
    sram_bytes: int
    flash_bytes: int
    active_power_mw: float
    pointer_bytes: int = 4
    notes: str = ""
    # Core cycles per executed TFLM + CMSIS-NN instruction on this board (memory system, caches, runtime
    # version); None where no instruction model covers the core. Prices runtime=tflm latency.
    cycles_per_instruction: float | None = None
    # Cycles per instruction of FULLY_CONNECTED ops ÷ cycles_per_instruction: their matrix × vector kernel
    # streams each weight once (no reuse) and runs at its own rate on some boards; None: the same rate (1).
    fully_connected_cpi_ratio: float | None = None
    sources: dict[str, str] = dataclasses.field(default_factory=dict, hash=False, compare=False)

    @property
    def kernel_isa(self) -> str:
        """Which CMSIS-NN code path this core takes: 'mve', 'dsp' or 'generic'."""
        if self.core in MVE_CORES:
            return "mve"
        if self.core in DSP_CORES:
            return "dsp"
        return "generic"

    @functools.cached_property
    def instruction_class(self) -> str | None:
        """Which instruction model prices TFLM + CMSIS-NN on this core: 'dsp' (M4/M7/M33), 'mve' (M55/M85),
        'armv6m' (M0/M0+), or None (no model: other cores)."""
        core = self.core.split()[0]  # e.g. "cortex-m0plus (x2)"
        if core in ARMV6M_CORES:
            return "armv6m"
        return {"dsp": "dsp", "mve": "mve"}.get(self.kernel_isa)

    @property
    def arm_eabi(self) -> bool:
        """Whether TFLM's structs are laid out by arm-none-eabi-gcc (Arm EABI: short enums), as on every Cortex-M."""
        return self.core.startswith("cortex-m")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MCU":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"MCU {d.get('name', '?')!r}: unknown keys {unknown}; allowed: {sorted(fields)}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                         and f.name not in d)
        if missing:
            raise ValueError(f"MCU {d.get('name', '?')!r}: missing keys {missing}")
        cpi = d.get("cycles_per_instruction")
        name, ratio = d.get("name", "?"), d.get("fully_connected_cpi_ratio")
        for key, value in (("cycles_per_instruction", cpi), ("fully_connected_cpi_ratio", ratio)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"MCU {name!r}: {key}={value!r}; allowed: a positive number or null")
        if ratio is not None and cpi is None:
            raise ValueError(f"MCU {name!r}: fully_connected_cpi_ratio={ratio!r} without cycles_per_instruction; "
                             "allowed: null, or set cycles_per_instruction too")
        mcu = cls(**d)
        if cpi is not None and mcu.instruction_class is None:
            raise ValueError(f"MCU {mcu.name!r}: cycles_per_instruction={cpi!r}, but no instruction model covers its "
                             f"core {mcu.core!r}; allowed: null (instruction models: Cortex-M0/M0+, M4, M7, M33, "
                             "M55, M85)")
        return mcu

    @classmethod
    def from_yaml(cls, path: str | Path) -> "MCU":
        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f))


def catalogue(mcu_dir: str | Path) -> dict[str, MCU]:
    """Every board in ``mcu_dir`` by name."""
    return {p.stem: MCU.from_yaml(p) for p in sorted(Path(mcu_dir).glob("*.yaml"))}


def load_mcu(name: str, mcu_dir: str | Path) -> MCU:
    """The board ``name`` from ``mcu_dir``; a clear error lists the known boards otherwise."""
    path = Path(mcu_dir) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(mcu_dir).glob("*.yaml"))
        raise ValueError(f"unknown MCU {name!r}; known boards: {', '.join(known)} (add one as {path})")
    return MCU.from_yaml(path)
