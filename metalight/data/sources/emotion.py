"""Emotion (happy vs sad) scenarios, upstream neurofeedback's ``happy_sad`` set (README: "emotion").

Native schema: a directory with ``happiness.json`` and ``sadness.json``, each a JSON list of sentences
(e.g. "You get a window seat on a flight, and the views are breathtaking."). Happiness sentences have label
1, sadness 0; each is the assistant's response to "Say something.", shuffled as upstream. No rows ship here:
point ``path:`` at the directory (upstream's ``data/emotions``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.data.readers import Row, read_json_list
from metalight.data.statements import (
    SAY_SOMETHING,
    UPSTREAM_TRAIN_RATIO,
    StatementDataModule,
    StatementRecord,
)
from metalight.errors import DataError

EMOTION_FILES = {"happiness.json": 1, "sadness.json": 0}


def sentence_list_rows(path: Path, label: int) -> Iterator[Row]:
    """``(file: item N, {"sentence", "label"})`` for a JSON list of strings; errors name the file and item."""
    if not path.is_file():
        raise DataError(
            f"data file not found: {path}; the emotion directory holds {' and '.join(EMOTION_FILES)}"
        )
    for index, sentence in enumerate(read_json_list(path, "sentences")):
        yield f"{path}: item {index}", {"sentence": sentence, "label": label}


class EmotionDataModule(StatementDataModule):
    """Happiness (label 1) vs sadness (label 0) sentences from upstream's two JSON files."""

    default_shuffle = True
    source_name = "emotion"
    upstream_name = "happy_sad"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.path, str) or self.hub_name:
            raise DataError(
                "EmotionDataModule reads a directory with happiness.json and sadness.json: set `path:`"
            )

    def upstream_train_count(self, n: int) -> int:
        """Upstream ``happy_sad_dataset`` splits at ``int(n * 0.6)`` directly."""
        return int(n * UPSTREAM_TRAIN_RATIO)

    def _source(self) -> Iterator[Row]:
        directory = Path(self.path).expanduser()
        for name, label in EMOTION_FILES.items():
            yield from sentence_list_rows(directory / name, label)

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord:
        if not isinstance(row["sentence"], str):
            raise DataError(f"{where}: expected a sentence (string), got {type(row['sentence']).__name__}")
        return self.statement(
            {**row, "sentence": row["sentence"].strip()},
            where,
            "sentence",
            "label",
            index=where.rsplit("/", 1)[-1],
            user_prompt=SAY_SOMETHING,
        )
