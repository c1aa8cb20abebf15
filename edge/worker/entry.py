"""wrangler's `main` (base_dir = edge/worker): the only module uploaded at the Worker's top level.

Everything else comes from the vendored `python_modules/edge` package, so no edge module name
(`platform`, `config`, `stats`, ...) can shadow a stdlib module inside the Worker.
"""

from edge.entry import Default, QuotaObject

__all__ = ["Default", "QuotaObject"]
