"""Mutual predictability: the score by hand on a fake model, the cached path equals plain batching,
memoisation."""

import math
from types import SimpleNamespace

import pytest
import torch

from metalight.methods.icm.consistency import ExclusiveAnswers
from metalight.methods.icm.predictability import MutualPredictability, label_log_odds
from metalight.methods.icm.search import ICMSearch, SearchSettings
from metalight.prompts import icm_prompt


class CountingLM(torch.nn.Module):
    """Next-token logits: " True" gets (#" True" - #" False" tokens in the row), " False" gets 0,
    others -1e4."""

    def __init__(self, vocab, true_id, false_id):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.vocab, self.true_id, self.false_id = vocab, true_id, false_id

    def forward(self, input_ids, attention_mask, position_ids=None, logits_to_keep=1, **_):
        real = attention_mask.bool()
        d = ((input_ids == self.true_id) & real).sum(-1) - ((input_ids == self.false_id) & real).sum(-1)
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e4)
        logits[:, 0, self.true_id] = d.float()
        logits[:, 0, self.false_id] = 0.0
        return SimpleNamespace(logits=logits)


def hand_score(d):
    p_true = 1 / (1 + math.exp(-d))
    return math.log(p_true + 1e-5) - math.log(1 - p_true + 1e-5)


def test_energy_equals_hand_computation_on_four_claims(tiny):
    _, tokenizer = tiny
    true_id = tokenizer(" True", add_special_tokens=False)["input_ids"][0]
    false_id = tokenizer(" False", add_special_tokens=False)["input_ids"][0]
    model = CountingLM(len(tokenizer), true_id, false_id)
    prompts = [
        icm_prompt("claim", f"Problem {g}?", f"The answer is {a}.")
        for g, a in [("one", 5), ("one", 7), ("two", 3), ("two", 3)]
    ]
    scorer = MutualPredictability(model, tokenizer, prompts, context_cache=False)
    search = ICMSearch(
        ["p1", "p1", "p2", "p2"],
        ["5", "7", "3", "3"],
        ExclusiveAnswers(),
        scorer,
        SearchSettings(alpha=30),
        seed=0,
    )
    result = search.evaluate([1, 1, 1, 0])
    # Claim i sees the other three labels: d = #True - #False in its context.
    # 0: T(1) T(2) F(3) -> 1 ; 1: same -> 1 ; 2: T T F -> 1 ; 3: T T T -> 3
    expected = {0: hand_score(1), 1: hand_score(1), 2: hand_score(1), 3: hand_score(3)}
    assert result.scores == pytest.approx(expected, abs=1e-6)
    mp = (hand_score(1) * 3 - hand_score(3)) / 4
    assert result.mutual_predictability == pytest.approx(mp, abs=1e-6)
    # 5 and 7 both true (contradiction) + the two "3" claims labelled differently (implication)
    assert result.inconsistent == 2
    assert result.value == pytest.approx(30 * mp - 2, abs=1e-5)


def test_label_log_odds_sums_variants():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    value = label_log_odds(logits, [0, 1], [2])
    assert value.item() == pytest.approx(math.log(0.3 + 1e-5) - math.log(0.3 + 1e-5), abs=1e-6)


def claims(n):
    return [
        icm_prompt("claim", f"What is {i} plus {i + 1}?", f"I computed it and got {2 * i + 1 + i % 2}.")
        for i in range(n)
    ]


def test_context_cache_gives_the_plain_scores(tiny):
    model, tokenizer = tiny
    prompts = claims(7)
    labels = [1, 0, None, 1, 1, None, 0]
    cached = MutualPredictability(model, tokenizer, prompts, context_cache=True, rows_per_forward=3)
    plain = MutualPredictability(model, tokenizer, prompts, context_cache=False, rows_per_forward=4)
    queries = list(range(7))
    assert cached.log_odds(labels, queries) == pytest.approx(plain.log_odds(labels, queries), abs=1e-4)
    assert cached.stats.tokens < plain.stats.tokens


def test_rows_equal_the_tokenised_text_prompt(tiny):
    model, tokenizer = tiny
    prompts = claims(3)
    scorer = MutualPredictability(model, tokenizer, prompts)
    text = f"{prompts[0]} True\n\n{prompts[2]} False\n\n{prompts[1]}"
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[:, -1]
    expected = label_log_odds(logits, scorer.true_ids, scorer.false_ids).item()
    assert scorer.log_odds([1, None, 0], [1])[0] == pytest.approx(expected, abs=1e-4)


def test_unchanged_contexts_are_not_recomputed(tiny):
    model, tokenizer = tiny
    scorer = MutualPredictability(model, tokenizer, claims(4))
    first = scorer.log_odds([1, 0, 1, None], [0, 1, 2])
    computed = scorer.stats.computed
    # claim 3's label changes every context; the query for claim 3 itself does not depend on its own label
    assert scorer.log_odds([1, 0, 1, None], [0, 1, 2]) == first
    scorer.log_odds([1, 0, 1, None], [3])
    scorer.log_odds([1, 0, 1, 1], [3])
    assert scorer.stats.computed == computed + 1 and scorer.stats.queries == 8


def test_max_context_tokens_counts_all_but_the_shortest_demo(tiny):
    _, tokenizer = tiny
    scorer = MutualPredictability(torch.nn.Linear(1, 1), tokenizer, claims(3))
    demos = sorted((len(d[1]) for d in scorer.demos), reverse=True)
    assert scorer.max_context_tokens() == sum(demos[1:]) + max(len(q) for q in scorer.queries)


def test_rows_are_grouped_so_padding_stays_small():
    from metalight.methods.icm.predictability import _padding_bounded_groups

    groups = _padding_bounded_groups([100, 700, 200, 110, 690, 105], max_rows=8)
    assert groups == [[0, 5, 3], [2], [4, 1]]
    assert all(len(g) <= 2 for g in _padding_bounded_groups([10] * 5, max_rows=2))


def test_the_demonstration_cache_is_reused_across_labellings(tiny):
    model, tokenizer = tiny
    prompts = claims(6)
    cached = MutualPredictability(model, tokenizer, prompts)
    plain = MutualPredictability(model, tokenizer, prompts, context_cache=False)
    for labels in (
        [1, 0, 1, 1, None, None],
        [1, 0, 1, 0, None, None],
        [1, 1, None, 0, 0, None],
        [1, 0, 0, 0, None, None],
    ):
        assert cached.log_odds(labels, range(5)) == pytest.approx(plain.log_odds(labels, range(5)), abs=1e-4)
    tokens = cached.stats.tokens
    cached.log_odds(
        [1, 0, 0, 0, None, None], [5]
    )  # a new query after the same sequence: only its own tokens run
    assert cached.stats.tokens - tokens == len(cached.queries[5])
