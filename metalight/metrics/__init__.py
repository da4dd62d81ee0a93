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
from metalight.metrics.prr import PredictionRejectionRatio, prediction_rejection_ratio, rejection_curve
from metalight.metrics.selective import (
    CONFIDENCE_METRIC_NAMES,
    ConfidenceMetrics,
    confidence_metrics,
    quantile_thresholds,
    select_threshold,
    threshold_table,
)
from metalight.metrics.type2 import DPrimeType2, Type2AUROC, dprime_type2, type2_auroc

__all__ = [
    "CONFIDENCE_METRIC_NAMES",
    "METRIC_NAMES",
    "BrierScore",
    "ConfidenceMetrics",
    "DPrimeType2",
    "ExpectedCalibrationError",
    "MetaAlignment",
    "MetaDFit",
    "MetaDPrime",
    "MetacognitionMetrics",
    "PredictionRejectionRatio",
    "Type2AUROC",
    "accuracy",
    "brier_score",
    "cast_to_two_stimuli",
    "confidence_metrics",
    "confidence_ratings",
    "dprime_type2",
    "expected_calibration_error",
    "fit_meta_d_mle",
    "meta_d_from_confidence",
    "no_failure_rate",
    "prediction_rejection_ratio",
    "quantile_thresholds",
    "raw_alignment",
    "rejection_curve",
    "rmi",
    "select_threshold",
    "threshold_table",
    "type2_auroc",
    "yes_failure_rate",
    "yes_ratio",
]
