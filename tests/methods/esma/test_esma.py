"""ESMAModule on a tiny random Llama: the ES step equals a hand computation, α = 0 changes nothing, resume
and 2-process DDP give the same weights as one uninterrupted process, bad settings fail clearly."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import evaluate_records
from metalight.methods.esma.engine import PopulationEngine
from metalight.methods.esma.module import ESMAModule, iteration_questions
from metalight.methods.esma.perturb import perturbed
from metalight.methods.esma.rewards import correctness_reward, member_fitness
from metalight.methods.esma.update import member_seeds
from tests.methods.esma.esma_helpers import datamodule, fit, module, weights, write_questions
from tests.report_keys import assert_report_keys

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return write_questions(tmp_path_factory.mktemp("esma-data") / "questions.jsonl")


def hand_step(esma, questions_path, alpha):
    """θ + α/N Σ zᵢεᵢ computed independently: explicit perturbation, core evaluation, float64 sums."""
    esma.configure_model()
    pool = datamodule(questions_path).records("train")
    h = esma.hparams
    records = [pool[i] for i in iteration_questions(len(pool), h.num_data_per_iteration, h.es_seed, 0)]
    members = member_seeds(h.es_seed, 0, h.population_size)
    fitness = []
    for m in members:
        with perturbed(esma.scheme, m.seed, h.sigma, "copy"):
            results = evaluate_records(esma.model, esma.tokenizer, records, esma.eval_settings)
            fitness.append(member_fitness("correctness", correctness_reward, records, results))
    fitness = torch.tensor(fitness, dtype=torch.float64)
    assert fitness.std() > 0, "the test needs members with different rewards"
    z = (fitness - fitness.mean()) / (fitness.std() + 1e-8)
    expected = {s.name: s.param.detach().double().clone() for s in esma.scheme.selected}
    for m, zi in zip(members, z):
        for index, eps in esma.scheme.iter_noise(m.seed):
            expected[esma.scheme.selected[index].name] += alpha / len(members) * zi * eps.double()
    return expected


@pytest.mark.parametrize(
    ("noise", "es_update", "layers"),
    [
        ("esma", "float32_sum", None),
        ("lowrank", "float32_sum", None),
        ("esma", "in_place", None),
        ("lowrank", "float32_sum", [1, 2]),
    ],
)
def test_one_step_equals_hand_computation_on_three_members(
    tiny_model_dir, questions, tmp_path, noise, es_update, layers
):
    alpha = 0.05  # layers [1, 2): the training step shares layer 0 (the trunk) between the members
    overrides = {"population_size": 3, "noise": noise, "rank": 2, "es_update": es_update, "layers": layers}
    expected = hand_step(module(tiny_model_dir, **overrides), questions, alpha)
    engine = PopulationEngine("batched" if noise == "lowrank" else "sequential", restore="copy")
    esma = fit(module(tiny_model_dir, **overrides, engine=engine), questions, 1, tmp_path, lr=alpha)
    assert esma.global_step == 1  # in place, the optimizer still counts the step
    trained = weights(esma)
    for name, value in expected.items():
        torch.testing.assert_close(trained[name].double(), value, atol=2e-6, rtol=1e-5)


def test_in_place_update_needs_plain_sgd(tiny_model_dir, questions, tmp_path):
    esma = module(tiny_model_dir, population_size=2, es_update="in_place")
    esma.optimizer_factory = lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    trainer = Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    with pytest.raises(ConfigError, match="es_update: in_place .* plain SGD"):
        trainer.fit(esma, datamodule=datamodule(questions))


def test_alpha_zero_leaves_weights_bitwise_unchanged_with_copy_restore(tiny_model_dir, questions, tmp_path):
    esma = module(tiny_model_dir, engine=PopulationEngine(restore="copy"))
    esma.configure_model()
    before = weights(esma)
    after = weights(fit(esma, questions, 1, tmp_path, lr=0.0))
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_alpha_zero_with_subtract_restore_stays_within_measured_drift(tiny_model_dir, questions, tmp_path):
    esma = module(tiny_model_dir, engine=PopulationEngine(restore="subtract"))
    esma.configure_model()
    before = weights(esma)
    after = weights(fit(esma, questions, 1, tmp_path, lr=0.0))
    # 4 members = 4 perturb/subtract cycles: each moves a weight by at most ~2 roundings of |θ| + |σε|.
    for name in before:
        bound = 4 * 2 * torch.finfo(torch.float32).eps * (before[name].abs() + 0.05 * 6)
        assert ((after[name] - before[name]).abs() <= bound).all(), name


@pytest.mark.parametrize("reward", ["correctness", "esma_brier"])
def test_resume_after_step_two_equals_an_uninterrupted_run(tiny_model_dir, questions, tmp_path, reward):
    straight = weights(fit(module(tiny_model_dir, reward=reward), questions, 4, tmp_path / "straight"))
    fit(module(tiny_model_dir, reward=reward), questions, 2, tmp_path / "cut")
    resumed = weights(
        fit(
            module(tiny_model_dir, reward=reward),
            questions,
            4,
            tmp_path / "cut",
            ckpt_path=str(tmp_path / "cut" / "ckpt" / "last.ckpt"),
        )
    )
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    base = _base(tiny_model_dir)
    assert any(
        not torch.equal(straight[k], v) for k, v in weights(base).items()
    )  # training moved the weights


def _base(model_dir):
    esma = module(model_dir)
    esma.configure_model()
    return esma


@pytest.mark.parametrize(
    "noise,extra",
    [
        ("esma", ["engine.restore=copy"]),
        ("lowrank", ["engine.population=batched", "engine.members_per_batch=2", "reward=esma_brier"]),
    ],
)
def test_two_process_ddp_equals_one_process_after_three_steps(
    tiny_model_dir, questions, tmp_path, noise, extra
):
    """Same weights, and the same train-time metacognition (pooled over both ranks' members)."""
    outputs = {}
    for devices in (1, 2):
        out = tmp_path / f"weights{devices}.pt"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.methods.esma.esma_ddp_run",
                str(tiny_model_dir),
                str(questions),
                str(tmp_path / f"run{devices}"),
                str(devices),
                str(out),
                f"noise={noise}",
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[devices] = torch.load(out)
    one, two = outputs[1], outputs[2]
    assert all(torch.equal(one["weights"][k], two["weights"][k]) for k in one["weights"])
    assert set(POPULATION_KEYS) <= set(one["metrics"])
    assert all(_same(one["metrics"][k], two["metrics"][k]) for k in POPULATION_KEYS), (
        one["metrics"],
        two["metrics"],
    )


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize(
    "setting,message",
    [
        ({"population_size": 1}, "population_size: 1 must be >= 2"),
        ({"sigma": 0.0}, "sigma: 0.0 must be > 0"),
        ({"sigma": -1e-3}, "sigma: -0.001 must be > 0"),
        ({"population_size": 5, "antithetic": True}, "must be even"),
        ({"reward": "no_such_reward"}, "unknown reward 'no_such_reward'"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_key(setting, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        ESMAModule(**setting)


@pytest.mark.parametrize(
    "setting,message",
    [
        ({"parameters": "no_such_module"}, "selects no parameter"),
        ({"parameters": "attention", "layers": [5, 9]}, "selects no parameter"),
        ({"noise": "lowrank", "parameters": "norm"}, "lowrank needs at least one Linear weight matrix"),
        ({"noise": "lowrank", "rank": 0}, "rank: 0 must be >= 1"),
        ({"noise": "lowrank", "rank": 10_000}, "larger than the smallest side"),
        ({"engine": PopulationEngine("batched")}, "engine.population: batched needs noise: lowrank"),
    ],
)
def test_bad_selection_fails_when_the_model_is_loaded(tiny_model_dir, setting, message):
    with pytest.raises(ConfigError, match=message):
        module(tiny_model_dir, **setting).configure_model()


def test_nan_rewards_get_zero_weight_and_all_nan_is_an_error(tiny_model_dir):
    esma = module(tiny_model_dir)
    weights_, missing = esma.shape(torch.tensor([1.0, float("nan"), 3.0, 2.0]), step=0)
    assert missing == 1 and weights_[1] == 0 and weights_[0] == -weights_[2]
    with pytest.raises(ConfigError, match="NaN for every member"):
        esma.shape(torch.full((4,), float("nan")), step=3)


@pytest.mark.parametrize("config,name", [("quickstart", "esma-quickstart"), ("brier", "esma-brier")])
def test_cli_fit_with_the_shipped_configs_logs_every_key(tiny_model_dir, tmp_path, config, name):
    from metalight.cli import main
    from scripts.esma_study import scalars

    main(
        [
            "fit",
            "--config",
            f"configs/esma/{config}.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.population_size",
            "2",
            "--model.init_args.num_data_per_iteration",
            "2",
            "--model.init_args.evaluation.max_new_tokens",
            "2",
            "--data.init_args.max_samples.val",
            "3",
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "2",
            "--trainer.log_every_n_steps",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    (run,) = (tmp_path / name).iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == 3 and report["step"] == 2 and report["model"] == str(tiny_model_dir)
    assert_report_keys(report, f"esma_{config}")
    logged = scalars(run, tags=TRAIN_KEYS + ("val/dprime_type2", "val/accuracy"))
    assert set(logged) == set(TRAIN_KEYS) | {"val/dprime_type2", "val/accuracy"}
    assert [step for _, step, _ in logged["train/reward"]] == [0, 1]


POPULATION_KEYS = (
    "train/dprime_type2",
    "train/auroc_type2",
    "train/yes_failure_rate",
    "train/no_failure_rate",
    "train/meta_unparsed_rate",
)
TRAIN_KEYS = (
    "train/reward",
    "train/reward_std",
    "train/reward_min",
    "train/reward_max",
    "train/correctness",
    "train/alignment",
    "train/yes_ratio",
    "train/nan_members",
    "train/grad_norm",
    "train/update_norm",
    "train/time/population_eval",
    "train/time/update",
    *POPULATION_KEYS,
)
