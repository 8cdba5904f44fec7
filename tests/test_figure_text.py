"""`python -m sop figure` for a text model: the PNG of sop.text_figure (the explorer's text figure) for
a typed sentence (`--text`) or a dataset sample (`--input test:<index>`), with real forward passes on
the embedded reviews model; bad requests get a clear message."""
from __future__ import annotations

import io

import pytest
from PIL import Image

import sop
from sop.cli import main
from sop.data import SAMPLE_SEED, load_split
from sop.figure import figure_bytes
from sop.text_explain import explain_sentence
from sop.text_figure import sentence_figure
from sop.typed_text import encode_typed

from test_figure import MODELS

SENTENCE = "the screen was not bad at all but the battery died fast"


@pytest.fixture(scope="module")
def reviews():
    return sop.load(MODELS / "reviews_sop.safetensors").eval()


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["figure", "--model", "reviews", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_typed_sentence_writes_the_text_figure_png(reviews, tmp_path, capsys):
    out = tmp_path / "s.png"
    rc, stdout, _ = cli(capsys, "--text", SENTENCE, "--out", out, "--dpi", 60)
    assert rc == 0
    sx = explain_sentence(reviews, encode_typed(SENTENCE, reviews.config.img_size[-1]).ids)
    names = reviews.config.class_names
    expected = figure_bytes(sentence_figure(sx, names, title="reviews · your sentence"), "png", dpi=60)
    assert out.read_bytes() == expected          # exactly the library's figure of the model's own pass
    img = Image.open(io.BytesIO(out.read_bytes()))
    assert f"wrote {out} (PNG, {img.size[0]}x{img.size[1]} px, {len(sx.used)} scored groups, " \
           f"predicts {names[sx.prediction]})" in stdout


def test_a_test_sample_is_the_apps_sample_with_its_true_class(reviews, tmp_path, capsys):
    out = tmp_path / "t.png"
    rc, stdout, _ = cli(capsys, "--input", "test:7", "--out", out, "--dpi", 60)
    assert rc == 0
    ids, y = load_split("reviews", "test", img_size=tuple(reviews.config.img_size), seed=SAMPLE_SEED).dataset[7]
    sx = explain_sentence(reviews, ids.unsqueeze(0))
    fig = sentence_figure(sx, reviews.config.class_names, title="reviews · test:7", true_label=int(y))
    assert out.read_bytes() == figure_bytes(fig, "png", dpi=60)


def test_over_long_text_is_cut_with_a_notice(tmp_path, capsys):
    rc, stdout, _ = cli(capsys, "--text", " ".join(["good"] * 60), "--out", tmp_path / "l.png", "--dpi", 40)
    assert rc == 0 and "note: the text needs 62 tokens; the model reads the first 32" in stdout


@pytest.mark.parametrize("args,message", [
    (["--text", "   "], "empty"),
    ([], 'either --text "a sentence" or --input test:<index>'),
    (["--text", "fine", "--input", "test:1"], "either --text"),
    (["--input", "review.png"], "a text model takes test:<index>"),
    (["--input", "test:99999"], "there is no sample 99999"),
])
def test_bad_text_requests_are_clear_errors(tmp_path, capsys, args, message):
    rc, _, err = cli(capsys, *args, "--out", tmp_path / "bad.png")
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "bad.png").exists()


def test_text_is_refused_for_an_image_model(tmp_path, capsys):
    rc = main(["figure", "--model", "digits", "--text", "a sentence", "--out", str(tmp_path / "d.png")])
    assert rc == 2 and "--text is for text models" in capsys.readouterr().err
    rc = main(["figure", "--model", "digits", "--out", str(tmp_path / "d.png")])
    assert rc == 2 and "--input is required" in capsys.readouterr().err
