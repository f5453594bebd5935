"""Classifier quality numbers in the project's terms: confusion, accuracy, per-class scores, FAR and FRR.

Pure numpy so the runtime, benchmarks and tests can use it without TensorFlow. Class 0 is ``with_mask``
(see :data:`edgemask.labels.LABELS`). For a mask checker the two errors differ in cost, hence named rates:

- FRR (false reject rate): masked faces called unmasked / masked faces.
- FAR (false accept rate): unmasked faces called masked / unmasked faces.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from edgemask.labels import LABELS

MASKED, UNMASKED = 0, 1


def confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(LABELS)
) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} holds labels outside 0..{n_classes - 1}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _ratio(num: float, den: float) -> float:
    """num / den, or NaN when there is nothing to divide (no samples of that kind)."""
    return float(num) / float(den) if den else float("nan")


def accuracy(cm: np.ndarray) -> float:
    return _ratio(np.trace(cm), cm.sum())


def per_class_scores(cm: np.ndarray, labels: Sequence[str] = LABELS) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each class of a confusion matrix."""
    scores: dict[str, dict[str, float]] = {}
    for i, name in enumerate(labels):
        tp = cm[i, i]
        precision = _ratio(tp, cm[:, i].sum())
        recall = _ratio(tp, cm[i, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall) if precision == precision else float("nan")
        scores[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(cm[i, :].sum())}
    return scores


def false_reject_rate(cm: np.ndarray) -> float:
    """Masked faces called unmasked, over masked faces."""
    return _ratio(cm[MASKED, UNMASKED], cm[MASKED, :].sum())


def false_accept_rate(cm: np.ndarray) -> float:
    """Unmasked faces called masked, over unmasked faces."""
    return _ratio(cm[UNMASKED, MASKED], cm[UNMASKED, :].sum())


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict:
    """Everything in one JSON-ready dict: accuracy, far, frr, confusion (nested lists), per_class, n."""
    cm = confusion_matrix(y_true, y_pred)
    return {
        "n": int(cm.sum()),
        "accuracy": accuracy(cm),
        "far": false_accept_rate(cm),
        "frr": false_reject_rate(cm),
        "confusion": cm.tolist(),
        "per_class": per_class_scores(cm),
    }


def format_confusion(cm: np.ndarray, labels: Sequence[str] = LABELS) -> str:
    """A plain-text table: one row per true class, one column per predicted class."""
    cm = np.asarray(cm)
    width = max(len(x) for x in labels) + 2
    head = "true \\ predicted".ljust(width + 6) + "".join(name.rjust(width) for name in labels)
    rows = [
        (name.ljust(width + 6) + "".join(str(v).rjust(width) for v in cm[i])) for i, name in enumerate(labels)
    ]
    return "\n".join([head, *rows])


def format_report(metrics: dict, labels: Sequence[str] = LABELS) -> str:
    """A classification report like scikit-learn's, plus accuracy, FAR and FRR."""
    lines = [f"{'':16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for name in labels:
        s = metrics["per_class"][name]
        lines.append(f"{name:16}{s['precision']:10.4f}{s['recall']:10.4f}{s['f1']:10.4f}{s['support']:10d}")
    lines.append("")
    lines.append(
        f"accuracy {metrics['accuracy']:.4f}   FAR {metrics['far']:.4f}   FRR {metrics['frr']:.4f}   "
        f"(n = {metrics['n']})"
    )
    return "\n".join(lines)


def save_confusion_png(
    cm: np.ndarray, path: str | os.PathLike, labels: Sequence[str] = LABELS, title: str = "Confusion matrix"
) -> None:
    """Draw counts and row-normalized shares; matplotlib is imported here only (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=120)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{share[i, j]:.1%}", ha="center", va="center", color=color)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
