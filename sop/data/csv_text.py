"""Your own text data: `--dataset csv:/path/file.csv`.

The file is UTF-8 CSV with a header row holding the columns ``text`` and ``label``, and
optionally ``split`` (values train / val / test).  Without a split column the rows are
split 80/10/10 by a seeded permutation (a pure function of the seed).  Class names are the
sorted distinct labels of the training rows; a val/test label not among them is an error
(a model cannot predict a class it never saw).  Texts are tokenised with the text
backbone's tokenizer, padded to L = 32 tokens (``img_size=(1, L)`` changes it) and longer
texts truncated.  Every problem raises `sop.InputError` naming the row and what to fix.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..errors import InputError
from .base import Split
from .registry import SPLITS, register_dataset
from .reviews import MAX_LENGTH, text_info

MAX_BYTES = 50 * 1024 * 1024


def read_rows(path: str | Path) -> tuple[list[dict], bool]:
    """The CSV's rows as dicts (text, label[, split]) and whether it has a split column."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"CSV file {p} does not exist")
    raw = p.read_bytes()
    if len(raw) > MAX_BYTES:
        raise InputError(f"{p.name} is {len(raw) / 2**20:.0f} MB; at most {MAX_BYTES // 2**20} MB")
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError(f"{p.name} is not UTF-8 text: byte 0x{raw[err.start]:02x} at offset {err.start} "
                         f"(line {line}); save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(content))
    columns = [c.strip().lower() for c in (reader.fieldnames or [])]
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        raise InputError(f"{p.name} has no column {' or '.join(map(repr, missing))} in its header row "
                         f"(found: {', '.join(map(repr, columns)) or 'nothing'}); the columns are text,label[,split]")
    has_split = "split" in columns
    rows = []
    for n, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v if isinstance(v, str) else "") for k, v in row.items()}
        text, label = row.get("text", ""), row.get("label", "").strip()
        if not text.strip():
            raise InputError(f"{p.name} line {n}: empty text")
        if not label:
            raise InputError(f"{p.name} line {n}: empty label")
        rec = dict(text=text, label=label, line=n)
        if has_split:
            split = row.get("split", "").strip().lower()
            if split not in SPLITS:
                raise InputError(f"{p.name} line {n}: split must be train, val or test, not {split!r}")
            rec["split"] = split
        rows.append(rec)
    if not rows:
        raise InputError(f"{p.name} has a header but no rows")
    return rows, has_split


def assign_splits(rows: list[dict], seed: int) -> None:
    """80/10/10 by a seeded permutation (rows without a split column)."""
    n = len(rows)
    order = np.random.default_rng([seed, 4242]).permutation(n)
    n_val, n_test = max(1, n // 10) if n >= 3 else 0, max(1, n // 10) if n >= 3 else 0
    for rank, i in enumerate(order):
        rows[i]["split"] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"


def class_names_of(rows: list[dict], name: str) -> list[str]:
    names = sorted({r["label"] for r in rows if r["split"] == "train"})
    if len(names) < 2:
        raise InputError(f"{name}: the training rows need at least two label values, found {names}")
    for r in rows:
        if r["label"] not in names:
            raise InputError(f"{name} line {r['line']}: unknown label value {r['label']!r} ({r['split']} row); "
                             f"the training rows have only {', '.join(map(repr, names))}")
    return names


@register_dataset("csv", label="Your CSV (text,label[,split])", modality="text", task="classification",
                  takes_path=True)
def load_csv_split(split: str, *, img_size=None, seed: int = 0, path: str) -> Split:
    """Your own labelled texts: a UTF-8 CSV with columns text,label and optionally split."""
    from ..text import tokenize
    rows, has_split = read_rows(path)
    if not has_split:
        assign_splits(rows, seed)
    names = class_names_of(rows, Path(path).name)
    chosen = [r for r in rows if r["split"] == split]
    if not chosen:
        raise InputError(f"{Path(path).name} has no {split} rows")
    length = int(img_size[-1]) if img_size else MAX_LENGTH
    ids = tokenize([r["text"] for r in chosen], length)
    labels = torch.tensor([names.index(r["label"]) for r in chosen], dtype=torch.long)
    info = text_info(f"csv:{path}", names, length, f"texts from {Path(path).name}",
                     texts=[r["text"] for r in chosen])
    return Split(TensorDataset(ids, labels), info)
