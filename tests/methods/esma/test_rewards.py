"""ESMA's rewards on hand-built cases, the fitness mean, and the boundary checks a member's rewards pass."""

import math
from types import SimpleNamespace

import pytest
import torch

from metalight.errors import ConfigError, RewardError
from metalight.methods.esma.rewards import (
    ESMA_REWARDS,
    alignment_reward,
    correctness_reward,
    esma_reward,
    member_fitness,
    result_columns,
    reward_summary,
)
from metalight.methods.rewards import check_columns, resolve_reward

# (correct, said_yes) for the four cases: correct-yes, wrong-no, correct-no, wrong-yes.
CASES = [
    SimpleNamespace(correct=c, said_yes=y, p_yes=float("nan"), direct_prompt="q?", direct_answer="a")
    for c, y in [(True, True), (False, False), (True, False), (False, True)]
]
NO_TEXT = [""] * len(CASES)
COLUMNS = {k: v for k, v in result_columns(CASES).items() if k != "p_yes"}  # what the binary rewards read


def fitness(name, reward, results):
    """A member's fitness on questions that the rewards do not read (the records are the results here)."""
    return member_fitness(name, reward, results, results)


def test_esma_reward_table():
    assert esma_reward(NO_TEXT, NO_TEXT, CASES, **COLUMNS).tolist() == [2.0, 1.0, 1.0, 0.0]


def test_component_rewards():
    assert correctness_reward(NO_TEXT, NO_TEXT, CASES, correct=COLUMNS["correct"]).tolist() == [
        1.0,
        0.0,
        1.0,
        0.0,
    ]
    assert alignment_reward(NO_TEXT, NO_TEXT, CASES, **COLUMNS).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_fitness_is_the_mean_and_ignores_not_applicable_items():
    assert fitness("esma", esma_reward, CASES) == pytest.approx(1.0)  # (2 + 1 + 1 + 0) / 4
    assert fitness("f", lambda p, c, r: torch.tensor([1.0, float("nan"), 3.0]), CASES[:3]) == pytest.approx(
        2.0
    )
    assert torch.isnan(torch.tensor(fitness("f", lambda p, c, r: torch.full((2,), float("nan")), CASES[:2])))


def test_a_reward_gets_only_the_columns_it_names_and_a_missing_one_is_refused():
    seen = {}

    def needs_p_yes(prompts, completions, records, *, p_yes):
        seen["p_yes"] = p_yes.tolist()
        return torch.zeros(len(records))

    def takes_all(prompts, completions, records, **columns):
        seen["all"] = sorted(columns)
        return torch.zeros(len(records))

    cases = [SimpleNamespace(**{**vars(c), "p_yes": 0.5}) for c in CASES[:2]]
    fitness("p", needs_p_yes, cases)
    fitness("all", takes_all, cases)
    assert seen == {"p_yes": [0.5, 0.5], "all": ["correct", "p_yes", "said_yes"]}
    check_columns("esma", esma_reward, result_columns([]))  # ESMA provides what its rewards read
    with pytest.raises(
        ConfigError,
        match=r"^reward 'esma' reads the columns \['correct', 'said_yes'\], but this "
        r"method provides none",
    ):
        check_columns("esma", esma_reward, ())


def test_fitness_refuses_a_wrong_count_and_infinity_naming_the_reward():
    with pytest.raises(RewardError, match=r"^reward 'short' returned shape \(3,\); .* shape \(4,\)$"):
        fitness("short", lambda p, c, r: torch.ones(3), P_CASES[:4])
    with pytest.raises(RewardError, match=r"^reward 'big' returned ±inf for completions \[0\]"):
        fitness("big", lambda p, c, r: torch.tensor([float("inf"), 1.0]), P_CASES[:2])


def test_rewards_see_the_direct_prompt_and_answer():
    seen = {}

    def spy(prompts, completions, records):
        seen.update(prompts=list(prompts), completions=list(completions))
        return torch.zeros(len(records))

    fitness("spy", spy, P_CASES[:2])
    assert seen == {"prompts": ["q?", "q?"], "completions": ["a", "a"]}


def test_summary_reports_each_component():
    assert reward_summary(CASES) == {"correctness": 0.5, "alignment": 0.5, "yes_ratio": 0.5}


def test_esma_rewards_resolve_by_name_in_its_table_and_by_dotted_path():
    assert resolve_reward("esma", ESMA_REWARDS) is esma_reward
    assert resolve_reward("alias_match", ESMA_REWARDS).__name__ == "alias_match"  # every method's rewards too
    assert resolve_reward("metalight.methods.esma.rewards.alignment_reward") is alignment_reward
    with pytest.raises(ConfigError, match="unknown reward 'esma'"):
        resolve_reward("esma")  # not a shared name: GRPO does not know it


# (correct, P(yes)) for the continuous rewards: certain and right, certain and wrong, unsure, and no P(yes).
P_CASES = [
    SimpleNamespace(correct=c, said_yes=p > 0.5, p_yes=p, direct_prompt="q?", direct_answer="a")
    for c, p in [
        (True, 1.0),
        (False, 1.0),
        (True, 0.0),
        (False, 0.0),
        (True, 0.8),
        (False, 0.3),
        (True, float("nan")),
    ]
]
P_TEXT = [""] * len(P_CASES)
P_COLUMNS = result_columns(P_CASES)


def by_name(name):
    """ESMA's reward ``name`` on the continuous cases."""
    reward = resolve_reward(name, ESMA_REWARDS)
    return reward(P_TEXT, P_TEXT, P_CASES, correct=P_COLUMNS["correct"], p_yes=P_COLUMNS["p_yes"])


def test_brier_alignment_by_hand():
    # 1 - (p - c)^2: 1, 0, 0, 1, 1 - 0.04, 1 - 0.09, NaN
    got = by_name("brier_alignment")
    torch.testing.assert_close(got[:6], torch.tensor([1.0, 0.0, 0.0, 1.0, 0.96, 0.91]))
    assert torch.isnan(got[6])


def test_log_likelihood_alignment_by_hand_is_finite_at_certainty():
    got = by_name("log_likelihood_alignment")
    clipped = math.log(1e-6)  # p = 0 or 1 against the other outcome: log(1e-6), not -inf
    expected = torch.tensor(
        [math.log(1 - 1e-6), clipped, clipped, math.log(1 - 1e-6), math.log(0.8), math.log(0.7)]
    )
    torch.testing.assert_close(got[:6], expected)
    assert torch.isnan(got[6])


def test_esma_brier_is_correctness_plus_brier_alignment():
    got = by_name("esma_brier")
    torch.testing.assert_close(got[:6], torch.tensor([2.0, 0.0, 1.0, 1.0, 1.96, 0.91]))
    assert torch.isnan(got[6])


def test_continuous_rewards_separate_members_with_the_same_yes_no_answers():
    sure = [
        SimpleNamespace(correct=True, said_yes=True, p_yes=0.9),
        SimpleNamespace(correct=False, said_yes=False, p_yes=0.1),
    ]
    unsure = [
        SimpleNamespace(correct=True, said_yes=True, p_yes=0.6),
        SimpleNamespace(correct=False, said_yes=False, p_yes=0.4),
    ]
    assert fitness("esma", esma_reward, sure) == fitness("esma", esma_reward, unsure)
    brier = resolve_reward("esma_brier", ESMA_REWARDS)
    assert fitness("esma_brier", brier, sure) == pytest.approx((1.99 + 0.99) / 2)
    assert fitness("esma_brier", brier, sure) > fitness("esma_brier", brier, unsure)


def test_a_member_without_p_yes_has_nan_fitness():
    nan_only = [SimpleNamespace(correct=True, said_yes=False, p_yes=float("nan"))]
    assert math.isnan(fitness("brier_alignment", resolve_reward("brier_alignment", ESMA_REWARDS), nan_only))


def _p_cases(pairs):
    return [
        SimpleNamespace(correct=bool(c), said_yes=p > 0.5, p_yes=p, direct_prompt="q?", direct_answer="a")
        for c, p in pairs
    ]


def on_cases(reward, cases):
    """``reward`` on ``cases`` with the columns ESMA hands it (correct, P(yes))."""
    columns, text = result_columns(cases), [""] * len(cases)
    return reward(text, text, cases, correct=columns["correct"], p_yes=columns["p_yes"])


def test_auroc_alignment_shares_by_hand_and_their_mean_is_the_auroc():
    from torchmetrics.functional.classification import binary_auroc

    from metalight.methods.esma.rewards import auroc_alignment_reward, esma_auroc_reward

    pairs = [(1, 0.9), (1, 0.4), (0, 0.5), (0, 0.1), (0, 0.4)]
    shares = on_cases(auroc_alignment_reward, _p_cases(pairs))
    # right 0.9 beats all 3 wrong; right 0.4 beats 0.1, ties 0.4, loses to 0.5: (1 + .5) / 3;
    # wrong 0.5 is beaten by 0.9 only: 1/2; wrong 0.1 by both: 1; wrong 0.4 by 0.9 and a tie: 0.75
    assert shares.tolist() == pytest.approx([1.0, 0.5, 0.5, 1.0, 0.75])
    auroc = binary_auroc(torch.tensor([p for _, p in pairs]), torch.tensor([c for c, _ in pairs]))
    assert shares.mean().item() == pytest.approx(auroc.item())
    assert on_cases(esma_auroc_reward, _p_cases(pairs)).tolist() == pytest.approx([2.0, 1.5, 0.5, 1.0, 0.75])


def test_discrimination_rewards_pay_nothing_for_saying_no_more_often():
    from metalight.methods.esma.rewards import auroc_alignment_reward, balanced_brier_alignment_reward

    pairs = [(1, 0.6), (1, 0.3), (0, 0.4), (0, 0.2)]
    lowered = [(c, p / 3) for c, p in pairs]  # every P(yes) lower, same order
    for reward in (auroc_alignment_reward,):
        assert on_cases(reward, _p_cases(pairs)).mean() == on_cases(reward, _p_cases(lowered)).mean()
    # "no" to everything: the balanced Brier gives 1 - (1 + 0) / 2 = 0.5, a perfect read-out 1
    all_no = on_cases(balanced_brier_alignment_reward, _p_cases([(c, 0.0) for c, _ in pairs]))
    perfect = on_cases(balanced_brier_alignment_reward, _p_cases([(c, float(c)) for c, _ in pairs]))
    assert all_no.mean().item() == pytest.approx(0.5) and perfect.mean().item() == pytest.approx(1.0)


def test_balanced_brier_by_hand():
    from metalight.methods.esma.rewards import balanced_brier_alignment_reward

    values = on_cases(
        balanced_brier_alignment_reward, _p_cases([(1, 0.9), (1, 0.4), (0, 0.5), (0, 0.1), (0, 0.4)])
    )
    # weights n / (2 n_c): right 5/4, wrong 5/6; Brier on right (0.01 + 0.36) / 2,
    # on wrong (0.25 + 0.01 + 0.16) / 3
    assert values.tolist() == pytest.approx(
        [1.25 * 0.99, 1.25 * 0.64, 5 / 6 * 0.75, 5 / 6 * 0.99, 5 / 6 * 0.84]
    )
    assert values.mean().item() == pytest.approx(1 - (0.185 + 0.14) / 2)


@pytest.mark.parametrize("name", ["auroc_alignment", "esma_auroc", "balanced_brier_alignment"])
def test_discrimination_rewards_are_not_applicable_with_one_class_or_nan(name):
    reward = resolve_reward(name, ESMA_REWARDS)
    assert torch.isnan(on_cases(reward, _p_cases([(1, 0.9), (1, 0.2)]))).all()
    values = on_cases(reward, _p_cases([(1, 0.9), (0, float("nan")), (0, 0.2)]))
    assert torch.isnan(values[1]) and not torch.isnan(values[[0, 2]]).any()
    assert math.isnan(fitness(name, reward, _p_cases([(0, 0.3), (0, 0.4)])))


def test_a_weighted_sum_of_rewards_by_hand():
    from metalight.methods.rewards import weighted_reward

    combined = weighted_reward({"auroc_alignment": 1.0, "correctness": 0.3}, ESMA_REWARDS)
    pairs = [(1, 0.9), (1, 0.4), (0, 0.5), (0, 0.1), (0, 0.4)]
    values = on_cases(combined, _p_cases(pairs))
    assert values.tolist() == pytest.approx([1.3, 0.8, 0.5, 1.0, 0.75])
    assert combined.__name__ == "1*auroc_alignment + 0.3*correctness"
    assert torch.isnan(on_cases(combined, _p_cases([(1, 0.9), (1, 0.2)]))).all()  # AUROC part undefined
    from metalight.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown reward 'nope'"):
        weighted_reward({"nope": 1.0}, ESMA_REWARDS)
