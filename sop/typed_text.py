"""A sentence a person typed, as the model's token ids.

`sop.text.tokenize` reads "[SEP]" or "[CLS]" in a text as the special tokens themselves; a
typed sentence must stay literal text (otherwise a user could end the sentence early or
inject a [CLS]), so this module tokenises with ``split_special_tokens=True`` and says
whether the text was cut to the model's L tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import InputError
from .text import content_mask, token_count, tokenizer


@dataclass(frozen=True)
class TypedText:
    text: str                  # what was typed (unchanged)
    ids: torch.Tensor          # (1, L) token ids, padded with [PAD] = 0
    truncated: bool            # the text needed more than L tokens and was cut
    total_tokens: int          # tokens the whole text needs, [CLS] and [SEP] included


def encode_typed(text: str, length: int) -> TypedText:
    """Token ids (1, L) of a typed sentence; InputError for empty or whitespace-only text."""
    if not isinstance(text, str):
        raise InputError(f"expected the text as a string, got {type(text).__name__}")
    if not text.strip():
        raise InputError("the text is empty (or only whitespace): type a sentence")
    total = token_count(text, literal=True)
    enc = tokenizer()(text, split_special_tokens=True, padding="max_length", truncation=True, max_length=length)
    ids = torch.tensor([enc["input_ids"]], dtype=torch.long)
    if not bool(content_mask(ids).any()):   # e.g. only control characters the tokenizer drops
        raise InputError("the text has no word the model can read: type a sentence")
    return TypedText(text=text, ids=ids, truncated=total > length, total_tokens=total)
