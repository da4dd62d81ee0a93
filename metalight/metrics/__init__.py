"""torchmetrics metrics of metacognition: type-2 sensitivity, alignment, calibration, meta-d'."""

from metalight.metrics.alignment import (
    MetaAlignment,
    accuracy,
    no_failure_rate,
    raw_alignment,
    rmi,
    yes_failure_rate,
    yes_ratio,
)
from metalight.metrics.calibration import (
    BrierScore,
    ExpectedCalibrationError,
    brier_score,
    expected_calibration_error,
)
from metalight.metrics.collection import METRIC_NAMES, MetacognitionMetrics
from metalight.metrics.metad import (
    MetaDFit,
    MetaDPrime,
    cast_to_two_stimuli,
    confidence_ratings,
    fit_meta_d_mle,
    meta_d_from_confidence,
)
from metalight.metrics.type2 import DPrimeType2, Type2AUROC, dprime_type2, type2_auroc

__all__ = [
    "METRIC_NAMES",
    "BrierScore",
    "DPrimeType2",
    "ExpectedCalibrationError",
    "MetaAlignment",
    "MetaDFit",
    "MetaDPrime",
    "MetacognitionMetrics",
    "Type2AUROC",
    "accuracy",
    "brier_score",
    "cast_to_two_stimuli",
    "confidence_ratings",
    "dprime_type2",
    "expected_calibration_error",
    "fit_meta_d_mle",
    "meta_d_from_confidence",
    "no_failure_rate",
    "raw_alignment",
    "rmi",
    "type2_auroc",
    "yes_failure_rate",
    "yes_ratio",
]
