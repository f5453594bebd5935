"""edgemask: find faces, tell whether each wears a mask, fast on small devices.

The package in three stages and a core:

- ``edgemask.core``: the runtime core (numpy, OpenCV, LiteRT or ONNX Runtime): the model loader and
  formats table, one detector class per family, the classifier, the pipeline, pure pre/post-processing;
- ``edgemask.app``: ``edgemask-run``: sources, cameras, outputs;
- ``edgemask.training`` (``edgemask-train``, ``edgemask-eval``) and ``edgemask.export``
  (``edgemask-export``): the offline stages, which need TensorFlow (extras ``train`` and ``export``);
- ``edgemask.evaluation``: metrics, scene sets, peers and timing for the benchmarks.

Importing ``edgemask`` or anything it uses at run time never imports TensorFlow.
"""

__version__ = "0.3.0"
