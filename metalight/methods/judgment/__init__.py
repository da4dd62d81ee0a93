"""Know-thyself judgment training on top of :class:`~metalight.methods.sft.SFTModule`.

``labels`` (can / uncertain / cannot from k answers), ``targets`` (judgment examples), ``asking`` (asking and
parsing judgments), ``scores`` (judgment accuracy, AUROC, summary table), ``loop`` (the per-epoch
re-collection callback). The three-phase pipeline drives ``cli.py`` runs:
:mod:`metalight.cli.judgment_pipeline`.
"""

from metalight.methods.judgment.loop import JudgmentLoop

__all__ = ["JudgmentLoop"]
