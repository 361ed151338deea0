"""Benchmark the per-value checks of contact cells: email addresses and phone numbers, one value at a time.

uv run python bench/contacts.py                                  # 200,000 customers of the demo shop
uv run python bench/contacts.py --customers 1000000 --json /tmp/contacts.json

Each loading of a shop checks every customer's address and phone (``tasks/data/contacts.py``). Timed, on one
core, over the demo shop's customers: email_validator on each whole address (the reference), ``ascii_address``
(a plain address answered from its domain's cached result), and the same with every address at a domain of
its own (no domain seen twice: the fast path's worst case); then the phones. Each answer is compared with
the reference's.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

from tasks.data.contacts import normalise_phone
from tasks.demo.synth.frames import generate_shop
from tasks.kernel.addresses import ascii_address, clear_caches, validated_address
from tasks.kernel.enums import Table


def _timed(check: Callable[[str], str | None], values: list[str]) -> tuple[float, list[str | None]]:
    """Seconds for ``check`` over every value (caches emptied first), and its answers."""
    clear_caches()
    started = time.perf_counter()
    answers = [check(v) for v in values]
    return time.perf_counter() - started, answers


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)

    customers = generate_shop(args.customers, 30, args.seed)[Table.CUSTOMERS]
    emails = [str(e).strip() for e in customers["email"].dropna() if str(e).strip()]
    # every address at a domain of its own: the domain cache never helps
    own_domains = [f"{e.partition('@')[0]}@shop{i}.example.com" for i, e in enumerate(emails)]
    phones = [
        f"{p}\x1f{c}" for p, c in zip(customers["phone"], customers["country"], strict=True) if isinstance(p, str) and p
    ]
    print(
        f"{len(emails):,} email addresses ({len({e.partition('@')[2] for e in emails}):,} domains), {len(phones):,} phones"
    )

    rows: dict[str, dict[str, float | int]] = {}

    def run(name: str, check: Callable[[str], str | None], values: list[str], reference: list[str | None]) -> None:
        seconds, answers = _timed(check, values)
        differ = sum(a != b for a, b in zip(answers, reference, strict=True))
        rows[name] = {
            "values": len(values),
            "seconds": round(seconds, 2),
            "us_per_value": round(seconds / len(values) * 1e6, 2),
            "answers_differing_from_email_validator": differ,
        }
        print(f"  {name:<42} {seconds:7.2f} s  {seconds / len(values) * 1e6:7.2f} us a value  differ: {differ}")

    whole_seconds, whole = _timed(validated_address, emails)
    rows["email: email_validator, whole address"] = {
        "values": len(emails),
        "seconds": round(whole_seconds, 2),
        "us_per_value": round(whole_seconds / len(emails) * 1e6, 2),
    }
    print(
        f"  {'email: email_validator, whole address':<42} {whole_seconds:7.2f} s  {whole_seconds / len(emails) * 1e6:7.2f} us a value"
    )
    run("email: ascii_address", ascii_address, emails, whole)
    own_reference = [validated_address(e) for e in own_domains]
    run("email: ascii_address, a domain each", ascii_address, own_domains, own_reference)
    phone_seconds, _ = _timed(normalise_phone, phones)
    rows["phone: phonenumbers parse + valid + E.164"] = {
        "values": len(phones),
        "seconds": round(phone_seconds, 2),
        "us_per_value": round(phone_seconds / max(1, len(phones)) * 1e6, 2),
    }
    print(
        f"  {'phone: phonenumbers parse + valid + E.164':<42} {phone_seconds:7.2f} s  {phone_seconds / max(1, len(phones)) * 1e6:7.2f} us a value"
    )
    speedup = whole_seconds / rows["email: ascii_address"]["seconds"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    result: dict[str, object] = {
        "benchmark": "contacts",
        "customers": args.customers,
        "checks": rows,
        "email_speedup": round(speedup, 1),
        "peak_rss_mb": round(peak, 1),
        "python": platform.python_version(),
    }
    written = ""
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        written = f" -> {args.json}"
    print(f"ascii_address against email_validator: {speedup:.1f}x; peak RSS {peak:.0f} MiB{written}")
    return result


if __name__ == "__main__":
    main()
