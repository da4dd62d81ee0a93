"""Items 2-5 of issue 32: a report names the checkpoint it measured (path, step, epoch); a checkpoint of
another method is refused; ``--ckpt_path last`` finds the experiment's newest last.ckpt (or says where it
looked); a checkpoint with flipped bytes inside a tensor is refused by its CRCs."""

import shutil
import zipfile

import torch

from metalight.cli import main
from tests.reliability.conftest import (
    ROOT,
    esma_fit_args,
    eval_args,
    flip_inside_a_tensor,
    report_of,
    run_main,
)


def test_validate_of_a_checkpoint_reports_its_path_step_and_epoch(esma_run, tiny_model_dir, tmp_path, capsys):
    _, questions, last, _ = esma_run
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(questions),
            "--data.init_args.max_samples",
            "4",
            "--ckpt_path",
            str(last),
        ),
        capsys,
    )
    report = report_of(tmp_path)
    epoch = torch.load(last, weights_only=True, mmap=True)["epoch"]  # Lightning's count when it was saved
    assert (code, errors) == (0, [])
    assert report["step"] == 2 and report["epoch"] == epoch
    assert {k: report["checkpoint"][k] for k in ("path", "global_step", "epoch")} == {
        "path": str(last),
        "global_step": 2,
        "epoch": epoch,
    }
    run = tmp_path / "eval-triviaqa" / "version_0"
    assert (run / "reports" / "val_step2.json").is_file() and (run / "samples" / "val_step2.jsonl").is_file()


def test_a_checkpoint_of_another_method_is_refused_naming_both(esma_run, tiny_model_dir, tmp_path, capsys):
    _, questions, last, _ = esma_run
    code, errors = run_main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/grpo/fanoutqa_accuracy.yaml"),
            "--model.init_args.model",
            str(tiny_model_dir),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--ckpt_path",
            str(last),
        ],
        capsys,
    )
    assert (code, errors) == (
        2,
        [
            f"error: checkpoint {last} was made by metalight.methods.esma.ESMAModule, but the "
            f"config runs metalight.methods.grpo.GRPOModule (model.class_path); give a "
            f"checkpoint of GRPOModule, or fit it with the config it was trained with"
        ],
    )


def test_ckpt_path_last_resumes_the_newest_last_ckpt_or_says_where_it_looked(
    esma_run, tiny_model_dir, tmp_path, capsys
):
    runs, questions, last, _ = esma_run
    cli = main(esma_fit_args(tiny_model_dir, questions, runs, "--ckpt_path", "last"))
    assert (
        cli.trainer.ckpt_path == str(last) and cli.trainer.global_step == 2
    )  # resumed, not trained from scratch
    code, errors = run_main(
        esma_fit_args(tiny_model_dir, questions, tmp_path / "empty", "--ckpt_path", "last"), capsys
    )
    assert (code, errors) == (
        2,
        [
            f"error: --ckpt_path last: no last.ckpt in {tmp_path}/empty/esma-quickstart/"
            f"version_*/checkpoints; give the checkpoint's path, or train with "
            f"ModelCheckpoint(save_last: true) (a fit stopped by SIGTERM saves one too)"
        ],
    )


def test_flipped_bytes_inside_a_checkpoint_are_refused_by_its_crcs(
    esma_run, tiny_model_dir, tmp_path, capsys
):
    _, questions, last, _ = esma_run
    damaged = tmp_path / "damaged.ckpt"
    shutil.copy(last, damaged)
    member = flip_inside_a_tensor(damaged)
    assert zipfile.is_zipfile(damaged)  # the check that let it through before
    code, errors = run_main(
        esma_fit_args(tiny_model_dir, questions, tmp_path / "runs", "--ckpt_path", str(damaged)), capsys
    )
    assert (code, errors) == (
        2,
        [
            f"error: checkpoint {damaged} is damaged: its part {member} does not match its "
            f"checksum (CRC); use another one, e.g. an earlier file in {tmp_path}"
        ],
    )
