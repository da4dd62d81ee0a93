"""Mutual predictability: how well the other labelled claims, in context, predict each claim's label.

Upstream (``ICM.py::calculate_accuracy``, ``prompt_creation.py::get_judge_prompt_fewshot``,
``solution_extraction.py::get_yes_no_diff_logprobs``): the prompt for claim i is every *other* labelled
claim of the chunk, in chunk order, written as ``prompt + " True"/" False" + "\\n\\n"``, followed by claim i's
prompt; its score is ``log(P(true words) + 1e-5) - log(P(false words) + 1e-5)`` for the next token. Upstream
summed the top-20 tokens containing "true"/"false"; here the single-token case and space variants of the
label words are summed over the whole vocabulary.

Caches make this affordable, all exact: scores are memoised by (claim, the labels of every other claim), so
an unchanged context is never recomputed; the rows of one labelling share prefixes of one demonstration
sequence — row i reuses the KV cache of the demonstrations before claim i and runs only the rest
(:func:`metalight.models.prefix_cache.batch_on_prefilled`); and that sequence's KV cache is kept between
calls, so the next labelling only runs the demonstrations from its first changed label on.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from metalight.models.generation import yes_no_token_ids
from metalight.models.padding import left_pad, position_ids
from metalight.models.prefix_cache import batch_on_prefilled, common_prefix_length, prefill_sequence
from metalight.prompts import ICM_LABEL_WORDS, ICM_SEPARATOR

EPS = 1e-5


@dataclass
class ScorerStats:
    """Work counters: ``queries`` asked, ``computed`` (cache misses run through the model), ``forwards``
    (model calls, prefills included) and ``tokens`` (token positions the model processed, padding
    included)."""

    queries: int = 0
    computed: int = 0
    forwards: int = 0
    tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def label_log_odds(
    logits: torch.Tensor, true_ids: Sequence[int], false_ids: Sequence[int], eps: float = EPS
) -> torch.Tensor:
    """``log(P(true ids) + eps) - log(P(false ids) + eps)`` per row of next-token ``logits`` [rows, vocab]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    p_true = torch.logsumexp(logp[:, list(true_ids)], -1).exp()
    p_false = torch.logsumexp(logp[:, list(false_ids)], -1).exp()
    return torch.log(p_true + eps) - torch.log(p_false + eps)


class MutualPredictability:
    """Label log-odds of claims given the other labelled claims of their chunk in context.

    Args:
        model, tokenizer: a causal LM (base or instruct; prompts are raw text, as upstream) and its tokenizer.
        prompts: each claim's prompt, ending just before the label word.
        label_words: the words read as "true" and "false" (their single-token case / space variants count).
        separator: text between demonstrations.
        context_cache: reuse the KV cache of shared demonstration prefixes and memoise scores; ``False`` runs
            every query as a plain left-padded row (same numbers, for benchmarking).
        rows_per_forward: queries per model call.
        max_cached_scores: memoised scores kept (least recently used are dropped first).
    """

    def __init__(
        self,
        model,
        tokenizer,
        prompts: Sequence[str],
        label_words: Sequence[str] = ICM_LABEL_WORDS,
        separator: str = ICM_SEPARATOR,
        context_cache: bool = True,
        rows_per_forward: int = 8,
        max_cached_scores: int = 200_000,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.context_cache, self.rows_per_forward, self.max_cached_scores = (
            context_cache,
            rows_per_forward,
            max_cached_scores,
        )
        self.true_ids, self.false_ids = yes_no_token_ids(tokenizer, *label_words)
        encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        self.start = _special_prefix(tokenizer)
        self.queries = [encode(p) for p in prompts]
        separator_ids = _separator_ids(encode, separator, prompts[0] if prompts else "")
        self.demos = [
            [encode(f"{p} {label_words[1]}") + separator_ids, encode(f"{p} {label_words[0]}") + separator_ids]
            for p in prompts
        ]
        self.stats = ScorerStats()
        self._scores: OrderedDict[tuple[int, bytes], float] = OrderedDict()
        self._prefix: tuple[list[int], object] | None = (
            None  # the last demonstration sequence and its KV cache
        )

    def __len__(self) -> int:
        return len(self.queries)

    def max_context_tokens(self, indices: Sequence[int] | None = None) -> int:
        """Longest prompt (tokens) a chunk of these claims can need: all but one labelled, plus a query."""
        indices = range(len(self)) if indices is None else indices
        demos = sorted((max(len(d) for d in self.demos[i]) for i in indices), reverse=True)
        return len(self.start) + sum(demos[1:]) + max(len(self.queries[i]) for i in indices)

    def log_odds(self, labels: Sequence[int | None], queries: Sequence[int]) -> list[float]:
        """Score of each claim in ``queries`` with every other labelled claim (``labels``) in context."""
        keys = [(i, _context_key(labels, i)) for i in queries]
        self.stats.queries += len(keys)
        missing = (
            list(dict.fromkeys(i for i, key in zip(queries, keys) if key not in self._scores))
            if self.context_cache
            else list(queries)
        )
        computed = dict(zip(missing, self._compute(labels, missing))) if missing else {}
        out = []
        for i, key in zip(queries, keys):
            if i in computed:
                value = computed[i]
                if self.context_cache:
                    self._remember(key, value)
            else:
                value = self._scores[key]
                self._scores.move_to_end(key)
            out.append(value)
        return out

    def _remember(self, key: tuple[int, bytes], value: float) -> None:
        self._scores[key] = value
        if len(self._scores) > self.max_cached_scores:
            self._scores.popitem(last=False)

    # ---- computation ------------------------------------------------------------------------------------
    def _rows(self, labels: Sequence[int | None], queries: Sequence[int]):
        """The demonstration sequence of ``labels`` and, per query, (tokens taken from it, own suffix)."""
        order = [j for j, label in enumerate(labels) if label is not None]
        spine = list(self.start)
        offsets = {}
        for j in order:
            offsets[j] = len(spine)
            spine += self.demos[j][labels[j]]
        cuts, suffixes = [], []
        for i in queries:
            if labels[i] is None:
                cuts.append(len(spine))
                suffixes.append(list(self.queries[i]))
            else:
                after = offsets[i] + len(self.demos[i][labels[i]])
                cuts.append(offsets[i])
                suffixes.append(spine[after:] + self.queries[i])
        return spine, cuts, suffixes

    @torch.no_grad()
    def _compute(self, labels: Sequence[int | None], queries: Sequence[int]) -> list[float]:
        spine, cuts, suffixes = self._rows(labels, queries)
        self.stats.computed += len(queries)
        cache = None
        if self.context_cache and max(cuts) > 0:
            prefix = spine[: max(cuts)]
            shared = common_prefix_length([self._prefix[0], prefix]) if self._prefix is not None else 0
            cache = prefill_sequence(self.model, prefix, self._prefix)
            self._prefix = (prefix, cache)
            self.stats.forwards += shared < len(prefix)
            self.stats.tokens += len(prefix) - shared
        lengths = [len(suffix) + (0 if cache else cut) for cut, suffix in zip(cuts, suffixes)]
        scores = [math.nan] * len(queries)
        for rows in _padding_bounded_groups(lengths, self.rows_per_forward):
            logits = self._forward(spine, [cuts[r] for r in rows], [suffixes[r] for r in rows], cache)
            for row, value in zip(rows, label_log_odds(logits, self.true_ids, self.false_ids).tolist()):
                scores[row] = value
        return scores

    def _forward(self, spine: list[int], cuts: list[int], suffixes: list[list[int]], cache) -> torch.Tensor:
        pad = self.tokenizer.pad_token_id
        self.stats.forwards += 1
        if cache is None:
            rows = [spine[:cut] + suffix for cut, suffix in zip(cuts, suffixes)]
            self.stats.tokens += len(rows) * max(len(r) for r in rows)  # padded positions cost the same
            device = next(self.model.parameters()).device
            ids, mask = left_pad(rows, pad, device)
            return self.model(
                input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), logits_to_keep=1
            ).logits[:, -1]
        self.stats.tokens += len(suffixes) * max(len(s) for s in suffixes)
        batch = batch_on_prefilled(self.model, cache, cuts, suffixes, spine, pad)
        return self.model(
            input_ids=batch.new_input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids(),
            cache=batch.cache,
            logits_to_keep=1,
        ).logits[:, -1]


def _padding_bounded_groups(lengths: Sequence[int], max_rows: int, slack: float = 1.25) -> list[list[int]]:
    """Rows grouped by length (shortest first) so that left padding adds at most ``slack - 1`` of the real
    tokens to a forward: on CPU a padded position costs as much as a real one, and leave-one-out suffixes
    range from one claim to the whole chunk."""
    groups: list[list[int]] = []
    real = 0
    for row in sorted(range(len(lengths)), key=lengths.__getitem__):
        if (
            groups
            and len(groups[-1]) < max_rows
            and (len(groups[-1]) + 1) * lengths[row] <= slack * (real + lengths[row])
        ):
            groups[-1].append(row)
            real += lengths[row]
        else:
            groups.append([row])
            real = lengths[row]
    return groups


def _context_key(labels: Sequence[int | None], query: int) -> bytes:
    """The labels of every claim but ``query`` (2 = unlabelled): what claim ``query``'s score depends on."""
    return bytes(2 if (label is None or j == query) else label for j, label in enumerate(labels))


def _separator_ids(encode, separator: str, following: str) -> list[int]:
    """Tokens of ``separator`` as they come out when text follows it (BPE splits "\n\n" differently at the
    end of a string), so that concatenated blocks equal the tokenised concatenated text."""
    whole, tail = encode(separator + following), encode(following)
    if following and len(whole) > len(tail) and whole[len(whole) - len(tail) :] == tail:
        return whole[: len(whole) - len(tail)]
    return encode(separator)


def _special_prefix(tokenizer) -> list[int]:
    """Tokens the tokenizer puts before text (e.g. BOS), found by encoding a probe with and without them."""
    plain = tokenizer("probe", add_special_tokens=False)["input_ids"]
    full = tokenizer("probe", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start]
    return []
