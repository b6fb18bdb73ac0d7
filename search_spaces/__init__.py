"""Search-space families: arch specs, sampling/mutation, PyTorch builders and estimator IR builders."""

from search_spaces.base import ArchSpec, SearchSpace
from search_spaces.mcunet import MCUNetArch, MCUNetSpace
from search_spaces.registry import available, get_space, register
from search_spaces.dscnn import DSCNNArch, DSCNNSpace
from search_spaces.efficientnet_lite import EfficientNetLiteArch, EfficientNetLiteSpace
from search_spaces.mobilenetv1 import MobileNetV1Arch, MobileNetV1Space
from search_spaces.mobilenetv3 import MobileNetV3Arch, MobileNetV3Space

#: Arch spec classes by the space name their files carry.
ARCH_CLASSES = {cls.space: cls for cls in (MCUNetArch, MobileNetV3Arch, EfficientNetLiteArch, DSCNNArch,
                                           MobileNetV1Arch)}


def arch_summary(d: dict) -> str:
    """:meth:`ArchSpec.summary` of an arch as a dict (results.json, trial attributes), by the space it names."""
    return ARCH_CLASSES[d["space"]].from_dict(d).summary()


register("mcunet", MCUNetSpace.from_config)
register("mobilenetv3", MobileNetV3Space.from_config)
register("efficientnet_lite", EfficientNetLiteSpace.from_config)
register("dscnn", DSCNNSpace.from_config)
register("mobilenetv1", MobileNetV1Space.from_config)

__all__ = ["ARCH_CLASSES", "arch_summary", "ArchSpec", "SearchSpace", "MCUNetArch", "MCUNetSpace", "available", "get_space", "register"]
__all__ += ["DSCNNArch", "DSCNNSpace", "EfficientNetLiteArch", "EfficientNetLiteSpace", "MobileNetV1Arch",
            "MobileNetV1Space", "MobileNetV3Arch", "MobileNetV3Space"]
