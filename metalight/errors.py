"""Errors that carry a one-line cause and fix, printed by the CLI without a traceback."""


class MetalightError(Exception):
    """Base class: the message names the cause (file, line, key, spec) and what to do; the CLI prints it as
    one ``error:`` line and exits with ``exit_code``."""

    exit_code = 2


class ConfigError(MetalightError, ValueError):
    """A setting, model spec or path in the configuration cannot work."""


class DataError(MetalightError, ValueError):
    """A data file or row is missing or malformed; the message names the file and line."""


class MissingPackageError(MetalightError, ImportError):
    """An optional package is needed; the message gives the install command."""


class RewardError(MetalightError, ValueError):
    """A reward function failed or returned values that cannot be used; the message names the reward."""


class LostRankError(MetalightError):
    """Another process of a distributed run is gone (its process or machine stopped, or the network dropped):
    this rank stops too; the message says how to resume. Exit code 1."""

    exit_code = 1


class Interrupted(MetalightError):
    """SIGINT / SIGTERM stopped a run while it waited (e.g. for API replies); the message says how to resume.
    Exit code 128 + the signal number, as a shell reports a signalled process (130 for SIGINT, 143 for
    SIGTERM)."""

    def __init__(self, message: str, signal_name: str = "SIGINT"):
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130
