"""MetaConf's paper run end to end, as a user runs it: stage-1 data from ``scripts/build_metaconf_sft.py``,
``fit --config configs/sft/metaconf_stage1.yaml`` (LoRA r 256 / alpha 512 on q, v, lr 1e-5, 4 epochs, merged
export), then ``fit --config configs/grpo/metaconf.yaml`` on that export with a local judge for 2 steps. Only
the model, data, sizes, steps and output directory are overridden; the paper's training settings stay as
written."""

import json

import torch
from safetensors.torch import load_file

from metalight.cli import main

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def build_stage1_data(model_dir, out):
    from scripts.build_metaconf_sft import main as build

    assert (
        build(
            [
                "--out",
                str(out),
                "--model",
                str(model_dir),
                "--writer-model",
                str(model_dir),
                "--questions",
                "4",
                "--samples",
                "2",
                "--max-new-tokens",
                "4",
                "--writer-max-new-tokens",
                "8",
                "--threads",
                str(torch.get_num_threads()),
                "--prompt",
                "bare",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and all(r["completion"].startswith("Answer:") for r in rows)
    assert not any(
        "Question:" in r["prompt"] for r in rows
    )  # bare questions, as stage 2's paper config sends


def stage1(model_dir, data, runs):
    """``fit`` with the stage-1 config as written (4 epochs of the 4 rows, 2 per batch: 8 optimizer steps)."""
    cli = main(
        [
            "fit",
            "--config",
            "configs/sft/metaconf_stage1.yaml",
            "--model.init_args.model",
            str(model_dir),
            "--data.init_args.path",
            str(data),
            "--model.init_args.max_length",
            "256",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.logger.init_args.save_dir",
            str(runs),
            *QUIET,
        ]
    )
    module = cli.model
    assert (
        module.lora.r == 256
        and module.lora.alpha == 512
        and module.lora.target_modules == ["q_proj", "v_proj"]
    )
    assert cli.trainer.optimizers[0].defaults["lr"] == 1e-5 and cli.trainer.global_step == 8
    return runs / "metaconf-stage1" / "version_0" / "hf"


def stage2(export, judge_dir, runs):
    """``fit`` with the paper's stage-2 config on the stage-1 export: 2 steps of 2 questions x 2
    completions."""
    judge = {
        "class_path": "metalight.methods.metaconf.judge.LocalChat",
        "init_args": {"model": str(judge_dir), "max_new_tokens": 8},
    }
    return main(
        [
            "fit",
            "--config",
            "configs/grpo/metaconf.yaml",
            "--model.init_args.model",
            str(export),
            "--model.init_args.judge",
            json.dumps(judge),
            "--model.init_args.num_generations",
            "2",
            "--model.init_args.max_completion_length",
            "4",
            "--model.init_args.verbal_max_new_tokens",
            "4",
            "--data.init_args.batch_size",
            "2",
            "--data.init_args.max_samples",
            '{"train": 4, "val": 2}',
            "--trainer.max_steps",
            "2",
            "--trainer.accumulate_grad_batches",
            "1",
            "--trainer.val_check_interval",
            "2",
            "--trainer.logger.init_args.save_dir",
            str(runs),
            *QUIET,
        ]
    )


def base_weights(peft_model) -> dict[str, torch.Tensor]:
    """The frozen base weights under a peft model, named as in the ``save_pretrained`` file."""
    return {
        name.replace(".base_layer", ""): p.detach()
        for name, p in peft_model.get_base_model().named_parameters()
        if "lora_" not in name
    }


def test_stage1_export_is_the_model_stage2_trains(tmp_path, varied_model_dir):
    data, runs = tmp_path / "metaconf_sft.jsonl", tmp_path / "runs"
    build_stage1_data(varied_model_dir, data)
    export = stage1(varied_model_dir, data, runs)

    # a merged export: a plain model directory whose q/v projections (and only those) moved
    assert (export / "config.json").is_file() and (export / "chat_template.jinja").is_file()
    assert not (export / "adapter_config.json").exists()
    base, tuned = load_file(varied_model_dir / "model.safetensors"), load_file(export / "model.safetensors")
    moved = sorted(k for k in base if not torch.equal(base[k], tuned[k]))
    assert moved and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in moved)

    cli = stage2(export, varied_model_dir, runs)
    trainer, module = cli.trainer, cli.model
    assert trainer.global_step == 2
    (optimizer,) = trainer.optimizers
    assert {int(state["step"]) for state in optimizer.state.values()} == {
        2
    }  # every LoRA weight: 2 AdamW steps

    # stage 2 trains on the stage-1 weights (in the paper config's bfloat16), not on the base model's
    loaded = base_weights(module.model)
    assert all(torch.equal(loaded[k], tuned[k].to(torch.bfloat16)) for k in tuned)
    assert any(not torch.equal(loaded[k], base[k].to(torch.bfloat16)) for k in moved)

    # the local judge the command line put in place loads and is asked about a well-formed reply
    record = cli.datamodule.records("train")[0]
    scores = module.scorer.reflection(
        [""], ["Answer: x\nSelf-reflection: I am unsure.\nConfidence: 5"], [record]
    )
    assert module.scorer.stats["judge/requests"] == 1.0 and 0.0 <= float(scores[0]) <= 1.0

    run = runs / "metaconf" / "version_0"
    report = json.loads((run / "report.json").read_text())
    assert report["model"] == str(export) and report["step"] == 2 and report["n"] == 2
    assert report["judge"]["model"] == str(varied_model_dir) and report["judge"]["backend"] == "local"
    assert "verbal_meta_unparsed_rate" in report
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch=0-step=2.ckpt"]
