"""One sentence's SOP explanation as data, and insertion/deletion curves over tokens, with real forward
passes on the embedded reviews model and its twin."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sop
from sop.errors import InputError
from sop.faithfulness import auc, token_group_sizes, token_insertion_deletion
from sop.text import PAD_ID, content_mask, drop_tokens
from sop.text_eval import explain_text
from sop.text_explain import explain_sentence
from sop.typed_text import encode_typed

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "honestly , the film was not bad at all but the delivery was slow"


@pytest.fixture(scope="module")
def model():
    return sop.load(ROOT / "assets/models/reviews_sop.safetensors").eval()


@pytest.fixture(scope="module")
def twin():
    return sop.load(ROOT / "assets/models/reviews_backbone.safetensors").eval()


@pytest.fixture(scope="module")
def ids(model):
    return encode_typed(SENTENCE, model.config.img_size[-1]).ids


@pytest.fixture(scope="module")
def sx(model, ids):
    return explain_sentence(model, ids)


def test_typed_text_keeps_special_token_names_literal_and_reports_truncation(model):
    length = model.config.img_size[-1]
    t = encode_typed("the film [SEP] was [CLS] good", length)
    row = t.ids[0].tolist()
    assert row.count(102) == 1 and row.count(101) == 1 and row[0] == 101    # only the real ones
    assert not t.truncated
    long = encode_typed(" ".join(["good"] * 100), length)
    assert long.truncated and long.total_tokens == 102 and int((long.ids != 0).sum()) == length
    for bad in ("", "   \n\t "):
        with pytest.raises(InputError, match="empty"):
            encode_typed(bad, length)


def test_content_tokens_are_one_definition_everywhere(model, ids, sx):
    """sop.text.content_mask is what the adapter lets a group hold, what the explanation calls content
    and what a curve moves; [CLS], [SEP] and [PAD] are never content."""
    row = ids[0]
    words = int(content_mask(ids).sum())
    assert words == len(sop.text.tokenizer()(SENTENCE, add_special_tokens=False)["input_ids"])
    assert not content_mask(row)[[0, words + 1]].any() and not content_mask(row)[row == PAD_ID].any()
    assert torch.equal(model.adapter.valid_positions(ids), content_mask(ids))
    assert np.array_equal(sx.content, content_mask(ids)[0].numpy())
    dropped = drop_tokens(ids, content_mask(ids))[0]
    assert dropped[0] == 101 and dropped[words + 1] == 102 and int((dropped != PAD_ID).sum()) == 2
    assert sop.text.token_count(SENTENCE) == words + 2
    assert sop.text.token_count("a [SEP] b", literal=True) > sop.text.token_count("a [SEP] b")


def test_explanation_is_the_models_own_pass(model, ids, sx):
    with torch.no_grad():
        out = model(ids)
    np.testing.assert_allclose(sx.probs, out.probs[0].numpy(), rtol=1e-6)
    assert sx.prediction == int(out.logits.argmax())
    assert abs(sum(g.score for g in sx.groups) - 1) < 1e-5 and sx.used
    assert [g.score for g in sx.groups] == sorted((g.score for g in sx.groups), reverse=True)
    content = content_mask(ids)[0].numpy()
    for g in sx.groups:                        # a group holds content tokens only, named by their strings
        assert g.positions and all(content[p] for p in g.positions)
        assert g.words == [sx.tokens[p] for p in g.positions]
    # prediction = sum_g score_g * logits_g (the whole computation)
    np.testing.assert_allclose((sx.scores[:, None] * sx.group_logits).sum(0), out.logits[0].numpy(), rtol=1e-4,
                               atol=1e-5)


def test_isolating_a_group_is_the_model_on_those_tokens_alone(model, ids, sx):
    """What a group alone predicts = the SOP model's prediction on a sentence with only those tokens
    (every other content token dropped) when that sentence's groups are fixed to that group."""
    g = sx.used[0]
    others = content_mask(ids) & ~torch.isin(torch.arange(ids.shape[1]), torch.tensor(g.positions))
    alone = drop_tokens(ids, others)
    mask = torch.zeros(1, model.num_groups, ids.shape[1])
    mask[0, :, g.positions] = 1.0
    with torch.no_grad():
        direct = model.adapter.forward_groups(alone, mask)[1][0, 0].softmax(-1).numpy()
    np.testing.assert_allclose(sx.isolate(g.group), direct, rtol=1e-4, atol=1e-5)
    # a different group can disagree: the isolation really depends on the group
    others = [o for o in sx.groups if o.positions != g.positions]
    assert any(not np.allclose(o.alone_probs, g.alone_probs, atol=1e-4) for o in others)


def test_token_curves_end_where_the_sentence_is_full_or_empty(model, ids, sx):
    curves = token_insertion_deletion(model, ids, attribution=sx.attribution())
    ins, dele = curves["insertion"], curves["deletion"]
    t = int(content_mask(ids).sum())
    assert len(ins.scores) == t + 1 and ins.fractions[0] == 0 and ins.fractions[-1] == 1
    np.testing.assert_allclose(np.diff(ins.fractions), 1 / t)
    p_full = sx.probs[sx.prediction]
    assert abs(ins.scores[-1] - p_full) < 1e-5 and abs(dele.scores[0] - p_full) < 1e-5
    empty = drop_tokens(ids, content_mask(ids))
    with torch.no_grad():
        p_empty = float(model(empty).probs[0, sx.prediction])
    assert torch.equal(dele.input_at(ids, t), empty[0]) and abs(dele.scores[-1] - p_empty) < 1e-5
    assert abs(ins.scores[0] - p_empty) < 1e-5
    # one token per step: step k of deletion drops exactly the k top-ranked tokens, specials stay
    step3 = dele.input_at(ids, 3)
    assert int(((step3 == 0) & (ids[0] != 0)).sum()) == 3 and step3[0] == 101 and 102 in step3.tolist()
    for c in (ins, dele):
        assert 0 <= c.auc <= 1 and abs(c.auc - auc(c.fractions, c.scores)) < 1e-12


def test_grouped_insertion_after_all_used_groups_is_the_full_prediction(model, ids, sx):
    curves = token_insertion_deletion(model, ids, groups=sx.masks, scores=sx.scores, mode="grouped")
    ins, dele = curves["insertion"], curves["deletion"]
    content = content_mask(ids)[0]
    sizes = token_group_sizes(sx.masks, sx.scores, content)
    assert len(ins.scores) in (len(sizes) + 1, len(sizes) + 2)
    used = np.zeros(ids.shape[1], bool)
    for g in sx.used:
        used[g.positions] = True
    after_used = ins.input_at(ids, len(sizes))
    assert torch.equal(after_used != 0, torch.from_numpy(used) | (~content & (ids[0] != 0)))   # used tokens + specials
    with torch.no_grad():
        p_used_only = float(model(after_used.unsqueeze(0)).probs[0, sx.prediction])
    assert abs(ins.scores[len(sizes)] - p_used_only) < 1e-5
    if used.sum() == content.sum():   # the groups cover every token: that step is the full sentence
        assert abs(ins.scores[len(sizes)] - sx.probs[sx.prediction]) < 1e-5
    assert ins.fractions[-1] == 1 and ins.scores[-1] == pytest.approx(sx.probs[sx.prediction], abs=1e-5)
    assert 0 <= ins.auc <= 1 and 0 <= dele.auc <= 1


def test_grouped_steps_reach_the_full_prediction_when_groups_cover_the_used_tokens(model):
    """A sentence whose scored groups cover every content token: grouped insertion ends on the full
    prediction right after the last group (no extra 'rest' step)."""
    ids = encode_typed("the phone was great", model.config.img_size[-1]).ids
    sx = explain_sentence(model, ids)
    masks = np.zeros_like(sx.masks)
    content = content_mask(ids)[0].numpy()
    masks[0, content] = 1.0                      # one group over the whole sentence, score 1
    scores = np.zeros_like(sx.scores)
    scores[0] = 1.0
    ins = token_insertion_deletion(model, ids, groups=masks, scores=scores, mode="grouped")["insertion"]
    assert len(ins.scores) == 2 and ins.fractions.tolist() == [0.0, 1.0]
    assert ins.scores[1] == pytest.approx(sx.probs[sx.prediction], abs=1e-5)


def test_baseline_token_curves_rank_by_their_own_attribution(model, twin, ids, sx):
    a, target = explain_text(twin, ids, "occlusion")
    curves = token_insertion_deletion(twin, ids, attribution=a, target=target)
    dele = curves["deletion"]
    top = int(np.argmax(np.where(content_mask(ids)[0].numpy(), a, -np.inf)))
    assert dele.input_at(ids, 1)[top] == 0                        # the first step drops the top-ranked token
    # occlusion's first deletion step removes the token whose removal hurts most: the drop is the attribution
    with torch.no_grad():
        full = float(twin(ids).softmax(-1)[0, target])
    assert full - dele.scores[1] == pytest.approx(a[top], abs=1e-4)
    content = content_mask(ids)[0]
    sizes = token_group_sizes(sx.masks, sx.scores, content)
    grouped = token_insertion_deletion(twin, ids, attribution=a, mode="grouped", group_sizes=sizes, target=target)
    sop_grouped = token_insertion_deletion(model, ids, groups=sx.masks, scores=sx.scores, mode="grouped")
    np.testing.assert_allclose(grouped["insertion"].fractions, sop_grouped["insertion"].fractions)


def test_bad_curve_requests_are_refused(model, ids):
    with pytest.raises(InputError, match="mode"):
        token_insertion_deletion(model, ids, attribution=np.zeros(ids.shape[1]), mode="pixel")
    with pytest.raises(InputError, match="one sentence"):
        token_insertion_deletion(model, ids[0], attribution=np.zeros(ids.shape[1]))
    with pytest.raises(InputError, match="the attribution has 5 values; the sentence has 32"):
        token_insertion_deletion(model, ids, attribution=np.zeros(5))
    with pytest.raises(InputError, match=r"expected \(G, 32\) token masks"):
        token_insertion_deletion(model, ids, groups=np.ones((8, 30)), scores=np.ones(8), mode="grouped")
    with pytest.raises(InputError, match="as a string, got bytes"):
        encode_typed(b"not bad", 32)


def test_page_and_figure_colour_each_token_by_the_same_group(sx):
    """A token's colour: among the used groups, the one with the largest score x mask (sx.owner), in the
    explorer's sentence and in the figure's first row alike."""
    from matplotlib.colors import to_rgba

    from sop.text_figure import sentence_figure
    from sop.visualize import group_colour
    used = [g.group for g in sx.used]
    weight = sx.scores[used, None] * sx.masks[used]
    expected = np.where((sx.masks[used] > 0).any(0), np.array(used)[weight.argmax(0)], -1)
    assert np.array_equal(sx.owner(), expected) and (expected >= 0).any()
    fig = sentence_figure(sx, ["negative", "positive"])
    first_row = fig.axes[0].texts[:len(sx.pieces())]
    assert [t.get_text() for t in first_row] == [text for _, text, _ in sx.pieces()]
    for (p, _, _), t in zip(sx.pieces(), first_row):
        box = t.get_bbox_patch()
        if expected[p] < 0:
            assert box is None
        else:
            assert box.get_facecolor() == pytest.approx(to_rgba(group_colour(int(expected[p])) + "55"))


def test_the_figure_keeps_a_long_sentence_readable(model):
    """Words are laid out from their measured widths: a sentence wider than the figure widens it (it
    was squeezed by tight_layout and the words overlapped); every word of every row stays inside."""
    from sop.text_figure import WIDTH, sentence_figure
    long = ("the delivery was incredibly disappointing although the packaging looked wonderful and the customer "
            "service representatives were genuinely helpful throughout")
    sx = explain_sentence(model, encode_typed(long, model.config.img_size[-1]).ids)
    fig = sentence_figure(sx, ["negative", "positive"])
    assert fig.get_size_inches()[0] > WIDTH
    renderer = fig.canvas.get_renderer()
    width_px = fig.get_size_inches()[0] * fig.dpi
    n = len(sx.pieces())
    texts = fig.axes[0].texts
    rows = [texts[:n]] + [texts[n + 1 + r * (n + 1): n + 1 + r * (n + 1) + n] for r in range(len(sx.used))]
    for row in rows:
        assert [t.get_text() for t in row] == [text for _, text, _ in sx.pieces()]
        boxes = [t.get_window_extent(renderer) for t in row]
        for (_, _, glued), prev, box in zip(sx.pieces()[1:], boxes, boxes[1:]):
            assert box.x0 >= prev.x1 - (6 if glued else 0)       # in order, no word over the one before
        assert boxes[-1].x1 <= width_px
