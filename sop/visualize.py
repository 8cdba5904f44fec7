"""Drawing helpers shared by the library and the explorer app (NumPy + Pillow only).

One colour per group, everywhere: group ``g`` is always drawn in ``group_colour(g)``,
in the app's overlays, galleries and charts, and in exported PNGs.

    img = tensor_to_image(x, cfg.mean, cfg.std)          # (H, W, 3) uint8, from sop.image_io
    view = overlay_groups(img, out.pixel_masks[0], groups=[2, 5])
    png = to_png(upscale(view, 256))

All functions take and return ``(H, W, 3)`` uint8 arrays (masks and attributions are
``(H, W)`` or ``(G, H, W)`` float arrays or tensors) and never modify their inputs.
"""
from __future__ import annotations

import io
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# 20 distinct colours (Tableau 10, then the Tableau 20 light/dark partners, reordered so
# that neighbouring indices differ strongly).  Group g uses PALETTE[g % 20].
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#9edae5", "#dbdb8d", "#393b79",
)

# Sequential map for non-negative attributions (dark -> bright, perceptually ordered; anchors
# of matplotlib's "inferno") and a diverging map for signed ones (blue - white - red).
_SEQUENTIAL = np.array([(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                        (245, 125, 21), (250, 193, 39), (252, 255, 164)], dtype=np.float64)
_DIVERGING = np.array([(33, 102, 172), (103, 169, 207), (209, 229, 240), (247, 247, 247),
                       (253, 219, 199), (239, 138, 98), (178, 24, 43)], dtype=np.float64)


def _np(a) -> np.ndarray:
    """A tensor or array as a NumPy float array (detached, on the CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().float().numpy()
    return np.asarray(a)


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a colour like '#1f77b4', got {colour!r}")
    return tuple(int(c[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def group_colour(g: int) -> str:
    """The hex colour of group g (the same in every view)."""
    return PALETTE[int(g) % len(PALETTE)]


def group_rgb(g: int) -> tuple[int, int, int]:
    return hex_to_rgb(group_colour(g))


def as_rgb(image) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) -> (H, W, 3) uint8."""
    a = _np(image)
    if a.dtype != np.uint8:
        a = np.clip(np.round(a.astype(np.float64) * (255.0 if a.max(initial=0) <= 1.0 else 1.0)), 0, 255)
        a = a.astype(np.uint8)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 3), got {a.shape}")
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a.copy()


def upscale(image, size: int | tuple[int, int]) -> np.ndarray:
    """Enlarge a small image with nearest-neighbour sampling (pixels stay crisp squares).

    `size`: the longer side in pixels, or (height, width).
    """
    img = as_rgb(image)
    h, w = img.shape[:2]
    if isinstance(size, int):
        scale = size / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return np.asarray(Image.fromarray(img).resize((size[1], size[0]), Image.Resampling.NEAREST))


def _blend(base: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """base (H, W, 3) float, colour (H, W, 3) or (3,), weight (H, W) in [0, 1]."""
    w = weight[..., None]
    return base * (1.0 - w) + colour * w


def mask_outline(mask, threshold: float = 0.0) -> np.ndarray:
    """(H, W) bool: pixels inside the mask (> threshold) that touch a pixel outside it."""
    m = _np(mask) > threshold
    pad = np.pad(m, 1, constant_values=False)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return m & ~inner


def overlay_mask(image, mask, colour: str | tuple[int, int, int], *, alpha: float = 0.55,
                 dim_outside: float = 0.6, outline: bool = False) -> np.ndarray:
    """One group on the image: tinted where the mask is on, darkened elsewhere.

    `mask` (H, W) in [0, 1] (its value scales the tint); `dim_outside` in [0, 1] is how
    much the pixels outside the mask are faded towards white so the group stands out.
    """
    img = as_rgb(image).astype(np.float64)
    m = np.clip(_np(mask).astype(np.float64), 0.0, 1.0)
    if m.shape != img.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match image {img.shape[:2]}")
    rgb = np.array(hex_to_rgb(colour) if isinstance(colour, str) else colour, dtype=np.float64)
    out = _blend(img, np.full(3, 255.0), dim_outside * (m <= 0))
    out = _blend(out, rgb, alpha * m)
    if outline:
        out[mask_outline(m)] = rgb
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def group_assignment(masks, groups: Iterable[int] | None = None, weights: Sequence[float] | None = None
                     ) -> np.ndarray:
    """(H, W) int: for each pixel, the selected group with the largest (weighted) mask, -1 if none.

    `masks` (G, H, W); `groups` the groups to consider (default all); `weights` (G,)
    multiplies each mask first (e.g. the scores, so a pixel shared by two groups goes to
    the one that weighs more in the prediction).
    """
    m = _np(masks).astype(np.float64)
    g_all = m.shape[0]
    chosen = sorted(set(range(g_all) if groups is None else (int(g) for g in groups)))
    if not chosen:
        return np.full(m.shape[1:], -1, dtype=np.int64)
    w = np.ones(g_all) if weights is None else np.asarray(_np(weights), dtype=np.float64)
    sel = m[chosen] * np.maximum(w[chosen], 1e-12)[:, None, None]
    best = sel.argmax(0)
    owner = np.asarray(chosen)[best]
    return np.where(sel.max(0) > 0, owner, -1)


def overlay_groups(image, masks, groups: Iterable[int] | None = None, *, weights: Sequence[float] | None = None,
                   alpha: float = 0.6, outline: bool = True, dim_outside: float = 0.5) -> np.ndarray:
    """Several groups at once, each pixel in the colour of the group that owns it.

    Ownership follows `group_assignment` (largest weighted mask); the tint strength is
    that group's mask value at the pixel.  Pixels of no selected group are faded.
    """
    img = as_rgb(image).astype(np.float64)
    m = _np(masks).astype(np.float64)
    if m.shape[1:] != img.shape[:2]:
        raise ValueError(f"masks shape {m.shape} does not match image {img.shape[:2]}")
    owner = group_assignment(m, groups, weights)
    out = _blend(img, np.full(3, 255.0), dim_outside * (owner < 0))
    colours = np.array([group_rgb(g) for g in range(m.shape[0])], dtype=np.float64)
    has = owner >= 0
    strength = np.zeros(owner.shape)
    strength[has] = np.take_along_axis(m, np.where(has, owner, 0)[None], 0)[0][has]
    tint = colours[np.where(has, owner, 0)]
    out = np.where(has[..., None], _blend(out, tint, alpha * np.clip(strength, 0, 1)), out)
    if outline:
        for g in np.unique(owner[has]):
            edge = mask_outline(owner == g)
            out[edge] = colours[g]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def colormap(values, kind: str = "auto") -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8 colours.

    kind "sequential" (min..max, dark to bright), "diverging" (symmetric around 0,
    blue negative, red positive), or "auto" (diverging when the values have both signs
    of comparable size, sequential otherwise).
    """
    v = np.nan_to_num(_np(values).astype(np.float64))
    if kind == "auto":
        lo, hi = v.min(initial=0.0), v.max(initial=0.0)
        kind = "diverging" if lo < 0 and -lo > 0.05 * max(hi, 1e-12) else "sequential"
    if kind == "diverging":
        scale = np.abs(v).max(initial=0.0) or 1.0
        t, anchors = (v / scale + 1.0) / 2.0, _DIVERGING
    elif kind == "sequential":
        lo, hi = v.min(initial=0.0), v.max(initial=0.0)
        t, anchors = (v - lo) / ((hi - lo) or 1.0), _SEQUENTIAL
    else:
        raise ValueError(f"kind must be 'auto', 'sequential' or 'diverging', not {kind!r}")
    pos = np.clip(t, 0.0, 1.0) * (len(anchors) - 1)
    i = np.minimum(pos.astype(int), len(anchors) - 2)
    f = (pos - i)[..., None]
    rgb = anchors[i] * (1 - f) + anchors[i + 1] * f
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def overlay_heatmap(image, attribution, *, alpha: float = 0.6, kind: str = "auto") -> np.ndarray:
    """An attribution map drawn over a greyed copy of the image."""
    img = as_rgb(image).astype(np.float64)
    a = _np(attribution)
    if a.shape != img.shape[:2]:
        raise ValueError(f"attribution shape {a.shape} does not match image {img.shape[:2]}")
    grey = img.mean(axis=2, keepdims=True).repeat(3, axis=2)
    heat = colormap(a, kind).astype(np.float64)
    return np.clip(np.round(grey * (1 - alpha) + heat * alpha), 0, 255).astype(np.uint8)


def draw_outlines(image, masks, colours: Sequence[str | tuple[int, int, int]]) -> np.ndarray:
    """Outline each (H, W) mask of `masks` in its colour (e.g. true part masks)."""
    out = as_rgb(image)
    for mask, colour in zip(_np(masks), colours):
        rgb = hex_to_rgb(colour) if isinstance(colour, str) else colour
        out[mask_outline(mask)] = rgb
    return out


def to_png(image) -> bytes:
    """PNG bytes of an (H, W, 3) uint8 image."""
    buf = io.BytesIO()
    Image.fromarray(as_rgb(image)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def panel(tiles: Sequence[tuple[str, np.ndarray]], *, tile: int = 192, columns: int | None = None,
          title: str | None = None, footer: Sequence[str] = (), caption_colours: Sequence[str | None] | None = None
          ) -> np.ndarray:
    """A labelled grid of images (for PNG export): each tile upscaled to `tile` pixels.

    `tiles`: (caption, image) pairs; `caption_colours`: optional colour per caption
    (a small swatch is drawn before it, e.g. the group's colour).
    """
    n = len(tiles)
    cols = columns or min(n, 5)
    rows = -(-n // cols)
    pad, cap_h = 10, 22
    title_h = 30 if title else 0
    foot_h = 18 * len(footer) + (pad if footer else 0)
    width = pad + cols * (tile + pad)
    height = title_h + pad + rows * (tile + cap_h + pad) + foot_h
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 8), title, fill=(17, 24, 39), font=_font(16))
    small = _font(13)
    for k, (caption, img) in enumerate(tiles):
        r, c = divmod(k, cols)
        x0 = pad + c * (tile + pad)
        y0 = title_h + pad + r * (tile + cap_h + pad)
        canvas.paste(Image.fromarray(upscale(img, tile)), (x0, y0))
        tx = x0
        colour = caption_colours[k] if caption_colours is not None and k < len(caption_colours) else None
        if colour:
            draw.rectangle([x0, y0 + tile + 6, x0 + 11, y0 + tile + 17], fill=colour)
            tx += 16
        draw.text((tx, y0 + tile + 5), caption, fill=(31, 41, 55), font=small)
    for i, line in enumerate(footer):
        draw.text((pad, height - foot_h + 4 + 18 * i), line, fill=(55, 65, 81), font=small)
    return np.asarray(canvas)
