"""Where the edge runs: one small interface (`base.Platform`), two implementations.

`local` (uvicorn + aiohttp + cryptography) and `workers` (Cloudflare Python Workers: fetch,
WebCrypto, Cache API, waitUntil). Import the implementation you need directly; this package
imports neither, so the edge core stays importable everywhere.
"""
