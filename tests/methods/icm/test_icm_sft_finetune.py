"""ICM's built-in iterative fine-tuning: SFTModule on the elicited labels, then the next chunk from that
model."""

import json
from pathlib import Path

import torch

from metalight.methods.icm import IterativeFineTuning
from metalight.methods.icm.finetune import sft_rows
from metalight.methods.icm.predictability import MutualPredictability
from metalight.methods.icm.sft_finetune import sft_fine_tune
from metalight.models.loading import load_model
from tests.methods.icm.test_icm_module import claims_file, fit

PROMPTS = [
    f"Question: what is {a} + {b}? Claim: {a + b + (k % 2)}. I think this claim is"
    for k, (a, b) in enumerate([(1, 2), (3, 4), (5, 6), (7, 1), (2, 2), (4, 5)])
]
LABELS = [1, 1, 1, 1, 0, 1]  # mostly true: SFT must raise P(True) after these prompts


def signed_log_odds(spec):
    model, tokenizer = load_model(spec)
    scores = MutualPredictability(model, tokenizer, PROMPTS).log_odds(
        [None] * len(PROMPTS), range(len(PROMPTS))
    )
    return sum(s if label else -s for s, label in zip(scores, LABELS)) / len(LABELS)


def test_sft_fine_tune_moves_the_model_towards_the_elicited_labels(tmp_path, tiny_model_dir):
    rows_path = tmp_path / "rows.jsonl"
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(PROMPTS, LABELS)))
    settings = IterativeFineTuning(max_epochs=5, lr=1e-2, batch_size=3, dtype="float32")
    spec = sft_fine_tune(str(tiny_model_dir), rows_path, tmp_path / "round1", settings)
    assert Path(spec) == tmp_path / "round1" / "model" and (Path(spec) / "config.json").is_file()
    before, after = signed_log_odds(str(tiny_model_dir)), signed_log_odds(spec)
    assert after > before + 0.5  # labels predicted zero-shot much better after SFT on them


def test_icm_fine_tunes_with_sft_between_chunks_and_labels_the_next_chunk_with_it(tmp_path, tiny_model_dir):
    settings = IterativeFineTuning(max_epochs=1, lr=1e-3, batch_size=4)
    module, trainer = fit(
        tmp_path, tiny_model_dir, claims_file(tmp_path, problems=6), finetune=settings, K=2, baselines=False
    )
    run = Path(trainer.log_dir)
    assert [c["model"] for c in module.finished] == [
        str(tiny_model_dir),
        str(run / "finetune" / "round1" / "model"),
        str(run / "finetune" / "round2" / "model"),
    ]
    first, _ = load_model(str(tiny_model_dir))
    tuned = dict(module.model.named_parameters())
    assert any(not torch.equal(p, tuned[name]) for name, p in first.named_parameters())
    report = json.loads((run / "report.json").read_text())
    assert report["complete"] and report["settings"]["finetune"]["function"].endswith("sft_fine_tune")
    assert report["settings"]["finetune"]["dtype"] is None
