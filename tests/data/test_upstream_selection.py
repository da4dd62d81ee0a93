"""``selection: upstream`` picks exactly the items of upstream neurofeedback's ``data/load.py`` (same random
calls after ``seed_everything(42)``, same order, same 60% train split) on fixtures built like its files; the
default metalight selection is a different, seeded one."""

import json
import random

import numpy as np
import pandas as pd
import pytest

from metalight.data.sources.emotion import EmotionDataModule
from metalight.data.sources.power_seeking import PowerSeekingDataModule
from metalight.data.sources.sycophancy import SycophancyAgreementDataModule
from metalight.data.sources.true_false import TRUE_FALSE_FILES, RhoFactualDataModule, TrueFalseDataModule
from metalight.errors import ConfigError


def seed_everything():
    """Upstream utils.py::seed_everything(42) (the torch seeds do not touch these loaders)."""
    random.seed(42)
    np.random.seed(42)


def upstream_true_false(directory, n_sample, train_ratio=0.6):
    """upstream data/load.py::load_true_false (0f56b43): returns (train, test) statements."""
    seed_everything()
    df = pd.concat([pd.read_csv(directory / name) for name in TRUE_FALSE_FILES], ignore_index=True)
    df = df.sample(frac=1).reset_index(drop=True)
    zeros, ones = df[df["label"] == 0], df[df["label"] == 1]
    shorter = min(len(zeros), len(ones))
    rows = [row for pair in zip(zeros[:shorter].iterrows(), ones[:shorter].iterrows()) for row in pair]
    examples = [row[1]["statement"] for row in rows][:n_sample]
    split = max(0, min(int(n_sample * train_ratio), len(examples)))
    return split_examples(examples, split / len(examples))


def upstream_sycophancy(path, n_sample, train_ratio=0.6):
    """upstream data/load.py::load_sycophancy_agree: returns (train, test) sentences."""
    seed_everything()
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = [part.strip() for part in line.strip().split(" / ")]
            label = next(part for part in parts if part.startswith("sycophancy="))
            entries.append((parts[1], int(label.split("=", 1)[1])))
    random.shuffle(entries)
    selected = [sentence for sentence, _ in entries[: min(n_sample, len(entries))]]
    split = min(max(int(len(selected) * train_ratio), 1), len(selected) - 1)
    return split_examples(selected, split / len(selected))


def split_examples(examples, train_ratio):
    """upstream data/load.py::_split_examples: the first int(len * ratio) rows train."""
    split = max(0, min(int(len(examples) * train_ratio), len(examples)))
    return examples[:split], examples[split:]


def upstream_simple_txt(path, n_sample=1500, train_ratio=0.6):
    """upstream data/load.py::load_simple_txt (the power_seeking loader): returns (train, test) sentences."""
    seed_everything()
    entries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.strip().split()
            if len(parts) >= 3:
                entries.append((" ".join(parts[1:-1]).strip(), int(parts[-1])))
    random.shuffle(entries)
    total = len(entries)
    examples = [sentence for sentence, _ in entries[:n_sample]]
    split = min(max(int(n_sample * train_ratio), 1), total - 1)
    return split_examples(examples, split / len(examples))


def upstream_happy_sad(directory, train_ratio=0.6):
    """upstream data/load.py::happy_sad_dataset: returns (train, test) sentences."""
    seed_everything()
    examples = [
        s.strip()
        for name in ("happiness.json", "sadness.json")
        for s in json.loads((directory / name).read_text())
    ]
    random.shuffle(examples)
    split = int(len(examples) * train_ratio)
    return examples[:split], examples[split:]


def responses(module):
    train = [r.response for r in module.records("train")]
    return train, [r.response for r in module.records("val") + module.records("test")]


@pytest.fixture
def true_false_dir(tmp_path):
    """Seven csvs named as upstream's, uneven label counts, generated_true_false.csv with a BOM and CRLF."""
    directory = tmp_path / "true-false-dataset"
    directory.mkdir()
    rng = random.Random(3)
    for index, name in enumerate(TRUE_FALSE_FILES):
        rows = [
            f'"Statement {index}-{i}, as written.",{int(rng.random() < 0.45)}' for i in range(23 + 5 * index)
        ]
        text = "statement,label\n" + "\n".join(rows) + "\n"
        if name.startswith("generated"):
            (directory / name).write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode("utf-8"))
        else:
            (directory / name).write_text(text)
    return directory


def test_true_false_upstream_selection_equals_upstreams_loader(true_false_dir):
    expected = upstream_true_false(true_false_dir, n_sample=120)
    ours = responses(TrueFalseDataModule(path=str(true_false_dir), n_sample=120, selection="upstream"))
    assert ours == expected and len(ours[0]) == 72
    assert (
        TrueFalseDataModule(path=str(true_false_dir), selection="upstream")
        .describe_name()
        .endswith("[selection: upstream]")
    )  # reports name the selection
    default = responses(TrueFalseDataModule(path=str(true_false_dir), n_sample=120, seed=42))
    assert set(default[0]) != set(expected[0])  # metalight's own seeded selection differs (and is stated)


def test_true_false_upstream_split_uses_n_sample_when_fewer_rows_remain(true_false_dir):
    """upstream: int(n_sample * 0.6) train rows even when balancing left fewer than n_sample."""
    expected = upstream_true_false(true_false_dir, n_sample=1500)
    ours = responses(TrueFalseDataModule(path=str(true_false_dir), selection="upstream"))
    assert ours == expected and ours[1] == []


@pytest.mark.parametrize(("n_sample", "train"), [(60, 36), (23, 12)])  # 23: int(23 * (13 / 23)) = 12
def test_sycophancy_upstream_selection_equals_upstreams_loader(tmp_path, n_sample, train):
    path = tmp_path / "sycophancy_agreement.txt"
    path.write_text(
        "".join(
            f"{i} / Sentence number {i}. / sycophancy={i % 3 == 0:d} / agree={i % 2}\n" for i in range(1, 91)
        )
    )
    expected = upstream_sycophancy(path, n_sample=n_sample)
    ours = responses(SycophancyAgreementDataModule(path=str(path), n_sample=n_sample, selection="upstream"))
    assert ours == expected and len(ours[0]) == train


def test_power_seeking_txt_loads_and_upstream_selection_equals_upstreams_loader(tmp_path):
    """upstream data/power-seeking.txt: "<index> <sentence> <label>" lines, pairs of a statement and its
    opposite; upstream's own main_prep.py cannot load it (KeyError 'honesty'), its loader can."""
    path = tmp_path / "power-seeking.txt"
    lines = [
        f"{2 * i + 1} I would not want to rule country {i}. 0\n"
        f"{2 * i + 2} I would like to rule country {i}. 1"
        for i in range(30)
    ]
    path.write_text("\n".join(lines) + "\n")
    expected = upstream_simple_txt(path, n_sample=40)
    module = PowerSeekingDataModule(path=str(path), n_sample=40, selection="upstream")
    assert responses(module) == expected and len(expected[0]) == 24
    records = module.records("train")
    assert {r.label for r in records} == {0, 1} and records[0].user_prompt == "Say something."
    default = PowerSeekingDataModule(path=str(path))
    assert sum(len(default.records(s)) for s in ("train", "val", "test")) == 60


def test_emotion_upstream_selection_equals_upstreams_loader(tmp_path):
    (tmp_path / "happiness.json").write_text(json.dumps([f" Happy scene {i}." for i in range(31)]))
    (tmp_path / "sadness.json").write_text(json.dumps([f"Sad scene {i}. " for i in range(26)]))
    expected = upstream_happy_sad(tmp_path)
    module = EmotionDataModule(path=str(tmp_path), selection="upstream")
    assert responses(module) == expected
    assert len(module.records("val")) == 12 and len(module.records("test")) == 11  # upstream's test, in order


def test_upstream_selection_needs_an_upstream_data_set():
    with pytest.raises(ConfigError, match="RhoFactualDataModule: selection: upstream"):
        RhoFactualDataModule(selection="upstream")


def test_power_seeking_malformed_line_names_file_and_line(tmp_path):
    from metalight.errors import DataError

    path = tmp_path / "power-seeking.txt"
    path.write_text("1 I seek power. 1\n2 0\n")
    with pytest.raises(DataError, match=r"power-seeking\.txt:2: expected '<index> <sentence> <label>'"):
        PowerSeekingDataModule(path=str(path)).setup()
