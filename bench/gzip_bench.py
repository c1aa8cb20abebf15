"""What the edge's gzip costs, per runtime (a benchmark, not a test).

    ./dev bench gzip [--reps 400] [--rounds 5] [--out bench/results/gzip.json]

Compresses answers shaped like the origin's (orjson-encoded float32 MiniLM embeddings, 384
values, unit length: one input and a batch of 16) with both gzip implementations the edge has:
`zlib_gzip` (the standard library, what the Worker runs inside Pyodide) and the local platform's
(ISA-L, python-isal). Records CPU µs per answer (process time, medians of interleaved rounds),
compressed size, and ISA-L / zlib ratios from the same run, at the levels 1, 6 and 9.
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import isal
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import results  # noqa: E402
from bench.lib.cli import reps_rounds  # noqa: E402
from edge.compression import zlib_gzip  # noqa: E402
from edge.runtime.local import LocalPlatform  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gzip.json"
LEVELS = (1, 6, 9)


def embedding_answer(inputs: int, seed: int = 0) -> bytes:
    """An OpenAI-style embeddings answer as the origin encodes it (orjson, float32 arrays)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((inputs, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
            "model": "all-minilm-l6-v2",
            "usage": {"prompt_tokens": 9 * inputs, "total_tokens": 9 * inputs},
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def cpu_us(fn: Callable[[bytes, int], bytes], body: bytes, level: int, reps: int) -> float:
    start = time.process_time()
    for _ in range(reps):
        fn(body, level)
    return 1e6 * (time.process_time() - start) / reps


def main() -> None:
    args = reps_rounds(__doc__.split("\n")[0], 400, "compressions", RESULTS)
    local = LocalPlatform()
    impls = {"zlib": zlib_gzip, "isal": local.gzip}
    bodies = {
        "embedding, 1 input": embedding_answer(1),
        "embeddings, 16 inputs": embedding_answer(16),
    }
    rows = []
    for name, body in bodies.items():
        reps = max(10, args.reps * 4800 // len(body))
        for level in LEVELS:
            sizes = {}
            for impl, fn in impls.items():
                packed = fn(body, level)
                if gzip.decompress(packed) != body:
                    raise SystemExit(f"{impl} level {level} did not round-trip {name}")
                sizes[impl] = len(packed)
            samples: dict[str, list[float]] = {impl: [] for impl in impls}
            for i in range(args.rounds):
                order = list(impls) if i % 2 == 0 else list(reversed(impls))
                for impl in order:
                    samples[impl].append(cpu_us(impls[impl], body, level, reps))
            cpu = {impl: statistics.median(v) for impl, v in samples.items()}
            rows.append(
                {
                    "body": name,
                    "body_bytes": len(body),
                    "level": level,
                    "zlib_cpu_us": round(cpu["zlib"], 1),
                    "isal_cpu_us": round(cpu["isal"], 1),
                    "isal_over_zlib_cpu": round(cpu["isal"] / cpu["zlib"], 2),
                    "zlib_bytes": sizes["zlib"],
                    "isal_bytes": sizes["isal"],
                    "isal_over_zlib_bytes": round(sizes["isal"] / sizes["zlib"], 3),
                }
            )
            print(json.dumps(rows[-1]))
    result = {
        **results.stamp("gzip"),
        "versions": {"isal": isal.__version__, "zlib": zlib.ZLIB_RUNTIME_VERSION},
        "rounds": args.rounds,
        "rows": rows,
    }
    results.write_json(args.out, result)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
