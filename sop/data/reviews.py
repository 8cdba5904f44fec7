"""Synthetic "reviews": short product reviews whose label follows a stated rule (the text twin of parts).

Every review has exactly one **verdict clause** about the reviewed product (a noun from
`PRODUCTS`: "the film", "the phone", ...) and may have **distractor clauses** about side
aspects (`ASPECTS`: "the delivery", "the staff", ...) carrying sentiment of either polarity.

**The rule** (`RULE_TEXT`): the label is the polarity of the *last* evaluative statement about
the product: its sentiment word's polarity, flipped once per negation in that statement
("not", "never"; "not ... not" cancels), intensifiers ("very", "truly", ...) change nothing;
in "X but Y" about the product, Y decides; what is said about side aspects never counts.

Every review carries its **decisive words** (the sentiment word and the negations that act
on it, in the clause that decides) as ground truth; `token_masks` maps them onto token
positions of the model's tokenizer (all word pieces of each decisive word).

Template families (`FAMILIES`): plain, negated, contrast, distractor, double negation, and a
**held-out family** ("interleaved": a side-aspect clause inside the product clause) that
appears only in the test split, so memorised templates do not pass.  Splits are a pure
function of (seed, split): the same call gives the same sentences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .base import DatasetInfo, Split
from .registry import register_dataset

RULE_TEXT = ("the polarity of the last statement about the product (not its side aspects): the sentiment word, "
             "flipped by each 'not'/'never' acting on it; in 'X but Y' Y decides")
CLASS_NAMES = ["negative", "positive"]
SPLIT_SIZES = {"train": 2400, "val": 300, "test": 600}
HELD_OUT_TEST = 300                      # extra test sentences from the held-out family
SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}
MAX_LENGTH = 32

PRODUCTS = ["film", "movie", "phone", "laptop", "book", "album", "camera", "game", "blender", "novel",
            "headset", "jacket", "show", "tablet", "printer", "sofa"]
ASPECTS = ["delivery", "packaging", "price", "staff", "parking", "weather", "manual", "cashier", "popcorn",
           "box", "website", "queue", "receipt", "music in the shop", "car park", "bus ride"]
POSITIVE = ["good", "great", "excellent", "wonderful", "superb", "delightful", "fantastic", "lovely", "impressive",
            "brilliant", "enjoyable", "solid", "charming", "pleasant"]
NEGATIVE = ["bad", "terrible", "awful", "poor", "disappointing", "dreadful", "horrible", "mediocre", "boring",
            "weak", "annoying", "dull", "clumsy", "unpleasant"]
INTENSIFIERS = ["very", "really", "extremely", "truly", "absolutely", "quite", "rather", "so"]
NEGATORS = ["not", "never"]
OPENERS = ["", "honestly ,", "well ,", "overall ,", "to be fair ,", "in short ,"]
TRAIN_FAMILIES = ("plain", "negated", "contrast", "distractor", "double_negation")
HELD_OUT_FAMILY = "interleaved"
FAMILIES = (*TRAIN_FAMILIES, HELD_OUT_FAMILY)


@dataclass
class Review:
    words: list[str]          # the review, one word per entry (punctuation as words)
    label: int                # 1 positive, 0 negative
    decisive: list[int]       # indices into `words` of the decisive words
    family: str

    @property
    def text(self) -> str:
        return " ".join(self.words)


class _Builder:
    """Appends phrases, remembering where the decisive words land."""

    def __init__(self):
        self.words: list[str] = []
        self.decisive: list[int] = []

    def add(self, phrase: str, decisive: bool = False) -> None:
        for w in phrase.split():
            if decisive:
                self.decisive.append(len(self.words))
            self.words.append(w)


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _sentiment(rng, polarity: int) -> str:
    return _pick(rng, POSITIVE if polarity else NEGATIVE)


def _intens(rng, p: float = 0.4) -> str:
    return _pick(rng, INTENSIFIERS) if rng.random() < p else ""


def _copula(rng) -> str:
    return _pick(rng, ["was", "is", "felt", "seemed"])


def _verdict(b: _Builder, rng, label: int, negate: bool | None = None, subject: str | None = None) -> None:
    """'[the product] was [not] [very] ADJ' with the decisive words marked."""
    negate = bool(rng.random() < 0.5) if negate is None else negate
    word = _sentiment(rng, label ^ int(negate))
    if subject is not None:
        b.add(subject)
    b.add(_copula(rng))
    if negate:
        b.add(_pick(rng, NEGATORS), decisive=True)
    b.add(_intens(rng))
    b.add(word, decisive=True)


def _side(b: _Builder, rng) -> None:
    """A distractor clause about a side aspect, of random polarity."""
    neg = rng.random() < 0.3
    b.add(f"the {_pick(rng, ASPECTS)} {_copula(rng)}")
    if neg:
        b.add(_pick(rng, NEGATORS))
    b.add(f"{_intens(rng)} {_sentiment(rng, int(rng.integers(2)))}")


def make_review(rng: np.random.Generator, family: str) -> Review:
    label = int(rng.integers(2))
    b = _Builder()
    product = f"the {_pick(rng, PRODUCTS)}"
    b.add(_pick(rng, OPENERS))
    if family == "plain":
        _verdict(b, rng, label, negate=False, subject=product)
    elif family == "negated":
        _verdict(b, rng, label, negate=True, subject=product)
    elif family == "contrast":
        # first statement of the other (or same) polarity, then "but" and the decisive one
        first = _Builder()
        _verdict(first, rng, int(rng.integers(2)), subject=product)
        b.add(" ".join(first.words))
        b.add(", but" if rng.random() < 0.5 else "but")
        b.add(_pick(rng, ["it", "in the end it", "after a week it"]))
        _verdict(b, rng, label)
    elif family == "distractor":
        if rng.random() < 0.5:
            _side(b, rng)
            b.add(_pick(rng, [", and", ", while", "; meanwhile"]))
            _verdict(b, rng, label, subject=product)
        else:
            _verdict(b, rng, label, subject=product)
            b.add(_pick(rng, [", though", ", and", ", even if"]))
            _side(b, rng)
    elif family == "double_negation":
        b.add(_pick(rng, ["it is", "it was", "i would say it is"]))
        b.add("not", decisive=True)
        b.add(f"true that {product} {_copula(rng)}")
        b.add(_pick(rng, NEGATORS), decisive=True)
        b.add(_intens(rng))
        b.add(_sentiment(rng, label), decisive=True)   # two negations cancel
    elif family == HELD_OUT_FAMILY:
        b.add(f"{product} , unlike the {_pick(rng, ASPECTS)} ,")
        _verdict(b, rng, label)
    else:
        raise ValueError(f"unknown family {family!r}")
    return Review(words=b.words, label=label, decisive=b.decisive, family=family)


def generate(split: str, seed: int = 0) -> list[Review]:
    """The reviews of one split: a pure function of (seed, split)."""
    rng = np.random.default_rng([seed, SPLIT_OFFSET[split], 7919])
    reviews = [make_review(rng, TRAIN_FAMILIES[i % len(TRAIN_FAMILIES)]) for i in range(SPLIT_SIZES[split])]
    if split == "test":
        reviews += [make_review(rng, HELD_OUT_FAMILY) for _ in range(HELD_OUT_TEST)]
    return reviews


def token_masks(reviews: list[Review], max_length: int = MAX_LENGTH) -> np.ndarray:
    """(N, L) bool: the token positions (every word piece) of each review's decisive words."""
    from ..text import tokenizer
    enc = tokenizer()([r.words for r in reviews], is_split_into_words=True, padding="max_length", truncation=True,
                      max_length=max_length)
    out = np.zeros((len(reviews), max_length), bool)
    for i, r in enumerate(reviews):
        decisive = set(r.decisive)
        for pos, wid in enumerate(enc.word_ids(i)):
            if wid is not None and wid in decisive:
                out[i, pos] = True
    return out


def review_ids(reviews: list[Review], max_length: int = MAX_LENGTH) -> torch.Tensor:
    from ..text import tokenize
    return tokenize([r.words for r in reviews], max_length, words=True)


def _length(img_size) -> int:
    return int(img_size[-1]) if img_size else MAX_LENGTH


def reviews_masks(split: str, seed: int = 0, max_length: int = MAX_LENGTH) -> np.ndarray:
    return token_masks(generate(split, seed), max_length)


def text_info(name: str, class_names: list[str], length: int, description: str = "", **extra) -> DatasetInfo:
    """A text dataset's DatasetInfo: img_size = (1, L) token positions, no normalisation."""
    return DatasetInfo(name=name, class_names=list(class_names), in_chans=1, img_size=(1, length), mean=(0.0,),
                       std=(1.0,), description=description, extra=dict(modality="text", **extra))


@register_dataset("reviews", label="Reviews (generated, with decisive words)", modality="text",
                  task="classification", ground_truth="token_spans", masks=reviews_masks, rule=RULE_TEXT)
def load_reviews_split(split: str, *, img_size=None, seed: int = 0) -> Split:
    """Generated product reviews with negation, contrast, distractors and a held-out test family."""
    length = _length(img_size)
    reviews = generate(split, seed)
    ids = review_ids(reviews, length)
    labels = torch.tensor([r.label for r in reviews], dtype=torch.long)
    info = text_info("reviews", CLASS_NAMES, length, "generated product reviews",
                     families=[r.family for r in reviews], texts=[r.text for r in reviews])
    return Split(TensorDataset(ids, labels), info)
