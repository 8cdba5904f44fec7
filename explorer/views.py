"""Which page bodies draw a model.

Every model has a *view kind*: "image" (classifiers over images: the pages in explorer/pages as they
are), "text" (token groups over a sentence) or "regression" (continuous targets, e.g. the lensing
maps).  The image pages are the page files themselves; the other kinds live in their own modules
(VIEW_MODULES), each with

    input_picker(lm) -> input | None        the sidebar input chooser for that kind
    thumbnail(lm, mi) -> None               the sidebar preview of the chosen input
    draw(page, ctx) -> None                 the body of page "explain", "compare" or "mistakes"

A kind is shown (listed in the picker, loadable) once its module exists, so a new kind plugs in
without editing the shared pages.
"""
from __future__ import annotations

import importlib
import importlib.util

VIEW_MODULES = {"text": "explorer.text_pages", "regression": "explorer.regression_pages"}


def kind_of(modality: str | None, task: str | None) -> str:
    """The view kind of a model of this modality ("image"/"text") and task ("classification"/...)."""
    if modality == "text":
        return "text"
    if task == "regression":
        return "regression"
    return "image"


def kind_of_model(lm) -> str:
    return kind_of(getattr(lm.model, "modality", "image"), lm.config.task)


def shown(kind: str) -> bool:
    """Whether the pages can draw models of this kind."""
    return kind == "image" or (kind in VIEW_MODULES and importlib.util.find_spec(VIEW_MODULES[kind]) is not None)


def module(kind: str):
    return importlib.import_module(VIEW_MODULES[kind])


def input_picker(lm):
    kind = kind_of_model(lm)
    if kind == "image":
        from .inputs import input_picker as image_picker
        return image_picker(lm)
    return module(kind).input_picker(lm)


def draw(page: str, ctx) -> bool:
    """Draw `page` for a non-image model and return True; False for image models (the page goes on)."""
    if ctx.lm is None:
        return False
    kind = kind_of_model(ctx.lm)
    if kind == "image":
        return False
    module(kind).draw(page, ctx)
    return True
