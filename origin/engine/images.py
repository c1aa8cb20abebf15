"""Photos from phones: decode JPEG, PNG, WebP and HEIC safely, then build the model's tensor.

`decode_image` opens only the formats phones send, reads the size from the file's header and
refuses an image over the pixel limit before a single pixel is decoded (a decompression bomb is
a small file whose header promises a huge image). Then it decodes (large JPEGs at a reduced
scale when the model needs far fewer pixels), applies the EXIF orientation (HEIC's rotation is
applied by libheif itself) and converts to RGB. `Preprocessor` follows `model.yaml`'s `image:`
section: resize, center crop, rescale, normalize, channel order, layout, in the order and with
the arithmetic of Hugging Face's image processors, so an imported checkpoint sees what it was
trained on.

Every failure a client can cause is an `ImageError` carrying the HTTP status and problem slug
that name it: 415 for a format we do not take, 413 for too many pixels, 422 for empty,
corrupt or truncated data.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from origin.repository.config import ImageConfig

pillow_heif.register_heif_opener()

FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
ACCEPTED = "JPEG, PNG, WebP or HEIC"
# Magic numbers of formats we refuse, to name them in the answer.
_OTHER_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"%PDF", "PDF"),
    (0, b"8BPS", "PSD"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"<svg", "SVG"),
    (0, b"<?xml", "SVG"),
    (4, b"ftypavif", "AVIF"),
    (0, b"\xff\x0a", "JPEG XL"),
    (4, b"JXL ", "JPEG XL"),
)
# Magic numbers of the formats we take: such data that Pillow cannot open is corrupt.
_OUR_FORMATS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (8, b"WEBP", "WebP"),
    *((4, b"ftyp" + brand, "HEIC") for brand in (b"heic", b"heix", b"hevc", b"hevx", b"mif1")),
)
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class ImageError(ValueError):
    """An image the origin will not take: `status` and `slug` name the problem."""

    def __init__(self, status: int, slug: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.slug = slug
        self.message = message


def sniff_format(
    data: bytes, table: tuple[tuple[int, bytes, str], ...] = _OTHER_FORMATS
) -> str | None:
    """The format named by `data`'s magic number in `table` (None when unknown)."""
    for offset, magic, name in table:
        if data[offset : offset + len(magic)] == magic:
            return name
    return None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open (header only) and check the pixel count before anything is decoded."""
    if not data:
        raise ImageError(422, "empty-image", "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        ours = sniff_format(data, _OUR_FORMATS)
        if ours is not None:
            raise ImageError(422, "corrupt-image", f"the {ours} header is corrupt") from None
        other = sniff_format(data)
        what = f"{other} images are not supported" if other else "not a recognised image"
        raise ImageError(415, "unsupported-image-format", f"{what}; send {ACCEPTED}") from None
    except Image.DecompressionBombError:
        raise ImageError(
            413, "image-too-large", f"the image has more than {max_pixels} pixels"
        ) from None
    except Exception as exc:  # a broken header: Pillow's plugins raise many types
        raise _corrupt("the image header is corrupt", exc) from None
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError(422, "corrupt-image", f"the image header gives a size of {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            413,
            "image-too-large",
            f"the image is {width}x{height} ({width * height} pixels); at most {max_pixels} "
            "pixels are decoded",
        )
    return img


def _corrupt(what: str, exc: BaseException) -> ImageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ImageError(422, "corrupt-image", f"{what} ({text[:200]})")


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # unreadable EXIF: exif_transpose below reports it
        return 1


def decode_image(data: bytes, *, max_pixels: int, draft: Any = None) -> Image.Image:
    """Decode `data` to an upright RGB image (raises ImageError).

    `draft(width, height, rotated)` may return the smallest size the preprocessing needs, in the
    image's stored orientation (`rotated`: its EXIF orientation turns it by 90 degrees); a JPEG
    is then decoded at the largest libjpeg scale (1/2 .. 1/8) that still covers it.
    """
    img = _open(data, max_pixels)
    if img.format == "JPEG" and draft is not None:
        want = draft(*img.size, _orientation(img) in _ROTATED)
        if want is not None:
            img.draft("RGB", want)
    try:
        img.load()
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageError(422, "truncated-image", "the image data is truncated") from None
        raise _corrupt("the image data is corrupt", exc) from None
    except Exception as exc:
        raise _corrupt("the image data is corrupt", exc) from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception as exc:
        raise _corrupt("the EXIF metadata is corrupt", exc) from None
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except (ValueError, OSError):  # e.g. 16-bit or floating-point pixels Pillow cannot convert
        raise ImageError(
            415, "unsupported-image-format", f"{img.mode} pixels are not supported; send 8-bit"
        ) from None


class Preprocessor:
    """model.yaml's `image:` section as a function from an RGB image to one input tensor."""

    def __init__(self, config: ImageConfig, dtype: np.dtype) -> None:
        self.config = config
        self.dtype = np.dtype(dtype)
        self.raw = self.dtype == np.uint8  # the graph takes 0-255 pixels as they are
        self.mean = np.asarray(config.mean, dtype=np.float32)
        self.std = np.asarray(config.std, dtype=np.float32)

    def output_hw(self) -> tuple[int, int] | None:
        """(height, width) of every tensor, when the config fixes it."""
        c = self.config
        if c.crop is not None:
            return c.crop.height, c.crop.width
        if c.resize is not None and c.resize.height is not None and c.resize.width is not None:
            return c.resize.height, c.resize.width
        return None

    def resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the resize step, as Hugging Face computes it."""
        r = self.config.resize
        if r is None:
            return width, height
        if r.shortest_edge is None:
            assert r.width is not None and r.height is not None
            return r.width, r.height
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = r.shortest_edge, int(r.shortest_edge * long / short)
        return (new_short, new_long) if width <= height else (new_long, new_short)

    def draft_size(self, width: int, height: int, rotated: bool) -> tuple[int, int] | None:
        """The smallest decode size (stored orientation) the resize still works from."""
        if not self.config.jpeg_draft or self.config.resize is None:
            return None
        w, h = (height, width) if rotated else (width, height)  # as displayed
        tw, th = self.resized_size(w, h)
        scale = min(w / tw, h / th)
        if scale < 2:
            return None
        need = (math.ceil(w / scale), math.ceil(h / scale))
        return (need[1], need[0]) if rotated else need

    def __call__(self, img: Image.Image) -> np.ndarray:
        c = self.config
        if c.resize is not None:
            size = self.resized_size(*img.size)
            if size != img.size:
                img = img.resize(size, resample=_RESAMPLE[c.resample])
        if c.crop is not None:
            width, height = img.size
            top = (height - c.crop.height) // 2
            left = (width - c.crop.width) // 2
            img = img.crop((left, top, left + c.crop.width, top + c.crop.height))
        pixels = np.asarray(img, dtype=np.uint8)
        if self.raw:
            x: np.ndarray = pixels
        else:  # Hugging Face: rescale in float64, then normalize in float32
            x = (pixels.astype(np.float64) * c.rescale).astype(np.float32)
            x = (x - self.mean) / self.std
        if c.channel_order == "bgr":
            x = x[..., ::-1]
        if c.layout == "nchw":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x, dtype=self.dtype)
