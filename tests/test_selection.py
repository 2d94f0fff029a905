"""The selection rule (`fewclip.heads.selection`) on hand-made validation outcomes."""

import numpy as np
import pytest

from fewclip.heads import choose, compare


def outcomes(wins, losses, both_right=10, both_wrong=5):
    """(candidate, prior) 0/1 outcomes with that many disagreements each way."""
    cand = [1] * wins + [0] * losses + [1] * both_right + [0] * both_wrong
    prior = [0] * wins + [1] * losses + [1] * both_right + [0] * both_wrong
    return np.array(cand, float), np.array(prior, float)


@pytest.mark.parametrize("wins, losses, z, leaves_prior", [
    (0, 0, 1.0, False),   # no disagreement: keep the prior
    (1, 0, 1.0, False),   # one image: w - l - 1 = 0, not > 1
    (2, 0, 1.0, False),   # 1 > sqrt(2)? no
    (3, 0, 1.0, True),    # 2 > sqrt(3)
    (5, 3, 1.0, False),   # 1 > sqrt(8)? no
    (30, 15, 1.0, True),  # 14 > sqrt(45) = 6.7
    (30, 15, 2.5, False),  # 14 > 2.5 * 6.7? no
    (13, 2, 2.5, True),   # 10 > 2.5 * sqrt(15) = 9.7
    (12, 2, 2.5, False),  # 9 > 2.5 * sqrt(14) = 9.35? no
    (0, 4, 1.0, False),   # worse than the prior: keep the prior
])
def test_the_best_candidate_must_beat_the_prior_by_z_paired_standard_errors(wins, losses, z, leaves_prior):
    cand, prior = outcomes(wins, losses)
    correct = {"prior": prior, "best": cand}
    choice = compare(correct, "prior", z=z)
    expected = "best" if leaves_prior else "prior"
    assert choose(correct, "prior", z=z) == choice.chosen == expected
    if cand.mean() > prior.mean():
        assert (choice.best, choice.wins, choice.losses) == ("best", wins, losses)
        assert choice.z == pytest.approx((wins - losses - 1) / np.sqrt(wins + losses))


def test_only_the_best_candidate_is_compared_and_ties_go_to_the_first():
    prior = np.array([1, 1, 0, 0, 0, 0, 0, 0], float)
    good = np.array([1, 1, 1, 1, 1, 1, 0, 0], float)     # +4 over the prior: z = 3/2 > 1
    same = good.copy()                                    # ties with good, listed after it
    middling = np.array([1, 1, 1, 1, 0, 0, 0, 0], float)  # +2 only
    assert choose({"prior": prior, "middling": middling, "good": good, "same": same}, "prior") == "good"
    assert choose({"prior": prior, "middling": middling}, "prior") == "prior"  # 1 > sqrt(2)? no


def test_the_prior_must_be_a_candidate():
    with pytest.raises(KeyError, match="prior candidate 'zero-shot'"):
        choose({"a": np.ones(3)}, "zero-shot")
