"""Thumbnails of image attachments: 180x120 JPEG, as Mailpit's part/{PartID}/thumb gives them
(an image at least that large is scaled and cropped to fill; a smaller one is scaled down to
fit where needed and centred on white; anything else gets a blank white thumbnail)."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = (180, 120)
QUALITY = 70  # Mailpit's JPEG quality


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
        with Image.open(io.BytesIO(data)) as opened:
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
