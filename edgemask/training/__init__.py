"""Training stages (needs the ``train`` extra: TensorFlow + Keras), one package per model.

``classifier`` trains the mask classifier, ``detector`` fine-tunes YuNet on VOC scenes. Shared here:
``data`` (folders -> arrays, no TF), ``evaluate`` (metrics for any model file), ``card`` (the model card),
``plots`` (training curves), ``cli`` (``edgemask-train classifier|detector`` / ``edgemask-eval``).
"""
