"""The κ map's group outlines stay visible on every colour of the diverging map (no Streamlit)."""
import numpy as np
import plotly.colors as pc
import pytest

from explorer import regression_view as view
from sop.visualize import group_colour


def _rgb(colour: str) -> np.ndarray:
    if colour.startswith("#"):
        return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], float)
    return np.array(pc.unlabel_rgb(colour), float)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 = identical luminance, 21 = black on white)."""
    def lum(c):
        v = _rgb(c) / 255
        v = np.where(v <= 0.03928, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def map_colours(n: int = 101) -> list[str]:
    """The map's colour scale, sampled from end to end."""
    return pc.sample_colorscale(pc.get_colorscale(view.DIVERGING), list(np.linspace(0, 1, n)))


def test_every_map_colour_has_an_outline_ring_that_stands_out_from_it():
    rings = [c for c, _ in view.OUTLINE_RINGS]
    scale = map_colours()
    for end in (scale[0], scale[-1]):            # the ends: the deepest void blue and cluster red
        assert all(not np.allclose(_rgb(r), _rgb(end), atol=40) for r in rings)
    for colour in scale:
        assert max(contrast(r, colour) for r in rings) >= 3, colour   # WCAG 2.1 non-text contrast
    # what the rings are for: a red group line alone is lost on the red end of the map
    assert contrast(group_colour(3), scale[-1]) < 3


def test_each_group_is_drawn_as_its_colour_inside_the_rings_and_only_the_isolated_one_when_selected():
    kappa = np.random.default_rng(0).normal(size=(12, 12))
    masks = np.zeros((3, 12, 12))
    masks[0, :6], masks[2, 6:] = 1, 1
    fig = view.map_figure(kappa, masks=masks, groups=[0, 2])
    outlines = [t for t in fig.data if t.type == "contour"]
    expected = [(c, w) for g in (0, 2) for c, w in (*view.OUTLINE_RINGS, (group_colour(g), view.GROUP_LINE_WIDTH))]
    assert [(t.line.color, t.line.width) for t in outlines] == expected
    widths = [w for _, w in expected[:3]]
    assert widths == sorted(widths, reverse=True)   # each line drawn on top of a wider one
    isolated = view.map_figure(kappa, masks=masks, groups=[0, 2], selected=2)
    assert {t.name for t in isolated.data if t.type == "contour"} == {"group 2"}


@pytest.mark.parametrize("colour", [group_colour(g) for g in range(10)])
def test_every_group_colour_has_a_ring_it_stands_out_from(colour):
    assert max(contrast(colour, r) for r, _ in view.OUTLINE_RINGS) >= 2.5
