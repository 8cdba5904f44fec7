"""Every error a user can cause in the library is an SOPError with a message that says what to fix.

One test per raising site a user can reach: crafted checkpoints whose config is bad (the
config is the JSON text in the safetensors header, key "sop_config"), bad config values,
unknown registry names, dataset lookups and the training refusals.
"""
import json
import shutil

import pytest
import torch
from torch import nn

import sop
from sop.config import SOPConfig
from sop.errors import CheckpointError, ConfigError, InputError, SOPError

from conftest import TINY_VIT


# --------------------------------------------------------------------------- crafted checkpoints

def rewrite_config(src, dst, **changes):
    """Copy checkpoint `src` to `dst` with its embedded config's fields changed (None deletes one)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    cfg = json.loads(meta["sop_config"])
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    meta["sop_config"] = json.dumps(cfg)
    save_file(load_file(str(src)), str(dst), metadata=meta)
    return dst


@pytest.fixture(scope="module")
def parts_copy(tmp_path_factory, embedded):
    """A private copy of the embedded parts SOP checkpoint (and its twin)."""
    folder = tmp_path_factory.mktemp("ckpt")
    dst = folder / "parts_sop.safetensors"
    shutil.copy(embedded["parts"].sop_path, dst)
    shutil.copy(embedded["parts"].backbone_path, folder / "parts_backbone.safetensors")
    return dst


@pytest.mark.parametrize("field,value,words", [
    ("adapter", "no_such_adapter", ["'adapter'", "no_such_adapter", "pixel", "vit"]),
    ("group_heads", 3, ["'group_heads'", "divisor", "num_groups"]),       # 8 groups, 3 heads
    ("task", "astrology", ["'task'", "astrology", "classification"]),
    ("num_groups", 0, ["'num_groups'"]),
    ("kind", "teacher", ["'kind'"]),
    ("max_group_frac", 1.5, ["'max_group_frac'"]),
])
def test_a_checkpoint_with_a_bad_config_value_names_the_field(parts_copy, tmp_path, field, value, words):
    bad = rewrite_config(parts_copy, tmp_path / "bad_sop.safetensors", **{field: value})
    for opener in (sop.load, sop.read_config):
        with pytest.raises(CheckpointError) as err:
            opener(bad)
        msg = str(err.value)
        assert "bad_sop.safetensors" in msg
        for w in words:
            assert w in msg, msg
        assert isinstance(err.value.__cause__, ConfigError) and err.value.__cause__.field == field


def test_a_checkpoint_with_an_unknown_or_missing_field_is_refused(parts_copy, tmp_path):
    bad = rewrite_config(parts_copy, tmp_path / "extra_sop.safetensors", colour="blue")
    with pytest.raises(CheckpointError, match="unknown config fields.*colour"):
        sop.load(bad)
    bad = rewrite_config(parts_copy, tmp_path / "missing_sop.safetensors", num_classes=None)
    with pytest.raises(CheckpointError, match="missing config fields.*num_classes"):
        sop.load(bad)


def test_a_checkpoint_without_a_task_loads_as_classification(parts_copy, tmp_path):
    old = rewrite_config(parts_copy, tmp_path / "old_sop.safetensors", task=None)
    assert sop.load(old).config.task == "classification"


def test_the_cli_reports_a_bad_checkpoint_as_an_error_line(parts_copy, tmp_path, capsys):
    from sop.cli import main
    bad = rewrite_config(parts_copy, tmp_path / "x_sop.safetensors", adapter="nope")
    assert main(["verify", "--quick", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'adapter'" in err


def test_load_pair_refuses_a_backbone_and_a_missing_twin(embedded, tmp_path):
    from sop.checkpoint import load_pair
    with pytest.raises(InputError, match="plain backbone"):
        load_pair(embedded["parts"].backbone_path)
    with pytest.raises(InputError, match="does not exist"):
        load_pair(embedded["parts"].sop_path, tmp_path / "nowhere_backbone.safetensors")


def test_a_checkpoint_that_records_no_dataset_cannot_be_evaluated(parts_copy, tmp_path):
    from sop.checkpoint import load_pair
    bad = rewrite_config(parts_copy, tmp_path / "nodata_sop.safetensors", dataset=None)
    with pytest.raises(InputError, match="does not record its dataset"):
        load_pair(bad)


# --------------------------------------------------------------------------- config values

def test_config_errors_are_value_errors_and_sop_errors():
    assert issubclass(ConfigError, SOPError) and issubclass(ConfigError, ValueError)
    assert ConfigError("x", field="task").field == "task"


@pytest.mark.parametrize("kw,field", [
    (dict(num_classes=0), "num_classes"),
    (dict(num_classes=None), "num_classes"),
    (dict(num_classes=2, img_size="big"), "img_size"),
])
def test_bad_config_values_at_construction(kw, field):
    with pytest.raises(ConfigError, match=field) as err:
        SOPConfig(backbone="resnet10t", **kw)
    assert err.value.field == field


@pytest.mark.parametrize("kw,field", [
    (dict(task="nope"), "task"),
    (dict(adapter="nope"), "adapter"),
    (dict(num_groups=6, group_heads=4), "group_heads"),
    (dict(group_heads=0), "group_heads"),
    (dict(num_groups=0), "num_groups"),
    (dict(in_chans=0), "in_chans"),
    (dict(img_size=(0, 32)), "img_size"),
    (dict(max_group_frac=0.0), "max_group_frac"),
    (dict(kind="x"), "kind"),
])
def test_validate_names_the_bad_field(kw, field):
    cfg = SOPConfig(backbone="resnet10t", num_classes=2, **kw)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == field
    assert field in str(err.value) or field in ("adapter", "task")   # the unknown-name ones quote the value
    assert "nope" in str(err.value) or field not in ("adapter", "task")


def test_from_dict_refuses_unknown_and_missing_fields():
    with pytest.raises(ConfigError, match="unknown config fields.*colour"):
        SOPConfig.from_dict(dict(backbone="resnet10t", num_classes=2, colour="blue"))
    with pytest.raises(ConfigError, match="missing config fields.*num_classes"):
        SOPConfig.from_dict(dict(backbone="resnet10t"))


def test_create_model_refuses_bad_config_values_before_building_a_backbone():
    with pytest.raises(ConfigError, match="unknown adapter 'nope'"):
        sop.create_model("no_such_net", num_classes=2, adapter="nope")   # not "unknown backbone"
    with pytest.raises(ConfigError, match="group_heads"):
        sop.create_model(nn.Linear(4, 2), num_classes=2, num_groups=6, group_heads=4)
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        sop.create_model(nn.Linear(4, 2), num_classes=2, task="nope")


@pytest.mark.parametrize("gen", ["GroupGen", "PatchQueryGroupGen"])
def test_group_gens_refuse_a_head_count_that_does_not_divide_the_groups(gen):
    from sop import groups
    with pytest.raises(ConfigError, match=r"num_groups \(6\).*group_heads \(4\)") as err:
        getattr(groups, gen)(16, 6, heads=4, grid=(4, 4))
    assert err.value.field == "group_heads"


# --------------------------------------------------------------------------- registries

def test_unknown_adapter_and_task_names():
    from sop.adapters import build_adapter, get_adapter
    from sop.tasks import get_task
    with pytest.raises(ConfigError, match="unknown adapter 'nope'; known: auto, pixel, text, vit"):
        get_adapter("nope")
    with pytest.raises(ConfigError, match="unknown adapter"):
        build_adapter("nope", nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="unknown task 'nope'; known: classification, regression"):
        get_task("nope")


def test_the_vit_adapter_refuses_what_it_cannot_wrap():
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="needs a timm VisionTransformer.*'pixel'"):
        sop.create_model(cnn, num_classes=2, adapter="vit")
    with pytest.raises(ConfigError, match="global_pool") as err:
        sop.create_model("vit_tiny_patch16_224", num_classes=2, img_size=(32, 32), adapter="vit",
                         backbone_kwargs=dict(TINY_VIT, global_pool=""))
    assert err.value.field == "adapter"


def test_auto_resolution_fails_clearly_when_no_adapter_supports_the_backbone(monkeypatch):
    from sop import adapters
    monkeypatch.setattr(adapters, "_ADAPTERS", {k: v for k, v in adapters._ADAPTERS.items() if k == "vit"})
    with pytest.raises(ConfigError, match="no adapter supports a Linear"):
        adapters.resolve_adapter("auto", nn.Linear(2, 2))


def test_dataset_lookups(tmp_path):
    from sop.data import get_dataset, load_split, register_dataset
    with pytest.raises(ConfigError, match="unknown dataset 'nope'; known: csv:<path>, digits, folder:<path>, lensing, parts, reviews"):
        get_dataset("nope")
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_split("nope", "test")
    with pytest.raises(ConfigError, match="non-empty string"):
        get_dataset("")
    with pytest.raises(ConfigError, match="takes no path"):
        get_dataset("digits:/tmp")
    with pytest.raises(ConfigError, match="needs a path"):
        load_split("folder", "train")
    with pytest.raises(ConfigError, match="split must be train, val or test"):
        load_split("digits", "training")
    with pytest.raises(ConfigError, match="does not exist"):
        load_split(f"folder:{tmp_path / 'missing'}", "train")
    (tmp_path / "flat").mkdir()
    with pytest.raises(ConfigError, match="no class subfolders"):
        load_split(f"folder:{tmp_path / 'flat'}", "train")
    with pytest.raises(ConfigError, match="cannot contain ':'"):
        register_dataset("a:b", label="x")


# --------------------------------------------------------------------------- training

def test_training_refuses_a_task_it_cannot_train_yet(monkeypatch):
    from sop import tasks
    from sop.data import registry
    from sop.presets import PRESETS
    from sop.train import train_pair
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    monkeypatch.setattr(tasks, "_TASKS", dict(tasks._TASKS))

    @tasks.register_task("ranking", label="Ranking", trainable=False)
    class Ranking(type(tasks.get_task("regression"))):
        pass

    @registry.register_dataset("ranked", label="Ranked", task="ranking")
    def ranked(split, *, img_size=None, seed=0):
        raise AssertionError("must not be loaded")

    with pytest.raises(ConfigError, match="ranking task, which sop.train does not train yet") as err:
        train_pair(dict(PRESETS["digits"], dataset="ranked"), "unused")
    assert err.value.field == "task"


def test_training_refuses_penalties_the_patch_group_gen_ignores():
    from sop.presets import PRESETS
    from sop.train import train_pair
    with pytest.raises(InputError, match="learned GroupGen"):
        train_pair(dict(PRESETS["digits"], group_gen="patch", tv_weight=1.0), "unused")


def test_resuming_from_a_file_that_is_not_a_training_state(tmp_path):
    from sop.train import StageSettings, load_state
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match="cannot resume"):
        load_state(tmp_path / "junk.safetensors", model, opt)
    assert StageSettings(epochs=1, lr=1.0).task == "classification"
