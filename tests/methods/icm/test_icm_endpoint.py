"""ICM's log-prob backend over an OpenAI-compatible /completions endpoint, against a stub server on
127.0.0.1."""

import json
import math
from pathlib import Path

import pytest
import torch

from metalight.api.completions_logprobs import CompletionsEndpoint, CompletionsLogprobClient, EndpointError
from metalight.errors import ConfigError
from metalight.methods.icm import ICMModule, IterativeFineTuning
from metalight.methods.icm.endpoint_scorer import EndpointPredictability, label_log_odds_from_top
from metalight.methods.icm.predictability import MutualPredictability
from metalight.models.generation import yes_no_token_ids
from tests.methods.icm.stub_completions import StubCompletionsServer
from tests.methods.icm.test_icm_module import claims_file, fit

PROMPTS = [
    "Claim: 2 + 2 = 4. I think this claim is",
    "Claim: 3 + 3 = 7. I think this claim is",
    "Claim: 5 + 1 = 6. I think this claim is",
]


@pytest.fixture
def server():
    stub = StubCompletionsServer(lambda prompt: {" True": math.log(0.6), " False": math.log(0.3)})
    yield stub
    stub.close()


def endpoint(server, **kwargs):
    return CompletionsEndpoint(
        base_url=server.base_url, model="base-70b", max_retries=1, backoff_s=0.0, **kwargs
    )


def test_log_odds_from_top_sums_case_and_space_variants_by_hand():
    top = {" True": math.log(0.5), "true": math.log(0.1), " False": math.log(0.2), " Tr": math.log(0.1)}
    assert label_log_odds_from_top(top, ("True", "False")) == pytest.approx(
        math.log(0.6 + 1e-5) - math.log(0.2 + 1e-5)
    )
    assert label_log_odds_from_top({" maybe": 0.0}, ("True", "False")) == pytest.approx(
        0.0
    )  # both absent: log eps - log eps


def test_request_asks_for_one_token_with_top_logprobs_and_keeps_prompt_order(server):
    server.tops = lambda prompt: {" True": math.log(0.9 if "4." in prompt else 0.1)}
    client = CompletionsLogprobClient(endpoint(server, top_logprobs=5, prompts_per_request=2))
    tops = client.top_logprobs(PROMPTS)
    assert [round(math.exp(t[" True"]), 3) for t in tops] == [0.9, 0.1, 0.1]
    assert client.requests_sent == 2  # 3 prompts, 2 per request
    body = server.requests[0]
    assert body["max_tokens"] == 1 and body["logprobs"] == 5 and body["model"] == "base-70b"
    assert body["prompt"] == PROMPTS[:2]


def test_scorer_sends_the_other_labelled_claims_as_demonstrations_and_memoises(server):
    scorer = EndpointPredictability(endpoint(server), PROMPTS)
    scores = scorer.log_odds([1, 0, None], [0, 1, 2])
    assert scores == pytest.approx([math.log(0.6 + 1e-5) - math.log(0.3 + 1e-5)] * 3)
    sent = server.requests[0]["prompt"]
    assert sent[0] == f"{PROMPTS[1]} False\n\n{PROMPTS[0]}"
    assert sent[2] == f"{PROMPTS[0]} True\n\n{PROMPTS[1]} False\n\n{PROMPTS[2]}"
    scorer.log_odds([1, 0, None], [0, 1, 2])
    assert len(server.requests) == 1 and scorer.stats.queries == 6 and scorer.stats.computed == 3


def test_endpoint_scores_equal_local_scores_when_the_server_runs_the_same_model(tiny):
    model, tokenizer = tiny
    true_ids, false_ids = yes_no_token_ids(tokenizer, "True", "False")

    def tops(prompt):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        return {tokenizer.decode([i]): logp[i].item() for i in true_ids + false_ids}

    stub = StubCompletionsServer(tops)
    try:
        remote = EndpointPredictability(endpoint(stub), PROMPTS).log_odds([1, None, 0], [0, 1, 2])
    finally:
        stub.close()
    local = MutualPredictability(model, tokenizer, PROMPTS).log_odds([1, None, 0], [0, 1, 2])
    assert remote == pytest.approx(local, abs=1e-4)


@pytest.mark.parametrize(
    "behaviour, message",
    [
        ("404", 'completions answered HTTP 404: {"error": {"message": "model not loaded"}}'),
        ("malformed", "answered HTTP 200 with a body that is not JSON"),
        ("nologprobs", "without choices[i].logprobs.top_logprobs[0]"),
    ],
)
def test_server_errors_are_one_line_and_name_the_endpoint(server, behaviour, message):
    server.script = [
        behaviour
    ] * 2  # a reply that is not JSON is retried (max_retries 1) like any transient one
    with pytest.raises(EndpointError) as err:
        CompletionsLogprobClient(endpoint(server)).top_logprobs(PROMPTS[:1])
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{server.base_url}/completions") and message in text


def test_retryable_status_is_retried_then_reported_with_the_status(server):
    server.script = ["500"]
    client = CompletionsLogprobClient(endpoint(server))
    assert len(client.top_logprobs(PROMPTS[:1])) == 1 and client.requests_sent == 2
    server.script = ["500", "500"]
    with pytest.raises(EndpointError, match=r"/v1/completions answered HTTP 500: .*, after 2 attempts"):
        client.top_logprobs(PROMPTS[:1])


def test_unreachable_server_names_the_url():
    client = CompletionsLogprobClient(CompletionsEndpoint(base_url="http://127.0.0.1:9/v1", max_retries=0))
    with pytest.raises(EndpointError, match=r"^http://127.0.0.1:9/v1/completions: not reachable"):
        client.top_logprobs(["x"])


def test_bad_endpoint_settings_are_config_errors():
    with pytest.raises(ConfigError, match="must start with http"):
        CompletionsEndpoint(base_url="127.0.0.1:8000")
    with pytest.raises(ConfigError, match="drop one of"):
        ICMModule(logprob_endpoint={"base_url": "http://127.0.0.1:1/v1"}, finetune=IterativeFineTuning())


def test_fit_scores_with_the_endpoint_and_never_loads_the_local_model(tmp_path, server):
    server.tops = lambda prompt: {
        " True": math.log(0.8 if "The answer is 3." in prompt[-60:] else 0.2),
        " False": math.log(0.2 if "The answer is 3." in prompt[-60:] else 0.8),
    }
    module, trainer = fit(
        tmp_path, "does-not-exist-locally", claims_file(tmp_path), logprob_endpoint=endpoint(server)
    )
    assert module.model is None and trainer.global_step == 8 and server.requests
    report = json.loads((Path(trainer.log_dir) / "report.json").read_text())
    assert report["complete"] and report["settings"]["logprob_endpoint"]["model"] == "base-70b"
    assert report["work"]["computed"] > 0


def test_a_small_score_cache_drops_the_oldest_scores_and_still_answers(server):
    scorer = EndpointPredictability(endpoint(server), PROMPTS, max_cached_scores=2)
    assert len(scorer.log_odds([None, None, None], [0, 1, 2])) == 3 and len(scorer._scores) == 2
    scorer.log_odds([None, None, None], [2])
    assert len(server.requests) == 1  # claim 2's score was still cached
    scorer.log_odds([None, None, None], [0])
    assert len(server.requests) == 2  # claim 0's had been dropped
