"""Benchmark loading TriviaQA-schema JSONL: metalight's DataModule against two references on the same file.

Generates ``--rows`` (100,000) seeded rows in the hub ``rc.nocontext`` schema, then loads them in fresh
processes (so peak memory is that process's own): (a) ``TriviaQADataModule(path=...).setup()`` -- read,
validate, map to records, split and cap; (b) a plain ``json.loads`` loop keeping the rows; (c)
``datasets.load_dataset("json", data_files=...)`` into an empty cache (Arrow conversion included).
Targets for (a): under 10 s and under 1 GiB peak RSS (the whole process, torch and lightning imports
included). Wall time is the median of ``--repeats`` runs; peak RSS is the process's VmHWM.
Writes docs/benchmarks/data.json.  Usage: python scripts/bench_data.py [--rows 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "river",
    "capital",
    "opera",
    "novel",
    "planet",
    "king",
    "queen",
    "treaty",
    "battle",
    "painter",
    "island",
    "museum",
    "empire",
    "desert",
    "composer",
    "mountain",
    "war",
    "film",
    "poet",
    "city",
    "bridge",
    "saint",
    "storm",
    "ocean",
    "theatre",
]


def generate(path: Path, rows: int, seed: int = 0) -> Path:
    """Write ``rows`` TriviaQA hub-schema rows (question, ids, empty evidence, 1-12 answer aliases)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            value = " ".join(rng.choice(WORDS).title() for _ in range(rng.randint(1, 3)))
            aliases = [value] + [f"{value} {rng.choice(WORDS)}" for _ in range(rng.randint(0, 11))]
            question = "Which " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) + "?"
            row = {
                "question": question,
                "question_id": f"bench_{i}",
                "question_source": "http://example.org/",
                "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
                "search_results": {
                    "description": [],
                    "filename": [],
                    "rank": [],
                    "title": [],
                    "url": [],
                    "search_context": [],
                },
                "answer": {
                    "aliases": aliases,
                    "normalized_aliases": [a.lower() for a in aliases],
                    "matched_wiki_entity_name": "",
                    "normalized_matched_wiki_entity_name": "",
                    "normalized_value": value.lower(),
                    "type": "WikipediaEntity",
                    "value": value,
                },
            }
            handle.write(json.dumps(row) + "\n")
    return path


def child(kind: str, path: str, cache: str) -> None:
    """Run one load in this (fresh) process; print wall and CPU seconds, peak and pre-load RSS, row count."""

    def rss_mib() -> float:
        """Peak RSS of this process image: VmHWM (reset by exec, unlike ru_maxrss, which a child inherits
        from a large parent across fork + exec)."""
        try:
            status = Path("/proc/self/status").read_text()
            return (
                int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
            )
        except (OSError, StopIteration):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    if kind == "metalight":
        from metalight.data.sources.triviaqa import TriviaQADataModule
    elif kind == "datasets":
        import datasets

        datasets.disable_progress_bars()
    base = rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    if kind == "metalight":
        module = TriviaQADataModule(path=path, seed=0)
        module.setup()
        n = sum(len(v) for v in module.splits.values())
    elif kind == "json_loop":
        with open(path, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
        n = len(rows)
    else:
        n = len(datasets.load_dataset("json", data_files=path, split="train", cache_dir=cache))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(
        json.dumps(
            {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": rss_mib(), "base_rss_mib": base, "n": n}
        )
    )


def measure(kind: str, path: Path, repeats: int) -> dict:
    """Median seconds and max peak RSS over ``repeats`` fresh processes."""
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run(
                [sys.executable, __file__, "--child", kind, "--file", str(path), "--cache", cache],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                env={"PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
            )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "load_rss_mib": max(r["peak_rss_mib"] - r["base_rss_mib"] for r in runs),
        "n": runs[0]["n"],
        "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "runs_seconds": [round(r["seconds"], 3) for r in runs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, one repeat, no JSON written")
    parser.add_argument("--child", choices=["metalight", "json_loop", "datasets"], help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.cache)
        return
    rows, repeats = (10_000, 1) if args.quick else (args.rows, args.repeats)

    from metalight.benchmarking import BenchResult, check, invocation, write_results

    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp) / "triviaqa_bench.jsonl", rows)
        size_mib = path.stat().st_size / 2**20
        print(f"{rows} rows, {size_mib:.1f} MiB; {repeats} run(s) each in a fresh process")
        ours = measure("metalight", path, repeats)
        plain = measure("json_loop", path, repeats)
        hf = measure("datasets", path, repeats)
    assert ours["n"] == plain["n"] == hf["n"] == rows, (ours["n"], plain["n"], hf["n"])
    scale = f" ({rows} rows)" if rows != 100_000 else ""
    results = [
        BenchResult(
            f"TriviaQADataModule load{scale}",
            ours["seconds"],
            "s",
            "<= 10",
            "plain json.loads loop / datasets.load_dataset('json')",
            check(ours["seconds"], "<= 10"),
            f"CPU {ours['cpu_seconds']:.2f} s; json.loads loop {plain['seconds']:.2f} s (CPU "
            f"{plain['cpu_seconds']:.2f} s), datasets.load_dataset {hf['seconds']:.2f} s (CPU "
            f"{hf['cpu_seconds']:.2f} s, multi-threaded Arrow reader)",
        ),
        BenchResult(
            f"TriviaQADataModule peak RSS{scale}",
            ours["peak_rss_mib"],
            "MiB",
            "<= 1024",
            "same process before loading (imports)",
            check(ours["peak_rss_mib"], "<= 1024"),
            f"of which the load added {ours['load_rss_mib']:.0f} MiB; json.loads loop peak "
            f"{plain['peak_rss_mib']:.0f} MiB, datasets.load_dataset peak {hf['peak_rss_mib']:.0f} MiB",
        ),
        BenchResult(
            f"time vs json.loads loop{scale}",
            ours["seconds"] / plain["seconds"],
            "ratio",
            None,
            "plain json.loads loop (no validation, no records)",
            None,
            "the price of validation, record objects and the seeded split",
        ),
        BenchResult(
            f"time vs datasets.load_dataset('json'){scale}",
            ours["seconds"] / hf["seconds"],
            "ratio",
            None,
            "datasets.load_dataset('json'), empty cache",
            None,
            None,
        ),
    ]
    command = invocation()
    extra = {
        "rows": rows,
        "file_mib": round(size_mib, 1),
        "repeats": repeats,
        "raw": {"metalight": ours, "json_loop": plain, "datasets": hf},
    }
    if args.quick:
        for r in results:
            print(f"{r.name:<48} {r.value:9.3f} {r.unit:<6} target {r.target or '-':<8} {r.note or ''}")
        print("(--quick: nothing written)")
    else:
        print(
            "wrote",
            write_results(
                "data", results, model="-", command=command, extra=extra, out_dir=ROOT / "docs" / "benchmarks"
            ),
        )


if __name__ == "__main__":
    main()
