"""Config files read once before jsonargparse sees them, so that a broken file is one line naming its place.

jsonargparse reports a YAML error by its context ("while parsing a flow sequence", no line), a Latin-1 file
as a traceback, an empty file as ``Unexpected config:``, and it keeps the last of two equal keys without a
word. Each ``--config FILE`` is checked here: readable UTF-8, valid YAML (the line and column of the problem),
a mapping, no key given twice in one mapping, not empty; a config given before the subcommand holds only
subcommand sections (``fit:``, ``validate:``, ``test:``), since anything else there is silently ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from metalight.errors import ConfigError

SUBCOMMANDS = ("fit", "validate", "test")
_ANY_SUBCOMMAND = (*SUBCOMMANDS, "predict")  # Lightning's; refused later with the list above


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark):
        super().__init__(key)
        self.key, self.first, self.again = key, first, again


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a mapping holding one key twice."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if first is not key_node.start_mark:
                raise _DuplicateKey(str(key), first, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def config_paths(args: Sequence[str]) -> list[tuple[str, bool]]:
    """``(path, before the subcommand)`` of every ``--config PATH`` / ``--config=PATH`` in ``args``."""
    out, seen_subcommand, items = [], False, list(args)
    for i, arg in enumerate(items):
        if arg in _ANY_SUBCOMMAND and not seen_subcommand and (i == 0 or items[i - 1] != "--config"):
            seen_subcommand = True
        elif arg == "--config" and i + 1 < len(items):
            out.append((items[i + 1], not seen_subcommand))
        elif arg.startswith("--config="):
            out.append((arg.split("=", 1)[1], not seen_subcommand))
    return out


def load_config_file(path: str | Path) -> dict:
    """The mapping in config file ``path``; ``ConfigError`` naming the file (and line and column) and the fix
    when it cannot be read, is not UTF-8, not valid YAML, not a mapping, empty, or gives a key twice."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}; check the path given to --config") from None
    except OSError as err:
        raise ConfigError(
            f"config file {path} cannot be read ({err.strerror}); check the path given to --config"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text ({err.reason}); re-save the config as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{path}:{dup.again.line + 1}: key '{dup.key}' is given twice in one mapping (first at line "
            f"{dup.first.line + 1}), and only the last would count; keep one"
        ) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = err.problem or err.context or "invalid YAML"
        context = f" {err.context}" if err.context and err.problem else ""
        language = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ConfigError(
            f"{where}: not valid {language} ({problem}{context}); fix the brackets, quotes or "
            f"indentation there"
        ) from None
    if data is None or data == {}:
        raise ConfigError(
            f"{path}: the config is empty (no settings); add settings or leave out --config {path}"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config must be a mapping of keys (model:, data:, trainer:, ...), not a "
            f"{type(data).__name__}"
        )
    return data


def check_config_files(args: Sequence[str]) -> None:
    """Check every ``--config`` file in ``args`` (see :func:`load_config_file`); one given before the
    subcommand may hold only subcommand sections."""
    for path, top_level in config_paths(args):
        data = load_config_file(path)
        stray = [key for key in data if key not in SUBCOMMANDS]
        if top_level and stray:
            raise ConfigError(
                f"{path}: key '{stray[0]}' is ignored in a config given before the subcommand (only "
                f"{', '.join(s + ':' for s in SUBCOMMANDS)} sections are read there); give the file "
                f"after the subcommand: python cli.py validate --config {path}"
            )
