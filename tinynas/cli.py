"""`tinynas <command> [hydra overrides]`: each command is a Hydra app composed from conf/<command>.yaml."""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

COMMANDS = {
    "search": "search, then distil, export and verify the best Pareto point (the full pipeline)",
    "estimate": "SRAM / flash / latency / energy of an arch JSON or a .tflite / .onnx model on an MCU",
    "sample": "write random arch-spec JSON files of a search space",
    "train": "train one arch (arch=FILE.json) and save its checkpoint",
    "distill": "distil one arch from a teacher and save its checkpoint",
    "export": "export an arch (and checkpoint) to int8 TFLite + firmware files, verified in TFLite Micro",
    "report": "rebuild the Pareto front, counts and plots of a study from its storage; page=NAME renders a paper reproduction (published vs ours)",
    "firmware": "build TFLite Micro firmware for the MCU's core, run it in QEMU: arena, sections, instructions",
    "calibrate": "a board's cycles per instruction from a latency measured on it (mcu.cycles_per_instruction=)",
    "rank_space": "rank the (width, resolution) sub-spaces by the MACs of random archs that fit the MCU",
}

USAGE = "usage: tinynas <command> [key=value ...] [--help] [--cfg job] [--multirun]\n\ncommands:\n" + "\n".join(
    f"  {name:<10} {text}" for name, text in COMMANDS.items())


def fail(message: str, code: int = 2) -> None:
    print(f"tinynas: error: {message}", file=sys.stderr)
    sys.exit(code)


def check_group_choices(overrides: list[str], conf_dir) -> None:
    """Name an unknown config-group choice (``mcu=nope``) and list the allowed ones, before Hydra composes."""
    for arg in overrides:
        key, sep, value = arg.lstrip("+~").partition("=")
        group = conf_dir / key
        if not sep or "." in key or not group.is_dir() or key == "hydra":
            continue
        known = sorted(p.stem for p in group.glob("*.yaml"))
        for choice in value.split(","):
            if choice and choice != "null" and choice not in known:
                fail(f"unknown {key} {choice!r}; allowed: {', '.join(known)} (add one as {group / choice}.yaml)")


def check_composes(command: str, overrides: list[str], conf_dir) -> None:
    """Compose the config once up front, so a bad override or an unusable run dir gets one clear line
    instead of Hydra's stack trace."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from tinynas.config_check import validate
    from tinynas.errors import ConfigError

    if any(a.startswith("-") for a in overrides):  # --help, --cfg, --multirun ...: Hydra's own business
        return
    try:
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3", job_name=command):
            cfg = compose(config_name=command, overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            run_dir = Path(cfg.hydra.run.dir)
            validate(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        fail(str(e).strip().replace("\n", " "))
    except ConfigError as e:
        fail(str(e))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"cannot create the run dir {run_dir} ({e.strerror}); set TINYNAS_RUNS or hydra.run.dir to a "
             f"writable folder")
    for path in hydra_writes(cfg, run_dir):
        try:
            if path.exists():
                open(path, "a").close()  # as the log handler opens it
            else:  # leaves nothing behind
                tempfile.TemporaryFile(dir=path.parent if path.parent.is_dir() else run_dir).close()
        except OSError as e:
            fail(f"cannot write {path} in the run dir {run_dir} ({e.strerror}); make it writable, or set "
                 f"run_id, TINYNAS_RUNS or hydra.run.dir to a writable folder")


def hydra_writes(cfg, run_dir) -> list:
    """The files Hydra opens in the run dir before the command starts: its saved config (``.hydra/``) and the
    log files of ``hydra/job_logging`` (an unwritable one would end in an OSError from its log handler)."""
    from omegaconf import OmegaConf, read_write

    files = []
    if cfg.hydra.output_subdir is not None:
        files.append(run_dir / cfg.hydra.output_subdir / "config.yaml")  # (its folder is probed)
    with read_write(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(run_dir.resolve())  # what Hydra sets when the job starts
    for handler in (OmegaConf.select(cfg, "hydra.job_logging.handlers") or {}).values():
        if "filename" in handler:
            files.append(Path(handler.filename))
    return files


def _task(command: str):
    def task(cfg) -> None:
        import warnings

        from optuna.exceptions import ExperimentalWarning

        from tinynas.config_check import validate
        from tinynas.errors import TinyNASError

        warnings.filterwarnings("ignore", category=ExperimentalWarning)  # again here: a launcher's worker process

        module = importlib.import_module(f"tinynas.commands.{command}")
        try:
            validate(cfg)  # again: each job of a --multirun sweep has its own values
            module.run(cfg)
        except (TinyNASError, ValueError, FileNotFoundError, PermissionError, NotADirectoryError) as e:
            fail(str(e))

    return task


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command = argv[0]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    import warnings

    import hydra
    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # TPE's group=True

    from tinynas.paths import CONF_DIR

    check_group_choices(argv[1:], CONF_DIR)
    check_composes(command, argv[1:], CONF_DIR)
    sys.argv = [f"tinynas {command}", *argv[1:]]
    app = hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=command)(_task(command))
    app()


if __name__ == "__main__":
    main()
