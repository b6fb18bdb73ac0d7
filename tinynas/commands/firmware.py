"""`tinynas firmware`: build a model's TFLite Micro firmware for the MCU's core, run it in QEMU, report.

The report (JSON keys are a contract, see :mod:`tinynas.target.firmware`) sets the emulated target's
arena, sections and executed instructions beside the estimators' figures for the same model and board.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from tinynas.commands.common import load_mcu_cfg
from tinynas.errors import ConfigError
from tinynas.report import write_json

EXPORTED = "model_int8.tflite"


def find_model(cfg) -> Path:
    """The .tflite of ``model=``, ``run=`` (its export) or ``arch=`` (exported into the cache first)."""
    given = [k for k in ("model", "arch", "run") if cfg.get(k)]
    if len(given) != 1:
        raise ConfigError("give exactly one of model=FILE.tflite, arch=NAME_OR_JSON or run=RUN_DIR")
    if cfg.model:
        path = Path(cfg.model)
        if not path.is_file() or path.suffix.lower() != ".tflite":
            raise ConfigError(f"model={path}: no such .tflite file")
        return path
    if cfg.run:
        run = Path(cfg.run)
        found = sorted(run.glob(f"**/{EXPORTED}")) if run.is_dir() else []
        if not found:
            raise ConfigError(f"run={run}: no exported {EXPORTED} under it (run `tinynas export` or a search with "
                              "deploy=true)")
        return found[0]
    return _export_arch(cfg)


def _export_arch(cfg) -> Path:
    import hashlib

    from tinynas.commands import export as export_cmd
    from tinynas.target.sources import cache_dir

    from tinynas.export import firmware as writers
    from tinynas.export import pipeline

    arch = Path(str(cfg.arch))
    ident = arch.read_text() if arch.is_file() else str(cfg.arch)
    # a changed export (its firmware files, their arena or preprocessing) is a new export
    writer = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (writers, pipeline))).hexdigest()
    key = hashlib.sha256(json.dumps([ident, writer, str(cfg.checkpoint), cfg.seed, OmegaConf.to_container(
        cfg.search_space, resolve=True), OmegaConf.to_container(cfg.dataset, resolve=True)], sort_keys=True,
        default=str).encode()).hexdigest()[:16]
    out = cache_dir() / "exports" / key
    if not (out / EXPORTED).is_file():
        with contextlib.redirect_stdout(sys.stderr):
            export_cmd.run(OmegaConf.merge(cfg, {"out": str(out)}))
    return out / EXPORTED


def table(r: dict) -> str:
    from tinynas.target.firmware import per_op_lines

    est = r.get("estimate") or {}
    rows = per_op_lines(r, f"{r['model']} on {r['core']} in {r['emulator']}")
    s = r["sections"]
    rows += ["", f"Invoke      {r['instructions']:,} instructions",
             f"arena       {r['arena_used_bytes']:,} B = head {r['arena']['head']:,} + tail {r['arena']['tail']:,}"
             + (f"   (estimate {est['sram_total_bytes']:,} B = {est.get('sram_head_bytes', 0):,} + "
                f"{est.get('sram_tail_bytes', 0):,})" if est else ""),
             f"sections    text {s['text']:,}  rodata {s['rodata']:,}  data {s['data']:,}  bss {s['bss']:,} B"
             + (f"   (flash estimate {est['flash_bytes']:,} B)" if est else ""),
             f"outputs     {'bit-identical to' if r['outputs_match_interpreter'] else 'DIFFER from'} the tflite-micro "
             "Python interpreter",
             f"elf         {r['elf']}"]
    if r.get("sources"):
        rows.append(f"main.cc     {r['sources']['main.cc']} ("
                    + ("the export's" if r["sources"]["export"] else "written for this .tflite") + ")")
    return "\n".join(rows)


def run(cfg) -> dict:
    from tinynas.target import firmware, sources

    if cfg.format not in ("text", "json"):
        raise ConfigError(f"format={cfg.format!r} is unknown; allowed: text, json")
    src = sources.resolve(cfg.tflm.root, cfg.tflm.downloads)  # before an arch export: fail fast
    mcu = load_mcu_cfg(cfg)
    if cfg.runtime == "tinyengine":  # TinyEngine's generated code and kernels (tinynas.target.tinyengine)
        from tinynas.target import tinyengine as runtime

        runtime.check_core(mcu.core)
        runtime.resolve_root(src)
    else:
        runtime = firmware
        firmware.core_for(mcu.core)
    report = runtime.run_firmware(find_model(cfg), mcu, src)
    if cfg.out:
        write_json(Path(cfg.out), report)
    print(json.dumps(report, indent=1) if cfg.format == "json" else (
        runtime.table(report) if runtime is not firmware else table(report)), file=sys.stdout)
    return report
