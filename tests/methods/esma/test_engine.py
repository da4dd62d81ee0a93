"""The population engine: batched low-rank members equal members evaluated one by one with explicit weights
(through prefix caching, length-bucketed prefill, row dropping and member groups); a shared trunk (layers
below the perturbed range run once) gives the unshared answers; memory-based grouping; bad engine settings."""

import pytest
import torch

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records
from metalight.methods.esma.engine import PopulationEngine, plan_groups
from metalight.methods.esma.memory import member_memory_bytes, shared_trunk_bytes
from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.trunk import trunk_end
from metalight.methods.esma.update import Member
from metalight.models import bucketed_prefill

RECORDS = [
    QARecord(f"q{i}", q, [a])
    for i, (q, a) in enumerate(
        [
            ("Who wrote Hamlet?", "e"),
            ("What is the capital of France?", "a"),
            ("Which planet is largest?", "o"),
        ]
    )
]
MEMBERS = [Member(3), Member(3, -1), Member(17), Member(29)]
SIGMA = 0.05


def _answers(results):
    return [
        [(r.direct_answer, r.meta_answer, r.said_yes, round(r.p_yes, 4)) for r in member]
        for member in results
    ]


@pytest.mark.parametrize("bucket_call_cost", [None, 0])  # 0: a prefill bucket per distinct row length
@pytest.mark.parametrize("readout", ["generate", "logits"])
def test_batched_members_equal_explicit_weights_member_by_member(
    fresh, readout, bucket_call_cost, monkeypatch
):
    if bucket_call_cost is not None:
        monkeypatch.setitem(bucketed_prefill.CALL_COST_TOKENS, "cpu", bucket_call_cost)
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4, meta_readout=readout)
    scheme = make_scheme("lowrank", select_parameters(model), rank=2)
    explicit = PopulationEngine(decoder="hf", restore="copy").evaluate(
        model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings
    )
    assert len({str(m) for m in _answers(explicit)}) > 1  # members really answer differently
    for engine, group_size in [
        (PopulationEngine(population="batched"), 4),  # one batch, per-member prefix cache
        (PopulationEngine(population="batched", prefix_cache=False), 4),
        (PopulationEngine(population="batched"), 3),
    ]:  # groups of 3 + 1
        batched = engine.evaluate(model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings, group_size)
        assert _answers(batched) == _answers(explicit), (engine, group_size)


def test_compact_decoder_matches_model_generate(fresh):
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4)
    scheme = make_scheme("esma", select_parameters(model))
    core = PopulationEngine(decoder="hf", restore="copy").evaluate(
        model, tokenizer, RECORDS, MEMBERS[:2], scheme, SIGMA, settings
    )
    compact = PopulationEngine(decoder="compact", restore="copy").evaluate(
        model, tokenizer, RECORDS, MEMBERS[:2], scheme, SIGMA, settings
    )
    assert _answers(compact) == _answers(core)


def test_group_size_follows_the_memory_budget(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model))
    settings = EvalSettings()
    assert PopulationEngine().group_size(model, scheme, 256, settings, 32) == 1  # sequential
    assert PopulationEngine("batched", members_per_batch=5).group_size(model, scheme, 256, settings, 32) == 5
    assert PopulationEngine("batched", max_memory_gb=1000).group_size(model, scheme, 256, settings, 32) == 32
    need = member_memory_bytes(model, scheme, 2 * 256, 128 + 32) / 1e9  # direct + meta rows of 256 questions
    assert (
        PopulationEngine("batched", max_memory_gb=2.5 * need).group_size(model, scheme, 256, settings, 32)
        == 2
    )
    with pytest.raises(ConfigError, match="engine.max_memory_gb: 0.001 GB is too small for one member"):
        PopulationEngine("batched", max_memory_gb=0.001).group_size(model, scheme, 256, settings, 32)


def test_engine_settings_that_cannot_work_are_named(fresh):
    model, _ = fresh
    full = make_scheme("esma", select_parameters(model))
    with pytest.raises(ConfigError, match="engine.population: batched needs noise: lowrank"):
        PopulationEngine("batched").check(full, EvalSettings())
    lowrank = make_scheme("lowrank", select_parameters(model), perturb_non_matrix=True)
    with pytest.raises(ConfigError, match="perturb_non_matrix: true"):
        PopulationEngine("batched").check(lowrank, EvalSettings())
    with pytest.raises(ConfigError, match="model_default needs engine.decoder: hf"):
        PopulationEngine(decoder="compact").check(full, EvalSettings(decoding="model_default"))
    with pytest.raises(ConfigError, match="model_default needs engine.population: sequential"):
        PopulationEngine("batched").check(lowrank, EvalSettings(decoding="model_default"))
    PopulationEngine().check(full, EvalSettings(decoding="model_default"))  # auto: model.generate
    with pytest.raises(ConfigError, match="engine.max_memory_gb: 0 must be > 0"):
        PopulationEngine(max_memory_gb=0).check(full, EvalSettings())


# ---- shared trunk: layers below the perturbed range run once for every member -----------------------------
P_YES_TOLERANCE = 1e-5  # float32; the shared and unshared paths batch rows differently


def _assert_same_answers(got, expected):
    """Greedy answers (direct, meta, decisions, every other field) equal; P(yes) within P_YES_TOLERANCE."""
    for got_member, expected_member in zip(got, expected, strict=True):
        for g, e in zip(got_member, expected_member, strict=True):
            g_json, e_json = g.to_json(), e.to_json()
            assert abs(g_json.pop("p_yes") - e_json.pop("p_yes")) <= P_YES_TOLERANCE
            assert g_json == e_json and g.direct_completion_ids == e.direct_completion_ids


def _prefill_calls(model, run, *args):
    """(forward calls of decoder layer 0 over more than one column (prefills) while ``run(*args)`` runs, its
    result)."""
    calls = []
    handle = model.model.layers[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1] > 1))
    try:
        out = run(*args)
    finally:
        handle.remove()
    return sum(calls), out


@pytest.mark.parametrize("readout", ["generate", "logits"])
def test_batched_members_sharing_the_trunk_answer_as_unshared(fresh, readout):
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4, meta_readout=readout)
    scheme = make_scheme("lowrank", select_parameters(model, layers=(1, 2)), rank=2)
    assert trunk_end(scheme) == 1 and PopulationEngine("batched").shared_trunk(model, scheme) is not None
    for prefix_cache in (True, False):
        unshared = PopulationEngine("batched", prefix_cache=prefix_cache, share_trunk=False).evaluate(
            model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings, 4
        )
        assert len({str(m) for m in _answers(unshared)}) > 1  # members really answer differently
        for group_size in (4, 3):  # one group; groups of 3 + 1 reusing the iteration's trunk
            shared = PopulationEngine("batched", prefix_cache=prefix_cache).evaluate(
                model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings, group_size
            )
            _assert_same_answers(shared, unshared)


def test_member_by_member_full_rank_noise_computes_the_trunk_once(fresh):
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4, meta_readout="logits")
    scheme = make_scheme("esma", select_parameters(model, layers=(1, 2)))
    for prefix_cache in (True, False):
        unshared = PopulationEngine(restore="copy", prefix_cache=prefix_cache, share_trunk=False).evaluate(
            model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings
        )  # evaluate_records per member
        engine = PopulationEngine(restore="copy", prefix_cache=prefix_cache)
        prefills, shared = _prefill_calls(
            model, engine.evaluate, model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings
        )
        _assert_same_answers(shared, unshared)
    one, _ = _prefill_calls(
        model, engine.evaluate, model, tokenizer, RECORDS, MEMBERS[:1], scheme, SIGMA, settings
    )
    assert prefills == one  # the trunk's prompt prefill runs once, not once per member


def test_no_trunk_is_shared_when_layer_0_or_non_layer_parameters_are_perturbed(fresh):
    model, _ = fresh
    assert trunk_end(make_scheme("lowrank", select_parameters(model))) == 0  # layer 0 perturbed
    assert (
        trunk_end(make_scheme("esma", select_parameters(model, "norm.weight"))) == 0
    )  # model.norm: no layer
    scheme = make_scheme("lowrank", select_parameters(model, layers=(1, 2)))
    assert PopulationEngine("batched", share_trunk=False).shared_trunk(model, scheme) is None
    assert PopulationEngine(decoder="hf").shared_trunk(model, scheme) is None  # model.generate decodes


def test_memory_plan_counts_the_shared_trunk_once(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model, layers=(1, 2)))
    settings = EvalSettings()
    need = member_memory_bytes(model, scheme, 2 * 256, 128 + 32, shared_layers=1, new_tokens=32)
    assert need < member_memory_bytes(
        model, scheme, 2 * 256, 128 + 32
    )  # a member keeps only layer 1's prompt KV
    shared = shared_trunk_bytes(model, 2 * 256, 128, shared_layers=1)
    for members in (1, 3):
        budget = (shared + (members + 0.5) * need) / 1e9
        assert (
            PopulationEngine("batched", max_memory_gb=budget).group_size(model, scheme, 256, settings, 32)
            == members
        )
    with pytest.raises(ConfigError, match="too small for one member"):
        PopulationEngine("batched", max_memory_gb=(shared + 0.5 * need) / 1e9).group_size(
            model, scheme, 256, settings, 32
        )


@pytest.fixture
def one_thread():
    """One torch thread for the test: two threads spinning on a busy 2-core machine made the embedded model
    ten times slower (measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_shared_trunk_on_the_embedded_model_answers_as_unshared(embedded, one_thread):
    """SmolLM2-135M perturbed on its last 4 layers: batched low-rank members (prefix cache) and full-rank
    members one by one (no prefix cache) give the unshared engine's answers."""
    model, tokenizer = embedded
    settings = EvalSettings(max_new_tokens=6, meta_readout="generate")
    layers = (model.config.num_hidden_layers - 4, model.config.num_hidden_layers)
    for noise, population, prefix_cache, group in (
        ("lowrank", "batched", True, 2),
        ("esma", "sequential", False, 1),
    ):
        scheme = make_scheme(noise, select_parameters(model, layers=layers))
        engines = [
            PopulationEngine(population, restore="copy", prefix_cache=prefix_cache, share_trunk=share)
            for share in (False, True)
        ]
        unshared, shared = (
            e.evaluate(model, tokenizer, RECORDS[:2], MEMBERS[:2], scheme, 0.01, settings, group)
            for e in engines
        )
        _assert_same_answers(shared, unshared)


def test_the_meta_read_out_alone_shares_the_trunk(fresh):
    """``reward_answers: current``: each member only reads its P(yes) to score θ's answers; prompts cut to
    their first 47 tokens (``truncation_side: right``; the meta prompts here are 49-52 tokens long)."""
    model, tokenizer = fresh
    settings = EvalSettings(
        max_new_tokens=4, meta_readout="logits", max_input_tokens=47, truncation_side="right"
    )
    direct = evaluate_records(model, tokenizer, RECORDS, settings)
    for noise, population, group_size in (("lowrank", "batched", 4), ("esma", "sequential", 1)):
        scheme = make_scheme(noise, select_parameters(model, layers=(1, 2)))
        scored = {}
        for share in (False, True):
            engine = PopulationEngine(population, restore="copy", share_trunk=share)
            trunk = engine.shared_trunk(model, scheme)
            assert (trunk is not None) == share
            scored[share] = []
            for group in plan_groups(len(MEMBERS), group_size):
                with engine.perturbed(scheme, [MEMBERS[i] for i in group], SIGMA, trunk) as answer:
                    scored[share] += answer(model, tokenizer, RECORDS, settings, direct)
        assert len({r.p_yes for member in scored[False] for r in member}) > len(RECORDS)  # members differ
        _assert_same_answers(scored[True], scored[False])
