"""One lensing map explained by the embedded lensing SOP model: groups, errors, per-parameter
curves and the baselines on a regression output (real forward passes)."""
import numpy as np
import pytest
import torch

import sop
from sop import regression_explain as R
from sop.explainers import explain
from sop.faithfulness import insertion_deletion
from sop.regression import to_physical

pytest.importorskip("pyccl")

from sop.data.lensing import load_lensing_split  # noqa: E402


@pytest.fixture(scope="module")
def lensing():
    models = {m.name: m for m in sop.embedded_models(modality=None)}
    if "lensing" not in models:
        pytest.skip("no embedded lensing model")
    model = sop.load(models["lensing"].sop_path)
    twin = sop.load(models["lensing"].backbone_path)
    test = load_lensing_split("test")   # generated once and cached (runs/cache/lensing)
    return model, twin, test


def test_explain_map_gives_physical_predictions_and_what_each_group_alone_predicts(lensing):
    model, _, test = lensing
    x = test.dataset.tensors[0][3:4]
    e = R.explain_map(model, x)
    assert e.names == ["Omega_m", "sigma_8"]
    out = model(x)
    assert np.allclose(e.prediction, to_physical(out.logits[0], model.config).numpy(), atol=1e-6)
    # in the prior box's neighbourhood, i.e. physical units, not standardised ones
    assert 0.05 < e.prediction[0] < 0.6 and 0.4 < e.prediction[1] < 1.2
    assert e.masks.shape == (model.config.num_groups, 66, 66) and e.group_predictions.shape == (8, 2)
    # the prediction is exactly the score-weighted sum of what the groups alone predict
    assert np.allclose((e.scores[:, None] * e.group_predictions).sum(0), e.prediction, atol=1e-5)
    assert e.used and all(e.scores[g] > 0 for g in e.used) and e.order[0] == e.used[0]
    d = e.as_dict()
    assert set(d["prediction"]) == {"Omega_m", "sigma_8"} and d["groups"][0]["score"] == pytest.approx(e.scores.max())
    with pytest.raises(sop.InputError, match="SOP model"):
        R.explain_map(lensing[1], x)


def test_largest_errors_are_sorted_and_measured_in_prior_standard_deviations(lensing):
    model, _, test = lensing
    true = test.dataset.tensors[1].double().numpy()[:64]
    pred = true.copy()
    pred[5, 0] += 2 * model.config.target_std[0]       # 2 sigma off in Omega_m
    pred[9, 1] -= 1 * model.config.target_std[1]       # 1 sigma off in sigma_8
    top = R.largest_errors(pred, true, model.config, k=3)
    assert [t["index"] for t in top[:2]] == [5, 9]
    assert top[0]["error"] == pytest.approx(np.sqrt(4 / 2)) and top[1]["error"] == pytest.approx(np.sqrt(1 / 2))
    assert top[2]["error"] == pytest.approx(0.0)


@pytest.mark.parametrize("mode", ["grouped", "pixel"])
def test_regression_curves_per_parameter_rise_to_and_fall_from_the_full_prediction(lensing, mode):
    model, _, test = lensing
    x = test.dataset.tensors[0][3:4]
    exp = R.sop_explanation(model, x)
    curves = R.regression_curves(model, x, exp, mode=mode, steps=8)
    full = R.explain_map(model, x).prediction
    for p, std in enumerate(model.config.target_std):
        ins, dele = curves[p]["insertion"], curves[p]["deletion"]
        # the whole map is the end of insertion and the start of deletion: closeness 1 there
        assert ins.closeness[-1] == pytest.approx(1.0) and dele.closeness[0] == pytest.approx(1.0)
        assert ins.predictions[-1] == pytest.approx(full[p], abs=1e-5)
        # closeness = 1 - |pred(step) - pred(full)| / std, checked on the removed map itself
        step = len(ins.fractions) // 2
        partial = ins.input_at(x, step)[None]
        pred = to_physical(model(partial).logits[0], model.config).numpy()[p]
        assert ins.predictions[step] == pytest.approx(pred, abs=1e-5)
        assert ins.closeness[step] == pytest.approx(1 - abs(pred - full[p]) / std, abs=1e-5)
        # the empty map is far from the full prediction for this model: the curves are not flat
        assert ins.closeness[0] < 0.9 and dele.closeness[-1] == pytest.approx(ins.closeness[0])
        f = ins.fractions
        assert ins.auc == pytest.approx(float(np.sum(np.diff(f) * (ins.closeness[1:] + ins.closeness[:-1]) / 2)))
    with pytest.raises(sop.InputError, match="out of range"):
        R.regression_curves(model, x, exp, parameters=[2])


def test_curve_steps_are_those_of_the_faithfulness_machinery(lensing):
    model, _, test = lensing
    x = test.dataset.tensors[0][7:8]
    exp = R.sop_explanation(model, x)
    plain = insertion_deletion(model, x, exp, mode="grouped", baseline="blur")
    ours = R.regression_curves(model, x, exp, mode="grouped", baseline="blur")
    assert np.array_equal(plain["insertion"].fractions, ours[0]["insertion"].fractions)
    # one definition: the curves `sop evaluate` scores are the mean over parameters of the explorer's
    for kind in ("insertion", "deletion"):
        per_parameter = np.stack([ours[p][kind].closeness for p in (0, 1)])
        assert np.allclose(plain[kind].scores, per_parameter.mean(0), atol=1e-6)
        assert plain[kind].auc == pytest.approx(np.mean([ours[p][kind].auc for p in (0, 1)]), abs=1e-6)
    assert not np.allclose(ours[0]["deletion"].closeness, ours[1]["deletion"].closeness)


def test_baselines_explain_one_parameter_of_a_regression_model_and_need_it_named(lensing):
    _, twin, test = lensing
    x = test.dataset.tensors[0][3:4]
    with pytest.raises(sop.InputError, match="index of the parameter"):
        explain(twin, x, "occlusion")
    with pytest.raises(sop.InputError, match="index of the parameter"):
        explain(twin, x, "occlusion", target=2)
    with pytest.raises(sop.InputError, match="does not apply"):
        explain(twin, x, "occlusion", target=0, output="prob")
    om, s8 = explain(twin, x, "occlusion", target=0), explain(twin, x, "occlusion", target=1)
    assert om.target == 0 and s8.target == 1 and om.settings["output"] == "logit"
    assert not torch.allclose(om.attribution, s8.attribution)
    # occlusion of a patch = the drop in that parameter's standardised estimate
    with torch.no_grad():
        full = twin(x)[0, 1]
        hidden = x.clone()
        hidden[..., :6, :6] = 0
        drop = float(full - twin(hidden)[0, 1])
    assert float(s8.attribution[0, 0]) == pytest.approx(drop, abs=1e-4)
    # IG explains the standardised estimate itself: its attributions add up (completeness, up to the
    # Riemann sum's error) to the estimate on x minus the estimate on the all-zero input
    ig = explain(twin, x, "ig", target=1, n_steps=32)
    with torch.no_grad():
        gap = float(twin(x)[0, 1] - twin(torch.zeros_like(x))[0, 1])
    assert abs(gap) > 0.1 and float(ig.attribution.sum()) == pytest.approx(gap, rel=0.1)


def test_export_record_holds_the_library_values_as_json(lensing):
    import json
    model, _, test = lensing
    x, y = test.dataset[3]
    x = x[None]
    e = R.explain_map(model, x)
    pair = R.regression_curves(model, x, R.sop_explanation(model, x), mode="grouped")[1]
    rec = json.loads(json.dumps(R.export_record(e, pair, mode="grouped", baseline="zero", truth=y.numpy(),
                                                input="test map #3")))
    assert rec["input"] == "test map #3" and rec["curves"]["parameter"] == "sigma_8"
    assert rec["prediction"]["sigma_8"] == pytest.approx(e.prediction[1])
    assert rec["truth"]["Omega_m"] == pytest.approx(float(y[0]))
    assert [g["group"] for g in rec["groups"]] == e.order
    assert rec["curves"]["deletion"]["auc"] == pytest.approx(pair["deletion"].auc, abs=1e-6)
    assert rec["curves"]["insertion"]["closeness"][-1] == pytest.approx(1.0)
