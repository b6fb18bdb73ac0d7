"""An arch file names its space: every command that takes ``arch=`` reads the space from the file; only an
explicit ``search_space=`` that disagrees with the file is an error."""

from __future__ import annotations

import json
import random

import pytest
import yaml
from hydra import compose, initialize_config_dir

from estimators.macs import total_macs
from search_spaces import available, get_space
from tinynas.commands.common import load_space
from tinynas.paths import CONF_DIR

SPACES = available()
COMMANDS = ["estimate", "export", "train", "distill"]


def _space(name):
    ss = yaml.safe_load((CONF_DIR / "search_space" / f"{name}.yaml").read_text())
    return get_space(ss["name"], ss.get("options"))


@pytest.fixture(scope="module")
def arch_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archs")
    files = {}
    for name in SPACES:
        arch = _space(name).random(random.Random(1))
        files[name] = folder / f"{name}.json"
        files[name].write_text(arch.to_json())
    return files


def test_every_space_has_a_config():
    assert {p.stem for p in (CONF_DIR / "search_space").glob("*.yaml")} >= set(SPACES)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", SPACES)
def test_commands_take_the_space_from_the_file(arch_files, name, command):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=command, overrides=[f"arch={arch_files[name]}"])
    space = load_space(cfg)
    assert space.name == name == json.loads(arch_files[name].read_text())["space"]
    space.decode(arch_files[name].read_text())  # the file's arch is a point of that space


@pytest.mark.parametrize("name", SPACES)
def test_estimate_runs_on_every_space_without_search_space(arch_files, name, tinynas_cli):
    r = tinynas_cli("estimate", f"arch={arch_files[name]}", "format=json")
    assert r.returncode == 0, r.stderr
    space = _space(name)
    arch = space.decode(arch_files[name].read_text())
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        data = compose(config_name="estimate").dataset
    expected = space.to_ir(arch, int(data.in_channels), int(data.num_classes))
    assert json.loads(r.stdout)["macs"] == total_macs(expected)


def test_explicit_search_space_that_disagrees_is_one_clear_error(arch_files, tinynas_cli):
    r = tinynas_cli("estimate", f"arch={arch_files['dscnn']}", "search_space=mcunet")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "is for search space 'dscnn'" in r.stderr and "search_space=mcunet" in r.stderr


def test_explicit_search_space_that_agrees_is_fine(arch_files, tinynas_cli):
    r = tinynas_cli("estimate", f"arch={arch_files['dscnn']}", "search_space=dscnn", "format=json")
    assert r.returncode == 0, r.stderr
