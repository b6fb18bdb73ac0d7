"""Search-space families: arch specs, sampling/mutation, PyTorch builders and estimator IR builders."""

from search_spaces.base import ArchSpec, SearchSpace
from search_spaces.mcunet import MCUNetArch, MCUNetSpace
from search_spaces.registry import available, get_space, register
from search_spaces.dscnn import DSCNNArch, DSCNNSpace
from search_spaces.efficientnet_lite import EfficientNetLiteArch, EfficientNetLiteSpace
from search_spaces.mobilenetv1 import MobileNetV1Arch, MobileNetV1Space
from search_spaces.mobilenetv3 import MobileNetV3Arch, MobileNetV3Space

register("mcunet", MCUNetSpace.from_config)
register("mobilenetv3", MobileNetV3Space.from_config)
register("efficientnet_lite", EfficientNetLiteSpace.from_config)
register("dscnn", DSCNNSpace.from_config)
register("mobilenetv1", MobileNetV1Space.from_config)

__all__ = ["ArchSpec", "SearchSpace", "MCUNetArch", "MCUNetSpace", "available", "get_space", "register"]
__all__ += ["DSCNNArch", "DSCNNSpace", "EfficientNetLiteArch", "EfficientNetLiteSpace", "MobileNetV1Arch",
            "MobileNetV1Space", "MobileNetV3Arch", "MobileNetV3Space"]
