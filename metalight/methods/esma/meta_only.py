"""The meta read-out alone: every member's P(yes) to the meta question, scored against direct answers given
once by the current (unperturbed) weights (``reward_answers: current``).

With the members' own direct answers (ESMA), each of N members decodes every direct answer: most of an
iteration's work. A reward that pays for how well P(yes) *ranks* the model's right and wrong answers needs
only the meta prompt per member: one prefill, no decoding. The direct answers (and their correctness) then
come from θ itself, answered once per iteration, so they follow the training as it moves θ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from metalight.evaluation.dual_prompt import EvalSettings, SampleResult, build_prompts, meta_token_ids
from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.models.generation import encode_prompts, p_yes_from_logits, yes_probability
from metalight.models.row_decoding import last_token_logits


def rescored(direct: Sequence[SampleResult], p_yes: Sequence[float]) -> list[SampleResult]:
    """Copies of ``direct`` with a member's P(yes): said_yes = P(yes) > 0.5, no generated meta answer."""
    return [replace(r, p_yes=float(p), said_yes=float(p) > 0.5, meta_answer=None, meta_parsed=True)
            for r, p in zip(direct, p_yes)]


def meta_p_yes(model, tokenizer, records, settings: EvalSettings, prefix_cache: bool) -> list[float]:
    """P(yes) of the meta prompt of each record under the model's current weights (one prefill)."""
    _, meta = build_prompts(tokenizer, records, settings)
    yes_ids, no_ids = meta_token_ids(tokenizer, replace(settings, meta_readout="logits"))
    return yes_probability(model, tokenizer, meta, yes_ids, no_ids, settings.max_input_tokens,
                           prefix_cache=prefix_cache).tolist()


def meta_p_yes_rows(model, tokenizer, records, settings: EvalSettings, num_members: int,
                    population: LowRankPopulation, prefix_cache: bool) -> list[list[float]]:
    """P(yes) of every record's meta prompt for each of ``num_members`` low-rank members sharing one batch
    (rows member-major, each perturbed by its member); one list per member."""
    _, meta = build_prompts(tokenizer, records, settings)
    yes_ids, no_ids = meta_token_ids(tokenizer, replace(settings, meta_readout="logits"))
    rows = encode_prompts(tokenizer, meta, settings.max_input_tokens)
    keys = [m for m in range(num_members) for _ in rows]
    logits = last_token_logits(model, tokenizer, [row for _ in range(num_members) for row in rows],
                               list(yes_ids) + list(no_ids), keys, population.row_context(keys), prefix_cache)
    p_yes = p_yes_from_logits(logits, len(yes_ids))
    n = len(records)
    return [p_yes[m * n:(m + 1) * n].tolist() for m in range(num_members)]
