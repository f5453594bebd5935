"""The mask classifier's training stage: ``augment`` (random distortions incl. low resolution), ``model``
(MobileNetV2 + head), ``balance``, ``scenes`` (crops cut from VOC scenes as the runtime cuts them),
``quantize`` (quant-aware fine-tuning) and ``fit`` (the training run)."""
