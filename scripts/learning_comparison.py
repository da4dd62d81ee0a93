"""Which method teaches the embedded SmolLM2-135M to know what it knows fastest, at equal CPU time?

Every arm trains from the same base model for the same budget of process CPU time (one torch thread, so CPU
minutes are minutes of one core; ``metalight.callbacks.cpu_budget.CPUTimeLimit``) on the competence-band
testbed's arithmetic *train* facts, then answers held-out questions no arm trained on:

* ``arithmetic``: the testbed's arithmetic test split (disjoint by fact from every train split);
* ``spelling``: the testbed's other family (letters of words), never trained on: transfer;
* ``fanoutqa_ehq``: FanOutQA single-hop validation + EHQ-3000 questions (real questions): transfer, and the
  accuracy on a task nobody trained.

Each arm's held-out AUROC₂ (from first-token P(yes)), d′type2, accuracy and yes ratio get 95% bootstrap
intervals, and the change from the base model a paired interval and a paired permutation p
(``metalight.evaluation.intervals``); the report adds mean P(yes) per level before / after, the probe ceiling
(``metalight.methods.probes.ceiling``) and the smallest change each comparison could detect.

    # balanced training pool + base held-out answers:
    python scripts/learning_comparison.py pool
    python scripts/learning_comparison.py ceiling                # the probe ceiling on every held-out set
    python scripts/learning_comparison.py run --minutes 8        # every arm, two at a time (one core each)
    python scripts/learning_comparison.py long --minutes 60 --arms esma_auroc   # the long run with its curve
    python scripts/learning_comparison.py report --update-docs   # tables, figures, docs/esma.md's section
    # a check in a few minutes:
    python scripts/learning_comparison.py pool --pool-per-level 6 --per-level 4 --fanout 8 --out /tmp/lc
    python scripts/learning_comparison.py run --minutes 0.3 --arms sft_meta_lora --per-level 4 --fanout 8 \
        --out /tmp/lc
    python scripts/learning_comparison.py report --out /tmp/lc
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from metalight.io import atomic_write_json, atomic_write_text

OUT = Path("runs/comparison")
DOC, BEGIN, END = Path("docs/esma.md"), "<!-- comparison:begin -->", "<!-- comparison:end -->"
MODEL = "embedded:smollm2-135m-instruct"
CPU_LIMIT = "metalight.callbacks.cpu_budget.CPUTimeLimit"
RESAMPLES = 2000  # bootstrap and permutation draws per interval / p-value (the smallest p: 1 / 2001)
POOL_PER_LEVEL = 100  # arithmetic train questions per level answered to build the balanced pool
HELD_OUT = ("arithmetic", "spelling", "fanoutqa_ehq")
# The arms that train on the balanced pool read it as testbed rows.
POOL_DATA = ["--data.init_args.val_fraction", "0.0", "--data.init_args.test_fraction", "0.0"]
SFT = ["--config", "configs/competence/sft_meta_lora.yaml", "--trainer.max_epochs", "-1"]
ESMA = ["--config", "configs/competence/esma_auroc.yaml", "--trainer.max_steps", "-1"]
ARMS: dict[str, dict] = {
    # ESMA's SFT meta-answer baseline with a LoRA adapter (r 8, q/v), lr 1e-4, on the balanced pool, the
    # model's own direct answers replayed beside the meta targets so they stay where they were.
    "sft_meta_lora": {"pool": True, "args": SFT},
    # The same without the replay: what the meta-answer targets alone do to the direct answers.
    "sft_meta_lora_no_replay": {
        "pool": True,
        "args": [*SFT, "--model.init_args.targets.replay_answers", "false"],
    },
    # Know-thyself judgment training (can / cannot from the model's own answers) with a LoRA adapter.
    "judgment_lora": {
        "pool": True,
        "judgment": True,
        "args": ["--config", "configs/competence/judgment_lora.yaml", "--trainer.max_epochs", "-1"],
    },
    # ES paying for discrimination: fitness = the member's AUROC₂ against θ's answers, questions half right
    # half wrong, the meta read-out alone per member (configs/competence/esma_auroc.yaml).
    "esma_auroc": {"args": ESMA},
    # esma_auroc with correctness in the fitness: a member keeps θ's right answers or loses them (one
    # teacher-forced prefill per member checks it, reward_answers: kept) - the main job's arm.
    "esma_kept": {
        "args": [*ESMA, "--model.init_args.reward", "esma_auroc", "--model.init_args.reward_answers", "kept"]
    },
    # The meta-only arm on the last 8 of the 30 decoder layers.
    "esma_auroc_top8": {"args": [*ESMA, "--model.init_args.layers", "[22, 30]"]},
    # ES with the balanced Brier fitness (each class weighs half): pays for calibration within each class.
    "esma_balanced_brier": {"args": [*ESMA, "--model.init_args.reward", "balanced_brier_alignment"]},
    # The previous demo's reward (Brier joint reward, each member answering itself) on the testbed, for
    # reference.
    "esma_brier_joint": {
        "args": [
            *ESMA,
            "--model.init_args.reward",
            "esma_brier",
            "--model.init_args.reward_answers",
            "members",
            "--model.init_args.stratify_questions",
            "null",
            "--model.init_args.population_size",
            "8",
            "--model.init_args.num_data_per_iteration",
            "16",
        ]
    },
}


def settings(held_out: str):
    """The evaluation of a held-out set: ESMA's protocol with the meta question through the chat template and
    P(yes) from logits; the testbed graded on the answer's final value, the real questions as ESMA grades."""
    from metalight.evaluation.dual_prompt import EvalSettings

    if held_out == "fanoutqa_ehq":
        return EvalSettings(meta_readout="logits", meta_chat_template="auto")
    return EvalSettings(grading="final", meta_readout="logits", meta_chat_template="auto", max_new_tokens=16)


SPELLING_PER_LEVEL = (
    60  # the transfer family: every level has ~160 test facts; 60 each keeps evaluation short
)


def held_out_records(name: str, per_level: int, fanout: int):
    """The records of one held-out set (``per_level`` arithmetic questions per level, 60 spelling questions
    per level, ``fanout`` of each real set)."""
    from metalight.data.sources.competence import CompetenceBandDataModule

    if name == "fanoutqa_ehq":
        from metalight.data.sources.ehq import EHQDataModule
        from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule

        fan = FanOutQASingleHopDataModule(strict=False, max_samples={"val": fanout}).records("val")
        ehq = EHQDataModule(max_samples={"val": fanout}).records("val")
        return [_tagged(r, "fanoutqa") for r in fan] + [_tagged(r, "ehq") for r in ehq]
    count = per_level if name == "arithmetic" else min(per_level, SPELLING_PER_LEVEL)
    return CompetenceBandDataModule(families=[name], per_level={"train": 0, "val": 0, "test": count}).records(
        "test"
    )


def _tagged(record, dataset: str):
    from dataclasses import replace

    return replace(record, meta={**record.meta, "dataset": dataset})


def evaluate(model, tokenizer, out: Path, tag: str, per_level: int, fanout: int) -> None:
    """Answer every held-out set; one JSON line per question (id, correct, said_yes, p_yes, meta)."""
    from metalight.evaluation.dual_prompt import evaluate_records

    model.eval()
    for name in HELD_OUT:
        records = held_out_records(name, per_level, fanout)
        results = evaluate_records(model, tokenizer, records, settings(name))
        atomic_write_text(
            out / f"{tag}.{name}.jsonl",
            "".join(
                json.dumps(
                    {
                        "id": r.id,
                        "correct": r.correct,
                        "said_yes": r.said_yes,
                        "p_yes": r.p_yes,
                        "meta": {
                            k: v
                            for k, v in r.meta.items()
                            if k in ("family", "level", "level_name", "dataset")
                        },
                    }
                )
                + "\n"
                for r in results
            ),
        )


def build_pool(out: Path, per_level: int, seed: int = 0) -> Path:
    """The base model answers ``per_level`` arithmetic train questions per level; its right answers and as
    many wrong ones (seeded) become the balanced pool (testbed rows)."""
    import random

    import torch

    from metalight.data.sources.competence import CompetenceBandDataModule
    from metalight.evaluation.dual_prompt import evaluate_records
    from metalight.models.loading import load_model

    torch.set_num_threads(1)
    records = CompetenceBandDataModule(per_level={"train": per_level, "val": 0, "test": 0}).records("train")
    model, tokenizer = load_model(MODEL)
    results = evaluate_records(model.eval(), tokenizer, records, settings("arithmetic"))
    right = [rec for rec, res in zip(records, results) if res.correct]
    wrong = [rec for rec, res in zip(records, results) if not res.correct]
    chosen = right + random.Random(seed).sample(wrong, min(len(wrong), len(right)))
    random.Random(seed).shuffle(chosen)
    path = out / "pool.jsonl"
    atomic_write_text(
        path,
        "".join(
            json.dumps(
                {
                    **{k: r.meta[k] for k in ("family", "level", "level_name", "fact")},
                    "question": r.question,
                    "answer": r.answers[0],
                }
            )
            + "\n"
            for r in chosen
        ),
    )
    print(f"pool: {len(right)} right of {len(records)} answered, {len(chosen)} rows -> {path}")
    return path


def train_arm(
    name: str, minutes: float, out: Path, per_level: int, fanout: int, every: int | None = None
) -> None:
    """Train one arm for ``minutes`` CPU minutes (in this process, one torch thread) and evaluate it; with
    ``every``, validate on the testbed's validation split every ``every`` steps (the long run's curve)."""
    import torch

    from metalight.callbacks.report_writer import run_dir
    from metalight.cli import main as cli

    torch.set_num_threads(1)
    arm = ARMS[name]
    args = list(arm["args"])
    if arm.get("pool"):
        prefix = "--data.init_args.source.init_args." if arm.get("judgment") else "--data.init_args."
        args += [
            f"{prefix}path",
            str(out / "pool.jsonl"),
            f"{prefix}val_fraction",
            "0.0",
            f"{prefix}test_fraction",
            "0.0",
        ]
    if every:
        args += ["--trainer.val_check_interval", str(every), "--trainer.check_val_every_n_epoch", "null"]
    else:
        args += ["--trainer.limit_val_batches", "0"]
    tag = f"{name}_long" if every else name
    start = time.process_time()
    run = cli(
        [
            "fit",
            *args,
            "--trainer.max_steps",
            "-1",
            "--trainer.logger.init_args.save_dir",
            str(out / "logs"),
            "--trainer.logger.init_args.name",
            tag,
            f"--trainer.callbacks+={CPU_LIMIT}",
            f"--trainer.callbacks.minutes={minutes}",
        ]
    )
    trained = time.process_time() - start
    evaluate(run.model.model, run.model.tokenizer, out, tag, per_level, fanout)
    atomic_write_json(
        out / f"{tag}.json",
        {
            "arm": tag,
            "args": args,
            "cpu_minutes": trained / 60,
            "steps": run.trainer.global_step,
            "log_dir": str(run_dir(run.trainer)),
        },
    )


def baseline(out: Path, per_level: int, fanout: int) -> None:
    """Evaluate the untrained base model on every held-out set."""
    import torch

    from metalight.models.loading import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model(MODEL)
    evaluate(model, tokenizer, out, "base", per_level, fanout)


def ceiling(out: Path, per_level: int, fanout: int, layers: list[int]) -> None:
    """The probe ceiling on each held-out set: base-model hidden states at the meta question, its own
    correctness (from ``base.<set>.jsonl``), 5-fold cross-validated; the testbed's level (one-hot) as
    baseline."""
    import torch

    from metalight.methods.probes.ceiling import meta_question_features, one_hot, probe_ceiling
    from metalight.models.loading import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model(MODEL)
    result = {}
    for name in HELD_OUT:
        records = held_out_records(name, per_level, fanout)
        base = {r.id: r for r in answers(out / f"base.{name}.jsonl")}
        correct = [base[r.id].correct for r in records]
        features = meta_question_features(model, tokenizer, records, settings(name), layers)
        key = "dataset" if name == "fanoutqa_ehq" else "level"
        groups = [r.meta.get("fact", r.id) for r in records]
        ceiling_ = probe_ceiling(features, correct, groups, {key: one_hot([r.meta[key] for r in records])})
        result[name] = {**ceiling_.as_dict(), "p_yes_auroc": _stat(list(base.values()), "auroc_type2")}
        print(
            f"{name}: probe ceiling AUROC {ceiling_.auroc:.3f} (layer {ceiling_.best_layer}), {key} alone "
            f"{ceiling_.baselines[key]:.3f}, P(yes) {result[name]['p_yes_auroc']:.3f} (n = {ceiling_.n})"
        )
    atomic_write_json(out / "ceiling.json", result)


def _stat(rows, name: str) -> float:
    from metalight.evaluation.intervals import STATISTICS, columns

    return STATISTICS[name][1](*columns(rows))


def run_all(jobs: list[list[str]], out: Path, parallel: int, extra: list[str]) -> None:
    """Run jobs (``[command, name]``) as separate one-thread processes, ``parallel`` at a time."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    running: list[tuple[list[str], subprocess.Popen]] = []
    while jobs or running:
        while jobs and len(running) < parallel:
            job = jobs.pop(0)
            tag = f"{job[1]}_long" if job[0] == "long" else job[1]
            log = open(out / f"{tag}.log", "w")  # noqa: SIM115 (closed with the process)
            cmd = [sys.executable, __file__, "_" + job[0], job[1], "--out", str(out), *extra]
            running.append((job, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
            print(f"{datetime.datetime.now():%H:%M:%S} started {job[1]}", flush=True)
        time.sleep(5)
        for item in list(running):
            job, proc = item
            if proc.poll() is not None:
                running.remove(item)
                tag = f"{job[1]}_long" if job[0] == "long" else job[1]
                failed = f"FAILED (rc {proc.returncode}, see {out}/{tag}.log)"
                status = "done" if proc.returncode == 0 else failed
                print(f"{datetime.datetime.now():%H:%M:%S} {job[1]} {status}", flush=True)


def answers(path: Path) -> list[SimpleNamespace]:
    """The held-out answers an evaluation wrote."""
    from metalight.report.runs import read_samples

    return read_samples(path)


def compare(out: Path, tag: str, name: str, subset: str | None = None, resamples: int = RESAMPLES) -> dict:
    """Before / after / paired change of every statistic on held-out set ``name`` (only ``meta.dataset ==
    subset`` when given; ``resamples`` bootstrap and permutation draws), with the smallest change this
    comparison could detect."""
    from metalight.evaluation.intervals import held_out_intervals, minimum_detectable_change, paired_change

    keep = (lambda r: r.meta.get("dataset") == subset) if subset else (lambda r: True)
    before = [r for r in answers(out / f"base.{name}.jsonl") if keep(r)]
    after = [r for r in answers(out / f"{tag}.{name}.jsonl") if keep(r)]
    change = paired_change(before, after, resamples)
    return {
        "n": len(after),
        "before": {k: v.as_dict() for k, v in held_out_intervals(before, resamples).items()},
        "after": {k: v.as_dict() for k, v in held_out_intervals(after, resamples).items()},
        "change": {k: v.as_dict() for k, v in change.items()},
        "detectable": {k: minimum_detectable_change(v) for k, v in change.items()},
    }


def arm_result(out: Path, tag: str, resamples: int = RESAMPLES) -> dict:
    """An arm's held-out numbers on every set, and mean P(yes) / accuracy per testbed level before and
    after; kept in ``<tag>.result.json`` and reused while its answer files and ``resamples`` are unchanged
    (the intervals take minutes per arm)."""
    inputs = [
        out / f"{tag}.json",
        *(out / f"{who}.{name}.jsonl" for who in ("base", tag) for name in HELD_OUT),
    ]
    key = {
        "resamples": resamples,
        "inputs": {p.name: [p.stat().st_mtime_ns, p.stat().st_size] for p in inputs},
    }
    cache = out / f"{tag}.result.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["result"]
    result = _arm_result(out, tag, resamples)
    atomic_write_json(cache, {"key": key, "result": result})
    return result


def _arm_result(out: Path, tag: str, resamples: int) -> dict:
    from metalight.evaluation.levels import level_stats

    meta = json.loads((out / f"{tag}.json").read_text())
    result = {
        **{k: meta[k] for k in ("arm", "cpu_minutes", "steps", "log_dir")},
        "arithmetic": compare(out, tag, "arithmetic", resamples=resamples),
        "spelling": compare(out, tag, "spelling", resamples=resamples),
        "fanoutqa": compare(out, tag, "fanoutqa_ehq", "fanoutqa", resamples),
        "fanoutqa_ehq": compare(out, tag, "fanoutqa_ehq", resamples=resamples),
    }
    result["levels"] = {
        name: {
            "before": [s.as_dict() for s in level_stats(answers(out / f"base.{name}.jsonl"))],
            "after": [s.as_dict() for s in level_stats(answers(out / f"{tag}.{name}.jsonl"))],
        }
        for name in ("arithmetic", "spelling")
    }
    return result


def fmt(cell: dict) -> str:
    """``+value [low, high] p=…`` with 3 decimals, ``p<0.001`` below that (``n/a`` when undefined)."""
    if cell["value"] is None:
        return "n/a"
    text = f"{cell['value']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}]"
    p = cell.get("p_value")
    # the smallest permutation p is 1 / (resamples + 1): below 0.001 "0.000" would read as impossible
    return text if p is None else f"{text} p<0.001" if p < 0.001 else f"{text} p={p:.3f}"


def _before_after(part: dict, key: str) -> str:
    b, a = part["before"][key]["value"], part["after"][key]["value"]
    return "n/a" if b is None or a is None else f"{b:.3f} → {a:.3f}"


def table(results: list[dict], ceilings: dict) -> str:
    """Markdown: per arm the held-out arithmetic AUROC₂ / d′type2 / accuracy / yes ratio (before → after,
    change [95% CI] p)."""
    arith = ceilings.get("arithmetic", {})
    head = (
        "| arm | CPU min | steps | "
        f"AUROC₂ (ceiling {arith.get('auroc', math.nan):.3f}) | d′type2 | accuracy | yes ratio |\n"
        "|---|---|---|---|---|---|---|"
    )
    rows = []
    for r in results:
        a = r["arithmetic"]
        cells = [_cell(a, k) for k in ("auroc_type2", "dprime_type2", "accuracy", "yes_ratio")]
        detect = a["detectable"]["auroc_type2"]
        cells[0] += "" if detect is None else f" (detects {detect:.3f})"
        rows.append(f"| `{r['arm']}` | {r['cpu_minutes']:.1f} | {r['steps']} | " + " | ".join(cells) + " |")
    return "\n".join([head, *rows])


def transfer_table(results: list[dict]) -> str:
    """Markdown: per arm, on the sets nobody trained on, accuracy and AUROC₂ before → after with the paired
    change [95% CI] and p: the spelling family, FanOutQA alone (accuracy), FanOutQA + EHQ (AUROC₂)."""
    head = (
        "| arm | spelling accuracy | spelling AUROC₂ | FanOutQA accuracy | FanOutQA + EHQ AUROC₂ |\n"
        "|---|---|---|---|---|"
    )
    rows = [
        f"| `{r['arm']}` | {_cell(r['spelling'], 'accuracy')} | {_cell(r['spelling'], 'auroc_type2')} | "
        f"{_cell(r['fanoutqa'], 'accuracy')} | {_cell(r['fanoutqa_ehq'], 'auroc_type2')} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def _cell(part: dict, key: str) -> str:
    return f"{_before_after(part, key)}, {fmt(part['change'][key])}"


def testbed_table(out: Path) -> str:
    """Markdown: the base model's accuracy and mean P(yes) per level of both testbed families (held-out)."""
    from metalight.evaluation.levels import level_stats

    rows = ["| family | level | n | accuracy | mean P(yes) |", "|---|---|---|---|---|"]
    for name in ("arithmetic", "spelling"):
        stats = level_stats(answers(out / f"base.{name}.jsonl"))
        rows += [
            f"| {name} | L{s.level} {s.name} | {s.n} | {s.accuracy:.2f} | {s.mean_p_yes:.3f} |" for s in stats
        ]
        every = answers(out / f"base.{name}.jsonl")
        rows.append(
            f"| {name} | all: mean of the levels / of the questions | {len(every)} | "
            f"{sum(s.accuracy for s in stats) / len(stats):.2f} / "
            f"{sum(r.correct for r in every) / len(every):.2f} | |"
        )
    return "\n".join(rows)


def hanley_mcneil_se(auroc: float, right: int, wrong: int) -> float:
    """Standard error of an AUROC from ``right`` positives and ``wrong`` negatives (Hanley & McNeil 1982)."""
    q1, q2 = auroc / (2 - auroc), 2 * auroc**2 / (1 + auroc)
    return math.sqrt(
        (auroc * (1 - auroc) + (right - 1) * (q1 - auroc**2) + (wrong - 1) * (q2 - auroc**2))
        / (right * wrong)
    )


def ceiling_table(out: Path, ceilings: dict) -> str:
    """Markdown: per held-out set its size, right answers, the base AUROC₂, the probe ceiling and the baseline
    feature's probe, and the smallest AUROC₂ change it detects with 80% power (two-sided α = 0.05) if the
    before and after AUROC estimates correlate 0.5 or 0.8 (Hanley-McNeil SE; each arm's table row also gives
    the detectable change read off its own paired interval)."""
    rows = [
        "| held-out set | n | right | AUROC₂ of P(yes) | probe ceiling (layer) | baseline feature alone | "
        "detectable AUROC₂ change, r = 0.5 / 0.8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in ceilings.items():
        every = answers(out / f"base.{name}.jsonl")
        right = sum(r.correct for r in every)
        base = c["p_yes_auroc"]
        se = hanley_mcneil_se(base, right, len(every) - right)
        detect = [2.8 * se * math.sqrt(2 * (1 - r)) for r in (0.5, 0.8)]
        ((feature, value),) = c["baselines"].items()
        rows.append(
            f"| {name} | {len(every)} | {right} | {base:.3f} | {c['auroc']:.3f} ({c['best_layer']}) | "
            f"{feature}: {value:.3f} | {detect[0]:.3f} / {detect[1]:.3f} |"
        )
    return "\n".join(rows)


def level_table(results: list[dict]) -> str:
    """Markdown: mean P(yes) per arithmetic level, the base model then each arm (with accuracy below)."""
    if not results:
        return ""
    before = results[0]["levels"]["arithmetic"]["before"]
    head = (
        "| | " + " | ".join(f"L{s['level']} {s['name']}" for s in before) + " |\n|---|" + "---|" * len(before)
    )
    rows = [
        "| base: accuracy | " + " | ".join(f"{s['accuracy']:.2f}" for s in before) + " |",
        "| base: mean P(yes) | " + " | ".join(f"{s['mean_p_yes']:.3f}" for s in before) + " |",
    ]
    for r in results:
        after = r["levels"]["arithmetic"]["after"]
        rows.append(f"| `{r['arm']}`: accuracy | " + " | ".join(f"{s['accuracy']:.2f}" for s in after) + " |")
        rows.append(
            f"| `{r['arm']}`: mean P(yes) | " + " | ".join(f"{s['mean_p_yes']:.3f}" for s in after) + " |"
        )
    return "\n".join([head, *rows])


def long_curve(out: Path, tag: str) -> tuple[Path, list[tuple[int, float, float]]] | None:
    """The long run's held-out curve (validation AUROC₂ and accuracy against steps) as a PNG."""
    from matplotlib.figure import Figure

    from metalight.report.plots import save_png

    meta_path = out / f"{tag}.json"
    if not meta_path.exists():
        return None
    log_dir = Path(json.loads(meta_path.read_text())["log_dir"])
    points = []
    for path in sorted(
        (log_dir / "reports").glob("val_step*.json"), key=lambda p: int(p.stem.split("step")[1])
    ):
        report = json.loads(path.read_text())
        points.append((report["step"], report.get("auroc_type2"), report.get("accuracy")))
    if not points:
        return None
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="AUROC₂ (validation)")
    ax.plot([p[0] for p in points], [p[2] for p in points], marker="s", label="accuracy (validation)")
    ax.set(xlabel="ES iteration", ylim=(0, 1), title=f"{tag}: held-out validation every few iterations")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_png(fig, out / "long_run_curve.png"), points


def write_report(out: Path, tags: list[str], update_docs: bool = False, resamples: int = RESAMPLES) -> None:
    """results.json, results.md and the figures under ``out``; with ``update_docs``, docs/esma.md's
    section; ``resamples`` bootstrap and permutation draws per interval."""
    import platform

    import torch

    from metalight.evaluation.levels import LevelStats
    from metalight.report.levels import plot_levels

    results = [arm_result(out, t, resamples) for t in tags]
    ceilings = json.loads((out / "ceiling.json").read_text()) if (out / "ceiling.json").exists() else {}
    atomic_write_json(
        out / "results.json",
        {"measured": datetime.date.today().isoformat(), "arms": results, "ceiling": ceilings},
    )
    figures = []
    for r in results:
        levels = r["levels"]["arithmetic"]
        figures.append(
            plot_levels(
                [LevelStats(**s) for s in levels["before"]],
                [LevelStats(**s) for s in levels["after"]],
                out / f"levels_{r['arm']}.png",
                f"{r['arm']}: held-out arithmetic, base model vs after training",
            )
        )
    n = (
        {name: results[0][name]["n"] for name in ("arithmetic", "spelling", "fanoutqa_ehq")}
        if results
        else {}
    )
    curve = next((c for c in (long_curve(out, t) for t in tags if t.endswith("_long")) if c), None)
    text = (
        f"Measured {datetime.date.today().isoformat()} on a {os.cpu_count()}-core CPU "
        f"({platform.machine()}, one "
        f"torch thread per arm), torch {torch.__version__}; held-out: {n.get('arithmetic')} arithmetic, "
        f"{n.get('spelling')} spelling (testbed test splits), {n.get('fanoutqa_ehq')} FanOutQA + EHQ.\n\n"
        f"The base model on the held-out testbed questions:\n\n{testbed_table(out)}\n\n"
        f"What a linear read-out of its hidden state at the meta question could reach "
        f"(5-fold cross-validated "
        f"probe ceiling), and what each set can detect:\n\n{ceiling_table(out, ceilings)}\n\n"
        "Each arm after training, on the held-out arithmetic test split (before → after, paired change "
        f"[95% CI] and permutation p):\n\n{table(results, ceilings)}\n\n"
        "The same arms on what none of them trained on (before → after, paired change [95% CI] and "
        f"permutation p):\n\n{transfer_table(results)}\n\n"
        f"Mean P(yes) and accuracy per held-out arithmetic level:\n\n{level_table(results)}\n"
    )
    if curve:
        text += (
            "\nThe long run's held-out curve (validation split, every few iterations): "
            + ", ".join(f"step {s}: AUROC₂ {a:.3f}, accuracy {c:.3f}" for s, a, c in curve[1])
            + "\n"
        )
    atomic_write_text(out / "results.md", text)
    print(text)
    if update_docs:
        from metalight.report.runs import replace_section

        folder = DOC.parent / "esma_comparison"
        folder.mkdir(exist_ok=True)
        pictures = []
        for figure in [*figures, *([curve[0]] if curve else [])]:
            (folder / figure.name).write_bytes(figure.read_bytes())
            pictures.append(f"![{figure.stem}](esma_comparison/{figure.name})")
        replace_section(DOC, BEGIN, END, f"{text}\n" + "\n".join(pictures) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["pool", "ceiling", "run", "long", "report", "_arm", "_long"])
    parser.add_argument("name", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument(
        "--minutes", type=float, default=8.0, help="CPU minutes of training per arm (default 8)"
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="arms to run")
    parser.add_argument("--parallel", type=int, default=2, help="arms at a time, one core each (default 2)")
    parser.add_argument(
        "--per-level",
        type=int,
        default=150,
        help="held-out testbed questions per level (small levels give what they have; default 150)",
    )
    parser.add_argument(
        "--fanout", type=int, default=200, help="FanOutQA and EHQ held-out questions each (200)"
    )
    parser.add_argument(
        "--pool-per-level",
        type=int,
        default=POOL_PER_LEVEL,
        help=f"arithmetic train questions per level answered for the pool (default {POOL_PER_LEVEL})",
    )
    parser.add_argument(
        "--every", type=int, default=5, help="long: validate every this many steps (default 5)"
    )
    parser.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=[6, 12, 18, 24, 29],
        help="ceiling: decoder layers to probe (default 6 12 18 24 29)",
    )
    parser.add_argument(
        "--update-docs", action="store_true", help="report: also rewrite docs/esma.md's section"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=RESAMPLES,
        help=f"report: bootstrap and permutation draws per interval (default {RESAMPLES})",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = ["--per-level", str(args.per_level), "--fanout", str(args.fanout)]
    if args.command == "pool":
        build_pool(args.out, args.pool_per_level)
        baseline(args.out, args.per_level, args.fanout)
    elif args.command == "ceiling":
        ceiling(args.out, args.per_level, args.fanout, args.layers)
    elif args.command in ("run", "long"):
        missing = [
            p for p in ("pool.jsonl", *(f"base.{h}.jsonl" for h in HELD_OUT)) if not (args.out / p).exists()
        ]
        if missing:
            parser.error(
                f"{args.out}/{missing[0]} is missing: run `python scripts/learning_comparison.py pool "
                f"--out {args.out}` first"
            )
        kind = "arm" if args.command == "run" else "long"
        extra = [*sizes, "--minutes", str(args.minutes), "--every", str(args.every)]
        run_all([[kind, a] for a in args.arms], args.out, args.parallel, extra)
    elif args.command in ("_arm", "_long"):
        train_arm(
            args.name,
            args.minutes,
            args.out,
            args.per_level,
            args.fanout,
            args.every if args.command == "_long" else None,
        )
    else:
        tags = [t for a in ARMS for t in (a, f"{a}_long") if (args.out / f"{t}.json").exists()]
        write_report(args.out, tags, args.update_docs, args.resamples)


if __name__ == "__main__":
    main()
