"""Errors that carry a one-line cause and fix, printed by the CLI without a traceback."""


class MetalightError(Exception):
    """Base class: the message names the cause (file, line, key, spec) and what to do."""


class ConfigError(MetalightError, ValueError):
    """A setting, model spec or path in the configuration cannot work."""


class DataError(MetalightError, ValueError):
    """A data file or row is missing or malformed; the message names the file and line."""


class MissingPackageError(MetalightError, ImportError):
    """An optional package is needed; the message gives the install command."""


class RewardError(MetalightError, ValueError):
    """A reward function failed or returned values that cannot be used; the message names the reward."""
