"""Each space says what identifies its archs (``ArchSpec.summary``): the console's trial lines use it."""

from __future__ import annotations

import logging
import random

import pytest
import yaml

from search_spaces import ARCH_CLASSES, ArchSpec, arch_summary, available, get_space
from tinynas.paths import CONF_DIR


def _space(name):
    ss = yaml.safe_load((CONF_DIR / "search_space" / f"{name}.yaml").read_text())
    return get_space(ss["name"], ss.get("options"))


def _archs(name, n=20):
    space = _space(name)
    return [space.smallest(), *(space.random(random.Random(i)) for i in range(n))]


def _identifying(arch) -> list[str]:
    """The values each family's summary must show, read off the arch's fields here."""
    if arch.space == "dscnn":
        h, w = arch.input_size
        return [f"{h}x{w}", str(arch.first_channels), "-".join(str(c) for s in arch.channels for c in s)]
    values = [str(arch.resolution), str(arch.width)]
    if hasattr(arch, "depths"):
        values.append("-".join(map(str, arch.depths)))
    else:
        values.append(str(arch.depth))
    return values


def test_every_space_has_its_arch_class():
    assert sorted(ARCH_CLASSES) == available()


@pytest.mark.parametrize("name", available())
def test_summary_names_what_identifies_the_arch(name):
    cls = ARCH_CLASSES[name]
    assert cls.summary is not ArchSpec.summary  # the family says, not the generic fallback
    for arch in _archs(name):
        s = arch.summary()
        assert " - " not in s and "None" not in s and s == arch_summary(arch.to_dict())
        for value in _identifying(arch):
            assert value in s, (value, s)


@pytest.mark.parametrize("name", available())
def test_summaries_tell_archs_apart_where_their_fields_differ(name):
    archs = _archs(name, 40)
    by_summary = {}
    for arch in archs:
        by_summary.setdefault(arch.summary(), set()).add(tuple(_identifying(arch)))
    assert all(len(v) == 1 for v in by_summary.values())
    assert len(by_summary) > 1


def test_trial_line_shows_the_space_summary(caplog):
    import optuna

    from tinynas.commands.search import trial_line

    arch = _space("dscnn").smallest()
    attrs = {"arch": arch.to_dict(), "arch_hash": arch.hash, "sram_bytes": 1024, "flash_bytes": 2048,
             "latency_ms": 1.0, "accuracy": 0.5, "seconds": 1.0}
    with caplog.at_level(logging.INFO):
        trial_line(3, optuna.create_study())(0, attrs)
    line = caplog.records[-1].getMessage()
    assert arch.summary() in line and "res -" not in line and "w -" not in line
