"""Photos as phones send them: classified and embedded from every upload form with one result,
matching PyTorch and Hugging Face's image processor; every malformed image gets its 4xx."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageDraw

from tests.origin.conftest import OriginProcess, install_version

EXIF_ORIENTATION = 0x0112
pillow_heif.register_heif_opener()  # so the test can write HEIC files


# ----------------------------------------------------------------------------- pictures
def scene() -> Image.Image:
    """An upright 480x640 (portrait) picture whose content changes when it is turned."""
    img = Image.new("RGB", (480, 640), (235, 225, 200))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 479, 180), fill=(40, 90, 200))  # sky on top
    draw.ellipse((300, 30, 420, 150), fill=(250, 200, 40))  # sun, top right
    draw.polygon([(60, 600), (240, 260), (420, 600)], fill=(30, 140, 60))  # a tree, bottom
    draw.rectangle((200, 560, 280, 640), fill=(110, 70, 30))
    return img


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def phone_jpeg(upright: Image.Image) -> bytes:
    """As a phone camera writes it: sensor (landscape) pixels plus EXIF Orientation 6."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def phone_heic(upright: Image.Image) -> bytes:
    """As an iPhone writes it: landscape pixels and a rotation in the HEIF container."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    return encode(stored, "HEIF", quality=95, exif=exif.tobytes())


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header promises width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ----------------------------------------------------------------------------- server
@pytest.fixture(scope="module")
def image_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from outpost.modelkit.tiny import build_tiny_image

    src = tmp_path_factory.mktemp("image-src")
    build_tiny_image(src / "icls", task="image-classification", version=1, seed=0)
    build_tiny_image(src / "icls", task="image-classification", version=2, seed=1)
    build_tiny_image(src / "iemb", task="image-embeddings", version=1, seed=0)
    return src


@pytest.fixture(scope="module")
def models_dir(image_src: Path, tiny_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image-models")
    install_version(image_src / "icls", 1, root / "icls", 1)
    install_version(image_src / "iemb", 1, root / "iemb", 1)
    install_version(tiny_src / "emb", 1, root / "emb", 1)
    return root


@pytest.fixture(scope="module")
def origin(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OriginProcess]:
    log = tmp_path_factory.mktemp("logs") / "images.log"
    yield from OriginProcess(
        models_dir,
        log,
        OUTPOST_ORIGIN_MAX_IMAGE_BODY_BYTES=str(3 << 20),
        OUTPOST_ORIGIN_MAX_IMAGES_PER_REQUEST="4",
    ).serve()


def via(client: httpx.Client, form: str, route: str, model: str, data: bytes) -> Any:
    """One image through one upload form; returns the result for that image."""
    if form == "oip":
        r = client.post(
            f"/v2/models/{model}/infer",
            json={
                "inputs": [
                    {"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(data)]}
                ]
            },
        )
        assert r.status_code == 200, r.text
        out = {o["name"]: o for o in r.json()["outputs"]}
        if route == "classifications":
            return np.array(out["probabilities"]["data"], dtype=np.float32)
        return np.array(out["embedding"]["data"], dtype=np.float32)
    if form == "multipart":
        r = client.post(
            f"/v1/images/{route}",
            data={"model": model},
            files={"file": ("photo", data, "application/octet-stream")},
        )
    else:
        value = b64(data) if form == "base64" else "data:image/jpeg;base64," + b64(data)
        r = client.post(f"/v1/images/{route}", json={"model": model, "input": [value]})
    assert r.status_code == 200, r.text
    (item,) = r.json()["data"]
    if route == "classifications":
        scores = {x["label"]: x["score"] for x in item["labels"]}
        return np.array([scores[k] for k in ("cat", "dog", "bird")], dtype=np.float32)
    return np.array(item["embedding"], dtype=np.float32)


FORMS = ("multipart", "base64", "data-url", "oip")


@pytest.mark.parametrize("kind", ["jpeg", "heic"])
@pytest.mark.parametrize(("route", "model"), [("classifications", "icls"), ("embeddings", "iemb")])
def test_a_phone_photo_gives_one_result_from_every_upload_form(client, kind, route, model) -> None:
    photo = (phone_jpeg if kind == "jpeg" else phone_heic)(scene())
    results = [via(client, form, route, model, photo) for form in FORMS]
    for form, got in zip(FORMS[1:], results[1:], strict=True):
        np.testing.assert_array_equal(got, results[0], err_msg=form)


@pytest.mark.parametrize(("route", "model"), [("classifications", "icls"), ("embeddings", "iemb")])
def test_orientation_is_applied_so_the_photo_is_seen_upright(client, route, model) -> None:
    upright = via(client, "base64", route, model, encode(scene(), "PNG"))
    sideways = via(
        client, "base64", route, model, encode(scene().transpose(Image.Transpose.ROTATE_90), "PNG")
    )
    for kind, photo in (("jpeg", phone_jpeg(scene())), ("heic", phone_heic(scene()))):
        got = via(client, "base64", route, model, photo)
        assert np.abs(got - upright).max() < 0.02, kind  # lossy compression only
        assert np.abs(got - upright).max() < np.abs(sideways - upright).max() / 4, kind


@pytest.fixture(scope="module")
def torch_vit(image_src: Path) -> tuple[Any, Any]:
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessor

    from outpost.modelkit.tiny import TINY_IMAGE_LABELS, TINY_IMAGE_SIZE, tiny_vit_config

    torch.manual_seed(0)
    config = tiny_vit_config(num_labels=3, id2label=dict(enumerate(TINY_IMAGE_LABELS)), label2id={})
    model = ViTForImageClassification(config).eval()
    processor = ViTImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    return model, processor


def test_classification_matches_pytorch_with_hugging_face_preprocessing(client, torch_vit) -> None:
    import torch

    model, processor = torch_vit
    pictures = [scene(), scene().resize((333, 201)), scene().convert("L").convert("RGB")]
    with torch.no_grad():
        logits = model(**processor(images=pictures, return_tensors="pt")).logits.numpy()
    want = np.exp(logits - logits.max(axis=1, keepdims=True))
    want /= want.sum(axis=1, keepdims=True)
    for picture, expected in zip(pictures, want, strict=True):
        got = via(client, "base64", "classifications", "icls", encode(picture, "PNG"))
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_several_images_and_formats_in_one_request(client) -> None:
    pictures = [
        encode(scene(), "PNG"),
        encode(scene(), "WEBP", lossless=True),
        encode(scene().convert("RGBA"), "PNG"),
        encode(scene().convert("P"), "PNG"),
    ]
    r = client.post(
        "/v1/images/embeddings",
        files=[("file", (f"p{i}", p)) for i, p in enumerate(pictures)],
        data={"model": "iemb", "encoding_format": "base64"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2, 3]
    vecs = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in body["data"]]
    np.testing.assert_allclose(vecs[1], vecs[0], atol=1e-6)  # lossless WebP: same pixels
    np.testing.assert_allclose(vecs[2], vecs[0], atol=1e-6)  # opaque alpha dropped
    assert body["usage"]["images"] == 4
    assert r.headers["x-model-name"] == "iemb" and "max-age" in r.headers["cache-control"]


# ----------------------------------------------------------------------------- bad images
def _truncated_jpeg() -> bytes:
    data = encode(scene(), "JPEG", quality=90)
    return data[: len(data) // 2]


def _broken_png_header() -> bytes:
    data = bytearray(encode(scene(), "PNG"))
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    return bytes(data)


BAD_IMAGES = {
    "truncated JPEG": (_truncated_jpeg, 422, "truncated-image"),
    "corrupt PNG header": (_broken_png_header, 422, "corrupt-image"),
    "GIF": (lambda: encode(scene(), "GIF"), 415, "unsupported-image-format"),
    "BMP": (lambda: encode(scene(), "BMP"), 415, "unsupported-image-format"),
    "text, not an image": (lambda: b"hello, I am not a picture", 415, "unsupported-image-format"),
    "empty": (lambda: b"", 422, "empty-image"),
    "60 megapixels": (lambda: png_header_only(10_000, 6_000), 413, "image-too-large"),
    "decompression bomb (10 gigapixels)": (
        lambda: png_header_only(100_000, 100_000),
        413,
        "image-too-large",
    ),
}


@pytest.mark.parametrize("form", ["multipart", "base64", "oip"])
@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_every_malformed_image_gets_its_4xx(client, case, form) -> None:
    make, status, slug = BAD_IMAGES[case]
    data = make()
    if form == "multipart":
        r = client.post(
            "/v1/images/classifications", data={"model": "icls"}, files={"file": ("x", data)}
        )
    elif form == "base64":
        r = client.post("/v1/images/classifications", json={"model": "icls", "input": b64(data)})
    else:
        r = client.post(
            "/v2/models/icls/infer",
            json={
                "inputs": [
                    {"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(data)]}
                ]
            },
        )
    assert r.status_code == status, r.text
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert problem["type"].endswith(slug)
    if case == "GIF":
        assert "GIF images are not supported" in problem["detail"]


def test_a_bomb_is_refused_before_any_pixel_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFile

    from origin.engine.images import ImageError, decode_image

    def no_decoding(self: Any) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    for w, h in ((10_000, 6_000), (100_000, 100_000)):
        with pytest.raises(ImageError) as info:
            decode_image(png_header_only(w, h), max_pixels=50_000_000)
        assert info.value.status == 413


@pytest.mark.parametrize(
    ("kwargs", "status", "slug"),
    [
        ({"json": {"model": "icls", "input": "%%%not base64%%%"}}, 422, "invalid-image-data"),
        ({"json": {"model": "icls", "input": "data:image/png,abc"}}, 422, "invalid-image-data"),
        ({"json": {"model": "icls", "input": []}}, 422, "invalid-request"),
        ({"json": {"model": "icls", "input": [b64(b"x")] * 5}}, 422, "too-many-inputs"),
        ({"json": {"model": "emb", "input": b64(b"x")}}, 422, "wrong-task"),
        ({"json": {"model": "nope", "input": b64(b"x")}}, 404, "model-not-found"),
        ({"data": {"model": "icls"}}, 415, "unsupported-media-type"),
        ({"data": {"model": "icls"}, "files": {"other": ("a", b"")}}, 422, "empty-image"),
        ({"data": {}, "files": {"file": ("a", b"x")}}, 422, "invalid-request"),
        (
            {"data": {"model": "icls", "top_k": "zero"}, "files": {"file": ("a", b"x")}},
            422,
            "invalid-request",
        ),
        (
            {"content": b"x" * (4 << 20), "headers": {"content-type": "application/json"}},
            413,
            "payload-too-large",
        ),
        (
            {"content": "plain", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported-media-type",
        ),
    ],
)
def test_bad_image_requests_get_problems(client, kwargs, status, slug) -> None:
    r = client.post("/v1/images/classifications", **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["type"].endswith(slug)


def test_text_models_keep_the_smaller_body_limit_on_oip(client) -> None:
    text = "x" * (1 << 20)
    r = client.post(
        "/v2/models/emb/infer",
        json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]},
    )
    assert r.status_code == 413, r.text


def test_a_text_model_does_not_take_images_and_an_image_model_no_text(client) -> None:
    r = client.post("/v1/embeddings", json={"model": "iemb", "input": "hello"})
    assert r.status_code == 422 and r.json()["type"].endswith("wrong-task")


# ----------------------------------------------------------------------------- batching, versions
async def test_images_of_different_sizes_never_share_a_batch() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from origin.engine.batcher import Batcher
    from origin.engine.vision import ImageItem
    from origin.repository.config import BatchingConfig

    seen: list[tuple[set[tuple[int, ...]], int]] = []

    def run_batch(items: list[ImageItem]) -> list[int]:
        time.sleep(0.01)
        seen.append(({it.key for it in items}, len(items)))
        return [it.pixels.shape[1] for it in items]

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(
            run_batch,
            BatchingConfig(max_batch_size=8, max_queue_delay_ms=5),
            pool,
            padded_cost=False,
            key=lambda it: it.key,
        )
        sizes = [16, 24, 16, 24, 32, 16] * 4
        items = [ImageItem(np.zeros((3, s, s), dtype=np.float32)) for s in sizes]
        results = await asyncio.gather(*(batcher.submit([it]) for it in items))
        await batcher.close()
    assert [r[0] for r in results] == sizes
    assert all(len(keys) == 1 for keys, _ in seen)  # one size per batch
    assert max(n for _, n in seen) > 1  # and equal sizes did batch together


def test_new_image_model_version_is_served_and_old_one_stays_callable(
    client, models_dir: Path, image_src: Path
) -> None:
    photo = encode(scene(), "PNG")
    before = via(client, "base64", "classifications", "icls", photo)
    install_version(image_src / "icls", 2, models_dir / "icls", 2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get("/v1/models/icls").json()["served_version"] == 2:
            break
        time.sleep(0.2)
    r = client.post("/v1/images/classifications", json={"model": "icls", "input": b64(photo)})
    assert r.json()["model_version"] == 2 and r.headers["x-model-version"] == "2"
    assert not np.allclose(via(client, "base64", "classifications", "icls", photo), before)
    v1 = client.post(
        "/v2/models/icls/versions/1/infer",
        json={
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64(photo)]}]
        },
    )
    assert v1.json()["model_version"] == "1"
    np.testing.assert_allclose(v1.json()["outputs"][0]["data"], before, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"image": {"resize": {"height": 32, "width": 32}, "layout": "nhwc"}},
            "image.layout",
            "channels",
        ),
        ({"image": {"resize": {"height": 40, "width": 40}}}, "image.crop", "40x40"),
        ({"image": {"resize": {"shortest_edge": 40}}}, "image.crop", "give a crop"),
        (
            {"image": {"resize": {"height": 32, "width": 32}, "input_name": "x"}},
            "image.input_name",
            "no input",
        ),
        ({"image": None}, "image", "needs an `image:`"),
        (
            {"image": {"resize": {"shortest_edge": 32}, "crop": {"height": 48, "width": 48}}},
            "image",
            "crop",
        ),
    ],
)
def test_broken_image_model_folders_name_the_field(
    image_src: Path, tmp_path: Path, change: dict, field: str, message: str
) -> None:
    import shutil

    import yaml

    from origin.repository.loader import validate_model_folder

    folder = tmp_path / "icls"
    shutil.copytree(image_src / "icls", folder)
    config = {**yaml.safe_load((folder / "model.yaml").read_text()), **change}
    (folder / "model.yaml").write_text(yaml.safe_dump(config))
    errors = validate_model_folder(folder)
    assert errors, "the folder should not load"
    assert (errors[0].field or "").startswith(field.split(".")[0]), errors[0]
    assert message in str(errors[0]), errors[0]
