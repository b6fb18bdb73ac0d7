"""Which op kinds each runtime's estimate models: any other op is refused, never counted as zero.

``tflm-reference``  the kinds whose kernel data, builtin options and scratch :mod:`estimators.tflm_memory`
                    models from TFLite Micro's reference kernels (their ``Init`` and ``Prepare``).
``tflm``            the same, less the kinds whose CMSIS-NN kernel allocates otherwise and is not modelled
                    (``tflm_memory.CMSIS_NN_UNMODELLED``).
``tinyengine``      the kinds the search spaces and the ONNX reader emit (TinyEngine's kernels).
``analytic``        any kind but CUSTOM: it counts the activations alive at each op, whatever the op.

A CUSTOM op is named by its custom code, e.g. ``CUSTOM(ethos-u)``: an Ethos-U command stream, which
TFLite Micro cannot run on a Cortex-M, or a signal-library op, whose memory is not modelled.
"""

from __future__ import annotations

from estimators.ir import Graph
from estimators.table import OpTable, per_run, table_of
from estimators.tflm_memory import CMSIS_NN_UNMODELLED, MODELLED_KINDS

TINYENGINE_KINDS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "AVERAGE_POOL_2D",
                              "MAX_POOL_2D", "MEAN", "RESHAPE", "PAD", "SOFTMAX", "HARD_SWISH", "LOGISTIC",
                              "CONCATENATION", "QUANTIZE", "DEQUANTIZE", "RELU", "RELU6"})

SUPPORTED_OPS: dict[str, frozenset[str] | None] = {
    "tflm-reference": MODELLED_KINDS,
    "tflm": MODELLED_KINDS - CMSIS_NN_UNMODELLED,
    "tinyengine": TINYENGINE_KINDS,
    "analytic": None,  # any kind but CUSTOM
}
# per_run keys of the kinds each runtime refuses
_REFUSED_KEYS = {runtime: f"refused kinds, {runtime}" for runtime in SUPPORTED_OPS}


class UnsupportedOps(ValueError):
    """A graph holds ops the runtime's estimate does not model; ``ops`` names them."""

    def __init__(self, model: str, runtime: str, ops: frozenset[str]) -> None:
        self.ops = ops
        allowed = SUPPORTED_OPS[runtime]
        listed = ", ".join(sorted(allowed)) if allowed is not None else "any but CUSTOM"
        super().__init__(f"model {model}: runtime={runtime} does not model the ops {', '.join(sorted(ops))}, so it "
                         f"cannot estimate this model; modelled ops: {listed}")


def _kind_names(graph: Graph) -> set[str]:
    return {f"CUSTOM({op.attrs.get('custom_code', '?')})" if op.kind == "CUSTOM" else op.kind for op in graph.ops}


def unsupported_ops(graph: Graph, runtime: str, table: OpTable | None = None) -> frozenset[str]:
    """The op kinds of ``graph`` that ``runtime``'s estimate does not model (CUSTOM ops by their code)."""
    if runtime not in SUPPORTED_OPS:
        raise ValueError(f"unknown runtime {runtime!r}; allowed: {', '.join(SUPPORTED_OPS)}")
    allowed = SUPPORTED_OPS[runtime]

    def refused(ops: tuple) -> frozenset[str]:
        return frozenset(op.kind for op in ops
                         if op.kind == "CUSTOM" or (allowed is not None and op.kind not in allowed))

    bad = per_run(table or table_of(graph), _REFUSED_KEYS[runtime], refused)  # remembered per run and runtime
    if not any(bad):
        return frozenset()
    bad = frozenset().union(*bad)
    return frozenset(k for k in _kind_names(graph) if k.split("(")[0] in bad)


def check_supported(graph: Graph, runtime: str, table: OpTable | None = None) -> None:
    """Raise :class:`UnsupportedOps` when ``graph`` holds an op ``runtime``'s estimate does not model."""
    bad = unsupported_ops(graph, runtime, table)
    if bad:
        raise UnsupportedOps(graph.name, runtime, bad)
