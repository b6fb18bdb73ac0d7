import functools
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def cli_runner(root: Path):
    """A function that runs the `tinynas` console script in a subprocess in ``root`` (runs under ``root/runs``)
    and returns its CompletedProcess (text). Torch runs on one thread (OMP_NUM_THREADS=1): the tests' nets are
    tiny, and two OpenMP threads on a busy 2-core machine spin several times slower than one."""
    import subprocess

    def run(*args, cwd=None, env=None, timeout=600):
        e = {**os.environ, "TINYNAS_RUNS": str(root / "runs"), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
             **(env or {})}
        exe = str(Path(sys.executable).with_name("tinynas"))
        return subprocess.run([exe, *args], cwd=cwd or root, env=e, capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def tinynas_cli(tmp_path):
    """``cli_runner(tmp_path)``: run the `tinynas` console script in a subprocess; returns CompletedProcess."""
    return cli_runner(tmp_path)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets: one torch thread is as fast, and spares a busy machine spinning OpenMP workers. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's 1,797 8×8 digits, split 60/20/20 (seed 0): the quick dataset of the search tests."""
    from tinynas.data import load_dataset

    return load_dataset({"name": "digits", "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0})


def pytest_report_header(config):
    """Which CPU kernels PyTorch picked (ATEN_CPU_CAPABILITY chooses another): see `kernel_paths` in Makefile."""
    import torch

    return f"torch {torch.__version__}, CPU kernels: {torch.backends.cpu.get_cpu_capability()}"


# --- the target in the loop: firmware ground truth shared by the target tests ----------------------------------
# One export and one emulation per model for the whole session, whichever test module asks first.
TARGET_MCU = "stm32f412"  # Cortex-M4F: mps2-an386


@functools.lru_cache(maxsize=1)
def target_benchmark():
    """benchmarks/instruction_model.py as a module: its search-space samples (SPACES, TEST_SEEDS, export_arch)
    are the held-out exported archs the target tests check."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("instruction_model_bench", ROOT / "benchmarks" / "instruction_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def target():
    """The TFLM tree and downloads ($TINYNAS_TFLM_ROOT/_DOWNLOADS, else ../shared/third_party beside the clone);
    skips with the reason where there is no tree or no Arm toolchain / QEMU."""
    from tinynas.target.sources import TargetUnavailable

    try:
        return target_benchmark().sources()
    except TargetUnavailable as e:
        pytest.skip(f"no firmware target here: {e}")


@pytest.fixture(scope="session")
def mlperf_tiny(tmp_path_factory) -> dict[str, Path]:
    """The MLPerf Tiny references (kws, vww, ic, ad) built with Keras and converted to full int8."""
    from tests.tflite_models import build_mlperf_tiny

    return build_mlperf_tiny(tmp_path_factory.mktemp("mlperf_tiny"))


@pytest.fixture(scope="session")
def space_exports(tmp_path_factory):
    """A held-out random arch of every search space (benchmarks/instruction_model.py's TEST_SEEDS, never
    fitted on), through our export pipeline: name ``<space>-<seed>`` → (.tflite path, the space's own IR)."""
    bench = target_benchmark()
    work = tmp_path_factory.mktemp("space_exports")
    out = {}
    for space_name in bench.SPACES:
        for seed in bench.TEST_SEEDS:
            space, arch, in_ch = bench.sample_arch(space_name, seed)
            out[f"{space_name}-{seed}"] = (bench.export_arch(space_name, seed, work), space.to_ir(arch, in_ch, 10))
    return out


@pytest.fixture(scope="session")
def firmware_report(target):
    """``firmware_report(path, mcu=TARGET_MCU)``: the emulated firmware report of a .tflite, built and run once."""
    from estimators import load_mcu
    from tinynas.paths import MCU_DIR
    from tinynas.target.firmware import run_firmware

    done: dict[tuple[str, str], dict] = {}

    def get(path: Path, mcu: str = TARGET_MCU) -> dict:
        key = (str(path), mcu)
        if key not in done:
            done[key] = run_firmware(Path(path), load_mcu(mcu, MCU_DIR), target)
        return done[key]

    return get
