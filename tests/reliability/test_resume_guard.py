"""ESMA resume guards: a resume with changed population, seed, σ, noise or questions per iteration is refused
listing the differences, or allowed by METALIGHT_ALLOW_RESUME_CHANGES and recorded in the report."""

import pytest

from metalight.errors import ConfigError
from metalight.methods.esma.resume_guard import OVERRIDE_ENV, check_resume, resume_differences
from tests.methods.esma.esma_helpers import fit, module, write_questions


@pytest.fixture(scope="module")
def questions(tmp_path_factory):
    return write_questions(tmp_path_factory.mktemp("resume") / "questions.jsonl")


def test_changed_population_and_sigma_are_refused_listing_both(tiny_model_dir, questions, tmp_path, monkeypatch):
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)
    fit(module(tiny_model_dir), questions, 1, tmp_path)
    with pytest.raises(ConfigError) as refused:
        fit(module(tiny_model_dir, population_size=6, sigma=0.1), questions, 2, tmp_path,
            ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert str(refused.value) == (
        "cannot resume exactly: population_size: 4 in the checkpoint, 6 now, sigma: 0.05 in the checkpoint, 0.1 now; "
        f"resume with the checkpoint's settings, or set {OVERRIDE_ENV}=population_size,sigma to continue with the "
        "new ones (recorded in the report)")


def test_an_explicit_override_resumes_and_is_recorded(tiny_model_dir, questions, tmp_path, monkeypatch):
    fit(module(tiny_model_dir), questions, 1, tmp_path)
    monkeypatch.setenv(OVERRIDE_ENV, "population_size")
    resumed = fit(module(tiny_model_dir, population_size=6), questions, 2, tmp_path,
                  ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    assert resumed.global_step == 2
    assert resumed.report_settings()["resume_changes"] == {"population_size": {"checkpoint": 4, "now": 6}}


def test_same_settings_resume_silently():
    class Fake:
        hparams = {"population_size": 4, "es_seed": 7, "sigma": 0.05, "noise": "esma"}

    fake = Fake()
    check_resume(fake, {"hyper_parameters": dict(Fake.hparams)})
    assert fake.resume_changes == {} and resume_differences(Fake.hparams, {**Fake.hparams, "es_seed": 8}) == {
        "es_seed": {"checkpoint": 7, "now": 8}}
