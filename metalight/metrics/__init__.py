"""torchmetrics metrics of metacognition: type-2 sensitivity, alignment, calibration, meta-d'."""
