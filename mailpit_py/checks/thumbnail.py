"""Thumbnails of image attachments: 180x120 JPEG, as Mailpit's part/{PartID}/thumb gives them
(an image at least that large is scaled and cropped to fill; a smaller one is scaled down to
fit where needed and centred on white; anything else gets a blank white thumbnail)."""

from __future__ import annotations

import io
import threading

from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = (180, 120)
QUALITY = 70  # Mailpit's JPEG quality
# An image whose header declares more pixels than this gets a blank thumbnail, as in Mailpit:
# a PNG of 100 million pixels of one colour is 12 KB, and decoding it took 900 MB and 8 s.
MAX_PIXELS = 20_000_000
# The readers of the formats Mailpit's thumbnails decode. Pillow would otherwise pick among
# dozens by the bytes alone, whatever type the part declares (EPS runs Ghostscript).
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
# Images decoded at once: each may take ~160 MB at the pixel limit, and the UI asks for every
# attachment's thumbnail together.
_DECODING = threading.BoundedSemaphore(2)


def _encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def blank() -> bytes:
    return _encode(Image.new("RGB", SIZE, "white"))


def thumbnail(data: bytes, content_type: str = "image/") -> bytes:
    """The thumbnail JPEG of an image part; a blank one when it is not an image."""
    if not content_type.lower().startswith("image/"):
        return blank()
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as opened:
            if opened.width * opened.height > MAX_PIXELS:  # read from the header, nothing decoded
                return blank()
            # A JPEG is decoded at the smallest of 1/2, 1/4 or 1/8 scale that still covers the
            # thumbnail: a 16 MP photo then costs 1 MB instead of 64.
            opened.draft("RGB", SIZE)
            with _DECODING:
                opened.load()
                img = ImageOps.exif_transpose(opened) or opened
                # Transparent pixels become white, not black (JPEG has no alpha).
                rgba = img.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return blank()
    if rgba.width < SIZE[0] or rgba.height < SIZE[1]:
        fitted = rgba.copy()
        fitted.thumbnail(SIZE, Image.Resampling.LANCZOS)  # only ever scales down
    else:
        fitted = ImageOps.fit(rgba, SIZE, Image.Resampling.LANCZOS)
    out = Image.new("RGB", SIZE, "white")
    offset = ((SIZE[0] - fitted.width) // 2, (SIZE[1] - fitted.height) // 2)
    out.paste(fitted, offset, mask=fitted.getchannel("A"))
    return _encode(out)
