"""Benchmark the demo shop generator: time generation and writing, report rows and memory.

uv run python bench/synth.py --customers 1000000 --days 365 --out /tmp/shop --json bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

from tasks.demo.synth import DEFAULT_END, generate_shop, write_shop


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark once, print a summary and optionally write it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="folder for the generated files")
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    frames = generate_shop(args.customers, args.days, args.seed)
    generated = time.perf_counter()
    rss_after_generate = _peak_rss_mb()
    paths = write_shop(frames, args.out, args.format)
    written = time.perf_counter()

    rows = {table.value: len(frame) for table, frame in frames.items()}
    result: dict[str, object] = {
        "customers": args.customers,
        "days": args.days,
        "seed": args.seed,
        "end": DEFAULT_END.isoformat(),
        "format": args.format,
        "rows": rows,
        "total_rows": sum(rows.values()),
        "bytes": {table.value: path.stat().st_size for table, path in paths.items()},
        "generate_seconds": round(generated - started, 2),
        "write_seconds": round(written - generated, 2),
        "total_seconds": round(written - started, 2),
        "peak_rss_mb_after_generate": round(rss_after_generate, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    for table, n in rows.items():
        size = result["bytes"][table] / 1e6  # type: ignore[index]
        print(f"{table:>14}: {n:>12,} rows  {size:>9.1f} MB")
    print(
        f"generate {result['generate_seconds']} s, write {result['write_seconds']} s, "
        f"total {result['total_seconds']} s, peak RSS {result['peak_rss_mb']} MiB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
