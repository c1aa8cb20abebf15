"""edge.core.uploads: one cache key per uploaded picture and parameters, whichever form carried it;
different pictures or parameters never share one; bad bodies get the edge's problem; and the
module runs unchanged inside real Pyodide (the Workers runtime)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from edge.core.uploads import IMAGE_PATHS, UploadError, upload_key

ROOT = Path(__file__).resolve().parents[2]
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"  # any bytes: never decoded
OTHER = PHOTO[:-3] + b"\x00\xff\xd9"


def multipart(
    fields: dict[str, str], files: list[bytes], boundary: str | None = None
) -> tuple[str, bytes]:
    """A multipart/form-data body as a real client (httpx) encodes it."""
    req = httpx.Request(
        "POST",
        "http://edge/v1/images/classifications",
        data=fields,
        files=[("file", (f"photo{i}.jpg", f, "image/jpeg")) for i, f in enumerate(files)],
        headers={"content-type": f"multipart/form-data; boundary={boundary}"} if boundary else None,
    )
    body = req.read()
    return req.headers["content-type"], body


def as_json(payload: dict) -> tuple[str, bytes]:
    return "application/json", json.dumps(payload).encode()


PATH = "/v1/images/classifications"


def test_every_upload_form_of_one_photo_gets_one_key() -> None:
    b64 = base64.b64encode(PHOTO).decode()
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    forms = [
        multipart({"model": "shapes", "top_k": "3"}, [PHOTO]),
        multipart({"model": "shapes", "top_k": "3"}, [PHOTO], boundary=uuid.uuid4().hex),
        as_json({"model": "shapes", "top_k": 3, "input": b64}),
        as_json({"top_k": 3, "model": "shapes", "input": [b64]}),
        as_json({"model": "shapes", "top_k": 3, "input": "data:image/jpeg;base64," + b64}),
        as_json({"model": "shapes", "top_k": 3, "input": wrapped}),
    ]
    keys = {upload_key(PATH, ctype, body) for ctype, body in forms}
    assert len(keys) == 1
    (key,) = keys
    assert key.model == "shapes" and key.work == 1 and len(key.digest) == 32
    assert PHOTO not in key.digest


def test_different_pictures_order_parameters_or_routes_get_different_keys() -> None:
    base = upload_key(PATH, *multipart({"model": "shapes"}, [PHOTO, OTHER]))
    assert base.work == 2
    others = [
        upload_key(PATH, *multipart({"model": "shapes"}, [OTHER, PHOTO])),
        upload_key(PATH, *multipart({"model": "shapes"}, [PHOTO])),
        upload_key(PATH, *multipart({"model": "shapes", "top_k": "1"}, [PHOTO, OTHER])),
        upload_key(PATH, *multipart({"model": "shapes-2"}, [PHOTO, OTHER])),
        upload_key("/v1/images/embeddings", *multipart({"model": "shapes"}, [PHOTO, OTHER])),
    ]
    assert len({base.digest, *(k.digest for k in others)}) == 6


def test_rerank_keys_read_documents_as_their_text() -> None:
    docs = ["reset your password in settings", "opening hours"]
    plain = upload_key("/v1/rerank", *as_json({"model": "minilm", "query": "q", "documents": docs}))
    objects = upload_key(
        "/v1/rerank",
        *as_json({"documents": [{"text": d} for d in docs], "query": "q", "model": "minilm"}),
    )
    assert plain == objects and plain.work == 2 and plain.model == "minilm"
    top1 = upload_key(
        "/v1/rerank", *as_json({"model": "minilm", "query": "q", "documents": docs, "top_n": 1})
    )
    assert top1.digest != plain.digest


@pytest.mark.parametrize(
    ("path", "ctype", "body", "status", "slug"),
    [
        (PATH, "text/plain", b"hi", 415, "unsupported-media-type"),
        (PATH, "application/json", b"{not json", 400, "malformed"),
        (PATH, "application/json", b"[1]", 400, "malformed"),
        (PATH, "application/json", b'{"model": "m", "input": "%%%"}', 422, "invalid-image-data"),
        (
            PATH,
            "application/json",
            b'{"model": "m", "input": "data:image/png,x"}',
            422,
            "invalid-image-data",
        ),
        (PATH, "application/json", b'{"model": "m", "input": 5}', 422, "invalid-request"),
        (PATH, "multipart/form-data", b"--x\r\n", 400, "malformed"),
        (
            PATH,
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n',
            400,
            "malformed",
        ),
        (
            PATH,
            "multipart/form-data; boundary=x",
            b"--x\r\nno blank line\r\n--x--\r\n",
            400,
            "malformed",
        ),
        ("/v1/rerank", "multipart/form-data; boundary=x", b"--x--", 415, "unsupported-media-type"),
    ],
)
def test_bad_bodies_get_the_edge_problem(path, ctype, body, status, slug) -> None:
    with pytest.raises(UploadError) as info:
        upload_key(path, ctype, body)
    assert (info.value.status, info.value.slug) == (status, slug)


def test_too_many_parts_are_refused() -> None:
    ctype, body = multipart({"model": "m"}, [b"x"] * 70)
    with pytest.raises(UploadError) as info:
        upload_key(PATH, ctype, body)
    assert info.value.status == 422


def test_the_module_runs_in_pyodide_with_the_same_keys(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is required (see package.json)"
    ctype, body = multipart({"model": "shapes", "top_k": "3"}, [PHOTO, OTHER])
    (tmp_path / "body.bin").write_bytes(body)
    script = tmp_path / "run.mjs"
    script.write_text(
        """
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
const [root, bodyFile, ctype] = process.argv.slice(2);
const pyodideUrl = pathToFileURL(path.join(root, "node_modules", "pyodide", "pyodide.mjs"));
const { loadPyodide } = await import(pyodideUrl.href);
const py = await loadPyodide({ indexURL: path.join(root, "node_modules", "pyodide") });
py.FS.mkdirTree("/w/edge/core");
py.FS.writeFile("/w/edge/__init__.py", "");
py.FS.writeFile("/w/edge/core/__init__.py", "");
py.FS.writeFile(
  "/w/edge/core/uploads.py", fs.readFileSync(path.join(root, "edge", "core", "uploads.py"))
);
py.FS.writeFile("/w/body.bin", new Uint8Array(fs.readFileSync(bodyFile)));
py.globals.set("ctype", ctype);
const out = py.runPython(`
import sys; sys.path.insert(0, "/w")
from edge.core.uploads import upload_key
k = upload_key("/v1/images/classifications", ctype, open("/w/body.bin", "rb").read())
"%s %d %s %s" % (k.model, k.work, k.digest.hex(), sys.version.split()[0])
`);
console.log(out);
"""
    )
    result = subprocess.run(
        [node, str(script), str(ROOT), str(tmp_path / "body.bin"), ctype],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model, work, digest, version = result.stdout.strip().splitlines()[-1].split()
    key = upload_key(PATH, ctype, body)
    assert (model, int(work), digest) == (key.model, key.work, key.digest.hex())
    assert version.startswith("3.13")  # Pyodide 0.28's Python, as wrangler.toml's date picks
    assert PATH in IMAGE_PATHS
