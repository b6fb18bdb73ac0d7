"""Search-space families: arch specs, sampling/mutation, PyTorch builders and estimator IR builders."""

from search_spaces.base import ArchSpec, SearchSpace
from search_spaces.mcunet import MCUNetArch, MCUNetSpace
from search_spaces.registry import available, get_space, register

register("mcunet", MCUNetSpace.from_config)

__all__ = ["ArchSpec", "SearchSpace", "MCUNetArch", "MCUNetSpace", "available", "get_space", "register"]
