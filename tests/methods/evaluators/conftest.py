"""Small TriviaQA-schema files (fast to load) and the scripted chat server of tests/api."""

import json

import pytest

from tests.api.conftest import chat_server  # noqa: F401  (the real local HTTP server fixture)

QUESTIONS = [
    ("Who wrote Hamlet?", ["William Shakespeare", "Shakespeare"]),
    ("What is the capital of France?", ["Paris"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("Which planet is known as the Red Planet?", ["Mars"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("Who painted the Mona Lisa?", ["Leonardo da Vinci", "da Vinci"]),
    ("What is the largest ocean on Earth?", ["Pacific Ocean", "Pacific"]),
    ("In which country is the city of Kyoto?", ["Japan"]),
]


def trivia_row(i: int, question: str, aliases: list[str]) -> dict:
    return {"question": question, "question_id": f"q{i}", "answer": {"value": aliases[0], "aliases": aliases}}


@pytest.fixture
def trivia_files(tmp_path):
    """{"val": path, "test": path} of TriviaQA-schema JSONL files (6 and 4 questions)."""
    paths = {}
    for split, rows in (("val", QUESTIONS[:6]), ("test", QUESTIONS[4:])):
        path = tmp_path / f"trivia_{split}.jsonl"
        path.write_text("".join(json.dumps(trivia_row(i, q, a)) + "\n" for i, (q, a) in enumerate(rows)))
        paths[split] = str(path)
    return paths


def trivia_data_args(files: dict, batch: int = 4) -> list[str]:
    """cli.py arguments that swap the data for the small TriviaQA files."""
    return [
        "--data",
        "metalight.data.sources.triviaqa.TriviaQADataModule",
        "--data.init_args.path",
        json.dumps(files),
        "--data.init_args.eval_batch_size",
        str(batch),
    ]
