"""The face detector's training stage: YuNet fine-tuned on VOC scenes so it finds masked faces.

``data`` (scenes -> augmented padded batches), ``augment`` (crops, flips, photometric changes on pixels,
boxes and landmarks together), ``assign`` (which grid cells learn which face, numpy), ``loss`` (the
heads' losses), ``fit`` (the resumable run).
"""
