"""The fast estimator path against straightforward references recomputed from the graph's definition.

``estimate`` reads the graph's compact op table (per-op facts shared across archs, written by the builder
from cached layer configurations and replayed blocks), plans the TFLM head from columns with a
neighbour-list greedy, sums the tail by alignment runs and live bytes with a difference array, and remembers
each op's scratch, tail and latency figures. Each figure is checked here against the plain rule:
lifetimes read op by op, TFLM's greedy rule over every placed buffer, the itemised tail allocated one by
one, latency and MACs per op, the flash terms summed per run against those of the graph read op by op; and
cached builds against cold ones.
(MACs and params against PyTorch's own forward hooks: tests/test_search_space_mcunet.py; the head against
the TFLM interpreter's arena: tests/test_sram.py.)
"""

from __future__ import annotations

import copy
import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from estimators import estimate, load_mcu
from estimators import builder as builder_module
from estimators.flash import flash_terms, output_patterns, runtime_code_bytes, tflite_bytes
from estimators.ir import Op, Tensor, make_tensor
from estimators.instructions import instruction_model_for
from estimators.latency import core_family, load_latency_model
from estimators.macs import op_macs, op_params
from estimators.table import OpTable, op_facts
from estimators.tflm_memory import ARENA_ALIGNMENT, cmsis_nn_scratch, reference_scratch, tail_allocations
from search_spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
SPACE = get_space("mcunet", {"resolutions": [32, 48, 64, 80]})
ARCHS = [SPACE.random(random.Random(seed)) for seed in range(20)]
BOARDS = ("stm32f746", "nrf52840", "host")  # Cortex-M7 (dsp), Cortex-M4 (dsp), 64-bit host without a clock


def align(n: int, a: int = ARENA_ALIGNMENT) -> int:
    return -(-n // a) * a


def reference_head_buffers(graph, scratch) -> list[tuple[int, int, int]]:
    """(size, first, last) in the order TFLM's planner receives them, each lifetime read from its definition:
    steps at which the tensor is a graph input (0), an op's input or output (op index + 1), a graph output (end)."""
    end = len(graph.ops)
    buffers = []
    for name, t in graph.tensors.items():
        if t.const or not t.nbytes:
            continue
        steps = [i + 1 for i, op in enumerate(graph.ops) if name in op.inputs or name in op.outputs]
        steps += [0] * (name in graph.inputs) + [end] * (name in graph.outputs)
        if steps:
            buffers.append((align(t.nbytes), min(steps), max(steps)))
    for i, op in enumerate(graph.ops):
        buffers += [(align(b), i + 1, i + 1) for b in scratch(op_facts(graph, op)) if b > 0]
    return buffers


def reference_greedy_arena(buffers) -> int:
    """TFLM's GreedyMemoryPlanner rule, plainly: largest first (ties: added later first); each buffer goes into
    the lowest gap, walking every placed buffer by offset and skipping those not alive at the same time."""
    offsets: dict[int, int] = {}
    placed: list[tuple[int, int, int]] = []  # (offset, placement rank, buffer)
    for rank, i in enumerate(sorted(range(len(buffers)), key=lambda k: (-buffers[k][0], -k))):
        size, first, last = buffers[i]
        candidate = 0
        for offset, _, j in sorted(placed):
            other, a, b = buffers[j]
            if a > last or first > b:
                continue
            if offset - candidate >= size:
                break
            candidate = max(candidate, offset + other)
        offsets[i] = candidate
        placed.append((candidate, rank, i))
    return max((offsets[i] + size for i, (size, _, _) in enumerate(buffers)), default=0)


def reference_tail(graph, pointer_bytes: int, scratch, arm_eabi: bool) -> int:
    """The itemised tail allocated one by one, each aligned, from the arena's end."""
    used = 0
    for _, size, alignment in tail_allocations(graph, pointer_bytes, scratch, arm_eabi):
        used = align(used + size, alignment)
    return used  # the end's alignment is itemised too


@pytest.fixture(scope="module")
def graphs():
    return [SPACE.to_ir(arch, 3, 10) for arch in ARCHS]


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("runtime", ["tflm-reference", "tflm"])
def test_sram_matches_the_plain_rules(graphs, board, runtime):
    mcu = load_mcu(board, ROOT / "conf" / "mcu")
    scratch = reference_scratch if runtime == "tflm-reference" else cmsis_nn_scratch(mcu.kernel_isa)
    for graph in graphs:
        est = estimate(graph, mcu, runtime)
        buffers = reference_head_buffers(graph, scratch)
        head = reference_greedy_arena(buffers)
        tail = reference_tail(graph, mcu.pointer_bytes, scratch, mcu.arm_eabi)
        live = tuple(sum(size for size, a, b in buffers if a <= step <= b) for step in range(1, len(graph.ops) + 1))
        assert (est.sram.activation_bytes, est.sram.persistent_bytes, est.sram.total_bytes) == (head, tail, head + tail)
        assert tuple(layer.live_bytes for layer in est.layers) == live


@pytest.mark.parametrize("board", BOARDS)
def test_flash_latency_and_macs_match_op_by_op_sums(graphs, board):
    mcu = load_mcu(board, ROOT / "conf" / "mcu")
    latency, instructions = load_latency_model(), instruction_model_for(mcu, "tflm")
    family = core_family(mcu.core) if mcu.clock_mhz > 0 else None
    for graph in graphs:
        est = estimate(graph, mcu, "tflm")
        plain = OpTable.from_graph(graph)  # one run of facts read op by op from the tensors
        file_bytes = tflite_bytes(graph, table=plain)
        fast, slow = flash_terms(graph), flash_terms(graph, plain)
        assert {k: v for k, v in fast.items() if k not in ("runs", "named")} == \
            {k: v for k, v in slow.items() if k not in ("runs", "named")}
        assert output_patterns(fast) == output_patterns(slow)
        code = runtime_code_bytes("tflm", mcu.core, {op.kind for op in graph.ops})
        assert (est.flash.model_bytes, est.flash.runtime_bytes) == (file_bytes, code)
        macs = [op_macs(graph, op) for op in graph.ops]
        assert [layer.macs for layer in est.layers] == macs and est.macs == sum(macs)
        assert est.params == sum(op_params(graph, op) for op in graph.ops)
        for op, layer, m in zip(graph.ops, est.layers, macs):
            if family is None:
                assert layer.latency_ms == 0.0
                continue
            if mcu.cycles_per_instruction is not None:  # the instruction model, op by op from its facts
                n = instructions.op_instructions(op_facts(graph, op))
                assert layer.instructions == pytest.approx(n, rel=1e-12)
                fc = op.kind == "FULLY_CONNECTED" and mcu.fully_connected_cpi_ratio is not None
                rate = mcu.cycles_per_instruction * (mcu.fully_connected_cpi_ratio if fc else 1.0)
                expected = n * rate / (mcu.clock_mhz * 1e3)
                assert layer.latency_ms == pytest.approx(expected, rel=1e-12, abs=1e-15)
                continue
            out = graph.tensors[op.outputs[0]].numel
            terms = ({"mac": 0, "fc_mac": m, "elements": out} if op.kind == "FULLY_CONNECTED"
                     else {"mac": m, "fc_mac": 0, "elements": 0 if op.kind == "RESHAPE" else out})
            expected = latency.cycles(terms, family, "tflm") / (mcu.clock_mhz * 1e3)
            assert layer.latency_ms == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cached_conv_fields_build_the_same_graphs_as_cold_ones(graphs):
    builder_module.clear_caches()
    cold = [SPACE.to_ir(arch, 3, 10) for arch in ARCHS]
    for graph in cold:
        graph.ops  # written now, from cold caches
    assert builder_module._CONV_FIELDS and builder_module._LAYERS  # the second build below reads the caches
    warm = [SPACE.to_ir(arch, 3, 10) for arch in ARCHS]
    for a, b, c in zip(cold, warm, graphs):
        assert list(a.tensors.items()) == list(b.tensors.items()) == list(c.tensors.items())
        assert [(op, op.attrs) for op in a.ops] == [(op, op.attrs) for op in b.ops] == [(op, op.attrs) for op in c.ops]
    for graph in warm:  # fields computed for one layer name are reused under another: each shape still fits its op
        for op in graph.ops:
            if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                x, w, bias, y = (graph.tensors[n] for n in (*op.inputs, op.outputs[0]))
                (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
                c = y.shape[3]
                assert w.shape == ((c, kh, kw, x.shape[3]) if op.kind == "CONV_2D" else (1, kh, kw, c))
                assert bias.shape == (c,) and bias.dtype == "int32" and w.quant_channels == bias.quant_channels == c
                same = op.attrs["padding"] == "same"
                assert y.shape[1:3] == ((math.ceil(x.shape[1] / sh), math.ceil(x.shape[2] / sw)) if same else
                                        ((x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1))


def test_a_valid_conv_larger_than_its_input_still_fails_once_cached():
    from estimators.builder import GraphBuilder

    for _ in range(2):
        g = GraphBuilder("tiny", (4, 4, 3))
        with pytest.raises(ValueError, match="conv/out"):
            g.conv2d(g.input, 8, 5, padding="valid")


def test_tensor_and_op_named_tuples_keep_the_dataclass_contract():
    t = Tensor("w", (8, 3, 3, 4), "int8", True, 8)
    assert (t.numel, t.nbytes) == (288, 288) and Tensor("b", (8,), "int32", True, 8).nbytes == 32
    assert repr(t) == "Tensor(name='w', shape=(8, 3, 3, 4), dtype='int8', const=True, quant_channels=8)"
    assert pickle.loads(pickle.dumps(t)) == t == copy.deepcopy(t) and t._replace(shape=(2, 2)).numel == 4
    with pytest.raises(AttributeError):
        t.shape = (1,)
    assert Tensor("n", [np.int64(2), 3.0]).shape == (2, 3) and type(Tensor("n", (np.int64(2),)).numel) is int
    with pytest.raises(ValueError, match="positive"):
        make_tensor("z", (1, 0, 3))
    with pytest.raises(ValueError, match="positive"):
        make_tensor("h", (0.5, 3))
    with pytest.raises(ValueError, match="unknown dtype"):
        Tensor("d", (1,), "int7")
    op = Op("conv", "CONV_2D", ("x", "w"), ("y",), {"stride": (1, 1)})
    assert op == Op("conv", "CONV_2D", ("x", "w"), ("y",)) and hash(op) == hash(Op("conv", "CONV_2D", ("x", "w"), ("y",)))
    assert op != Op("conv", "CONV_2D", ("x",), ("y",)) and Op("a", "ADD", (), ()).attrs == {}
    assert pickle.loads(pickle.dumps(op)).attrs == {"stride": (1, 1)} and op._replace(name="c").name == "c"


@pytest.mark.parametrize("seed", range(40))
def test_greedy_columns_match_the_plain_rule_on_tied_sizes(seed):
    from estimators.planner import greedy_offsets

    rng = random.Random(seed)
    buffers = []
    for _ in range(rng.randint(1, 30)):
        first = rng.randint(0, 12)
        buffers.append((rng.choice([16, 32, 48, 64]), first, first + rng.randint(0, 3)))
    sizes, firsts, lasts = (list(col) for col in zip(*buffers))
    assert max(map(sum, zip(greedy_offsets(sizes, firsts, lasts), sizes))) == reference_greedy_arena(buffers)
