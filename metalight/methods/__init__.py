"""One package per method, each with its LightningModule (``module``), its pieces and its rewards.

``base`` holds :class:`MetacognitionModule`, which owns evaluation; every method subclasses it.
"""
