"""The GRPO loss family against the installed TRL 1.16, through the model.

TRL's own ``GRPOTrainer._compute_loss`` runs on a tiny random Llama (its per-token log-probs from a plain
forward over TRL's layout: left-padded prompts + right-padded completions, logits / temperature); metalight
computes its log-probs with its own ``completion_logprobs`` (shared prompt prefix, position ids from the mask)
and its own ``grpo_loss``. For every combination TRL accepts of loss type × importance-sampling level × β ×
bias-corrected KL × on/off-policy × padded/unpadded prompts (temperature 0.7): the loss to 1e-5, the gradient
norm over the model's weights to 1e-5 relative, and every loss metric TRL logs.

To keep the matrix fast, each side's forward runs once per prompt layout and the Jacobian of its log-probs
with respect to the weights is taken once; a case's weight gradient is then Jᵀ · ∂loss/∂logps (the chain rule
the backward pass would apply).
"""

import copy
import itertools
import types
from collections import defaultdict

import pytest
import torch
from trl import GRPOTrainer
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

from metalight.methods.grpo.loss import (
    LOSS_TYPES,
    LOSS_VARIANTS,
    LossSettings,
    Normalisers,
    grpo_loss,
    high_entropy_mask,
    masked_sum_count,
    sequence_means,
)
from metalight.methods.grpo.rollout import completion_logprobs
from tests.conftest import build_tiny_llama

VOCAB, PAD, TEMPERATURE, MAX_LEN = 64, 0, 0.7, 8
PREFIX = [5, 6, 7, 8, 9]  # shared by every prompt, so metalight's prefix sharing engages
PROMPTS = {
    "unpadded": [PREFIX + [10, 11], PREFIX + [12, 13], PREFIX + [14, 15]],
    "left_padded": [PREFIX + [10], PREFIX + [12, 13, 20, 21], PREFIX + [14, 15]],
}
COMPLETION_LENGTHS = [5, 3, 1, 4, 5, 2]  # G = 2 completions per prompt


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_tiny_llama(VOCAB, seed=0).train()


def _perturbed(model, scale, seed):
    copy_ = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy_.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return copy_


def jacobian(values, model) -> torch.Tensor:
    """d values / d weights as [values.numel(), weights] (one backward per value)."""
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for value in values.flatten():
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
        )
    return torch.stack(rows).double()


@pytest.fixture(scope="module")
def batches(model):
    """Per prompt layout: prompt / completion ids, old log-probs from a perturbed copy (so clipping engages),
    reference log-probs from another, advantages of both signs; each side's log-probs, entropies and
    Jacobian."""
    g = torch.Generator().manual_seed(1)
    completions = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in COMPLETION_LENGTHS]
    old_model, ref_model = _perturbed(model, 0.05, 2), _perturbed(model, 0.03, 3)
    out = {}
    for layout, prompts in PROMPTS.items():
        prompt_ids = [p for p in prompts for _ in range(2)]
        with torch.no_grad():
            old = completion_logprobs(old_model, prompt_ids, completions, PAD, TEMPERATURE)[0]
            ref = completion_logprobs(ref_model, prompt_ids, completions, PAD, TEMPERATURE)[0]
        batch = {
            "prompt_ids": prompt_ids,
            "completions": completions,
            "old": old,
            "ref": ref,
            "advantages": torch.randn(len(prompt_ids), generator=g),
        }
        ours, ours_entropy = completion_logprobs(model, prompt_ids, completions, PAD, TEMPERATURE)
        inputs = trl_inputs(batch)
        trl, trl_entropy, _ = trl_logps_and_entropies(
            model,
            torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1),
            inputs["completion_ids"].size(1),
        )
        batch["ours"] = (ours.detach(), ours_entropy, jacobian(ours, model))
        batch["trl"] = (trl.detach(), trl_entropy, jacobian(trl, model))
        out[layout] = batch
    return out


def trl_inputs(batch):
    """The batch in TRL's layout (left-padded prompts, right-padded completions, masks)."""
    width_p = max(map(len, batch["prompt_ids"]))
    width_c = max(map(len, batch["completions"]))
    rows = len(batch["prompt_ids"])
    prompt_ids, prompt_mask = torch.full((rows, width_p), PAD), torch.zeros(rows, width_p, dtype=torch.long)
    completion_ids, completion_mask = (
        torch.full((rows, width_c), PAD),
        torch.zeros(rows, width_c, dtype=torch.long),
    )
    for i, (p, c) in enumerate(zip(batch["prompt_ids"], batch["completions"])):
        prompt_ids[i, width_p - len(p) :], prompt_mask[i, width_p - len(p) :] = torch.tensor(p), 1
        completion_ids[i, : len(c)], completion_mask[i, : len(c)] = torch.tensor(c), 1
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": batch["advantages"],
        "num_items_in_batch": completion_mask.sum(),
        "ref_per_token_logps": batch["ref"],
    }


def trl_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep, **kwargs):
    """TRL's non-fused per-token log-probs: one forward over prompt + completion, logits / temperature."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -logits_to_keep - 1 : -1]
    logits = logits / TEMPERATURE
    with torch.no_grad():
        entropies = entropy_from_logits(logits)
    return selective_log_softmax(logits, input_ids[:, -logits_to_keep:]), entropies, None


def fake_trainer(settings: LossSettings, accumulation: int, steps_per_generation: int):
    """The attributes ``GRPOTrainer._compute_loss`` reads, for one process."""
    accelerator = types.SimpleNamespace(
        num_processes=1,
        reduce=lambda t, reduction: t,
        gather=lambda t: t,
        pad_across_processes=lambda t, dim, pad_index: t,
    )
    args = types.SimpleNamespace(
        steps_per_generation=steps_per_generation,
        **{
            k: getattr(settings, k)
            for k in (
                "use_bias_correction_kl",
                "delta",
                "sapo_temperature_neg",
                "sapo_temperature_pos",
                "vespo_k_pos",
                "vespo_lambda_pos",
                "vespo_k_neg",
                "vespo_lambda_neg",
            )
        },
    )
    trainer = types.SimpleNamespace(
        _get_per_token_logps_and_entropies=trl_logps_and_entropies,
        top_entropy_quantile=settings.top_entropy_quantile,
        off_policy_mask_threshold=settings.off_policy_mask_threshold,
        importance_sampling_level=settings.importance_sampling_level,
        beta=settings.beta,
        loss_type=settings.loss_type,
        epsilon_low=settings.epsilon,
        epsilon_high=settings.upper,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=types.SimpleNamespace(training=True),
        current_gradient_accumulation_steps=accumulation,
        max_completion_length=MAX_LEN,
        accelerator=accelerator,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list)},
        args=args,
        get_off_policy_mask=GRPOTrainer.get_off_policy_mask,
        get_gamma_weights=GRPOTrainer.get_gamma_weights,
    )
    trainer.get_high_entropy_mask = types.MethodType(GRPOTrainer.get_high_entropy_mask, trainer)
    return trainer


def through_model(side, loss_fn):
    """Run ``loss_fn(logps, entropy)`` on one side's log-probs; (loss, its gradient norm over the weights)."""
    logps, entropy, jac = side
    leaf = logps.clone().requires_grad_(True)
    loss = loss_fn(leaf, entropy)
    loss.backward()
    return loss, torch.linalg.vector_norm(jac.T @ leaf.grad.double().flatten()).item()


def check_parity(batch, settings: LossSettings, off_policy: bool, accumulation=1, steps_per_generation=1):
    inputs = trl_inputs(batch)
    if off_policy:
        inputs["old_per_token_logps"] = batch["old"]
    trainer = fake_trainer(settings, accumulation, steps_per_generation)

    def trl_loss(logps, entropy):
        trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (logps, entropy, None)
        return GRPOTrainer._compute_loss(trainer, None, inputs)

    expected, expected_norm = through_model(batch["trl"], trl_loss)
    mask = inputs["completion_mask"].float()
    norm = Normalisers(MAX_LEN, float(mask.sum()), 1, steps_per_generation)
    found = {}

    def our_loss(logps, entropy):
        entropy_mask = None
        if settings.top_entropy_quantile < 1.0:
            entropy_mask = high_entropy_mask(entropy, mask, settings.top_entropy_quantile)
        found["terms"] = grpo_loss(
            logps,
            batch["old"] if off_policy else None,
            batch["ref"],
            batch["advantages"],
            mask,
            settings,
            norm,
            entropy_mask,
        )
        return found["terms"].loss / accumulation  # what Lightning does under gradient accumulation

    loss, loss_norm = through_model(batch["ours"], our_loss)
    terms = found["terms"]
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert loss_norm == pytest.approx(expected_norm, rel=1e-5)
    logged = {k: v[0] for k, v in trainer._metrics["train"].items()}
    ours = {
        "entropy": batch["ours"][1],
        **terms.flags,
        **({"kl": terms.kl.detach()} if terms.kl is not None else {}),
    }
    for name, values in ours.items():
        total, count = masked_sum_count(values, mask)
        assert (total / count).item() == pytest.approx(logged.pop(name), abs=1e-5), name
    if "clip_ratio/low_mean" in terms.flags:
        low = sequence_means(terms.flags["clip_ratio/low_mean"], mask)
        high = sequence_means(terms.flags["clip_ratio/high_mean"], mask)
        assert low.nan_to_num(float("inf")).min().item() == pytest.approx(logged.pop("clip_ratio/low_min"))
        assert high.nan_to_num(float("-inf")).max().item() == pytest.approx(logged.pop("clip_ratio/high_max"))
    assert not logged  # every metric TRL logs was compared
    return terms


MATRIX = [
    (loss_type, level, beta, bias, off_policy, layout)
    for loss_type, level, beta, bias, off_policy, layout in itertools.product(
        LOSS_TYPES, ("token", "sequence"), (0.0, 0.04), (True, False), (False, True), tuple(PROMPTS)
    )
    if not (
        loss_type == "luspo" and level == "token"
    )  # TRL only warns; metalight refuses it (see docs/grpo.md)
]


@pytest.mark.parametrize("loss_type,level,beta,bias,off_policy,layout", MATRIX)
def test_loss_gradient_and_metrics_equal_trl(batches, loss_type, level, beta, bias, off_policy, layout):
    settings = LossSettings(
        loss_type=loss_type,
        importance_sampling_level=level,
        beta=beta,
        use_bias_correction_kl=bias,
        epsilon_high=5.0 if loss_type == "cispo" else 0.28,
    )
    check_parity(batches[layout], settings, off_policy)


@pytest.mark.parametrize(
    "options",
    [
        {"loss_type": "dapo", "delta": 1.5},
        {"loss_type": "grpo", "top_entropy_quantile": 0.3},
        {"loss_type": "dapo", "off_policy_mask_threshold": 0.01},
        {
            "loss_type": "bnpo",
            "importance_sampling_level": "sequence",
            "off_policy_mask_threshold": 0.01,
            "top_entropy_quantile": 0.5,
            "beta": 0.04,
        },
        {"loss_type": "cispo", "epsilon_high": 1.1},
        {"loss_type": "sapo", "sapo_temperature_pos": 0.5, "sapo_temperature_neg": 2.0},
        {"loss_type": "vespo", "vespo_k_pos": 1.0, "vespo_lambda_neg": 0.5},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_options_equal_trl_off_policy(batches, options):
    options = {"epsilon_high": 0.28, **options}
    check_parity(batches["left_padded"], LossSettings(**options), off_policy=True)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "cispo"])
def test_accumulation_and_steps_per_generation_normalise_as_trl(batches, loss_type):
    # a generation batch split into 2 micro-batches, 4 accumulation steps: dapo's normaliser is TRL's
    check_parity(
        batches["unpadded"],
        LossSettings(loss_type=loss_type, epsilon_high=5.0),
        off_policy=True,
        accumulation=4,
        steps_per_generation=2,
    )


def test_off_policy_cases_exercise_clipping(batches):
    settings = LossSettings(loss_type="dapo", epsilon_high=0.28)
    terms = check_parity(batches["left_padded"], settings, off_policy=True)
    assert terms.flags["clip_ratio/region_mean"].sum() > 0


def test_every_loss_type_has_one_variant():
    assert set(LOSS_VARIANTS) == set(LOSS_TYPES)
