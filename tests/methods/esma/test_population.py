"""Population evaluation: batched low-rank members equal members evaluated one by one with explicit weights
(through prefix caching, length-bucketed prefill, row dropping and member groups); memory-based grouping; bad engine settings."""

import pytest

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings
from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.population import (
    EngineSettings,
    check_engine,
    evaluate_population,
    member_memory_bytes,
    members_per_batch,
)
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.update import Member
from metalight.models import bucketed_prefill

RECORDS = [QARecord(f"q{i}", q, [a]) for i, (q, a) in enumerate(
    [("Who wrote Hamlet?", "e"), ("What is the capital of France?", "a"), ("Which planet is largest?", "o")])]
MEMBERS = [Member(3), Member(3, -1), Member(17), Member(29)]
SIGMA = 0.05


def _answers(results):
    return [[(r.direct_answer, r.meta_answer, r.said_yes, round(r.p_yes, 4)) for r in member] for member in results]


@pytest.mark.parametrize("bucket_call_cost", [None, 0])  # 0: a prefill bucket per distinct row length
@pytest.mark.parametrize("readout", ["generate", "logits"])
def test_batched_members_equal_explicit_weights_member_by_member(fresh, readout, bucket_call_cost, monkeypatch):
    if bucket_call_cost is not None:
        monkeypatch.setitem(bucketed_prefill.CALL_COST_TOKENS, "cpu", bucket_call_cost)
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4, meta_readout=readout)
    scheme = make_scheme("lowrank", select_parameters(model), rank=2)
    explicit = evaluate_population(model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings,
                                   EngineSettings(decoder="hf", restore="copy"))
    assert len({str(m) for m in _answers(explicit)}) > 1  # members really answer differently
    for engine, per_batch in [(EngineSettings(population="batched"), 4),  # one batch, per-member prefix cache
                              (EngineSettings(population="batched", prefix_cache=False), 4),
                              (EngineSettings(population="batched"), 3)]:  # groups of 3 + 1
        batched = evaluate_population(model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings, engine, per_batch)
        assert _answers(batched) == _answers(explicit), (engine, per_batch)


def test_compact_decoder_matches_model_generate(fresh):
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4)
    scheme = make_scheme("esma", select_parameters(model))
    core = evaluate_population(model, tokenizer, RECORDS, MEMBERS[:2], scheme, SIGMA, settings,
                               EngineSettings(decoder="hf", restore="copy"))
    compact = evaluate_population(model, tokenizer, RECORDS, MEMBERS[:2], scheme, SIGMA, settings,
                                  EngineSettings(decoder="compact", restore="copy"))
    assert _answers(compact) == _answers(core)


def test_members_per_batch_follows_the_memory_budget(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model))
    settings = EvalSettings()
    assert members_per_batch(model, scheme, EngineSettings(), 256, settings, 32) == 1  # sequential
    assert members_per_batch(model, scheme, EngineSettings("batched", members_per_batch=5), 256, settings, 32) == 5
    assert members_per_batch(model, scheme, EngineSettings("batched", max_memory_gb=1000), 256, settings, 32) == 32
    need = member_memory_bytes(model, scheme, 2 * 256, 128 + 32) / 1e9  # direct + meta rows of 256 questions
    assert members_per_batch(model, scheme, EngineSettings("batched", max_memory_gb=2.5 * need), 256, settings,
                             32) == 2
    with pytest.raises(ConfigError, match="max_memory_gb: 0.001 GB is too small for one member"):
        members_per_batch(model, scheme, EngineSettings("batched", max_memory_gb=0.001), 256, settings, 32)


def test_engine_settings_that_cannot_work_are_named(fresh):
    model, _ = fresh
    full = make_scheme("esma", select_parameters(model))
    with pytest.raises(ConfigError, match="population: batched needs noise: lowrank"):
        check_engine(EngineSettings("batched"), full, EvalSettings())
    lowrank = make_scheme("lowrank", select_parameters(model), perturb_non_matrix=True)
    with pytest.raises(ConfigError, match="perturb_non_matrix: true"):
        check_engine(EngineSettings("batched"), lowrank, EvalSettings())
    with pytest.raises(ConfigError, match="model_default needs decoder: hf"):
        check_engine(EngineSettings(decoder="compact"), full, EvalSettings(decoding="model_default"))
    with pytest.raises(ConfigError, match="model_default needs population: sequential"):
        check_engine(EngineSettings("batched"), lowrank, EvalSettings(decoding="model_default"))
    check_engine(EngineSettings(), full, EvalSettings(decoding="model_default"))  # auto: model.generate
    with pytest.raises(ConfigError, match="max_memory_gb: 0 must be > 0"):
        check_engine(EngineSettings(max_memory_gb=0), full, EvalSettings())
