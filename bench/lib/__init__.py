"""Helpers every benchmark shares, one of each (docs/dev/bench.md):

- `procs`: free ports, a clean environment, starting a server and waiting until it answers,
  stopping it with its process group;
- `components`: the command lines and settings that start Outpost's own origin and edge;
- `constant_app`: a minimal uvicorn app answering one fixed response (`python -m
  bench.lib.constant_app PORT`), the baseline for "what any Python server costs";
- `issuer`: a throwaway token issuer (JWKS over loopback) so the edge can check real tokens;
- `subject_origin`: the origin with each request's subject from a header (a stand-in for the
  edge's verified proof), so one load generator plays many subjects;
- `rawhttp`: the one hand-written HTTP/1.1 client (keep-alive, closed loop) for load where the
  client's own CPU must stay small;
- `texts`: the one generator of benchmark inputs;
- `stats`: the one percentile function (one convention);
- `usage`: CPU time per request and RSS of server processes (psutil);
- `results`: the stamp and the writer of bench/results/*.json.

Rules: nothing here imports from `tests/`, and every module imports only the standard library
plus psutil (`usage`), PyJWT and cryptography (`issuer`) or uvicorn (`constant_app`), so the
peers' load venv (bench/peers/setup.sh: aiohttp, psutil, numpy, pyjwt, matplotlib) can use them;
`subject_origin` alone runs the origin itself, under the project's Python.
Scripts put the repository root on `sys.path` and import `bench.lib.<module>`.
"""
