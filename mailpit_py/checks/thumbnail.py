"""Thumbnails of image attachments: 180x120 JPEG, as Mailpit's part/{PartID}/thumb gives."""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

SIZE = (180, 120)


class NotAnImage(ValueError):
    """The part is not an image Pillow can read."""


def thumbnail(data: bytes) -> bytes:
    """Larger images are scaled and cropped to fill 180x120; smaller ones are centred on white."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                flat = Image.new("RGB", img.size, "white")
                flat.paste(img, mask=img.getchannel("A"))
                img = flat
            else:
                img = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise NotAnImage(f"not an image that can be thumbnailed: {exc}") from None
    if img.width >= SIZE[0] or img.height >= SIZE[1]:
        out = ImageOps.fit(img, SIZE, Image.Resampling.LANCZOS)
    else:
        out = Image.new("RGB", SIZE, "white")
        out.paste(img, ((SIZE[0] - img.width) // 2, (SIZE[1] - img.height) // 2))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=85)
    return buf.getvalue()
