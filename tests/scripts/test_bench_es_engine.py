"""bench_es_engine.py: the GPU part runs end to end (on CPU, with a tiny Qwen2 shape: the code path only), and
the layer-range section (d) on the tiny model."""

from scripts.bench_es_engine import gpu_comparison


def test_gpu_comparison_code_path_on_a_tiny_shape():
    out = gpu_comparison("cpu", "tiny", members=2, count=2, new_tokens=2)
    assert out["sequential_s"] > 0 and out["batched_s"] > 0 and out["members_per_batch"] >= 1
    assert out["roofline_fraction"] > 0 and out["decode_tokens_per_s"] > 0


def test_layer_range_section_runs_on_the_tiny_model(tiny):
    from scripts.bench_es_engine import layer_range, layer_range_results
    from tests.methods.esma.test_engine import RECORDS

    model, tokenizer = tiny
    out = layer_range(model, tokenizer, RECORDS[:2], members=2, new_tokens=2, last=1, rounds=2)
    assert out["layers"] == [1, 2]
    for key in ("logits", "generate", "meta_readout_alone"):
        assert len(out[key]["seconds_shared"]) == len(out[key]["seconds_unshared"]) == 2
        assert out[key]["speedup"] > 0 and out[key]["max_abs_p_yes_difference"] < 1e-5
    assert out["logits"]["identical_answers"] == 1.0
    assert {"trunk prompt prefill (total)", "top prefill (total)", "decode (total)"} <= set(
        out["generate"]["shared_phases_s"]
    )
    rows = layer_range_results({1: out}, 2, 2)
    assert len(rows) == 3 and rows[0].name == "cpu_layer_range_last1_iteration_logits_readout_speedup"
