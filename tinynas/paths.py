"""Where the project's data lives (the Hydra config tree ships beside the packages)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
MCU_DIR = CONF_DIR / "mcu"
