"""The printed rows line says when a max_samples cap kept a split's first rows (max_samples_from: start)."""

from metalight.callbacks.report_writer import rows_line


def test_rows_line_names_a_cap_that_kept_the_first_rows():
    report = {"n": 5, "evaluated_rows": 5, "split_rows": 20}
    assert (
        rows_line(report | {"max_samples_from": "shuffle"})
        == "rows: 5 evaluated; capped at max_samples from 20"
    )
    assert rows_line(report | {"max_samples_from": "start"}) == (
        "rows: 5 evaluated; capped at max_samples from 20 (its first rows)"
    )
