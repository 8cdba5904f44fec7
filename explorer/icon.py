"""The explorer's favicon, drawn locally: a material-symbol icon would be fetched from Google's CDN."""
from __future__ import annotations

from PIL import Image, ImageDraw

from sop.visualize import PALETTE, hex_to_rgb


def app_icon(size: int = 64) -> Image.Image:
    """The explorer's icon: four groups in their palette colours (drawn locally, no web fonts)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    half, gap = size // 2, max(2, size // 16)
    for k in range(4):
        r, c = divmod(k, 2)
        draw.rounded_rectangle([c * half + gap, r * half + gap, (c + 1) * half - gap, (r + 1) * half - gap],
                               radius=size // 10, fill=hex_to_rgb(PALETTE[k]))
    return img
