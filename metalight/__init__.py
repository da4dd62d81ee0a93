"""metalight: train and measure LLM metacognition on one Lightning stack."""

__version__ = "0.1.0"
