"""Mutual predictability scored by a served model: the same prompts and log-odds as
:class:`~metalight.methods.icm.predictability.MutualPredictability`, read from an OpenAI-compatible
``/completions`` endpoint's top-k log-probs instead of a local forward (upstream queried a 70B base model
this way).

The prompt for claim i is the text of every *other* labelled claim of the chunk, in chunk order, as
``prompt + " True"/" False" + separator``, then claim i's prompt (the server adds BOS). A returned token
counts for a label word when its text, stripped and lower-cased, equals the word lower-cased (the single-token
case / space variants the local scorer sums); words outside the server's top-k count as probability 0, so
``score = log(P(true) + 1e-5) - log(P(false) + 1e-5)`` as upstream. Scores are memoised by (claim, labels of
every other claim), exactly as locally.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from metalight.api.completions_logprobs import CompletionsEndpoint, CompletionsLogprobClient
from metalight.methods.icm.predictability import EPS, ScorerStats, _context_key
from metalight.prompts import ICM_LABEL_WORDS, ICM_SEPARATOR


def label_log_odds_from_top(top: Mapping[str, float], label_words: Sequence[str], eps: float = EPS) -> float:
    """``log(P(true) + eps) - log(P(false) + eps)`` from one position's ``{token: log-prob}``."""
    words = [w.strip().lower() for w in label_words]
    mass = [0.0, 0.0]
    for token, logprob in top.items():
        key = token.strip().lower()
        for k, word in enumerate(words):
            if key == word:
                mass[k] += math.exp(logprob)
    return math.log(mass[0] + eps) - math.log(mass[1] + eps)


class EndpointPredictability:
    """Label log-odds of claims given the other labelled claims, from a completions endpoint.

    Args:
        endpoint: the server (``CompletionsEndpoint``) or a ready client (tests inject one).
        prompts: each claim's prompt, ending just before the label word.
        label_words: the words read as "true" and "false".
        separator: text between demonstrations.
        max_cached_scores: memoised scores kept (least recently used are dropped first).
    """

    def __init__(
        self,
        endpoint: CompletionsEndpoint | CompletionsLogprobClient,
        prompts: Sequence[str],
        label_words: Sequence[str] = ICM_LABEL_WORDS,
        separator: str = ICM_SEPARATOR,
        max_cached_scores: int = 200_000,
    ):
        self.client = (
            endpoint if isinstance(endpoint, CompletionsLogprobClient) else CompletionsLogprobClient(endpoint)
        )
        self.prompts, self.label_words = list(prompts), tuple(label_words)
        self.demos = [
            [f"{p} {label_words[1]}{separator}", f"{p} {label_words[0]}{separator}"] for p in prompts
        ]
        self.max_cached_scores = max_cached_scores
        self.stats = ScorerStats()
        self._scores: OrderedDict[tuple[int, bytes], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self.prompts)

    def prompt_text(self, labels: Sequence[int | None], query: int) -> str:
        """The text sent for claim ``query``: the other labelled claims as demonstrations, then its prompt."""
        context = "".join(
            self.demos[j][label] for j, label in enumerate(labels) if label is not None and j != query
        )
        return context + self.prompts[query]

    def log_odds(self, labels: Sequence[int | None], queries: Sequence[int]) -> list[float]:
        """Score of each claim in ``queries`` with every other labelled claim (``labels``) in context."""
        keys = [(i, _context_key(labels, i)) for i in queries]
        self.stats.queries += len(keys)
        missing = list(dict.fromkeys(key for key in keys if key not in self._scores))
        fresh: dict[tuple[int, bytes], float] = {}
        if missing:
            texts = [self.prompt_text(labels, i) for i, _ in missing]
            before = self.client.requests_sent
            tops = self.client.top_logprobs(texts)
            self.stats.computed += len(missing)
            self.stats.forwards += self.client.requests_sent - before
            fresh = {key: label_log_odds_from_top(top, self.label_words) for key, top in zip(missing, tops)}
        out = []
        for key in keys:
            value = fresh[key] if key in fresh else self._scores.pop(key)
            self._scores[key] = value  # most recently used last
            if len(self._scores) > self.max_cached_scores:
                self._scores.popitem(last=False)
            out.append(value)
        return out
