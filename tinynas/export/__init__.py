"""Export stage: trained PyTorch model → ONNX → onnx2tf full-int8 TFLite → LiteRT/TFLM-verified firmware files.

``export_model`` is the front door; the submodules are its steps (``onnx_export``, ``convert``, ``verify``,
``firmware``). Names load lazily so the onnx2tf child process (``python -m tinynas.export.convert``) does
not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tinynas.export.errors import ExportError

if TYPE_CHECKING:
    from tinynas.export.pipeline import ExportResult, export_model

__all__ = ["ExportError", "ExportResult", "export_model"]


def __getattr__(name: str):
    if name in ("ExportResult", "export_model"):
        return getattr(importlib.import_module("tinynas.export.pipeline"), name)
    raise AttributeError(f"module 'tinynas.export' has no attribute {name!r}")
