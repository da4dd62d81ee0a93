"""ProbeModule: LR heads trained through Lightning, PC axes, written probes, bad input."""

import json

import pytest
import torch
from lightning.pytorch import Trainer

from metalight.data.sources.true_false import TrueFalseDataModule
from metalight.errors import ConfigError, DataError
from metalight.io import read_jsonl
from metalight.methods.probes.axes import ProbeSet
from metalight.methods.probes.module import ProbeModule


def statements_csv(path, n=40, single_class=False):
    rows = [
        f"I really like fresh apples number {i}.,1"
        if i % 2 == 0 or single_class
        else f"Nobody should ever eat rotten bananas {i}.,0"
        for i in range(n)
    ]
    path.write_text("statement,label\n" + "\n".join(rows) + "\n")
    return str(path)


def fit(module, datamodule, root, epochs=30, **trainer_args):
    trainer = Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        num_sanity_val_steps=0,
        check_val_every_n_epoch=epochs,
        **trainer_args,
    )
    trainer.fit(module, datamodule)
    return trainer


class SyntheticFeatures(ProbeModule):
    """Features drawn from two Gaussian clusters along a random direction: linearly separable by label."""

    def _features(self, records, dataset):
        dim = self.model.config.hidden_size
        fixed = torch.Generator().manual_seed(0)  # one direction for every split
        direction = torch.nn.functional.normalize(torch.randn(dim, generator=fixed), dim=0)
        generator = torch.Generator().manual_seed(len(records))
        labels = torch.tensor([r.label for r in records], dtype=torch.float)
        noise = torch.randn(len(self.layers), len(records), dim, generator=generator)
        return noise + 6.0 * (2 * labels - 1)[None, :, None] * direction + 10.0


def test_lr_probe_separates_a_linearly_separable_synthetic_set(tiny_model_dir, tmp_path):
    data = TrueFalseDataModule(path=statements_csv(tmp_path / "s.csv", 80), batch_size=16, seed=1)
    module = SyntheticFeatures(model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"), pcs=[1, 2])
    trainer = fit(module, data, tmp_path / "run")
    report = json.loads((tmp_path / "run" / "probe_report.json").read_text())
    lr = report["axes"].index("lr")
    for split in ("train", "val", "test"):
        assert [row[lr] for row in report["splits"][split]["accuracy"]] == [1.0, 1.0]
    assert trainer.callback_metrics["val/best_lr_accuracy"] == 1.0
    assert report["axes"] == ["lr", "pc1", "pc2"]


def test_fit_on_text_writes_reloadable_probes_and_keeps_the_lm_out_of_checkpoints(tiny_model_dir, tmp_path):
    data = TrueFalseDataModule(path=statements_csv(tmp_path / "s.csv"), batch_size=8)
    module = ProbeModule(model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"), pcs=[1, 2, 4, 64])
    trainer = fit(module, data, tmp_path / "run", epochs=20, enable_checkpointing=True)
    run = tmp_path / "run"
    probes = ProbeSet.load(run / "probes.safetensors")
    assert probes.layers == [0, 1] and probes.axes == ["lr", "pc1", "pc2", "pc4"]  # PC 64 needs > 64 rows
    assert probes.meta["skipped_pcs"] == [64] and probes.meta["span"] == "response"
    examples = read_jsonl(run / "examples.jsonl")
    assert {e["split"] for e in examples} == {"val", "test"} and len(examples) == 16
    features = {layer: module.features["val"][i] for i, layer in enumerate(module.layers)}
    val_rows = [e for e in examples if e["split"] == "val"]
    torch.testing.assert_close(probes.score(features), torch.tensor([e["scores"] for e in val_rows]))
    logged = {k for k in trainer.callback_metrics if k.startswith("val/layer")}
    assert {"val/layer0/lr_accuracy", "val/layer1/pc2_auroc"} <= logged
    report = json.loads((run / "probe_report.json").read_text())
    assert report["splits"]["train"]["accuracy"][1][0] >= 0.9  # the LR head fits its training statements

    checkpoint = next((run / "checkpoints").glob("*.ckpt"))
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert "head_weight" in state and not any(k.startswith("model.") for k in state)
    again = Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(run)
    )
    reloaded = ProbeModule(model=str(tiny_model_dir), cache_dir=str(tmp_path / "cache"), pcs=[1, 2, 4, 64])
    metrics = again.validate(reloaded, data, ckpt_path=str(checkpoint), verbose=False)[0]
    fitted = float(trainer.callback_metrics["val/layer1/lr_accuracy"])
    assert metrics["val/layer1/lr_accuracy"] == pytest.approx(fitted)


def test_layer_out_of_range_and_single_class_labels_are_clear_errors(tiny_model_dir, tmp_path):
    data = TrueFalseDataModule(path=statements_csv(tmp_path / "s.csv"), batch_size=8)
    with pytest.raises(ConfigError, match=r"layers \[7\] out of range: this model has 2 blocks"):
        fit(
            ProbeModule(model=str(tiny_model_dir), layers=[0, 7], cache_dir=str(tmp_path / "c")),
            data,
            tmp_path,
        )
    one_class = TrueFalseDataModule(
        path=statements_csv(tmp_path / "one.csv", single_class=True), balance=False
    )
    with pytest.raises(DataError, match=r"train split has labels \[1\]: a probe needs both classes"):
        fit(ProbeModule(model=str(tiny_model_dir), cache_dir=str(tmp_path / "c")), one_class, tmp_path)


def test_validate_without_a_fitted_head_says_how_to_fix(tiny_model_dir, tmp_path):
    data = TrueFalseDataModule(path=statements_csv(tmp_path / "s.csv"), batch_size=8)
    trainer = Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path)
    )
    with pytest.raises(ConfigError, match="--ckpt_path of a fit run"):
        trainer.validate(ProbeModule(model=str(tiny_model_dir), cache_dir=str(tmp_path / "c")), data)
