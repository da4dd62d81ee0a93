"""The GPU part of bench_es_engine.py runs end to end (on CPU, with a tiny Qwen2 shape: the code path only)."""

from scripts.bench_es_engine import gpu_comparison


def test_gpu_comparison_code_path_on_a_tiny_shape():
    out = gpu_comparison("cpu", "tiny", members=2, count=2, new_tokens=2)
    assert out["sequential_s"] > 0 and out["batched_s"] > 0 and out["members_per_batch"] >= 1
    assert 0 < out["roofline_fraction"] and out["decode_tokens_per_s"] > 0
