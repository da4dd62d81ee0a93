"""The population engine: batched low-rank members equal members evaluated one by one with explicit weights
(through prefix caching, length-bucketed prefill, row dropping and member groups); memory-based grouping; bad
engine settings."""

import pytest

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings
from metalight.methods.esma.engine import PopulationEngine
from metalight.methods.esma.memory import member_memory_bytes
from metalight.methods.esma.noise import make_scheme
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
    explicit = PopulationEngine(decoder="hf", restore="copy").evaluate(model, tokenizer, RECORDS, MEMBERS, scheme,
                                                                       SIGMA, settings)
    assert len({str(m) for m in _answers(explicit)}) > 1  # members really answer differently
    for engine, group_size in [(PopulationEngine(population="batched"), 4),  # one batch, per-member prefix cache
                               (PopulationEngine(population="batched", prefix_cache=False), 4),
                               (PopulationEngine(population="batched"), 3)]:  # groups of 3 + 1
        batched = engine.evaluate(model, tokenizer, RECORDS, MEMBERS, scheme, SIGMA, settings, group_size)
        assert _answers(batched) == _answers(explicit), (engine, group_size)


def test_compact_decoder_matches_model_generate(fresh):
    model, tokenizer = fresh
    settings = EvalSettings(max_new_tokens=4)
    scheme = make_scheme("esma", select_parameters(model))
    core = PopulationEngine(decoder="hf", restore="copy").evaluate(model, tokenizer, RECORDS, MEMBERS[:2], scheme,
                                                                   SIGMA, settings)
    compact = PopulationEngine(decoder="compact", restore="copy").evaluate(model, tokenizer, RECORDS, MEMBERS[:2],
                                                                           scheme, SIGMA, settings)
    assert _answers(compact) == _answers(core)


def test_group_size_follows_the_memory_budget(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model))
    settings = EvalSettings()
    assert PopulationEngine().group_size(model, scheme, 256, settings, 32) == 1  # sequential
    assert PopulationEngine("batched", members_per_batch=5).group_size(model, scheme, 256, settings, 32) == 5
    assert PopulationEngine("batched", max_memory_gb=1000).group_size(model, scheme, 256, settings, 32) == 32
    need = member_memory_bytes(model, scheme, 2 * 256, 128 + 32) / 1e9  # direct + meta rows of 256 questions
    assert PopulationEngine("batched", max_memory_gb=2.5 * need).group_size(model, scheme, 256, settings, 32) == 2
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
