"""Agreement with gold for ICM and the baselines, by hand on a fake scorer."""

from metalight.methods.icm.agreement import Agreement, agreement, compare_with_baselines, summarize


class SignScorer:
    """Zero-shot says true for even claims; with context it repeats the majority label of the context."""

    def log_odds(self, labels, queries):
        out = []
        for i in queries:
            context = [label for j, label in enumerate(labels) if j != i and label is not None]
            out.append(
                (1.0 if i % 2 == 0 else -1.0) if not context else sum(2 * x - 1 for x in context) + 0.5
            )
        return out


def test_agreement_skips_claims_without_gold_or_label():
    result = agreement([1, 0, None, 1], [1, 1, 0, None])
    assert (result.correct, result.total) == (1, 2) and result.accuracy == 0.5
    assert agreement([1], [None]).total == 0


def test_baselines_by_hand():
    gold = [1, 0, 1, 1]
    result = compare_with_baselines(SignScorer(), [1, 0, 1, 0], gold, seed=0)
    assert result["icm"].correct == 3
    assert result["zero_shot"].correct == 3  # predicts 1, 0, 1, 0
    assert result["gold_demos"].correct == 3  # majority of the other gold labels is 1 for every claim
    assert result["random"].total == 4 and result["random_demos"].total == 4
    assert "gold_demos" not in compare_with_baselines(SignScorer(), [1, 0], [1, None], seed=0)


def test_summarize_pools_claims():
    pooled = summarize([{"icm": Agreement(3, 4)}, {"icm": Agreement(1, 4), "zero_shot": Agreement(2, 4)}])
    assert pooled["icm"].accuracy == 0.5 and pooled["zero_shot"].accuracy == 0.5
