"""MetaConf: SFT then GRPO on answer + confidence + reflection.

``module`` (:class:`MetaConfModule`, GRPO with MetaConf's rewards and verbal-confidence evaluation),
``rewards`` (calibration, reflection quality, accuracy), ``judge`` (the LLM judge backends), ``stage1_data``
(building the stage-1 SFT data).
"""

from metalight.methods.metaconf.module import MetaConfModule

__all__ = ["MetaConfModule"]
