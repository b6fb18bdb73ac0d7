"""Every command's config and every config-group option composes (Hydra compose API)."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tinynas.paths import CONF_DIR

COMMANDS = ["search", "estimate", "sample", "train", "distill", "export", "report", "rank_space", "firmware"]
GROUPS = ["dataset", "search_space", "mcu", "search", "evaluator", "train", "distill", "export", "logger", "experiment"]


def compose_cfg(name, overrides=()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_composes(command):
    cfg = OmegaConf.to_container(compose_cfg(command), resolve=True)
    if command != "report":
        assert {"dataset", "mcu", "search_space", "runtime", "device"} <= set(cfg)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_option_composes(group):
    for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
        cfg = compose_cfg("search", [f"{group}={option}"])
        container = OmegaConf.to_container(cfg, resolve=True)
        assert container[group.replace("experiment", "name")]
        if group == "mcu":
            assert cfg.mcu.name == option


def test_default_experiment_is_mnist_on_stm32f446():
    cfg = compose_cfg("search")
    assert cfg.name == "mnist" and cfg.mcu.name == "stm32f446" and cfg.dataset.name == "mnist"
    assert cfg.study_name == "mnist-stm32f446-mcunet"
    assert list(cfg.search_space.options.resolutions) == [16, 20, 24]


def test_search_space_yaml_matches_the_space_fields():
    from search_spaces import available, get_space

    for path in (CONF_DIR / "search_space").glob("*.yaml"):
        cfg = compose_cfg("search", [f"search_space={path.stem}"])
        assert cfg.search_space.name in available()
        space = get_space(cfg.search_space.name, OmegaConf.to_container(cfg.search_space.options))
        assert path.stem.startswith(space.name)


def test_threads_sets_torchs_intra_op_threads_and_refuses_nonsense():
    import torch

    from tinynas.commands.common import set_threads
    from tinynas.errors import ConfigError

    assert compose_cfg("search").threads is None and compose_cfg("search", ["threads=1"]).threads == 1
    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)
        assert torch.get_num_threads() == 1  # null leaves it as it is
        for bad in (0, -2, "two", True):
            with pytest.raises(ConfigError, match=r"threads=.* must be a positive integer or null"):
                set_threads(bad)
    finally:
        torch.set_num_threads(before)
