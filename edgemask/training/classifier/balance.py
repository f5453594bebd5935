"""Set the decision point on validation data: shift the unmasked logit so the larger of FAR and FRR on the
validation crops is as small as it can be. A fine-tune whose class weights pushed the decision too far
one way is re-centred without training again, and the shift lives in the model's last bias, so every
exported file and the runtime's argmax carry it. Never fitted on the data a model is judged on.
"""

from __future__ import annotations

import numpy as np

from edgemask.labels import LABELS

MASKED, BARE = LABELS.index("with_mask"), LABELS.index("without_mask")


def minimax_shift(margins: np.ndarray, labels: np.ndarray) -> float:
    """The ``shift`` minimizing max(FAR, FRR) when a face is called masked iff ``margin > shift``
    (``margin`` = masked logit minus unmasked logit); ties go to the shift closest to 0."""
    margins = np.asarray(margins, np.float64)
    labels = np.asarray(labels)
    bare, masked = margins[labels == BARE], margins[labels == MASKED]
    if len(bare) == 0 or len(masked) == 0:
        return 0.0
    points = np.unique(margins)
    candidates = np.concatenate([[0.0, points[0] - 1.0], (points[1:] + points[:-1]) / 2, [points[-1] + 1.0]])
    far = (bare[None, :] > candidates[:, None]).mean(axis=1)
    frr = (masked[None, :] <= candidates[:, None]).mean(axis=1)
    worst = np.maximum(far, frr)
    best = np.flatnonzero(worst == worst.min())
    return float(candidates[best[np.argmin(np.abs(candidates[best]))]])


def balance_on(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 64) -> float:
    """Shift ``model``'s unmasked output bias by the minimax shift on ``images``; returns the shift."""
    probs = np.asarray(model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0), np.float64)
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    shift = minimax_shift(logp[:, MASKED] - logp[:, BARE], labels)
    layer = model.get_layer("mask_probs")
    kernel, bias = layer.get_weights()
    bias[BARE] += shift
    layer.set_weights([kernel, bias])
    return shift
