"""The validation decision point: the chosen shift minimizes the larger error rate, and it moves into the
model's bias so argmax follows it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgemask.training.classifier.balance import BARE, MASKED, minimax_shift


def _worst(margins, labels, shift):
    margins, labels = np.asarray(margins), np.asarray(labels)
    far = (margins[labels == BARE] > shift).mean()
    frr = (margins[labels == MASKED] <= shift).mean()
    return max(far, frr)


def test_hand_computed_shift():
    # masked margins 1, 2, 3; bare margins -1, 1.5: at shift 0 one bare face (1.5) is called masked (FAR
    # 1/2). Any shift in [1.5, 2) costs one masked face (FRR 1/3) and no bare one: the minimax, nearest 0.
    margins = [1.0, 2.0, 3.0, -1.0, 1.5]
    labels = [MASKED, MASKED, MASKED, BARE, BARE]
    shift = minimax_shift(margins, labels)
    assert 1.5 <= shift < 2.0
    assert _worst(margins, labels, shift) == pytest.approx(1 / 3)
    assert minimax_shift([2.0, -2.0], [MASKED, BARE]) == 0.0  # already perfect: no shift


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-10, 10, allow_nan=False), st.sampled_from([MASKED, BARE])), min_size=2),
    st.floats(-12, 12, allow_nan=False),
)
def test_no_other_shift_does_better(samples, other):
    margins = [m for m, _ in samples]
    labels = [y for _, y in samples]
    if len(set(labels)) < 2:
        assert minimax_shift(margins, labels) == 0.0
        return
    shift = minimax_shift(margins, labels)
    assert _worst(margins, labels, shift) <= _worst(margins, labels, other) + 1e-12
    assert _worst(margins, labels, shift) <= _worst(margins, labels, 0.0) + 1e-12


def test_balance_moves_the_bias_so_argmax_follows():
    pytest.importorskip("tensorflow")
    import keras

    from edgemask.training.classifier.balance import balance_on

    inputs = keras.Input((1,))
    outputs = keras.layers.Dense(2, activation="softmax", name="mask_probs")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("mask_probs").set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    # margin = 2x: every face with x > 0 is called masked; the bare faces sit at x = 0.5 and 1
    images = np.array([[2.0], [3.0], [0.5], [1.0]], np.float32)
    labels = np.array([MASKED, MASKED, BARE, BARE])
    shift = balance_on(model, images, labels)
    assert 2.0 <= shift < 4.0
    assert np.asarray(model(images)).argmax(axis=1).tolist() == labels.tolist()
