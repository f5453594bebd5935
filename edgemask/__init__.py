"""edgemask: find faces, tell whether each wears a mask, fast on small devices.

The package is the *runtime*: numpy + OpenCV + LiteRT or ONNX Runtime. It never imports TensorFlow;
training (`edgemask.training`) and export (the top-level `export` package) are separate and need extras.
"""

__version__ = "0.1.0"

LABELS = ("with_mask", "without_mask")
"""Classifier output order. Index 0 is a masked face."""
