"""benchmarks/published_runtime.py's own parts that need no results repository: reading a model's operators from
the C array a submission ships it as, choosing the runtime's sources, refusing a path that holds no project, the
objects' cache key and the clang commands."""

import dataclasses
import importlib.util
import shutil
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


def test_the_cache_key_does_not_depend_on_where_the_code_was_extracted(published_runtime, tmp_path):
    setup = published_runtime.SETUPS["ra6m4"]
    keys = {published_runtime.cache_key("abc", setup, published_runtime.compile_flags(code, setup), code)
            for code in (tmp_path / "one" / setup.code, tmp_path / "two" / setup.code)}
    assert len(keys) == 1
    other = dataclasses.replace(setup, optimization="-O2")
    code = tmp_path / "one" / setup.code
    assert published_runtime.cache_key("abc", other, published_runtime.compile_flags(code, other), code) not in keys


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no Arm GCC here")
def test_clang_compiles_on_gccs_c_libraries_with_its_own_builtin_headers(published_runtime, tmp_path):
    setup = published_runtime.SETUPS["ra8d1"]
    cxx, cc = published_runtime.compile_flags(tmp_path, setup, clang="/opt/llvm/bin/clang")
    assert cxx[:3] == ["/opt/llvm/bin/clang++", "--target=arm-none-eabi", "-nostdinc++"]
    assert cc[:2] == ["/opt/llvm/bin/clang", "--target=arm-none-eabi"] and "-nostdinc++" not in cc
    for command in (cxx, cc):
        system = [command[i + 1] for i, f in enumerate(command) if f == "-isystem"]
        assert system and all(Path(d).is_dir() and "/lib/gcc/" not in d for d in system)
        assert "-flax-vector-conversions=all" in command and "-flax-vector-conversions" not in command
    assert any("c++" in d for d in cxx) and not any("c++" in d for d in cc)
