"""`python -m sop figure`: a paper figure (PDF, SVG or PNG) of one SOP explanation.

An image model: the input, the scored groups, the overlay and the curves (`sop.figure`).  A text
model (`--text "..."` or `--input test:<index>`): the sentence with its scored groups in their
colours, each group alone (`sop.text_figure`, the explorer's text figure)."""
from __future__ import annotations

from pathlib import Path

SPLITS = ("test", "val", "train")


def register(sub) -> None:
    from ..faithfulness import BASELINES, DEFAULT_BASELINE, DEFAULT_STEPS
    from ..figure import DEFAULT_DPI, DEFAULT_WIDTH
    p = sub.add_parser("figure", help="a paper figure of one SOP explanation: the input, each scored group with "
                                      "its score, the combined overlay and the insertion/deletion curves "
                                      "(PDF/SVG/PNG by the --out suffix)")
    p.add_argument("--model", default="digits",
                   help="an embedded model's name (digits, parts, reviews) or an SOP checkpoint (*_sop.safetensors)")
    p.add_argument("--input", metavar="IMG|SPLIT:INDEX",
                   help="an image file (PNG, JPEG, GIF, BMP, WebP, TIFF), or test:<index> (also val:, train:) "
                        "for a sample of the model's dataset (a text model: only SPLIT:INDEX)")
    p.add_argument("--text", metavar="SENTENCE",
                   help="a text model only: the sentence to explain, instead of --input (kept literal; "
                        "cut to the model's tokens, with a notice)")
    p.add_argument("--out", type=Path, required=True, help="output file: fig.pdf, fig.svg or fig.png")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help="pixel-wise insertion/deletion steps (image models)")
    p.add_argument("--baseline", choices=BASELINES, default=DEFAULT_BASELINE, help="removal baseline of the curves (image models)")
    p.add_argument("--width", type=float, default=DEFAULT_WIDTH, help="figure width in inches (image models; the text figure is 11 in wide)")
    p.add_argument("--dpi", type=int, default=DEFAULT_DPI, help="PNG resolution (pixels per inch)")
    p.add_argument("--invert", action="store_true", help="invert the image file's brightness first "
                                                         "(black ink on white for a white-on-black model)")
    p.set_defaults(func=run)


def resolve_model(text: str) -> Path:
    from ..errors import InputError
    from ..zoo import embedded_models
    embedded = {m.name: m.sop_path for m in embedded_models(modality=None)}
    if text in embedded:
        return embedded[text]
    path = Path(text)
    if not path.is_file():
        raise InputError(f"--model {text!r} is neither an embedded model ({', '.join(embedded) or 'none found'}) "
                         "nor a checkpoint file")
    return path


def read_input(model, text: str, *, invert: bool = False):
    """(x (1, C, H, W), true label or None, a short name) from an image file or SPLIT:INDEX, through
    the library functions the app's inputs use (`sop.image_io.model_input`, `sop.data.split_sample`,
    seed `SAMPLE_SEED`): `test:12` here is the image a link with `input=test:12` shows."""
    from ..data import SAMPLE_SEED, load_split, split_sample
    from ..errors import ImageError, InputError
    from ..image_io import model_input
    cfg = model.config
    split, sep, index = text.partition(":")
    if sep and split in SPLITS:
        if not index.isdigit():
            raise InputError(f"--input {text!r}: the index after '{split}:' must be a whole number")
        data = load_split(cfg.dataset, split, img_size=tuple(cfg.img_size), seed=SAMPLE_SEED)
        x, y = split_sample(data, int(index), where=f"--input {text!r}: the {split} split of {cfg.dataset!r}")
        return x, y, f"{split}:{index}"
    path = Path(text)
    if not path.is_file():
        raise ImageError(f"--input {text!r}: no such image file (or use test:<index> for a dataset sample)")
    return model_input(path, cfg, invert=invert), None, path.name


def run(args) -> int:
    import logging

    from ..checkpoint import checkpoint_name, load
    from ..errors import InputError
    from ..figure import explanation_figure, figure_data, figure_format, group_axes, save_figure
    fmt = figure_format(args.out)  # refuse a bad suffix before any work
    if args.steps < 1 or args.dpi < 1 or not args.width > 0:
        raise InputError("--steps, --dpi and --width must be positive")
    model = load(resolve_model(args.model))
    model_name = checkpoint_name(args.model)
    from ..text import is_text_backbone
    if is_text_backbone(model.config.backbone):
        return run_text(args, model, model_name, fmt)
    if args.text is not None:
        raise InputError(f"--text is for text models; {model_name} reads images: use --input IMG or --input test:<index>")
    if args.input is None:
        raise InputError("--input is required: an image file or test:<index>")
    x, label, name = read_input(model, args.input, invert=args.invert)
    logging.getLogger("sop.figure").info("explaining %s with %s and computing both curve kinds", name, model_name)
    data = figure_data(model, x, steps=args.steps, baseline=args.baseline, true_label=label,
                       title=f"{model_name} · {name}")
    fig = explanation_figure(data, width=args.width)
    path = save_figure(fig, args.out, dpi=args.dpi)
    w, h = fig.get_size_inches()
    size = f"{int(w * args.dpi)}x{int(h * args.dpi)} px" if fmt == "png" else f"{w:.2f}x{h:.2f} in"
    print(f"wrote {path} ({fmt.upper()}, {size}, {len(group_axes(fig))} scored groups)", flush=True)
    return 0


def read_text_input(model, text: str | None, where: str | None):
    """(ids (1, L), true label or None, a short name) of a typed sentence (literal, `sop.typed_text`)
    or of SPLIT:INDEX of the model's dataset (the sample a link with input=test:12 shows)."""
    from ..data import SAMPLE_SEED, load_split, split_sample
    from ..errors import InputError
    from ..typed_text import encode_typed
    cfg = model.config
    if (text is None) == (where is None):
        raise InputError('a text model takes either --text "a sentence" or --input test:<index>')
    if text is not None:
        typed = encode_typed(text, int(cfg.img_size[-1]))
        if typed.truncated:
            print(f"note: the text needs {typed.total_tokens} tokens; the model reads the first {cfg.img_size[-1]} "
                  "([CLS] and [SEP] included)", flush=True)
        return typed.ids, None, "your sentence"
    split, sep, index = where.partition(":")
    if not (sep and split in SPLITS and index.isdigit()):
        raise InputError(f"--input {where!r}: a text model takes test:<index> (also val:, train:), or --text")
    data = load_split(cfg.dataset, split, img_size=tuple(cfg.img_size), seed=SAMPLE_SEED)
    ids, y = split_sample(data, int(index), where=f"--input {where!r}: the {split} split of {cfg.dataset!r}")
    return ids, y, f"{split}:{index}"


def run_text(args, model, model_name: str, fmt: str) -> int:
    from ..figure import save_figure
    from ..text_explain import explain_sentence
    from ..text_figure import sentence_figure
    ids, label, name = read_text_input(model, args.text, args.input)
    sx = explain_sentence(model, ids)
    fig = sentence_figure(sx, model.config.class_names, title=f"{model_name} · {name}", true_label=label)
    path = save_figure(fig, args.out, dpi=args.dpi)
    w, h = fig.get_size_inches()
    size = f"{int(w * args.dpi)}x{int(h * args.dpi)} px" if fmt == "png" else f"{w:.2f}x{h:.2f} in"
    print(f"wrote {path} ({fmt.upper()}, {size}, {len(sx.used)} scored groups, predicts "
          f"{model.config.class_names[sx.prediction]})", flush=True)
    return 0
