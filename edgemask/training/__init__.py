"""Training and evaluation of the mask classifier (needs the ``train`` extra: TensorFlow + Keras).

Modules: ``data`` (folders -> arrays, no TF), ``augment`` (random distortions incl. low resolution),
``model`` (MobileNetV2 + head), ``fit`` (the training run), ``evaluate`` (metrics for any model file),
``card`` (the model card), ``cli`` (``edgemask-train`` / ``edgemask-eval``).
"""
