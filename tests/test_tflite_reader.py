"""The .tflite reader against the interpreters' own view of the same files."""

from __future__ import annotations

import numpy as np
import pytest

from estimators.tflite_reader import read_tflite


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from tests.tflite_models import _keras, convert_int8

    tf, L = _keras()
    tf.keras.utils.set_random_seed(0)
    x = inp = tf.keras.Input((12, 12, 2), batch_size=1)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.Add()([x, L.Conv2D(8, 1)(y)])
    x = L.AveragePooling2D(2)(x)
    x = L.Reshape((72,))(x)
    x = L.Dense(5, activation="softmax")(x)
    return convert_int8(tf.keras.Model(inp, x), tmp_path_factory.mktemp("reader") / "small.tflite")


def test_reader_matches_litert(small_model):
    from ai_edge_litert.interpreter import Interpreter

    graph = read_tflite(small_model)
    it = Interpreter(model_path=str(small_model))
    details = sorted(it.get_tensor_details(), key=lambda d: d["index"])
    assert len(graph.tensors) == len(details)
    for t, d in zip(graph.tensors.values(), details):
        assert t.shape == tuple(int(v) for v in d["shape"])
        assert t.dtype == np.dtype(d["dtype"]).name
        assert t.quant_channels == len(d["quantization_parameters"]["scales"])
    assert [op.kind for op in graph.ops] == [o["op_name"] for o in it._get_ops_details()]
    assert graph.tensors[graph.inputs[0]].shape == (1, 12, 12, 2)
    graph.validate()


def test_reader_attributes(small_model):
    ops = {op.kind: op for op in read_tflite(small_model).ops}
    conv = next(op for op in read_tflite(small_model).ops if op.kind == "CONV_2D")
    assert conv.attrs["kernel"] == (3, 3) and conv.attrs["stride"] == (2, 2)
    assert conv.attrs["padding"] == "same" and conv.attrs["activation"] == "relu6"
    assert ops["DEPTHWISE_CONV_2D"].attrs["depth_multiplier"] == 1
    assert ops["AVERAGE_POOL_2D"].attrs["kernel"] == (2, 2)


def test_reader_rejects_missing_and_corrupt_files(tmp_path, small_model):
    with pytest.raises(ValueError, match="does not exist"):
        read_tflite(tmp_path / "none.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        read_tflite(junk)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(small_model.read_bytes()[:64])
    with pytest.raises(ValueError, match="cut.tflite"):
        read_tflite(cut)


def test_estimate_of_a_tflite_file_takes_its_flash_from_the_file(small_model, tinynas_cli):
    """model=FILE.tflite: the model's flash is the file's byte size (the estimate from its graph differs)."""
    import json

    from estimators.flash import tflite_bytes

    size = small_model.stat().st_size
    assert tflite_bytes(read_tflite(small_model)) != size
    r = tinynas_cli("estimate", f"model={small_model}", "mcu=stm32f746", "format=json")
    assert r.returncode == 0, r.stderr
    flash = json.loads(r.stdout)["flash"]
    assert (flash["model_bytes"], flash["model_source"]) == (size, "file")
    assert flash["total_bytes"] == size + flash["runtime_bytes"]
    text = tinynas_cli("estimate", f"model={small_model}", "mcu=stm32f746").stdout
    assert f"model file {size / 1024:,.1f} kB" in text
