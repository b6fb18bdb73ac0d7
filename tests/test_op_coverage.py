"""Op coverage, honestly: every model is estimated within 2% of TFLite Micro's arena, or refused by name.

The models are TFLite Micro's own examples and test models, from its tree ($TINYNAS_TFLM_ROOT, else
../shared/third_party/tflite-micro beside the clone; skipped without one). The ground truth is the tflite-micro
Python interpreter's arena (reference kernels, 64-bit host: ``runtime=tflm-reference`` with 8-byte pointers).
Under ``runtime=tflm`` (CMSIS-NN) the kinds whose CMSIS-NN kernels are not modelled are refused instead; its
LSTM is checked against the emulated Cortex-M4's arena (``tinynas firmware``; skipped without the tools).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from estimators.ir import DTYPE_BYTES, make_tensor
from estimators.mcu import MCU
from estimators.op_support import SUPPORTED_OPS, UnsupportedOps, unsupported_ops
from estimators.sram import estimate_sram
from estimators.tflite_reader import read_tflite

ROOT = Path(__file__).resolve().parents[1]
TREE = Path(os.environ.get("TINYNAS_TFLM_ROOT") or ROOT.parent / "shared" / "third_party" / "tflite-micro")
MICRO = TREE / "tensorflow" / "lite" / "micro"
HOST = MCU(name="host", board="x", core="x86_64", clock_mhz=0, sram_bytes=0, flash_bytes=0,
           active_power_mw=0, pointer_bytes=8)

SIGNAL = {f"CUSTOM(Signal{n})" for n in ("Energy", "FftAutoScale", "FilterBank", "FilterBankLog",
                                           "FilterBankSpectralSubtraction", "FilterBankSquareRoot", "PCAN", "Rfft",
                                           "Window")}
SVDF, TC = "SVDF", "TRANSPOSE_CONV"
# model → (path under tensorflow/lite/micro, ops refused under tflm-reference, ops refused under tflm)
MODELS = {
    "hello_world_int8": ("examples/hello_world/models/hello_world_int8.tflite", set(), set()),
    "hello_world_float": ("examples/hello_world/models/hello_world_float.tflite", set(), set()),
    "micro_speech": ("examples/micro_speech/models/micro_speech_quantized.tflite", set(), set()),
    "person_detect": ("models/person_detect.tflite", set(), set()),
    "person_detect_vela": ("models/person_detect_vela.tflite", {"CUSTOM(ethos-u)"}, {"CUSTOM(ethos-u)"}),
    "keyword_scrambled": ("models/keyword_scrambled.tflite", set(), {SVDF}),
    "keyword_scrambled_8bit": ("models/keyword_scrambled_8bit.tflite", set(), {SVDF}),
    "trained_lstm": ("examples/mnist_lstm/trained_lstm.tflite", set(), set()),
    "trained_lstm_int8": ("examples/mnist_lstm/trained_lstm_int8.tflite", set(), set()),
    "seanet_transpose_conv0": ("integration_tests/seanet/transpose_conv/transpose_conv0.tflite", set(), {TC}),
    "seanet_transpose_conv4": ("integration_tests/seanet/transpose_conv/transpose_conv4.tflite", set(), {TC}),
    "seanet_strided_slice0": ("integration_tests/seanet/strided_slice/strided_slice0.tflite", set(), set()),
    "seanet_strided_slice12": ("integration_tests/seanet/strided_slice/strided_slice12.tflite", set(), set()),
    "seanet_leaky_relu0": ("integration_tests/seanet/leaky_relu/leaky_relu0.tflite", {"LEAKY_RELU"}, {"LEAKY_RELU"}),
    "audio_preprocessor_int8": ("examples/micro_speech/models/audio_preprocessor_int8.tflite",
                                SIGNAL | {"CAST", "DIV", "MAXIMUM", "MINIMUM"},
                                SIGNAL | {"CAST", "DIV", "MAXIMUM", "MINIMUM"}),
    "audio_preprocessor_float": ("examples/micro_speech/models/audio_preprocessor_float.tflite",
                                 SIGNAL | {"CAST"}, SIGNAL | {"CAST"}),
    "dtln_noise_suppression": ("examples/dtln/dtln_noise_suppression.tflite", set(), set()),
}


def _model(name: str) -> Path:
    path = MICRO / MODELS[name][0]
    if not path.is_file():
        pytest.skip(f"no TFLite Micro tree with {MODELS[name][0]} at {TREE} (set TINYNAS_TFLM_ROOT)")
    return path


@pytest.mark.parametrize("name", sorted(MODELS))
def test_estimate_matches_the_interpreter_or_refuses_by_name(name):
    from tinynas.tflm import measure_arena

    path, refused, _ = MODELS[name][0], MODELS[name][1], MODELS[name][2]
    graph = read_tflite(_model(name))
    assert unsupported_ops(graph, "tflm-reference") == refused
    if refused:
        with pytest.raises(UnsupportedOps) as e:
            estimate_sram(graph, "tflm-reference", HOST)
        assert e.value.ops == refused and all(op in str(e.value) for op in refused)
        return
    measured = measure_arena(_model(name))
    est = estimate_sram(graph, "tflm-reference", HOST)
    assert est.activation_bytes == measured.head_bytes
    assert abs(est.total_bytes - measured.total_bytes) <= 0.02 * measured.total_bytes, (est, measured)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cmsis_nn_runtime_refuses_what_it_does_not_model(name):
    graph = read_tflite(_model(name))
    refused = MODELS[name][2]
    assert unsupported_ops(graph, "tflm") == refused
    m4 = MCU(name="m4", board="x", core="cortex-m4", clock_mhz=100, sram_bytes=1, flash_bytes=1, active_power_mw=1)
    if refused:
        with pytest.raises(UnsupportedOps):
            estimate_sram(graph, "tflm", m4)
    else:
        assert estimate_sram(graph, "tflm", m4).total_bytes > 0


def test_other_runtimes_refuse_what_they_do_not_model():
    graph = read_tflite(_model("keyword_scrambled"))
    assert unsupported_ops(graph, "tinyengine") == {SVDF}
    with pytest.raises(UnsupportedOps, match="runtime=tinyengine does not model the ops SVDF,"):
        estimate_sram(graph, "tinyengine", HOST)
    assert unsupported_ops(graph, "analytic") == set()  # it counts the activations of any op
    vela = read_tflite(_model("person_detect_vela"))
    assert unsupported_ops(vela, "analytic") == {"CUSTOM(ethos-u)"}


def test_recurrent_state_lives_in_the_tail_and_scratch_in_the_head():
    """SVDF's activation state is a variable tensor: TFLM allocates it in the persistent tail."""
    from estimators.table import table_of
    from estimators.tflm_memory import scratch_requests

    graph = read_tflite(_model("keyword_scrambled"))
    table = table_of(graph)
    assert graph.variables and sum(table.variable_sizes) == sum(graph.tensors[n].nbytes for n in graph.variables)
    svdf = [i for i, op in enumerate(graph.ops) if op.kind == "SVDF"]
    requests = scratch_requests(table)
    for i in svdf:  # int8 SVDF: batch × filters and batch × units int32 rows
        x, feature = (graph.tensors[n] for n in graph.ops[i].inputs[:2])
        units = graph.tensors[graph.ops[i].outputs[0]].shape[-1]
        assert requests[i] == (4 * x.shape[0] * feature.shape[0], 4 * x.shape[0] * units)


# -- the CLI ---------------------------------------------------------------------------------------------
def _estimate_cli(model: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tinynas.cli", "estimate", f"model={model}", *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def _flatbuffer(path: Path, mutate) -> bytes:
    """The model at ``path`` with ``mutate(model)`` applied to its object form, packed again."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    mutate(model, fb)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _simple_add() -> Path:
    path = MICRO / "examples/memory_footprint/models/simple_add_model.tflite"
    if not path.is_file():
        pytest.skip(f"no TFLite Micro tree at {TREE} (set TINYNAS_TFLM_ROOT)")
    return path


@pytest.mark.parametrize("code, custom, named", [("SQUARED_DIFFERENCE", None, "SQUARED_DIFFERENCE"),
                                                 (None, b"ethos-u", "CUSTOM(ethos-u)"),
                                                 (250, None, "UNKNOWN_BUILTIN_250")])
def test_an_op_without_a_model_is_refused_with_exit_2(tmp_path, code, custom, named):
    def swap(model, fb):
        op_code = model.operatorCodes[0]
        number = fb.BuiltinOperator.CUSTOM if custom else getattr(fb.BuiltinOperator, str(code), code)
        op_code.builtinCode, op_code.deprecatedBuiltinCode, op_code.customCode = number, min(number, 127), custom

    path = tmp_path / "synthetic.tflite"
    path.write_bytes(_flatbuffer(_simple_add(), swap))
    for runtime in ("tflm", "tflm-reference"):
        proc = _estimate_cli(path, f"runtime={runtime}")
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert f"does not model the ops {named}," in lines[0] and f"runtime={runtime}" in lines[0]


def test_a_model_it_models_is_estimated_by_the_cli():
    proc = _estimate_cli(_model("keyword_scrambled"), "runtime=tflm-reference", "format=json")
    assert proc.returncode == 0, proc.stderr
    assert '"total_bytes"' in proc.stdout


# -- tensor types ----------------------------------------------------------------------------------------
# TFLite's TensorType names → numpy's dtype of the same bytes per element (TFLM's TfLiteTypeSizeOf agrees);
# bfloat16 and resource have no numpy dtype: an int16 and an int32 (resource ids), as TFLM sizes them.
_NUMPY = {"FLOAT32": "float32", "FLOAT16": "float16", "INT32": "int32", "UINT8": "uint8", "INT64": "int64",
          "BOOL": "bool", "INT16": "int16", "COMPLEX64": "complex64", "INT8": "int8", "FLOAT64": "float64",
          "COMPLEX128": "complex128", "UINT64": "uint64", "UINT32": "uint32", "UINT16": "uint16",
          "BFLOAT16": "int16", "RESOURCE": "int32", "INT4": "int8"}
_NO_TFLM = {"STRING", "VARIANT", "INT2", "UINT4", "FLOAT8_E4M3FN", "FLOAT8_E5M2"}


def _tensor_types() -> dict[str, int]:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    return {k: v for k, v in vars(fb.TensorType).items() if not k.startswith("_")}


def test_every_tflite_tensor_type_is_sized_or_refused():
    assert set(_tensor_types()) == set(_NUMPY) | _NO_TFLM  # a new schema type must be decided here


def _add_with_output_type(tmp_path, type_name: str) -> Path:
    """The one-ADD model with its output tensor retyped to the TFLite type ``type_name``."""
    def retype(model, fb):
        model.subgraphs[0].tensors[2].type = _tensor_types()[type_name]

    path = tmp_path / f"{type_name.lower()}.tflite"
    path.write_bytes(_flatbuffer(_simple_add(), retype))
    return path


@pytest.mark.parametrize("type_name", sorted(_NUMPY))
def test_activation_bytes_per_tensor_type(tmp_path, type_name):
    out = read_tflite(_add_with_output_type(tmp_path, type_name)).tensors["PartitionedCall:0"]
    assert out.nbytes == out.numel * np.dtype(_NUMPY[type_name]).itemsize


@pytest.mark.parametrize("type_name", sorted(_NO_TFLM))
def test_types_tflm_cannot_hold_are_refused(tmp_path, type_name):
    path = _add_with_output_type(tmp_path, type_name)
    with pytest.raises(ValueError, match=f"tensor 2 has TFLite type {type_name}, which TFLite Micro cannot hold"):
        read_tflite(path)


def test_int4_constants_are_packed_as_in_the_file(tmp_path):
    """An int4 constant's bytes are its buffer's, two elements a byte; an int4 activation takes a byte each."""
    def int4_weight(model, fb):
        t = model.subgraphs[0].tensors[1]
        t.type = _tensor_types()["INT4"]
        model.buffers[t.buffer].data = np.arange((int(np.prod(t.shape)) + 1) // 2, dtype=np.uint8) % 251

    path = tmp_path / "int4.tflite"
    path.write_bytes(_flatbuffer(_simple_add(), int4_weight))
    w = read_tflite(path).tensors["serving_default_input_2:0"]
    assert w.const and w.nbytes == _buffer_bytes(path, 1)
    assert make_tensor("w", (3, 3), "int4", True).nbytes == 5 and make_tensor("x", (3, 3), "int4").nbytes == 9
    assert set(DTYPE_BYTES) >= {"int4", "uint32", "uint16", "complex64", "resource"}


def _buffer_bytes(path: Path, tensor: int) -> int:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    return len(model.buffers[model.subgraphs[0].tensors[tensor].buffer].data)


def test_every_runtime_has_a_supported_set():
    from estimators.sram import RUNTIMES

    assert set(SUPPORTED_OPS) == set(RUNTIMES)


# -- CMSIS-NN on the emulated Cortex-M4 --------------------------------------------------------------------
@pytest.fixture(scope="session")
def target():
    from tinynas.target.sources import TargetUnavailable, resolve

    shared = ROOT.parent / "shared" / "third_party"
    downloads = os.environ.get("TINYNAS_TFLM_DOWNLOADS") or (str(shared / "downloads") if
                                                             (shared / "downloads").is_dir() else None)
    try:
        return resolve(str(TREE), downloads)
    except TargetUnavailable as e:
        pytest.skip(f"no firmware target here: {e}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["trained_lstm_int8", "dtln_noise_suppression"])
def test_cmsis_nn_lstm_estimate_is_the_emulated_arena(target, name):
    """runtime=tflm's CMSIS-NN LSTM (3 scratch rows, its OpData, 8 kernel sums): head exact, total within 2%."""
    from estimators import load_mcu
    from tinynas.paths import MCU_DIR
    from tinynas.target.firmware import run_firmware

    mcu = load_mcu("stm32f412", MCU_DIR)
    report = run_firmware(_model(name), mcu, target)
    est = estimate_sram(read_tflite(_model(name)), "tflm", mcu)
    assert est.activation_bytes == report["arena"]["head"]
    assert abs(est.total_bytes - report["arena_used_bytes"]) <= 0.02 * report["arena_used_bytes"], (est, report["arena"])
