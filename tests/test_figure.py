"""`python -m sop figure` and sop.figure: a paper figure of one SOP explanation (PDF, SVG, PNG)."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sop
from sop.cli import main
from sop.data import load_split
from sop.figure import (FORMATS, explanation_figure, figure_bytes, figure_data, figure_format, group_axes,
                        save_figure)

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "assets" / "models"
SAMPLES = ROOT / "assets" / "samples"


@pytest.fixture(scope="module")
def digits():
    return sop.load(MODELS / "digits_sop.safetensors")


def sample(model, index: int):
    cfg = model.config
    x, y = load_split(cfg.dataset, "test", seed=int(cfg.training.get("seed", 0))).dataset[index]
    return x.unsqueeze(0), int(y)


@pytest.fixture(scope="module")
def digits_fig(digits):
    x, y = sample(digits, 0)
    data = figure_data(digits, x, steps=8, true_label=y, title="digits · test:0")
    return data, explanation_figure(data)


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["figure", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)\b", data))


# --------------------------------------------------------------------------- the CLI writes each format

def test_cli_writes_a_one_page_pdf_with_embedded_truetype_text(tmp_path, capsys):
    out = tmp_path / "fig.pdf"
    rc, stdout, _ = cli(capsys, "--model", "digits", "--input", "test:0", "--out", out, "--steps", 8)
    assert rc == 0 and "wrote" in stdout
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert pdf_pages(data) == 1
    assert b"/FontFile2" in data  # fonttype 42: TrueType fonts embedded, the text stays text
    try:
        import pypdf
    except ImportError:
        return
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    assert "insertion AUC" in reader.pages[0].extract_text()


def test_cli_writes_svg_with_text_elements(tmp_path, capsys):
    out = tmp_path / "sub" / "fig.svg"  # a missing folder is created
    rc, _, _ = cli(capsys, "--model", "parts", "--input", SAMPLES / "parts_positive_test0.png", "--out", out,
                   "--steps", 8)
    assert rc == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    texts = re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)
    assert len(texts) > 10, "text drawn as paths, not kept as text"
    joined = " ".join(texts)
    assert "deletion AUC" in joined and "group" in joined


def test_cli_png_size_follows_width_and_dpi(tmp_path, capsys, digits):
    out = tmp_path / "fig.png"
    rc, _, _ = cli(capsys, "--model", MODELS / "digits_sop.safetensors", "--input",
                   SAMPLES / "digit_3_test8.png", "--out", out, "--width", 6, "--dpi", 50, "--steps", 8)
    assert rc == 0
    w, h = Image.open(out).size
    assert w == 300
    # the library's figure for the same input has the same height at that width
    cfg = digits.config
    from sop.image_io import image_to_tensor, load_image
    x = image_to_tensor(load_image(SAMPLES / "digit_3_test8.png", mode="L"), img_size=cfg.img_size, mean=cfg.mean,
                        std=cfg.std, in_chans=cfg.in_chans)
    fig = explanation_figure(figure_data(digits, x, steps=8), width=6)
    assert abs(h - fig.get_size_inches()[1] * 50) < 1


# --------------------------------------------------------------------------- the figure's content

def test_one_panel_per_scored_group_and_the_other_panels(digits_fig):
    data, fig = digits_fig
    scored = int((np.asarray(data.scores) > 0).sum())
    assert 0 < scored < len(data.scores)
    panels = group_axes(fig)
    assert len(panels) == scored
    assert [int(ax.get_label().split(":")[1]) for ax in panels] == data.scored
    labels = {ax.get_label() for ax in fig.axes}
    assert {"input", "combined", "curves:pixel", "curves:grouped"} <= labels
    assert len(fig.axes) == 4 + scored
    for ax, g in zip(panels, data.scored):
        assert f"group {g}" in ax.get_title() and f"{data.scores[g]:.3f}" in ax.get_title()
    legend = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    pair = data.curves["pixel"]
    assert f"insertion AUC {pair['insertion'].auc:.3f}" in legend
    assert f"deletion AUC {pair['deletion'].auc:.3f}" in legend


def test_group_panels_use_the_apps_group_colours(digits_fig):
    from matplotlib.colors import to_hex

    from sop.visualize import group_colour
    data, fig = digits_fig
    for ax in group_axes(fig):
        g = int(ax.get_label().split(":")[1])
        assert to_hex(ax.spines["left"].get_edgecolor()) == group_colour(g)


def test_png_pixels_match_figure_size_and_dpi(digits_fig):
    _, fig = digits_fig
    w, h = fig.get_size_inches()
    for dpi in (72, 150):
        img = Image.open(io.BytesIO(figure_bytes(fig, "png", dpi=dpi)))
        assert img.size[0] == round(w * dpi) and abs(img.size[1] - h * dpi) < 1


def test_save_figure_picks_the_format_from_the_suffix(digits_fig, tmp_path):
    _, fig = digits_fig
    assert save_figure(fig, tmp_path / "a.PDF").read_bytes().startswith(b"%PDF")
    assert save_figure(fig, tmp_path / "a.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(sop.InputError):
        save_figure(fig, tmp_path / "a.eps")


# --------------------------------------------------------------------------- bad input: a clear message, exit 2

@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing.png", "no such image file"),
    (lambda p: (p / "broken.png").write_bytes(b"definitely not a PNG") and p / "broken.png",
     "not an image we can read"),
    (lambda p: "test:999999", "has 360 samples"),
    (lambda p: "test:abc", "whole number"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, make, message):
    rc, _, err = cli(capsys, "--input", make(tmp_path), "--out", tmp_path / "fig.pdf")
    assert rc == 2
    assert err.strip().splitlines()[-1].startswith("error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "fig.pdf").exists()


def test_unsupported_output_suffix_and_unknown_model(tmp_path, capsys):
    rc, _, err = cli(capsys, "--input", "test:0", "--out", tmp_path / "fig.gif")
    assert rc == 2 and "must end in .pdf, .svg, .png" in err
    rc, _, err = cli(capsys, "--model", "nope", "--input", "test:0", "--out", tmp_path / "fig.pdf")
    assert rc == 2 and "neither an embedded model" in err
    with pytest.raises(sop.InputError):
        figure_format("fig.jpeg")
    assert [figure_format(f"x.{f.upper()}") for f in FORMATS] == list(FORMATS)


def test_a_plain_classifier_is_refused(digits):
    x, _ = sample(digits, 0)
    with pytest.raises(sop.InputError, match="SOP model"):
        figure_data(digits.backbone, x)


def test_figure_inputs_are_the_apps_inputs(digits, tmp_path):
    """`sop figure` reads SPLIT:INDEX and image files through the same library functions as the app
    (seed SAMPLE_SEED: test:3 is the image a link with input=test:3 shows)."""
    import torch

    from explorer.inputs import image_input
    from sop.commands.figure import read_input
    from sop.data import SAMPLE_SEED, split_sample
    cfg = digits.config
    x, y, name = read_input(digits, "test:3")
    want, label = split_sample(load_split(cfg.dataset, "test", img_size=tuple(cfg.img_size), seed=SAMPLE_SEED), 3)
    assert name == "test:3" and y == label and torch.equal(x, want)
    png = SAMPLES / "digit_7_test13.png"

    class LM:  # the app's LoadedModel, as far as image_input reads it
        config = cfg
    for invert in (False, True):
        x, _, _ = read_input(digits, str(png), invert=invert)
        assert torch.equal(x, image_input(LM, png.read_bytes(), kind="upload", name="u", invert=invert).x)


def test_checkpoint_names_are_stripped_in_one_place():
    from sop.checkpoint import checkpoint_name, twin_path
    assert checkpoint_name("runs/parts_sop.safetensors") == "parts"
    assert checkpoint_name(Path("a/b/vit_small_g20.safetensors")) == "vit_small_g20"
    assert twin_path("runs/parts_sop.safetensors") == Path("runs/parts_backbone.safetensors")
    for path in ("sop/budget.py", "sop/commands/evaluate.py", "sop/commands/figure.py", "explorer/models.py",
                 "bench/design_study.py"):
        text = (ROOT / path).read_text()
        assert 'len("_sop.safetensors")' not in text and 'removesuffix("_sop' not in text, path
