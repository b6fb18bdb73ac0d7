"""The target in the loop: TensorFlow Lite Micro + CMSIS-NN built for a Cortex-M core and run in QEMU.

The only part of tinynas that runs cross compilers and emulators; the estimators never import it.
:func:`tinynas.target.firmware.run_firmware` builds a model's firmware (TFLM's own Makefile, only the
kernels the model uses, cached under ``$TINYNAS_CACHE``), runs one inference in ``qemu-system-arm`` with an
instruction-counting TCG plugin and returns the report.
"""

from tinynas.target.sources import TargetUnavailable  # noqa: F401
