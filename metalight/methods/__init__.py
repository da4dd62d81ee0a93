"""One package per method, each with its LightningModule (``module``), its pieces, its default optimizer
(``optim``) and its rewards.

What every method shares sits beside the packages and imports none of them: ``base`` (``MetacognitionModule``,
the base of every method, and ``DualPromptModule``, measured with the dual-prompt protocol), ``evaluation``
(the evaluation a module holds and the outcome of a pass), ``optim`` (the fused-AdamW base and the
learning-rate schedule) and ``rewards`` (the reward signature, its checks and the completion rewards every
method can use).
"""
