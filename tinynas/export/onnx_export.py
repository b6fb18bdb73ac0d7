"""PyTorch → ONNX with the legacy TorchScript exporter: eval mode, batch 1, static shapes, BatchNorm folded."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path

import onnx
import torch

from tinynas.export.errors import ExportError

OPSET = 13
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclasses.dataclass(frozen=True)
class OnnxModel:
    """The exported file and its single input/output names and shapes (NCHW input)."""

    path: Path
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    op_counts: dict[str, int]


def _shape(value_info) -> tuple[int, ...]:
    return tuple(d.dim_value for d in value_info.type.tensor_type.shape.dim)


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim's folding (drops the exporter's Constant/Identity nodes); the input when it cannot verify."""
    import onnxsim

    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception:  # noqa: BLE001 - simplification is an optimisation, never a requirement
        return proto
    return simplified if ok else proto


def export_onnx(model: torch.nn.Module, input_shape: tuple[int, ...], path: Path, opset: int = OPSET) -> OnnxModel:
    """Export ``model`` (not modified) for one sample of ``input_shape`` (C, H, W) to ``path``.

    Eval-mode constant folding merges every BatchNorm into its convolution, and onnxsim removes what
    folding leaves behind; an ONNX graph that still holds a BatchNormalization node (a BatchNorm not
    preceded by a conv) is refused.
    """
    model = copy.deepcopy(model).cpu().float().eval()  # export-time changes never reach the caller's model
    dummy = torch.zeros((1, *input_shape), dtype=torch.float32)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                              training=torch.onnx.TrainingMode.EVAL, export_params=True)
    except Exception as e:  # noqa: BLE001 - any exporter failure is reported with the model it came from
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__} with a {tuple(dummy.shape)} "
                          f"float32 input at opset {opset}: {type(e).__name__}: {e}") from e
    proto = _simplify(onnx.load(str(path)))
    onnx.save(proto, str(path))
    graph = proto.graph
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    if "BatchNormalization" in counts:
        names = [n.name for n in graph.node if n.op_type == "BatchNormalization"]
        raise ExportError(f"ONNX export of {type(model).__name__} kept {len(names)} BatchNormalization node(s) "
                          f"({', '.join(names[:5])}): every BatchNorm must directly follow a convolution so it "
                          "folds into it; TFLite int8 has no standalone BatchNorm kernel")
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ExportError(f"ONNX export of {type(model).__name__} has {len(graph.input)} inputs and "
                          f"{len(graph.output)} outputs; the export stage handles exactly one of each")
    return OnnxModel(Path(path), graph.input[0].name, _shape(graph.input[0]), graph.output[0].name,
                     _shape(graph.output[0]), counts)
