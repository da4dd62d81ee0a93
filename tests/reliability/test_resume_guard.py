"""ESMA resume guards: a resume with changed population, seed, σ, noise or questions per iteration is refused
listing the differences, or allowed by METALIGHT_ALLOW_RESUME_CHANGES and recorded in the report."""

from types import SimpleNamespace

import pytest

from metalight.errors import ConfigError
from metalight.methods.esma.resume_guard import OVERRIDE_ENV, check_resume, resume_differences
from tests.methods.esma.esma_helpers import fit, module, write_questions
from tests.reliability.conftest import ROOT, run_main, write_trivia


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return write_questions(tmp_path_factory.mktemp("resume") / "questions.jsonl")


def test_changed_population_and_sigma_are_refused_listing_both(
    tiny_model_dir, questions, tmp_path, monkeypatch
):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    fit(module(tiny_model_dir), questions, 1, tmp_path)
    with pytest.raises(ConfigError) as refused:
        fit(
            module(tiny_model_dir, population_size=6, sigma=0.1),
            questions,
            2,
            tmp_path,
            ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"),
        )
    assert str(refused.value) == (
        "cannot resume exactly: population_size: 4 in the checkpoint, 6 now, "
        "sigma: 0.05 in the checkpoint, 0.1 now; "
        f"resume with the checkpoint's settings, or set {OVERRIDE_ENV}=population_size,sigma "
        "to continue with the new ones (recorded in the report)"
    )


def test_an_explicit_override_resumes_and_is_recorded(tiny_model_dir, questions, tmp_path, monkeypatch):
    fit(module(tiny_model_dir), questions, 1, tmp_path)
    monkeypatch.setenv(OVERRIDE_ENV, "population_size")
    resumed = fit(
        module(tiny_model_dir, population_size=6),
        questions,
        2,
        tmp_path,
        ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"),
    )
    assert resumed.global_step == 2
    assert resumed.report_settings()["resume_changes"] == {"population_size": {"checkpoint": 4, "now": 6}}


def test_same_settings_resume_silently():
    saved = {"population_size": 4, "es_seed": 7, "sigma": 0.05, "noise": "esma"}
    fake = SimpleNamespace(hparams=dict(saved))
    check_resume(fake, {"hyper_parameters": dict(saved)})
    assert fake.resume_changes == {} and resume_differences(saved, {**saved, "es_seed": 8}) == {
        "es_seed": {"checkpoint": 7, "now": 8}
    }


def test_the_cli_does_not_let_the_checkpoint_silently_replace_a_changed_setting(
    tmp_path, tiny_model_dir, capsys, monkeypatch
):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    questions = write_trivia(tmp_path / "q.jsonl")
    args = [
        "fit",
        "--config",
        str(ROOT / "configs/esma/quickstart.yaml"),
        "--model.init_args.model",
        str(tiny_model_dir),
        "--model.init_args.population_size",
        "2",
        "--model.init_args.num_data_per_iteration",
        "2",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path / "runs"),
        "--data",
        ("metalight.data.sources.triviaqa.TriviaQADataModule"),
        "--data.init_args.path",
        str(questions),
        "--data.init_args.batch_size",
        "1",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.save_last",
        "true",
        "--trainer.callbacks.every_n_train_steps",
        "1",
    ]
    assert run_main([*args, "--trainer.max_steps", "1"], capsys)[0] == 0
    (last,) = (tmp_path / "runs").rglob("last.ckpt")
    code, errors = run_main(
        [
            *args,
            "--trainer.max_steps",
            "2",
            "--model.init_args.population_size",
            "4",
            "--ckpt_path",
            str(last),
        ],
        capsys,
    )
    assert (code, errors) == (
        2,
        [
            (
                f"error: cannot resume exactly: population_size: 2 in the checkpoint, 4 now; resume "
                f"with the checkpoint's settings, or set {OVERRIDE_ENV}=population_size to continue "
                f"with the new ones (recorded in the report)"
            )
        ],
    )
