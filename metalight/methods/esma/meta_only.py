"""Scoring members without decoding their answers: every member's P(yes) to the meta question, scored against
direct answers given once by the current (unperturbed) weights θ.

With the members' own direct answers (ESMA), each of N members decodes every direct answer: most of an
iteration's work. A reward that pays for how well P(yes) *ranks* the model's right and wrong answers needs
only the meta prompt per member: one prefill, no decoding (``reward_answers: current``). The direct answers
(and their correctness) then come from θ itself, answered once per iteration, so they follow the training
as it moves θ — but nothing stops a member from breaking them.

``reward_answers: kept`` adds one teacher-forced prefill of each direct prompt + θ's answer per member: where
the member's greedy choice is θ's token at every answer position, the member would give θ's answer
(:func:`answers_kept`), and its correctness is θ's; where it is not, a right answer of θ counts as wrong for
the member (conservative: a changed answer is almost never right). So a reward with correctness in it (e.g.
``esma_auroc``) pays members that keep θ's right answers, as ESMA's own-answer reward does, without decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace

import torch

from metalight.evaluation.dual_prompt import EvalSettings, SampleResult, build_prompts, meta_token_ids
from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.models.generation import encode_prompts, model_device, p_yes_from_logits, yes_probability
from metalight.models.prefix_cache import prepare_batch
from metalight.models.row_decoding import RowContext, last_token_logits


def rescored(
    direct: Sequence[SampleResult], p_yes: Sequence[float], kept: Sequence[bool] | None = None
) -> list[SampleResult]:
    """Copies of ``direct`` with a member's P(yes): said_yes = P(yes) > 0.5, no generated meta answer; with
    ``kept``, an answer the member would not give is not counted right for it."""
    kept = [True] * len(direct) if kept is None else kept
    return [
        replace(
            r,
            p_yes=float(p),
            said_yes=float(p) > 0.5,
            meta_answer=None,
            meta_parsed=True,
            correct=r.correct and k,
            exact_match=r.exact_match and k,
        )
        for r, p, k in zip(direct, p_yes, kept)
    ]


CANDIDATES = 64  # θ's top tokens per answer position among which a member's greedy choice is looked for


@torch.no_grad()
def answers_kept(
    model,
    tokenizer,
    records,
    direct: Sequence[SampleResult],
    settings: EvalSettings,
    copies: int = 1,
    row_context_for: Callable[[list[int]], RowContext] | None = None,
    rows_per_forward: int = 64,
    shortlist: list[torch.Tensor] | None = None,
) -> list[list[bool]]:
    """For each of ``copies`` members, whether greedy decoding would reproduce each of θ's right answers in
    ``direct``: one teacher-forced forward over prompt + answer, True where at every answer position the
    answer's own next token has the largest logit (θ's wrong answers are True: they stay wrong either way).
    ``row_context_for(members)`` gives the context that perturbs row i as member ``members[i]`` (e.g.
    :meth:`~metalight.methods.esma.lowrank_forward.LowRankPopulation.row_context`); without it the model's
    weights are the one member's.

    With a ``shortlist`` (:func:`candidate_tokens`: θ's most likely tokens at each answer position, from one
    unperturbed forward) only those logits are computed: the LM head over the whole vocabulary at every answer
    position of every member is most of the cost otherwise. A member's greedy choice outside θ's top 64 would
    need a perturbation that reorders the logits far more than ESMA's σ does. Without one (e.g. when the head
    itself is perturbed) the full head is used."""
    prompts, answers = _direct_rows(tokenizer, records, direct, settings)
    head, decoder = model.get_output_embeddings(), model.get_decoder()
    device = model_device(model)
    restricted = shortlist is not None
    # Only θ's right answers need the check: a wrong answer stays wrong for the member either way.
    rows = [
        (q, p, a)
        for _ in range(copies)
        for q, (p, a) in enumerate(zip(prompts, answers))
        if direct[q].correct
    ]
    right = [q for q, r in enumerate(direct) if r.correct]
    member_of = [m for m in range(copies) for _ in right]  # rows are member-major
    row_context = row_context_for(member_of) if row_context_for and member_of else None
    kept: list[bool] = []
    for start in range(0, len(rows), rows_per_forward):
        chunk = rows[start : start + rows_per_forward]

        def context(index, start=start):
            index = torch.as_tensor(index, device=device) + start
            return row_context(index) if row_context else nullcontext()

        members = [member_of[start + i] for i in range(len(chunk))]
        hidden, longest = _answer_states(
            decoder,
            [p + a for _, p, a in chunk],
            max(len(a) for *_, a in chunk),
            tokenizer.pad_token_id,
            device,
            context,
            None if restricted else head,
            row_keys=members,
        )
        for row, (question, _, answer) in enumerate(chunk):
            if not answer:
                kept.append(True)
                continue
            target = torch.as_tensor(answer, device=device)
            states = hidden[row, longest - len(answer) :]
            if restricted:
                ids = shortlist[question]  # [len(answer), candidates + 1]; column 0 is the answer's token
                scores = torch.einsum("td,tkd->tk", states, head.weight[ids])
                kept.append(bool((scores.argmax(-1) == 0).all()))
            else:
                kept.append(bool((states.argmax(-1) == target).all()))
    out = [[True] * len(records) for _ in range(copies)]
    for index, flag in enumerate(kept):
        out[member_of[index]][right[index % len(right)]] = flag
    return out


def _answer_states(
    decoder,
    sequences: list[list[int]],
    longest: int,
    pad_id: int,
    device,
    context=None,
    head=None,
    row_keys=None,
) -> tuple[torch.Tensor, int]:
    """Hidden states ``[rows, longest, d]`` at the positions that predict each row's last ``longest`` tokens
    (right-aligned: position t predicts token t + 1), or the head's logits there when ``head`` is given.
    ``context(rows)`` wraps every forward with the rows it runs (a perturbed head runs inside it too); prompt
    prefixes shared by the rows of one ``row_keys`` value are run once
    (:mod:`metalight.models.prefix_cache`)."""
    context = context or (lambda rows: nullcontext())
    batch = prepare_batch(decoder, sequences, pad_id, row_keys=row_keys, prefill_context=context)
    new_ids = batch.new_input_ids
    width = new_ids.shape[1]
    columns = torch.arange(width - longest - 1, width - 1, device=device).clamp(min=0)
    with context(list(range(len(sequences)))):
        hidden = decoder(
            input_ids=new_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids(),
            cache=batch.cache,
            use_cache=batch.cache is not None,
        ).last_hidden_state
        hidden = hidden[:, columns]
        return (hidden if head is None else head(hidden)), longest


def _direct_rows(tokenizer, records, direct: Sequence[SampleResult], settings: EvalSettings):
    direct_prompts, _ = build_prompts(tokenizer, records, settings)
    return encode_prompts(tokenizer, direct_prompts, settings.max_input_tokens, settings.truncation_side), [
        list(r.direct_completion_ids) for r in direct
    ]


@torch.no_grad()
def candidate_tokens(
    model, tokenizer, records, direct: Sequence[SampleResult], settings: EvalSettings, k: int = CANDIDATES
) -> list[torch.Tensor] | None:
    """Per question, ``[len(answer), k + 1]`` token ids: θ's answer token first, then θ's k most likely other
    tokens at that position (call it with θ's weights: outside any perturbation); ``None`` when the output
    head has a bias or forward hooks (then :func:`answers_kept` uses the full head)."""
    head, decoder = model.get_output_embeddings(), model.get_decoder()
    if head._forward_hooks or getattr(head, "bias", None) is not None:
        return None
    prompts, answers = _direct_rows(tokenizer, records, direct, settings)
    device = model_device(model)
    out = [torch.empty(0, k + 1, dtype=torch.long, device=device)] * len(answers)
    rows = [i for i, a in enumerate(answers) if a]
    if not rows:
        return out
    longest = max(len(answers[i]) for i in rows)
    logits, _ = _answer_states(
        decoder, [prompts[i] + answers[i] for i in rows], longest, tokenizer.pad_token_id, device, head=head
    )
    for row, i in enumerate(rows):
        target = torch.as_tensor(answers[i], device=device)
        top = logits[row, longest - len(target) :].topk(k + 1, dim=-1).indices
        others = torch.stack([candidates[candidates != t][:k] for candidates, t in zip(top, target)])
        out[i] = torch.cat([target[:, None], others], dim=1)
    return out


def meta_p_yes(model, tokenizer, records, settings: EvalSettings, prefix_cache: bool) -> list[float]:
    """P(yes) of the meta prompt of each record under the model's current weights (one prefill)."""
    _, meta = build_prompts(tokenizer, records, settings)
    yes_ids, no_ids = meta_token_ids(tokenizer, replace(settings, meta_readout="logits"))
    return yes_probability(
        model,
        tokenizer,
        meta,
        yes_ids,
        no_ids,
        settings.max_input_tokens,
        prefix_cache=prefix_cache,
        truncation_side=settings.truncation_side,
    ).tolist()


def meta_p_yes_rows(
    model,
    tokenizer,
    records,
    settings: EvalSettings,
    num_members: int,
    population: LowRankPopulation,
    prefix_cache: bool,
) -> list[list[float]]:
    """P(yes) of every record's meta prompt for each of ``num_members`` low-rank members sharing one batch
    (rows member-major, each perturbed by its member); one list per member."""
    _, meta = build_prompts(tokenizer, records, settings)
    yes_ids, no_ids = meta_token_ids(tokenizer, replace(settings, meta_readout="logits"))
    rows = encode_prompts(tokenizer, meta, settings.max_input_tokens, settings.truncation_side)
    keys = [m for m in range(num_members) for _ in rows]
    logits = last_token_logits(
        model,
        tokenizer,
        [row for _ in range(num_members) for row in rows],
        list(yes_ids) + list(no_ids),
        keys,
        population.row_context(keys),
        prefix_cache,
    )
    p_yes = p_yes_from_logits(logits, len(yes_ids))
    n = len(records)
    return [p_yes[m * n : (m + 1) * n].tolist() for m in range(num_members)]
