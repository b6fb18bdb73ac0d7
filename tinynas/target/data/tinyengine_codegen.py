"""Run TinyEngine's code generator on one .tflite; writes ./codegen/{Include,Source} in the working directory.

Usage: python tinyengine_codegen.py MODEL.tflite   (with TinyEngine's checkout on PYTHONPATH)

Runs in a child process so TinyEngine's ``code_generator`` package never enters tinynas's own. One adaptation:
TinyEngine's parser expects a global average pool as TFLite's AVERAGE_POOL_2D (or as two one-axis MEANs, which it
merges); a single MEAN over both spatial axes, as onnx2tf writes it, is handed to it as that AVERAGE_POOL_2D
(TinyEngine's ``avg_pooling`` ignores quantization either way). A model TinyEngine's kernels would run wrongly is
refused (exit 1, one ``error:`` line). Prints the generator's activation buffer bytes.
"""

import sys

from code_generator import CodegenUtilTFlite, TfliteConvertor
from code_generator.converters.tflite_parser.utils import get_input_tensors, get_np_from_wrapper, get_output_tensors
from code_generator.converters.tflite_parser.utils import getOpCodeStr, getTensorTypeStr
from code_generator.operators import avgpool2d


def spatial_mean(op, model):
    """A MEAN over axes (1, 2) of an NHWC tensor as TinyEngine's AvgPool2d, else None."""
    inputs = get_input_tensors(op, model)
    axes = sorted(int(a) % 4 for a in get_np_from_wrapper(inputs[1]).ravel())
    shape = inputs[0].tensor.ShapeAsNumpy()
    if len(shape) != 4 or axes != [1, 2]:
        return None
    _, h, w, c = (int(v) for v in shape)
    out = get_output_tensors(op, model)[0]
    return avgpool2d.AvgPool2d({
        "op": "AVERAGE_POOL_2D", "filter_h": h, "filter_w": w, "stride_h": 1, "stride_w": 1, "pad_h": 0,
        "pad_w": 0, "input_idx": inputs[0].tensor_idx, "output_idx": out.tensor_idx, "input_h": h, "input_w": w,
        "input_c": c, "input_dim": 3, "output_dim": 3, "output_h": 1, "output_w": 1, "output_c": c,
        "dtypte": getTensorTypeStr(inputs[0].tensor.Type())})


class Convertor(TfliteConvertor.TfliteConvertor):
    def parseOperatorInfo(self):
        super().parseOperatorInfo()
        check(self.layer)

    def _handleOperator(self, op):
        if getOpCodeStr(op, self.model) == "MEAN":
            pool = spatial_mean(op, self.model)
            if pool is not None:
                self.layer.append(pool)
                return
        super()._handleOperator(op)


def check(layers):
    """Refuse what TinyEngine's kernels would run wrongly: its 3×3 stride-2 conv kernel assumes 3 input channels."""
    for i, layer in enumerate(layers):
        p = layer.params
        if p["op"] == "CONV_2D" and p.get("kernel_h") == 3 and p.get("stride_h") == 2 and p.get("input_c") != 3:
            sys.exit(f"error: TinyEngine's 3x3 stride-2 conv kernel takes 3 input channels; layer {i} has "
                     f"{p['input_c']}")


if __name__ == "__main__":
    CodegenUtilTFlite.TfliteConvertor = Convertor
    print("tinyengine:activation_bytes", CodegenUtilTFlite.GenerateSourceFilesFromTFlite(sys.argv[1]))
