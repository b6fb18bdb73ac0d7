"""The one error the export stage raises."""

from tinynas.errors import TinyNASError


class ExportError(TinyNASError):
    """The model could not be exported or verified; the message names the layer or file and what was expected."""
