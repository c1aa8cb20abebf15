"""Hypothesis properties of the pure parts: edge cache keys, token parsing, the edge's gzip, edge
and model config validation, and the origin's batcher."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.auth import Authenticator, AuthError
from edge.cache import cache_key, canonical_json
from edge.compression import zlib_gzip
from edge.config import ConfigError, load_config
from edge.runtime.local import LocalPlatform
from origin.engine.batcher import Batcher
from origin.repository.config import BatchingConfig, ModelFolderError, parse_model_config
from tests.edge.conftest import b64url

PROPS = settings(max_examples=150, derandomize=True, deadline=None)

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=6)


def shuffled(obj: Any, rnd: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [shuffled(v, rnd) for v in obj]
    return obj


def key_of(obj: Any) -> str:
    return cache_key("primary", "emb", "1", "/v1/embeddings", canonical_json(obj), "*/*")


@PROPS
@given(obj=json_objects, seed=st.integers(0, 2**32), indent=st.sampled_from([None, 1, 4]))
def test_cache_key_ignores_key_order_and_whitespace(
    obj: dict, seed: int, indent: int | None
) -> None:
    text = json.dumps(shuffled(obj, random.Random(seed)), indent=indent)
    assert key_of(json.loads(text)) == key_of(obj)


@PROPS
@given(a=json_objects, b=json_objects)
def test_cache_key_differs_when_content_differs(a: dict, b: dict) -> None:
    if canonical_json(a) != canonical_json(b):
        assert key_of(a) != key_of(b)


@PROPS
@given(v1=st.text(min_size=1, max_size=4), v2=st.text(min_size=1, max_size=4))
def test_cache_key_includes_the_model_version(v1: str, v2: str) -> None:
    body = canonical_json({"model": "emb", "input": "x"})
    k1 = cache_key("primary", "emb", v1, "/v1/embeddings", body, "*/*")
    k2 = cache_key("primary", "emb", v2, "/v1/embeddings", body, "*/*")
    assert (k1 == k2) == (v1 == v2)


# -- gzip ---------------------------------------------------------------------------------------
@PROPS
@given(
    unit=st.binary(min_size=1, max_size=64),
    repeats=st.integers(1, 1500),  # up to ~96 KB: across every window size zlib_gzip picks
    level=st.integers(1, 9),
)
def test_gzip_sized_to_the_body_round_trips(unit: bytes, repeats: int, level: int) -> None:
    body = unit * repeats
    assert gzip.decompress(zlib_gzip(body, level)) == body


@PROPS
@given(body=st.binary(max_size=70_000), level=st.integers(1, 9))
def test_local_isal_gzip_round_trips_at_every_level(body: bytes, level: int) -> None:
    assert gzip.decompress(LocalPlatform().gzip(body, level)) == body


@pytest.mark.parametrize("level", ["0", "10", "-1"])
def test_gzip_level_outside_1_to_9_is_a_config_error(level: str) -> None:
    with pytest.raises(ConfigError, match="gzip_level"):
        load_config({"OUTPOST_EDGE_GZIP_LEVEL": level})


# -- token parsing ------------------------------------------------------------------------------
ISSUER = "https://issuer.invalid"


@pytest.fixture(scope="module")
def authenticator() -> Authenticator:
    # The JWKS URL points at a closed port: any token that gets as far as a key lookup fails there.
    config = load_config(
        {"issuers": json.dumps([{"issuer": ISSUER, "jwks_url": "http://127.0.0.1:9/keys"}])}
    )
    return Authenticator(config, LocalPlatform(connect_timeout=0.2))


header_json = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["none", "HS256", "EdDSA", "RS256", "ES256"]) | json_values,
        "kid": json_values,
        "typ": json_values,
    },
)
payload_json = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | json_values,
        "aud": json_values,
        "exp": json_values,
        "sub": json_values,
    },
)
raw_segments = st.binary(max_size=64).map(b64url) | st.text(max_size=20)
tokens = (
    st.text(max_size=200)
    | st.lists(raw_segments, min_size=1, max_size=5).map(".".join)
    | st.tuples(
        header_json.map(lambda h: b64url(json.dumps(h).encode())),
        payload_json.map(lambda p: b64url(json.dumps(p).encode())),
        raw_segments,
    ).map(".".join)
    | st.integers(1, 5000).map(lambda n: b64url(b"[" * n + b"]" * n) + ".e30.AA")
)


@settings(PROPS, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=tokens)
def test_any_token_string_is_refused_with_an_auth_error_only(
    authenticator: Authenticator, token: str
) -> None:
    async def attempt() -> None:
        with pytest.raises(AuthError) as info:
            await authenticator.authenticate(f"Bearer {token}", "inference")
        assert info.value.status == 401
        # Never echoed. A token under 8 characters may be a word of the fixed texts ("tok" is
        # in "The token ..."), which is not an echo.
        assert token not in info.value.description or len(token) < 8

    asyncio.run(attempt())


# -- config validation --------------------------------------------------------------------------
config_values = json_values | st.sampled_from(
    [
        *("embeddings", "tensor", "text-classification", "latest", "pinned", "reject", "mean"),
        *("shared", "subject", -1, 0),
    ]
)
model_config_dicts = st.dictionaries(
    st.sampled_from(
        [
            "task",
            "version_policy",
            "pinned_version",
            "max_sequence_length",
            "truncation",
            "pooling",
            "normalize",
            "labels",
            "top_k",
            "batching",
            "cache_ttl_seconds",
            "cache_scope",
            "inputs",
            "onnx",
            "bogus",
        ]
    ),
    config_values | st.dictionaries(st.text(max_size=20), config_values, max_size=4),
    max_size=8,
)


@PROPS
@given(data=model_config_dicts | json_values)
def test_model_config_validator_raises_only_model_folder_error(data: Any) -> None:
    try:
        parse_model_config(data, "models/x/model.yaml")
    except ModelFolderError as exc:
        assert exc.file == "models/x/model.yaml"
        assert exc.message


edge_settings = st.dictionaries(
    st.sampled_from(
        [
            "OUTPOST_EDGE_ORIGINS",
            "OUTPOST_EDGE_ISSUERS",
            "OUTPOST_EDGE_RATE_LIMITS",
            "OUTPOST_EDGE_CANARY",
            "OUTPOST_EDGE_CORS_ORIGINS",
            "OUTPOST_EDGE_TRUSTED_PROXIES",
            "OUTPOST_EDGE_LEEWAY_SECONDS",
            "OUTPOST_EDGE_MAX_ATTEMPTS",
            "OUTPOST_EDGE_GZIP_LEVEL",
        ]
    ),
    st.text(max_size=30) | json_values.map(json.dumps),
    max_size=5,
)


@PROPS
@given(values=edge_settings)
def test_edge_config_parser_raises_only_config_error(values: dict[str, str]) -> None:
    try:
        load_config(values)
    except ConfigError as exc:
        assert str(exc)


# -- batching -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    owner: int
    index: int
    cost: int = 1


def run_batch(items: list[Item]) -> list[tuple[int, int]]:
    return [(it.owner, it.index) for it in items]


@PROPS
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=25),
    max_batch=st.integers(1, 8),
    costs=st.integers(1, 40),
)
def test_batcher_gives_every_request_exactly_its_own_results_in_order(
    sizes: list[int], max_batch: int, costs: int
) -> None:
    config = BatchingConfig(
        max_batch_size=max_batch,
        max_queue_delay_ms=1,
        max_batch_tokens=max(costs * max_batch, 64),
        max_queue_size=1000,
    )
    results = run_concurrently(config, [(None, [costs] * n) for n in sizes])
    assert results == [[(o, i) for i in range(n)] for o, n in enumerate(sizes)]


def run_concurrently(
    config: BatchingConfig, requests: list[tuple[str | None, list[int]]]
) -> list[list[tuple[int, int]]]:
    """Submit every request (subject, item costs) at once; each one's results."""

    async def scenario() -> list[list[tuple[int, int]]]:
        with ThreadPoolExecutor(2) as ex:
            batcher = Batcher(run_batch, config, ex)
            try:
                reqs = [
                    batcher.submit([Item(o, i, c) for i, c in enumerate(costs)], subject)
                    for o, (subject, costs) in enumerate(requests)
                ]
                return await asyncio.gather(*reqs)
            finally:
                await batcher.close()

    return asyncio.run(scenario())


SUBJECTS = st.sampled_from([None, "sub:a", "sub:b", "ip:10.0.0.1"])


@PROPS
@given(
    requests=st.lists(
        st.tuples(SUBJECTS, st.lists(st.integers(1, 300), min_size=1, max_size=9)),
        min_size=1,
        max_size=20,
    ),
    max_batch=st.integers(1, 8),
    budget=st.integers(1, 2048),
)
def test_batcher_gives_every_subject_exactly_its_own_results_in_order(
    requests: list[tuple[str | None, list[int]]], max_batch: int, budget: int
) -> None:
    """Any mix of subjects and lengths, any budget (an item over it runs alone)."""
    config = BatchingConfig(
        max_batch_size=max_batch,
        max_queue_delay_ms=1,
        max_batch_tokens=budget,
        max_queue_size=1000,
    )
    results = run_concurrently(config, requests)
    assert results == [[(o, i) for i in range(len(c))] for o, (_, c) in enumerate(requests)]


class HeldEngine:
    """run_batch recording each batch's owners; the first batch waits for `gate`."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.gate = threading.Event()

    def __call__(self, items: list[Item]) -> list[tuple[int, int]]:
        self.started.set()
        self.gate.wait(10)
        self.batches.append([it.owner for it in items])
        return run_batch(items)


def run_behind_a_held_batch(
    config: BatchingConfig, backlog: list[tuple[str, list[int]]], held_by: str = "held"
) -> list[list[int]]:
    """One item of `held_by` runs (held) while `backlog`'s requests (subject, costs) queue up
    in order; returns the owners (backlog index, -1 for the held item) of each batch."""

    async def scenario() -> list[list[int]]:
        engine = HeldEngine()
        with ThreadPoolExecutor(2) as ex:
            batcher = Batcher(engine, config, ex)
            try:
                held = asyncio.create_task(batcher.submit([Item(-1, 0, 1)], held_by))
                await asyncio.to_thread(engine.started.wait, 5)
                reqs = []
                for o, (subject, costs) in enumerate(backlog):
                    reqs.append(
                        asyncio.create_task(
                            batcher.submit([Item(o, i, c) for i, c in enumerate(costs)], subject)
                        )
                    )
                    await asyncio.sleep(0)
                engine.gate.set()
                await asyncio.gather(held, *reqs)
            finally:
                await batcher.close()
        return engine.batches

    return asyncio.run(scenario())


def held_config(max_batch: int) -> BatchingConfig:
    return BatchingConfig(
        max_batch_size=max_batch,
        max_queue_delay_ms=0,
        max_batch_tokens=4096,
        max_batch_ms=60_000,  # the held batch would look slow
        max_queue_size=10_000,
    )


@PROPS
@given(
    flood=st.lists(st.lists(st.integers(1, 256), min_size=1, max_size=64), min_size=1, max_size=4),
    newcomer=st.integers(1, 256),
    max_batch=st.integers(1, 32),
)
def test_a_newcomer_behind_a_flood_is_in_the_next_batch(
    flood: list[list[int]], newcomer: int, max_batch: int
) -> None:
    """Whatever a subject that is being served has queued (any lengths), another subject's
    request that arrives behind it runs in the batch after the one running."""
    backlog = [("flood", costs) for costs in flood] + [("newcomer", [newcomer])]
    batches = run_behind_a_held_batch(held_config(max_batch), backlog, held_by="flood")
    assert len(flood) in batches[1], batches[:3]


@PROPS
@given(
    backlogs=st.lists(
        st.lists(st.integers(1, 256), min_size=1, max_size=40), min_size=1, max_size=6
    ),
    max_batch=st.integers(1, 32),
)
def test_no_subject_waits_for_more_than_one_turn_of_the_others(
    backlogs: list[list[int]], max_batch: int
) -> None:
    """Subjects that queue up together each get an item into one of the next (subjects)
    batches, however long the others' backlogs are."""
    backlog = [(f"sub:{o}", costs) for o, costs in enumerate(backlogs)]
    batches = run_behind_a_held_batch(held_config(max_batch), backlog)
    for o in range(len(backlogs)):
        first = next(i for i, owners in enumerate(batches) if o in owners)
        assert first <= len(backlogs), (o, batches[: len(backlogs) + 1])


@PROPS
@given(costs=st.lists(st.integers(1, 16), min_size=1, max_size=120), max_batch=st.integers(1, 32))
def test_a_lone_subject_fills_whole_batches(costs: list[int], max_batch: int) -> None:
    """One subject's backlog of short inputs runs in full batches (the last may be partial)."""
    batches = run_behind_a_held_batch(held_config(max_batch), [("alone", costs)])
    sizes = [len(b) for b in batches[1:]]
    assert all(size == max_batch for size in sizes[:-1]), sizes
    assert sum(sizes) == len(costs)
