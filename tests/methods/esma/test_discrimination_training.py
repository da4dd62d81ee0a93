"""Training that pays for discrimination: each member's meta read-out alone, scored against θ's direct answers
(``reward_answers: current``), equals the full per-member evaluation's P(yes); stratified question draws; the
competence configs train through the CLI."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records
from metalight.methods.esma.engine import PopulationEngine
from metalight.methods.esma.meta_only import answers_kept, candidate_tokens
from metalight.methods.esma.module import ESMAModule, stratified_questions
from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.update import Member
from tests.methods.esma.test_engine import MEMBERS, RECORDS, SIGMA

SIGMA_KEPT = 1e-3  # large enough that some members change some answers, small enough that not all do
SETTINGS = EvalSettings(max_new_tokens=3, meta_readout="logits", meta_chat_template="auto")


@pytest.mark.parametrize("population", ["sequential", "batched"])
@pytest.mark.parametrize("prefix_cache", [True, False])
def test_meta_only_p_yes_equals_each_members_full_evaluation(fresh, population, prefix_cache):
    model, tokenizer = fresh
    scheme = make_scheme("lowrank", select_parameters(model), rank=2)
    full = PopulationEngine(decoder="hf", restore="copy").evaluate(
        model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, SETTINGS
    )
    direct = evaluate_records(model, tokenizer, RECORDS, SETTINGS)  # θ's answers
    engine = PopulationEngine(population=population, restore="copy", prefix_cache=prefix_cache)
    group = [MEMBERS] if population == "batched" else [[m] for m in MEMBERS]
    meta_only = []
    for members in group:
        with engine.perturbed(scheme, members, SIGMA) as answer:
            meta_only.extend(answer(model, tokenizer, RECORDS, SETTINGS, direct))
    assert len({tuple(round(r.p_yes, 4) for r in m) for m in full}) > 1  # members differ
    for member_full, member_meta in zip(full, meta_only):
        assert [r.p_yes for r in member_meta] == pytest.approx([r.p_yes for r in member_full], abs=1e-5)
        assert [r.said_yes for r in member_meta] == [r.p_yes > 0.5 for r in member_meta]
        # the direct answers (and their grading) are θ's, not the member's
        assert [(r.direct_answer, r.correct) for r in member_meta] == [
            (r.direct_answer, r.correct) for r in direct
        ]


def test_stratified_draws_are_even_deterministic_and_cover_each_stratum():
    strata = [list(range(0, 10)), list(range(10, 13)), list(range(13, 40))]
    draws = [stratified_questions(strata, 7, seed=5, step=s) for s in range(30)]
    assert draws[4] == stratified_questions(strata, 7, seed=5, step=4)
    for _step, picks in enumerate(draws):
        assert len(picks) == 7
        counts = Counter(next(k for k, s in enumerate(strata) if i in s) for i in picks)
        assert sorted(counts.values()) == [2, 2, 3]  # 7 over 3 strata; the extra one rotates
    # every question of the small stratum keeps coming back (an endless sequence of permutations)
    assert {i for picks in draws for i in picks if i in strata[1]} == set(strata[1])
    # one stratum is a plain draw from its own stream
    assert sorted(stratified_questions([list(range(10))], 10, 5, 0)) == list(range(10))


def test_reward_answers_current_needs_the_logits_read_out():
    with pytest.raises(ConfigError, match="reward_answers: current reads each member's P\\(yes\\) only"):
        ESMAModule(reward_answers="current", evaluation=EvalSettings(meta_readout="generate"))
    with pytest.raises(ConfigError, match="reward_answers: 'mine' must be"):
        ESMAModule(reward_answers="mine")


def test_cli_fit_of_the_competence_esma_config(tiny_model_dir, tmp_path, capsys):
    from metalight.cli import main

    # The tiny random model answers no arithmetic question right: the AUROC reward is undefined, said in one
    # line.
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                "configs/competence/esma_auroc.yaml",
                "--model.init_args.model",
                str(tiny_model_dir),
                "--model.init_args.population_size",
                "2",
                "--model.init_args.num_data_per_iteration",
                "2",
                "--model.init_args.evaluation.max_new_tokens",
                "1",
                "--data.init_args.per_level",
                "{train: 2, val: 1}",
                "--trainer.max_steps",
                "1",
                "--trainer.logger.init_args.save_dir",
                str(tmp_path / "nan"),
            ]
        )
    assert "draw both with stratify_questions: base_correct" in capsys.readouterr().err
    # With a reward defined on one class the same config trains (answers of θ, meta read-out per member).
    main(
        [
            "fit",
            "--config",
            "configs/competence/esma_auroc.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.reward",
            "brier_alignment",
            "--model.init_args.population_size",
            "4",
            "--model.init_args.num_data_per_iteration",
            "8",
            "--model.init_args.evaluation.max_new_tokens",
            "2",
            "--data.init_args.per_level",
            "{train: 6, val: 2, test: 0}",
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "2",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    (run,) = (tmp_path / "competence-esma-auroc").iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["step"] == 2 and report["n"] == 16  # 8 levels x 2 validation questions
    samples = [json.loads(line) for line in (run / "samples" / "val.jsonl").read_text().splitlines()]
    assert {s["meta"]["level"] for s in samples} == set(range(1, 9))


def _theta_right_on_half(model, tokenizer, settings):
    """Questions whose gold answer is θ's own answer for every other one (so θ is right on those), and θ's
    results: the kept check runs on θ's right answers."""
    from metalight.data.records import QARecord

    asked = [QARecord(f"q{i}", f"What is {i} times {i + 3}?", ["?"]) for i in range(2, 10)]
    answers = [r.direct_answer for r in evaluate_records(model, tokenizer, asked, settings)]
    records = [
        QARecord(r.id, r.question, [a] if i % 2 == 0 else ["no such answer"])
        for i, (r, a) in enumerate(zip(asked, answers))
    ]
    direct = evaluate_records(model, tokenizer, records, settings)
    assert [r.correct for r in direct] == [i % 2 == 0 for i in range(len(records))]
    return records, direct


@pytest.mark.parametrize("population", ["sequential", "batched"])
def test_kept_check_says_exactly_which_answers_each_member_would_still_give(varied_model_dir, population):
    from metalight.models.loading import load_model

    model, tokenizer = load_model(str(varied_model_dir))
    settings = EvalSettings(max_new_tokens=4, meta_readout="logits", grading="esma")
    records, direct = _theta_right_on_half(model, tokenizer, settings)
    scheme = make_scheme("lowrank", select_parameters(model), rank=2)
    members = [Member(3), Member(3, -1), Member(11), Member(12)]
    own = PopulationEngine(decoder="hf", restore="copy").evaluate(
        model, tokenizer, records, members, scheme, SIGMA_KEPT, settings
    )
    engine = PopulationEngine(population=population, restore="copy")
    groups = [members] if population == "batched" else [[m] for m in members]
    shortlist = candidate_tokens(model, tokenizer, records, direct, settings)  # θ's, before any perturbation
    checked = []
    for group in groups:
        with engine.perturbed(scheme, group, SIGMA_KEPT) as answer:
            checked.extend(
                answer(model, tokenizer, records, settings, direct, check_kept=True, shortlist=shortlist)
            )
    kept = lost = 0
    for member_own, member_checked in zip(own, checked):
        for mine, theirs, check in zip(member_own, direct, member_checked):
            same = mine.direct_completion_ids == theirs.direct_completion_ids
            assert check.correct == (theirs.correct and same)
            kept += theirs.correct and same
            lost += theirs.correct and not same
    assert kept and lost  # right answers both kept and lost: the check could fail either way


def test_the_candidate_shortlist_gives_the_full_heads_answer_when_the_head_is_not_perturbed(varied_model_dir):
    from metalight.methods.esma.lowrank_forward import LowRankPopulation
    from metalight.models.loading import load_model

    # Decoder layers only (layers: [0, 2)): the head is not perturbed, so the shortlist path is taken. The
    # varied model's large head gives peaked next-token distributions, as a trained model's are.
    model, tokenizer = load_model(str(varied_model_dir))
    settings = EvalSettings(max_new_tokens=4, meta_readout="logits", grading="esma")
    records, direct = _theta_right_on_half(model, tokenizer, settings)
    shortlist = candidate_tokens(model, tokenizer, records, direct, settings)
    assert shortlist is not None and all(s.shape[1] == 65 for s in shortlist if len(s))
    assert all(
        answers_kept(model, tokenizer, records, direct, settings, shortlist=shortlist)[0]
    )  # θ keeps them
    scheme = make_scheme("lowrank", select_parameters(model, layers=(0, 2)), rank=2)
    members = [Member(1), Member(2), Member(3), Member(4)]
    changed = 0
    for sigma in (3e-3, 1e-2, 3e-2):
        with LowRankPopulation(scheme, members, sigma) as population:
            full = answers_kept(
                model, tokenizer, records, direct, settings, len(members), population.row_context
            )
            short = answers_kept(
                model,
                tokenizer,
                records,
                direct,
                settings,
                len(members),
                population.row_context,
                shortlist=shortlist,
            )
        assert short == full, sigma
        changed += sum(not k for member in full for k in member)
    assert changed > 0  # some members would change some right answers: the comparison could fail
