"""Per-level summaries (accuracy, mean P(yes), yes ratio per testbed level), the before / after figure and the
TensorBoard scalars."""

from types import SimpleNamespace

import pytest

from metalight.evaluation.levels import format_levels, level_stats
from metalight.report.levels import level_scalars, log_levels, plot_levels


def _row(level, correct, p_yes, family="arithmetic"):
    return SimpleNamespace(
        correct=correct,
        said_yes=p_yes > 0.5,
        p_yes=p_yes,
        meta={"family": family, "level": level, "level_name": f"name{level}"},
    )


BEFORE = [
    _row(1, True, 0.3),
    _row(1, True, 0.4),
    _row(1, False, 0.2),
    _row(2, False, 0.35),
    _row(2, False, float("nan")),
    SimpleNamespace(correct=True, said_yes=True, p_yes=0.9, meta={}),
]  # no level: left out
AFTER = [_row(1, True, 0.8), _row(1, True, 0.7), _row(1, False, 0.6), _row(2, False, 0.1), _row(2, True, 0.2)]


def test_level_stats_by_hand():
    one, two = level_stats(BEFORE)
    assert (one.family, one.level, one.name, one.n) == ("arithmetic", 1, "name1", 3)
    assert (
        one.accuracy == pytest.approx(2 / 3) and one.mean_p_yes == pytest.approx(0.3) and one.yes_ratio == 0
    )
    assert two.n == 2 and two.accuracy == 0 and two.mean_p_yes == pytest.approx(0.35)  # NaN P(yes) left out
    table = format_levels(level_stats(BEFORE), level_stats(AFTER))
    assert "0.67 -> 0.67" in table and "0.300 -> 0.700" in table


def test_scalars_and_events_and_figure(tmp_path):
    before, after = level_stats(BEFORE), level_stats(AFTER)
    rows = level_scalars(before, after, step=12)
    assert ("levels/arithmetic/L1/mean_p_yes", pytest.approx(0.7), 12) in rows
    assert ("levels/arithmetic/L2/accuracy", 0.0, 0) in rows and len(rows) == 8
    assert log_levels(tmp_path, before, after, 12) == 8
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, round(e.value, 3)) for e in events.Scalars("levels/arithmetic/L2/accuracy")] == [
        (0, 0.0),
        (12, 0.5),
    ]
    figure = plot_levels(before, after, tmp_path / "levels.png", "title")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no level is measured both before and after"):
        plot_levels(before, [], tmp_path / "none.png")
