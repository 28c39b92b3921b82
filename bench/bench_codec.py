"""What one event costs to read off a topic and to write onto one: ``schemas.decode`` (parse,
then the schema check: msgspec first, the compiled check when msgspec cannot say) and
``schemas.encode`` (check, then serialise), per hot-path schema, with their parts apart so each
lever's share shows.

CPU time (``time.process_time``), not wall time: the machine is shared, and the best of several
rounds is the figure least disturbed by the other processes. ``python -m bench.bench_codec``;
writes ``bench/results/bench-codec.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from services.core import schemas

RESULTS = Path(__file__).resolve().parent / "results"
HOT = ("sms.inbound", "sms.outbound", "sms.status", "sms.delivery")


def cpu_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Best-of-rounds CPU microseconds per call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, time.process_time() - start)
    return round(best / calls * 1e6, 2)


# Which example each schema is measured with: sms.outbound's router reply (the inbound path's
# event; the first example names carrier preferences, a field only the compiled check reads).
EXAMPLE = {"sms.outbound": 1}


def example(name: str) -> dict:
    doc = json.loads((schemas.SCHEMA_DIR / name / "v1.json").read_text(encoding="utf-8"))
    return doc["examples"][EXAMPLE.get(name, 0)]


def measure(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    return {name: measure_one(name, calls, rounds) for name in HOT}


def measure_one(name: str, calls: int, rounds: int) -> dict[str, float]:
    event = example(name)
    raw = schemas.encode(name, event)
    compiled, quick = schemas._fast(name), schemas._quick(name)
    assert quick is not None and quick(dict(event)), f"{name}: the example takes the slow check"
    return {
        "decode_us": cpu_us(lambda: schemas.decode(name, raw), calls, rounds),
        "encode_us": cpu_us(lambda: schemas.encode(name, event), calls, rounds),
        # the check the codec makes (msgspec first), and the compiled JSON Schema check alone
        "validate_us": cpu_us(lambda: schemas.is_valid(name, event), calls, rounds),
        "compiled_us": cpu_us(lambda: compiled(event), calls, rounds),
        "orjson_loads_us": cpu_us(lambda: orjson.loads(raw), calls, rounds),
        "orjson_dumps_us": cpu_us(lambda: orjson.dumps(event), calls, rounds),
        # what the codec used before (stdlib json), kept as the reference
        "json_loads_us": cpu_us(lambda: json.loads(raw.decode("utf-8")), calls, rounds),
        "json_dumps_us": cpu_us(
            lambda: json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            calls, rounds),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    figures = measure(args.calls, args.rounds)
    print(f"codec, CPU µs per event (best of {args.rounds} rounds of {args.calls}):")
    cols = list(next(iter(figures.values())))
    print(f"  {'schema':<14}" + "".join(f"{c[:-3]:>14}" for c in cols))
    for name, row in figures.items():
        print(f"  {name:<14}" + "".join(f"{row[c]:>14.2f}" for c in cols))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench-codec.json").write_text(json.dumps(
        {"unit": "CPU microseconds per event", "calls": args.calls, "rounds": args.rounds,
         "schemas": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
