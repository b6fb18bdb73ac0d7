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
