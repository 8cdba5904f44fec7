"""The method registry (sop.methods): every built-in method through the one signature, and a
method registered at test time reaching `python -m sop evaluate` and the Compare page with no
other change."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from torch import nn

import sop
from sop import InputError
from sop.data import load_split
from sop.explainers import METHODS, default_settings, explain
from sop.faithfulness import insertion_deletion
from sop.methods import MethodOutput, get_method, has_feature_layer, list_methods, register_method, sop_only, \
    unregister_method

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "assets" / "models"
TOY = "toy_random"
TOY_LABEL = "Toy random map"
# Methods whose work is a loop (samples, masks, steps, windows): they report progress while they run.
LOOPING = {"lime", "kernelshap", "ig", "rise", "occlusion"}


@lru_cache(maxsize=None)
def lib_model(name: str, kind: str = "sop"):
    return sop.load(MODELS / f"{name}_{kind}.safetensors")


@lru_cache(maxsize=None)
def input_of(name: str, index: int = 0) -> torch.Tensor:
    return load_split(name, "test").dataset[index][0].unsqueeze(0)


def toy_map(model, x, target, settings, progress, grid):
    """A seeded random map, one value per patch of the grid (ignores the model)."""
    gen = torch.Generator().manual_seed(settings["seed"])
    cells = torch.rand(1, 1, *grid, generator=gen)
    if progress is not None:
        progress(0.5)
    return nn.functional.interpolate(cells, size=x.shape[-2:], mode="nearest")[0, 0]


@pytest.fixture
def toy_method():
    register_method(TOY, label=TOY_LABEL, defaults=dict(seed=0))(toy_map)
    try:
        yield TOY
    finally:
        unregister_method(TOY)
    assert TOY not in list_methods()


# --------------------------------------------------------------------------- the built-ins

def test_builtin_methods_are_registered_with_labels_defaults_and_capabilities():
    assert list_methods() == list(METHODS) == ["sop", "lime", "kernelshap", "ig", "gradcam", "rise", "occlusion"]
    for name in list_methods():
        info = get_method(name)
        assert info.name == name and info.label and isinstance(info.defaults, dict), name
        assert info.summary, f"{name}: its function has no docstring"
        assert default_settings(name) == info.defaults and default_settings(name) is not info.defaults
        assert info.budget_setting is None or info.budget_setting in info.defaults
        assert info.cost in ("cheap", "expensive") and callable(info.supports) and info.requires
    sampled = {m: get_method(m).budget_setting for m in list_methods(samples=True)}
    assert sampled == {"lime": "n_samples", "kernelshap": "n_samples", "rise": "n_masks"}
    ig = get_method("ig")
    assert ig.budget_setting == "n_steps" and not ig.samples   # a step count, not sampling
    assert ig.budgeted(100) == ig.defaults                      # so a sample budget leaves it alone
    assert get_method("rise").budgeted(100)["n_masks"] == 100
    assert list_methods(cheap=True) == ["sop", "gradcam", "occlusion"]
    assert get_method("sop").supports is sop_only and get_method("sop").resolves_target
    assert get_method("gradcam").supports is has_feature_layer


def test_supports_says_which_models_a_method_can_explain():
    model, backbone = lib_model("digits"), lib_model("digits", "backbone")
    assert get_method("sop").supports(model) and not get_method("sop").supports(backbone)
    assert get_method("gradcam").supports(backbone)                       # a CNN
    assert not get_method("gradcam").supports(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    assert all(get_method(m).supports(backbone) for m in ("lime", "kernelshap", "ig", "rise", "occlusion"))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_with_the_one_signature_on_an_embedded_model(method):
    model = lib_model("digits") if method == "sop" else lib_model("digits", "backbone")
    x = input_of("digits")
    info = get_method(method)
    settings = info.settings()
    if info.budget_setting is not None:
        settings[info.budget_setting] = max(2, settings[info.budget_setting] // 10)
    with torch.no_grad():
        out = model(x)
    target = int((out.logits if hasattr(out, "logits") else out).argmax())
    grid = tuple(model.adapter.grid) if method == "sop" else (8, 8)
    seen: list[float] = []
    result = info.fn(model.eval(), x, target, dict(settings), seen.append, grid)
    attribution = result.attribution if isinstance(result, MethodOutput) else result
    assert isinstance(attribution, torch.Tensor) and attribution.shape == x.shape[-2:], method
    assert torch.isfinite(attribution).all(), method
    if method in LOOPING:
        assert seen and all(0 <= f < 1 for f in seen) and seen == sorted(seen), (method, seen)
    # explain() is this call plus bookkeeping: the same map
    exp = explain(model, x, method, target=target, grid=grid, **settings)
    torch.testing.assert_close(exp.attribution, attribution.float())


def test_registration_is_checked():
    with pytest.raises(InputError, match="already registered"):
        register_method("lime", label="again")(lambda *a: None)
    with pytest.raises(InputError, match="budget_setting"):
        register_method("bad", label="Bad", defaults=dict(n=1), samples=True, budget_setting="m")(lambda *a: None)
    with pytest.raises(InputError, match="budget_setting"):
        register_method("bad", label="Bad", samples=True)(lambda *a: None)
    with pytest.raises(InputError, match="cost"):
        register_method("bad", label="Bad", cost="free")(lambda *a: None)
    with pytest.raises(InputError, match="method name"):
        register_method("a,b", label="Bad")(lambda *a: None)
    assert "bad" not in list_methods()
    with pytest.raises(InputError, match="unknown method 'nope'; known: sop, lime"):
        get_method("nope")


def test_a_method_returning_a_wrong_shape_is_refused():
    register_method("wrong_shape", label="Wrong")(lambda model, x, target, settings, progress, grid: torch.zeros(3))
    try:
        with pytest.raises(sop.SOPError, match="wrong_shape.*\\(H, W\\)"):
            explain(lib_model("digits", "backbone"), input_of("digits"), "wrong_shape")
    finally:
        unregister_method("wrong_shape")


# --------------------------------------------------------------------------- a toy method, end to end

def test_toy_method_explains_like_any_other(toy_method):
    x, backbone = input_of("digits"), lib_model("digits", "backbone")
    seen: list[float] = []
    exp = explain(backbone, x, toy_method, progress=seen.append)
    assert exp.method == toy_method and exp.attribution.shape == x.shape[-2:]
    assert exp.settings == {"seed": 0, "grid": [8, 8]} and seen == [0.0, 0.5, 1.0]  # explain adds 0.0 and 1.0
    assert not torch.equal(exp.attribution, explain(backbone, x, toy_method, seed=1).attribution)
    assert default_settings(toy_method) == {"seed": 0}


def test_toy_method_appears_in_sop_evaluate(toy_method, tmp_path, capsys):
    from sop.cli import main
    from sop.commands.evaluate import parse_methods
    assert toy_method in parse_methods("all")
    rc = main(["evaluate", "--model", str(MODELS / "parts_sop.safetensors"), "--methods", f"sop,{toy_method}",
               "--samples", "2", "--threads", "1", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "parts.json").read_text())
    assert [r["method"] for r in report["rows"]] == ["sop", toy_method]
    assert report["settings"]["method_settings"][toy_method] == {"seed": 0}
    assert f"| {toy_method} | backbone |" in capsys.readouterr().out
    rc = main(["evaluate", "--model", str(MODELS / "parts_sop.safetensors"), "--methods", "no_such_method",
               "--samples", "2", "--out", str(tmp_path)])
    assert rc == 2


def test_toy_method_appears_on_the_compare_page_and_runs(toy_method):
    streamlit_testing = pytest.importorskip("streamlit.testing.v1")
    at = streamlit_testing.AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.query_params["input"] = "test:1"
    _run(at)
    at.switch_page("explorer/pages/compare.py")
    _run(at)
    _run(at)  # the second run after a page switch sees the persisted widgets (see tests/test_app.py)
    pills = at.pills(key="compare_methods")
    assert toy_method in pills.options or TOY_LABEL in pills.options, pills.options
    assert toy_method in pills.value
    # an expensive method by default: it waits for a click, like LIME
    assert at.button(key="run_all").label.startswith("Run 5 expensive")
    assert TOY_LABEL in "\n".join(c.value for c in at.caption)
    at.button(key=f"run_{toy_method}").click()
    _run(at)
    x, twin = input_of("digits", 1), lib_model("digits", "backbone")
    want = insertion_deletion(twin, x, explain(twin, x, toy_method))
    table = at.dataframe[0].value
    row = table[table["method"] == TOY_LABEL].iloc[0]
    assert row["explains"] == "backbone"
    assert row["insertion AUC ↑"] == pytest.approx(round(want["insertion"].auc, 4), abs=1e-4)
    assert row["deletion AUC ↓"] == pytest.approx(round(want["deletion"].auc, 4), abs=1e-4)


def _run(at):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# --------------------------------------------------------------------------- the explorer keeps no list

def test_explorer_keeps_no_hand_written_list_of_methods():
    """Method names and labels come from the registry: none is written in explorer/ (SOP's own
    explanation, which the pages show as such, aside)."""
    words = set()
    for m in list_methods():
        if m != "sop":
            words |= {f'"{m}"', f"'{m}'", get_method(m).label}
    hits = []
    for path in sorted((ROOT / "explorer").rglob("*.py")):
        text = path.read_text()
        hits += [f"{path.relative_to(ROOT)}: {w}" for w in words if re.search(re.escape(w), text)]
    assert not hits


def test_explorer_raises_library_errors_with_the_choices():
    from explorer import compute
    with pytest.raises(InputError, match="unknown method 'nope'; known: sop"):
        compute.get_explanation(None, torch.zeros(1, 1, 8, 8), "nope")
    with pytest.raises(InputError, match="pixel, grouped"):
        compute.get_curves(None, None, None, mode="stepwise")
    with pytest.raises(ValueError, match="zero, blur, noisy_linear"):   # InputError is a ValueError
        compute.get_curves(None, None, None, baseline="black")
    assert compute.method_settings("lime", 100)["n_samples"] == 100
    assert compute.method_settings("ig", 100) == default_settings("ig")


def test_a_method_declares_its_pass_count_and_the_budget_sweep_reads_it():
    from sop.budget import count_rule, pass_count
    name = "toy_counted"

    @register_method(name, label="Toy counted", defaults=dict(n_probe=5),
                     passes=lambda s, c: (s["n_probe"] * c.num_groups + 1, s["n_probe"]),
                     pass_rule="n_probe x G + 1 forward, n_probe backward")
    def toy_counted(model, x, target, settings, progress, grid):
        """A toy whose cost depends on its settings and on G."""
        return torch.zeros(x.shape[-2:])

    try:
        kw = dict(grid=(8, 8), image_size=(32, 32), num_groups=4)
        assert pass_count(name, {}, **kw) == dict(forward=21, backward=5, cost=26)
        assert pass_count(name, {"n_probe": 2}, **kw) == dict(forward=9, backward=2, cost=11)
        assert count_rule([name])[name] == "n_probe x G + 1 forward, n_probe backward"
        # the built-ins declare theirs: nothing in sop.budget names a method
        assert pass_count("gradcam", {}, **kw)["cost"] == 3
        assert pass_count("lime", {"n_samples": 9}, **kw)["forward"] == 10
        assert pass_count("sop", {}, **kw)["forward"] == 5
        budget_src = (ROOT / "sop" / "budget.py").read_text()
        for m in ("ig", "occlusion", "gradcam"):
            assert f'"{m}"' not in budget_src
    finally:
        unregister_method(name)
