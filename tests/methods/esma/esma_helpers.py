"""Shared set-up of the ESMA tests (also imported by the DDP script): a tiny question file, a module, a
run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from metalight.data.sources.triviaqa import TriviaQADataModule
from metalight.evaluation.dual_prompt import EvalSettings
from metalight.methods.esma.module import ESMAModule

# Single-letter aliases: the tiny random model's gibberish answers contain some and not others, so the
# correctness reward differs between members (a test whose rewards were all equal could not fail).
QUESTIONS = [
    ("Who wrote Hamlet?", "e"),
    ("What is the capital of France?", "a"),
    ("Which planet is largest?", "o"),
    ("Who painted the Mona Lisa?", "i"),
    ("How many legs has a spider?", "s"),
    ("Best year?", "n"),
    ("Who discovered penicillin?", "r"),
    ("Tallest mountain?", "t"),
    ("Fastest animal?", "l"),
    ("Smallest country?", "c"),
    ("Longest river?", "u"),
    ("Oldest city?", "m"),
]
SMALL = dict(
    sigma=0.05,
    population_size=4,
    num_data_per_iteration=4,
    reward="correctness",
    es_seed=7,
    evaluation=EvalSettings(max_new_tokens=3, meta_readout="logits"),
)


def write_questions(path: Path) -> Path:
    """A TriviaQA-schema JSONL file with the 12 questions above."""
    rows = [
        {"question": q, "question_id": f"q{i}", "answer": {"value": a, "aliases": [a]}}
        for i, (q, a) in enumerate(QUESTIONS)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def datamodule(path: Path) -> TriviaQADataModule:
    """All 12 questions in the train split (ESMA draws its questions from it)."""
    return TriviaQADataModule(path=str(path), val_fraction=0.0, test_fraction=0.0, batch_size=1)


def module(model_dir, **overrides) -> ESMAModule:
    """An ESMA module on the tiny model with the small test settings (overridable)."""
    return ESMAModule(model=str(model_dir), **{**SMALL, **overrides})


def fit(
    esma: ESMAModule,
    questions: Path,
    steps: int,
    root: Path,
    ckpt_path: str | None = None,
    lr: float = 5e-4,
    **trainer_args,
) -> ESMAModule:
    """Train ``steps`` ES iterations with SGD(lr) (checkpoint every step, last.ckpt kept) on CPU."""
    esma.optimizer_factory = lambda params: torch.optim.SGD(params, lr=lr)
    trainer = Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=trainer_args.pop("devices", 1),
        default_root_dir=str(root),
        logger=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        callbacks=[
            ModelCheckpoint(dirpath=str(root / "ckpt"), save_last=True, every_n_train_steps=1, save_top_k=-1)
        ],
        enable_model_summary=False,
        **trainer_args,
    )
    trainer.fit(esma, datamodule=datamodule(questions), ckpt_path=ckpt_path)
    return esma


def weights(esma: ESMAModule) -> dict[str, torch.Tensor]:
    """A copy of the model's parameters."""
    return {name: p.detach().clone() for name, p in esma.model.named_parameters()}
