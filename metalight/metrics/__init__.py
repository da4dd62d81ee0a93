"""torchmetrics metrics of metacognition (type-2 sensitivity, alignment, calibration, meta-d') and the
registry that declares each reported number once (:mod:`metalight.metrics.registry`)."""

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
from metalight.metrics.counts import UnparsedRate, answer_count, unparsed_rate
from metalight.metrics.metad import (
    MetaDFit,
    MetaDPrime,
    cast_to_two_stimuli,
    confidence_ratings,
    fit_meta_d_mle,
    meta_d_from_confidence,
    meta_d_prime,
)
from metalight.metrics.prr import PredictionRejectionRatio, prediction_rejection_ratio, rejection_curve
from metalight.metrics.registry import METRICS, MetricSpec, metric_names, metric_spec, metric_title
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
    "METRICS",
    "METRIC_NAMES",
    "BrierScore",
    "ConfidenceMetrics",
    "DPrimeType2",
    "ExpectedCalibrationError",
    "MetaAlignment",
    "MetaDFit",
    "MetaDPrime",
    "MetacognitionMetrics",
    "MetricSpec",
    "PredictionRejectionRatio",
    "Type2AUROC",
    "UnparsedRate",
    "accuracy",
    "answer_count",
    "brier_score",
    "cast_to_two_stimuli",
    "confidence_metrics",
    "confidence_ratings",
    "dprime_type2",
    "expected_calibration_error",
    "fit_meta_d_mle",
    "meta_d_from_confidence",
    "meta_d_prime",
    "metric_names",
    "metric_spec",
    "metric_title",
    "no_failure_rate",
    "prediction_rejection_ratio",
    "quantile_thresholds",
    "raw_alignment",
    "rejection_curve",
    "rmi",
    "select_threshold",
    "threshold_table",
    "type2_auroc",
    "unparsed_rate",
    "yes_failure_rate",
    "yes_ratio",
]
