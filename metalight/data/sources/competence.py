"""The competence-band testbed: seeded questions with exact answers and graded difficulty, native to
metalight.

A small model is right on some questions and wrong on others for reasons it could know about itself: it has
memorised the one-digit times tables but cannot add two three-digit numbers, it can name a word's first
letter but not its fourth. Each **family** is a ladder of **levels** by construction (level 1 the easiest);
``docs/esma.md`` tabulates the embedded SmolLM2-135M-Instruct's accuracy per level.

* ``arithmetic``: "What is 7 times 8?" ... "What is 58 times 46?" (sums and products by operand size);
* ``spelling``: "What is the first letter of the word 'candle'?" ... "How many letters are in the word
  'candle'?" (letters of the 430 common nouns in ``WORDS``).

Every question is one *fact* (the operation and its unordered operands, or the word and the question asked;
``7 times 8`` and ``8 times 7`` are one fact), and a fact's split is fixed by a hash of its key: 40% of all
facts are train, 20% validation, 40% test (the one-digit levels are small, so evaluation gets a large share).
So the splits are disjoint by construction, for every seed and size: a run trained on any seed's train split
never saw a test fact in any phrasing. The seed only chooses which facts of a split are drawn. A level whose
split holds fewer facts than asked gives all it has (the one-digit levels are small: 45 sums, 36 products),
and says so in the log.

Answers are exact (an integer, or one letter): grade them with ``evaluation.grading: final`` (the answer's
final value, not any mention; :func:`metalight.grading.final_value_matches`).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from metalight.data.datamodule import SPLITS, QADataModule
from metalight.data.fields import need, need_str
from metalight.data.readers import Row
from metalight.data.records import QARecord
from metalight.errors import ConfigError, DataError

# Shares of all facts in each split (fixed: changing them would move facts between splits).
SPLIT_SHARES = {"train": 0.4, "val": 0.2, "test": 0.4}
DEFAULT_PER_LEVEL = {"train": 400, "val": 60, "test": 120}
SCHEMA = "family: str, level: int, level_name: str, fact: str, question: str, answer: str"
# A level with at most this many questions is enumerated; a larger one is sampled with rejection.
ENUMERATE_LIMIT = 50_000

Question = tuple[str, str, str]  # (fact key, question text, exact answer)

# The spelling family's vocabulary: 430 common English nouns of 3 to 8 letters, lower case, written for
# metalight (not taken from a dataset).
# fmt: off
WORDS: tuple[str, ...] = tuple(
    ["acorn", "actor", "adult", "alarm", "album", "anchor", "angel", "ankle", "apple", "apron", "arrow",
     "artist", "autumn", "avenue", "bacon", "badge", "bagel", "baker", "balloon", "banana", "band", "banker",
     "barn", "basket", "battery", "beach", "beard", "beaver", "bed", "bee", "beetle", "bell", "belt", "bench",
     "berry", "bicycle", "bird", "biscuit", "blanket", "blossom", "board", "boat", "bone", "book", "boot",
     "bottle", "bowl", "box", "brain", "branch", "bread", "brick", "bride", "bridge", "brother", "brush",
     "bucket", "buffalo", "bullet", "bundle", "butter", "button", "cabin", "cactus", "cake", "camel",
     "camera", "candle", "canoe", "canyon", "captain", "carpet", "carrot", "castle", "cattle", "ceiling",
     "cellar", "chain", "chair", "chalk", "cheese", "cherry", "chicken", "child", "chimney", "church",
     "circle", "city", "clock", "cloud", "clover", "coat", "cobweb", "coffee", "coin", "collar", "comet",
     "cookie", "copper", "corner", "cotton", "cousin", "cowboy", "crayon", "cricket", "crown", "cup",
     "curtain", "cushion", "daisy", "dancer", "desert", "desk", "diamond", "dinner", "doctor", "dog",
     "dollar", "dolphin", "donkey", "door", "dragon", "drawer", "dream", "dress", "drum", "duck", "eagle",
     "earth", "egg", "elbow", "engine", "eraser", "fabric", "falcon", "family", "farmer", "feather", "fence",
     "field", "finger", "fire", "fish", "flag", "flower", "folder", "forest", "fork", "fountain", "fox",
     "frog", "fruit", "garden", "garlic", "gate", "ghost", "giant", "ginger", "glass", "glove", "goat",
     "gold", "grape", "grass", "guitar", "hammer", "hand", "harbor", "hat", "hawk", "heart", "helmet", "hill",
     "honey", "hook", "horse", "hotel", "house", "igloo", "island", "jacket", "jaguar", "jelly", "jewel",
     "journey", "judge", "juice", "kettle", "key", "kitchen", "kite", "kitten", "knee", "knife", "ladder",
     "lake", "lamp", "lantern", "lemon", "letter", "lettuce", "library", "lion", "lizard", "lobster", "lock",
     "magnet", "mango", "maple", "marble", "market", "meadow", "melon", "mirror", "monkey", "moon",
     "mountain", "mouse", "mouth", "muffin", "museum", "needle", "nest", "noodle", "notebook", "nurse",
     "ocean", "office", "olive", "onion", "orange", "orchard", "otter", "owl", "oyster", "paddle", "palace",
     "panda", "paper", "parrot", "peach", "peanut", "pear", "pebble", "pencil", "pepper", "piano", "picnic",
     "pillow", "pilot", "pirate", "planet", "plate", "pocket", "poet", "potato", "pumpkin", "puppy", "puzzle",
     "queen", "quilt", "rabbit", "radio", "rain", "rainbow", "raven", "ribbon", "river", "road", "robot",
     "rocket", "roof", "rope", "rose", "ruler", "saddle", "sailor", "salad", "salmon", "sand", "sandal",
     "saucer", "scarf", "school", "scissors", "season", "shadow", "shark", "sheep", "shell", "shirt", "shoe",
     "shovel", "silver", "singer", "sister", "skirt", "sky", "sled", "snail", "snake", "soap", "sock",
     "soldier", "spider", "spoon", "spring", "square", "squirrel", "stable", "star", "station", "statue",
     "stone", "storm", "stove", "street", "sugar", "summer", "sunset", "swan", "sweater", "table", "tailor",
     "teacher", "temple", "tent", "thread", "throne", "thunder", "ticket", "tiger", "timber", "toast",
     "tomato", "tongue", "tooth", "towel", "tower", "toy", "tractor", "train", "tree", "truck", "trumpet",
     "tulip", "tunnel", "turkey", "turtle", "umbrella", "uncle", "valley", "vase", "velvet", "village",
     "violin", "volcano", "wagon", "wallet", "walnut", "walrus", "wand", "water", "whale", "wheel", "whistle",
     "window", "winter", "wizard", "wolf", "wool", "worm", "yacht", "yogurt", "zebra", "zipper", "ant",
     "bear", "cat", "cow", "fan", "hen", "jar", "map", "net", "owlet", "pan", "pig", "pot", "rat", "rug",
     "sun", "van", "web", "axe", "bag", "bus", "cap", "cub", "dot", "ear", "elf", "gem", "gum", "hut", "ink",
     "jam", "jet", "kid", "lid", "mat", "mug", "nut", "oak", "oar", "pea", "pen", "pin", "ram", "ray", "sap",
     "tag", "tie", "toe", "tub", "vet", "wig", "yak", "yam", "zoo"]
)
# fmt: on


@dataclass(frozen=True)
class Level:
    """One rung of a family: ``size`` questions, the i-th built by ``make(i)`` as (fact key, question,
    answer)."""

    family: str
    number: int
    name: str
    size: int
    make: Callable[[int], Question]


def split_of(fact: str) -> str:
    """The split a fact belongs to, from a stable hash of its key (the same on every machine and seed)."""
    u = int.from_bytes(hashlib.blake2b(fact.encode(), digest_size=8).digest(), "big") / 2**64
    if u < SPLIT_SHARES["train"]:
        return "train"
    return "val" if u < SPLIT_SHARES["train"] + SPLIT_SHARES["val"] else "test"


def _operation(
    family: str, number: int, name: str, a_range: range, b_range: range, symbol: str, word: str
) -> Level:
    """A level of questions ``What is a <word> b?`` over every operand pair (a, b); one fact per unordered
    pair."""
    fn = {"+": lambda a, b: a + b, "*": lambda a, b: a * b}[symbol]

    def make(i: int) -> Question:
        a, b = a_range[i // len(b_range)], b_range[i % len(b_range)]
        low, high = sorted((a, b))
        return f"{symbol}:{low}:{high}", f"What is {a} {word} {b}?", str(fn(a, b))

    return Level(family, number, name, len(a_range) * len(b_range), make)


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def _letter_at(position: int, name: str, number: int) -> Level:
    """``What is the <ordinal> letter of the word 'w'?`` for words longer than ``position`` (0-based)."""
    words = [w for w in WORDS if len(w) > position]

    def make(i: int) -> Question:
        word = words[i]
        return (
            f"letter:{position}:{word}",
            f"What is the {ORDINALS[position]} letter of the word '{word}'?",
            word[position],
        )

    return Level("spelling", number, name, len(words), make)


def _last_letter(number: int) -> Level:
    def make(i: int) -> Question:
        word = WORDS[i]
        return f"last:{word}", f"What is the last letter of the word '{word}'?", word[-1]

    return Level("spelling", number, "last letter", len(WORDS), make)


def _length(number: int) -> Level:
    def make(i: int) -> Question:
        word = WORDS[i]
        return f"length:{word}", f"How many letters are in the word '{word}'?", str(len(word))

    return Level("spelling", number, "word length", len(WORDS), make)


def _build_families() -> dict[str, tuple[Level, ...]]:
    one, two, three = range(2, 10), range(10, 100), range(100, 1000)
    arithmetic = (  # ordered by the embedded model's measured accuracy (docs/esma.md), highest first
        _operation("arithmetic", 1, "one-digit times tens", one, range(20, 100, 10), "*", "times"),
        _operation("arithmetic", 2, "one-digit products", one, one, "*", "times"),
        _operation("arithmetic", 3, "one-digit times hundreds", one, range(200, 1000, 100), "*", "times"),
        _operation("arithmetic", 4, "one-digit sums", range(1, 10), range(1, 10), "+", "+"),
        _operation("arithmetic", 5, "two-digit times one-digit", two, one, "*", "times"),
        _operation("arithmetic", 6, "two-digit sums", two, two, "+", "+"),
        _operation("arithmetic", 7, "two-digit plus one-digit", two, range(1, 10), "+", "+"),
        _operation("arithmetic", 8, "three-digit sums", three, three, "+", "+"),
    )
    spelling = (
        _letter_at(0, "first letter", 1),
        _letter_at(1, "second letter", 2),
        _letter_at(2, "third letter", 3),
        _last_letter(4),
        _letter_at(3, "fourth letter", 5),
        _length(6),
    )
    return {"arithmetic": arithmetic, "spelling": spelling}


FAMILIES: dict[str, tuple[Level, ...]] = _build_families()


def level(family: str, number: int) -> Level:
    """Level ``number`` (1-based) of ``family``; ``ConfigError`` naming what exists."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown competence family {family!r}; families: {sorted(FAMILIES)}")
    levels = FAMILIES[family]
    if not 1 <= number <= len(levels):
        raise ConfigError(f"competence family {family!r} has levels 1..{len(levels)}, not {number}")
    return levels[number - 1]


def draw(lv: Level, split: str, count: int, seed: int) -> list[Question]:
    """Up to ``count`` distinct questions of ``lv`` whose facts lie in ``split``, chosen by ``seed``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use {SPLITS}")
    rng = random.Random(f"competence:{seed}:{lv.family}:{lv.number}:{split}")
    if lv.size <= ENUMERATE_LIMIT:
        pool = [q for q in map(lv.make, range(lv.size)) if split_of(q[0]) == split]
        rng.shuffle(pool)
        return pool[:count]
    chosen: dict[str, Question] = {}
    attempts = 0
    while len(chosen) < count and attempts < 50 * count:
        attempts += 1
        question = lv.make(rng.randrange(lv.size))
        if split_of(question[0]) == split:
            chosen.setdefault(question[1], question)
    return list(chosen.values())


def generate_rows(
    families: list[str], levels: list[int] | None, split: str, per_level: int, seed: int
) -> Iterator[Row]:
    """The testbed's rows of ``split`` in its native schema (see ``SCHEMA``), ``per_level`` per level."""
    for family in families:
        numbers = levels or range(1, len(FAMILIES.get(family, ())) + 1)
        for number in numbers:
            lv = level(family, number)
            questions = draw(lv, split, per_level, seed)
            if len(questions) < per_level:
                logging.getLogger(__name__).info(
                    "competence %s level %d (%s): the %s split holds %d questions, %d asked",
                    family,
                    number,
                    lv.name,
                    split,
                    len(questions),
                    per_level,
                )
            for i, (fact, question, answer) in enumerate(questions):
                yield (
                    f"competence:{family}:{number}:{split}#{i}",
                    {
                        "family": family,
                        "level": number,
                        "level_name": lv.name,
                        "fact": fact,
                        "question": question,
                        "answer": answer,
                    },
                )


class CompetenceBandDataModule(QADataModule):
    """Generated questions of graded difficulty (see module docstring); nothing is read from disk or a hub.

    Args:
        families: which families to draw from (``arithmetic``, ``spelling``).
        levels: which levels (1-based) of each family (default: all).
        per_level: questions per level in each split (an int for all splits, or a mapping split -> int;
            default train 400, val 60, test 120); a level gives at most the facts its split holds.
        seed: which facts of each split are drawn (the split of a fact never depends on it).
        path: read rows in the testbed's schema from a file instead (e.g. a set written for another tool).
        (other args: see ``QADataModule``; ``stratify`` defaults to ``level``, so ``max_samples`` caps keep
        every level)
    """

    def __init__(
        self,
        *args,
        families: list[str] | None = None,
        levels: list[int] | None = None,
        per_level: int | dict[str, int] | None = None,
        stratify: bool | str = "level",
        **kwargs,
    ):
        super().__init__(*args, stratify=stratify, **kwargs)
        self.families = list(families) if families else ["arithmetic"]
        self.levels = list(levels) if levels else None
        counts = DEFAULT_PER_LEVEL if per_level is None else per_level
        self.per_level = dict(counts) if isinstance(counts, dict) else {split: counts for split in SPLITS}
        problems = [f"per_level.{s}: {n} must be >= 0" for s, n in self.per_level.items() if n < 0]
        problems += [
            f"per_level: unknown split {s!r}; use {SPLITS}" for s in self.per_level if s not in SPLITS
        ]
        if self.hub_name:
            problems.append("hub_name: the testbed is generated; leave hub_name unset")
        if problems:
            raise ConfigError("CompetenceBandDataModule: " + "; ".join(problems))
        for family in self.families:
            for number in self.levels or (1,):
                level(family, number)  # a ConfigError naming the family / level now, not at setup

    def default_source(self) -> dict[str, Iterator[Row]]:
        return {
            split: generate_rows(self.families, self.levels, split, self.per_level.get(split, 0), self.seed)
            for split in SPLITS
        }

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        family = need_str(row, "family", where, SCHEMA)
        number = need(row, "level", where, SCHEMA)
        if not isinstance(number, int) or isinstance(number, bool):
            raise DataError(f"{where}: 'level' must be an integer (1 = easiest), got {number!r}")
        meta = {
            "family": family,
            "level": number,
            "level_name": need_str(row, "level_name", where, SCHEMA),
            "fact": need_str(row, "fact", where, SCHEMA),
        }
        record = QARecord(
            id=f"{family}:{meta['fact']}:{need_str(row, 'question', where, SCHEMA)}",
            question=row["question"],
            answers=[need_str(row, "answer", where, SCHEMA)],
            meta=meta,
        )
        return record.validate(where)

    def group_of(self, record: Any) -> Any:
        return record.meta["fact"]

    def describe_name(self) -> str:
        levels = "all levels" if self.levels is None else f"levels {self.levels}"
        source = self.path or f"generated: {', '.join(self.families)}, {levels}, seed {self.seed}"
        return f"CompetenceBandDataModule({source})"
