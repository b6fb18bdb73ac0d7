"""The table GraphBuilder writes while building equals the table read from the written graph.

Search spaces build with :class:`~estimators.builder.GraphBuilder`, which writes only the estimators'
:class:`~estimators.table.OpTable` (facts cached per layer configuration) and writes tensors and ops when
they are read. Every estimate of such a graph rests on that table, so it is checked here against
:meth:`OpTable.from_graph` of the graph's own tensors and ops (the route every ONNX / TFLite graph takes),
for random archs of every search space and the reference models; and whole estimates through both routes.
"""

from __future__ import annotations

import copy
import pickle
import random
from pathlib import Path

import pytest

from estimators import estimate, load_mcu
from estimators import builder as builder_module
from estimators.builder import GraphBuilder, GraphWriter
from estimators.ir import Graph, LazyGraph
from estimators.reference_models import reference_model
from estimators.table import OpRun, OpTable, per_op, per_run, table_of
from search_spaces import get_space

ROOT = Path(__file__).resolve().parents[1]
SPACES = {"mcunet": 3, "mobilenetv3": 3, "efficientnet_lite": 3, "mobilenetv1": 3, "dscnn": 1}
REFERENCES = ("mlperf_kws_dscnn", "mlperf_vww_mobilenetv1_0.25_96", "mlperf_ic_resnet8", "mlperf_ad_fc_autoencoder")


def plain(graph: Graph) -> Graph:
    """An ordinary graph with ``graph``'s tensors and ops (its table is read from them)."""
    return Graph(graph.name, dict(graph.tensors), list(graph.ops), list(graph.inputs), list(graph.outputs))


def built_graphs():
    for name, in_channels in SPACES.items():
        space = get_space(name, {})
        rng = random.Random(7)
        for _ in range(6):
            yield name, space.to_ir(space.random(rng), in_channels, 10)
    for name in REFERENCES:
        yield name, reference_model(name)


@pytest.mark.parametrize("label,graph", list(built_graphs()), ids=lambda v: v if isinstance(v, str) else "")
def test_builder_table_equals_the_table_of_its_written_graph(label, graph):
    assert isinstance(graph, LazyGraph)
    written = table_of(graph)  # the builder's, before anything reads tensors or ops
    assert written == OpTable.from_graph(plain(graph))
    assert len(written.ops) == len(graph.ops) and written.tensors == len(graph.tensors)
    # Its runs split exactly its ops, and carry their MACs and params.
    assert tuple(op for run in written.runs for op in run.ops) == written.ops
    assert [run.macs for run in written.runs] == [sum(op.macs for op in run.ops) for run in written.runs]


def test_tables_differing_only_in_runs_are_equal_and_runs_are_shared_across_archs():
    space = get_space("mcunet", {"resolutions": [64], "widths": [0.5]})
    builder_module.clear_caches()
    a, b = (table_of(space.to_ir(space.random(random.Random(s)), 3, 10)) for s in (1, 2))
    assert a == a._replace(runs=(OpRun(a.ops),)) and a != b
    assert a.runs[0] is b.runs[0]  # the same stem: one run, whatever it derived remembered once
    assert len(a.runs) == len(space.blocks(space.random(random.Random(1)))) + 2  # stem, blocks, head


def test_per_op_and_per_run_remember_what_they_derive_per_run():
    space = get_space("mcunet", {"resolutions": [64], "widths": [0.5]})
    table = table_of(space.to_ir(space.random(random.Random(5)), 3, 10))
    calls = []

    def derive(op):
        calls.append(op)
        return op.macs * 2

    assert per_op(table, "test: twice the MACs", derive) == [op.macs * 2 for op in table.ops]
    assert len(calls) <= len(table.ops)  # once per op at most (ops recur)
    calls.clear()
    assert per_op(table, "test: twice the MACs", derive) == [op.macs * 2 for op in table.ops] and not calls
    assert per_run(table, "test: run MACs", lambda ops: sum(op.macs for op in ops)) == [r.macs for r in table.runs]
    other = table_of(space.to_ir(space.random(random.Random(6)), 3, 10))
    shared = [run for run in other.runs if any(run is mine for mine in table.runs)]  # the stem at least
    assert shared and all("test: run MACs" in run.memo for run in shared)


@pytest.mark.parametrize("runtime", ["tflm-reference", "tflm", "tinyengine", "analytic"])
def test_estimates_through_the_builder_table_equal_those_from_the_graph(runtime):
    space = get_space("mcunet", {"resolutions": [48, 64, 96]})
    rng = random.Random(3)
    for board in ("stm32f746", "host", "stm32h743"):
        mcu = load_mcu(board, ROOT / "conf" / "mcu")
        for _ in range(4):
            graph = space.to_ir(space.random(rng), 3, 10)
            fast = estimate(graph, mcu, runtime)
            assert fast == estimate(plain(graph), mcu, runtime)
            assert fast.to_dict() == estimate(plain(graph), mcu, runtime).to_dict()


def test_cold_and_warm_layer_caches_write_the_same_table():
    space = get_space("mobilenetv3", {})
    archs = [space.random(random.Random(s)) for s in range(4)]
    builder_module.clear_caches()
    cold = [table_of(space.to_ir(a, 3, 10)) for a in archs]
    warm = [table_of(space.to_ir(a, 3, 10)) for a in archs]
    assert cold == warm
    assert all(c.ops[i] is w.ops[i] for c, w in zip(cold, warm) for i in range(len(c.ops)))  # facts are shared


def test_lazy_graph_writes_its_tensors_once_and_then_behaves_as_a_graph():
    g = GraphBuilder("t", (8, 8, 3))
    y = g.fully_connected(g.flatten(g.conv2d(g.input, 4, 3, 2, name="c")), 5, name="fc")
    graph = g.finish(y)
    assert "tensors" not in graph.__dict__
    w = GraphWriter("t", (8, 8, 3))
    expected = w.finish(w.fully_connected(w.flatten(w.conv2d(w.graph.inputs[0], 4, 3, 2, name="c")), 5, name="fc"))
    assert graph == expected and expected == graph
    ops = graph.ops
    assert graph.ops is ops and graph.__dict__["_table"] is None  # written once; from now on read from the graph
    graph.ops.append(graph.ops[-1]._replace(name="again"))
    assert len(table_of(graph).ops) == 4
    assert pickle.loads(pickle.dumps(graph)) == graph == copy.deepcopy(graph)
    renamed = g.finish(y).with_name("other")
    assert renamed.name == table_of(renamed).name == "other" and renamed.tensors == expected.tensors


def test_builder_errors_name_the_bad_value():
    g = GraphBuilder("t", (4, 4, 3))
    with pytest.raises(ValueError, match="conv/out"):
        g.conv2d(g.input, 8, 5, padding="valid")
    with pytest.raises(ValueError, match="output 'x' is not a tensor handle"):
        g.finish("x")


def _two_convs(g, x, cout, name):
    return g.conv2d(g.conv2d(x, cout, 3, name=f"{name}/a"), cout, 1, name=f"{name}/b")


def _build(record: bool):
    """Three blocks of the same configuration (the 2nd and 3rd replay the 1st when ``record``)."""
    g = GraphBuilder("seg", (8, 8, 4))
    x = g.input
    for i in range(3):
        x = g.segment(("two", 4), x, f"b{i}", _two_convs, 4) if record else _two_convs(g, x, 4, f"b{i}")
    return g.finish(x)


def test_replayed_segments_write_the_same_graph_and_table_as_plain_layers():
    builder_module.clear_caches()
    replayed, plain_build = _build(True), _build(False)
    assert table_of(replayed) == table_of(plain_build) == OpTable.from_graph(plain(plain_build))
    assert replayed == plain_build  # the same tensor and op names, shapes and attributes
    assert [op.name for op in replayed.ops] == ["conv_2d", "conv_2d_1", "conv_2d_2", "conv_2d_3", "conv_2d_4",
                                                "conv_2d_5"]
    assert "b2/b/out" in replayed.tensors


def test_segments_that_read_another_handle_or_name_outside_are_built_each_time():
    def reads_outer(g, x, other, name):
        return g.add(g.conv2d(x, 4, 1, name=f"{name}/c"), other, name=f"{name}/add")

    def named_outside(g, x, name):
        return g.conv2d(x, 4, 1, name="elsewhere")

    builder_module.clear_caches()
    g = GraphBuilder("seg", (8, 8, 4))
    y = g.conv2d(g.input, 4, 1, name="y")
    z = g.segment(("outer",), y, "s0", reads_outer, g.input)  # reads the graph input besides y
    z = g.segment(("outside",), z, "s1", named_outside)
    assert not builder_module._SEGMENTS.get("int8")  # neither was recorded: a replay would have wired or named them wrongly
    graph = g.finish(z)
    assert table_of(graph) == OpTable.from_graph(plain(graph))
    assert table_of(graph).act_lasts[0] == 3  # the input is read by the add in s0 (step 3)
