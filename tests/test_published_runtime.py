"""benchmarks/published_runtime.py's own parts that need no results repository: reading a model's operators from
the C array a submission ships it as, choosing the runtime's sources, and refusing a path that holds no project."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from estimators.tflite_reader import read_tflite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def published_runtime():
    spec = importlib.util.spec_from_file_location("published_runtime", ROOT / "benchmarks" / "published_runtime.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _as_c_array(data: bytes, symbol: str) -> str:
    """The model as an EEMBC project writes it: a guarded, brace-initialised array of hex bytes, 12 per line."""
    lines = [", ".join(f"0x{b:02x}" for b in data[i:i + 12]) for i in range(0, len(data), 12)]
    return f"#ifdef EEMBCAD\nextern const unsigned char {symbol}[] = {{\n  " + ",\n  ".join(lines) + "\n};\n#endif\n"


@pytest.mark.slow
def test_operator_kinds_read_the_models_c_array(published_runtime, mlperf_tiny, tmp_path):
    tflite = mlperf_tiny["ad"]
    (tmp_path / "model.cc").write_text("// comment with 0xff before the array\n" + _as_c_array(tflite.read_bytes(),
                                                                                             "tflite_model"))
    setup = published_runtime.SETUPS["ra6m4"]
    setup = dataclasses.replace(setup, models={"ad": ("model.cc", "EEMBCAD")})
    kinds = published_runtime.operator_kinds(tmp_path, setup, "ad")
    assert kinds == [op.kind for op in read_tflite(tflite).ops] and "FULLY_CONNECTED" in kinds


def test_sources_follow_the_globs_and_leave_out_the_excluded(published_runtime, tmp_path):
    setup = published_runtime.SETUPS["ra8d1"]
    for rel in ("src/tflite-micro/tensorflow/lite/micro/kernels/cmsis_nn/conv.cc",
                "src/tflite-micro/tensorflow/lite/micro/kernels/normal/conv.cc",
                "src/tflite-micro/tensorflow/lite/micro/kernels/conv_test.cc",
                "src/tflite-micro/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c",
                "src/examples/kws_tflm/model.cc"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    got = {str(p.relative_to(tmp_path)) for p in published_runtime.sources(tmp_path, setup)}
    assert got == {"src/tflite-micro/tensorflow/lite/micro/kernels/cmsis_nn/conv.cc",
                   "src/tflite-micro/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c"}


def test_a_path_without_the_project_is_refused_by_name(published_runtime, tmp_path):
    with pytest.raises(SystemExit, match=f"--results-repo {tmp_path}: neither a checkout holding closed/renesas"):
        published_runtime.extract(tmp_path, published_runtime.SETUPS["ra6m4"], tmp_path / "out")
