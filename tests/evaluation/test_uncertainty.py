"""Predictive entropy and the summary of stochastic passes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from agfnet.evaluation.uncertainty import predictive_entropy, summarize_passes


def test_entropy_matches_scipy_and_its_extremes() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=20)
    np.testing.assert_allclose(predictive_entropy(probs), scipy_entropy(probs, axis=1))
    assert predictive_entropy(np.full((1, 4), 0.25))[0] == pytest.approx(np.log(4))
    assert predictive_entropy(np.array([[0.0, 1.0, 0.0]]))[0] == 0.0


def test_passes_that_disagree_have_mutual_information() -> None:
    # Two confident passes that disagree: the mean is uniform (entropy log 2), each pass
    # has entropy 0, so all of the uncertainty is epistemic.
    stack = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    s = summarize_passes(stack)
    np.testing.assert_allclose(s.mean, [[0.5, 0.5]])
    np.testing.assert_allclose(s.std, [[0.5, 0.5]])
    assert s.entropy[0] == pytest.approx(np.log(2))
    assert s.expected_entropy[0] == pytest.approx(0.0)
    assert s.mutual_information[0] == pytest.approx(np.log(2))


def test_identical_passes_have_no_spread() -> None:
    probs = np.random.default_rng(1).dirichlet(np.ones(3), size=6)
    s = summarize_passes([probs, probs, probs])
    np.testing.assert_allclose(s.mean, probs)
    np.testing.assert_allclose(s.std, 0.0, atol=1e-12)
    np.testing.assert_allclose(s.mutual_information, 0.0, atol=1e-12)
    np.testing.assert_allclose(s.entropy, s.expected_entropy)


@pytest.mark.parametrize(
    "stack", [np.zeros((4, 3)), np.zeros((0, 2, 3)), np.full((1, 1, 2), np.nan)]
)
def test_bad_stacks_raise(stack: np.ndarray) -> None:
    with pytest.raises(ValueError, match="prob_stack"):
        summarize_passes(stack)
