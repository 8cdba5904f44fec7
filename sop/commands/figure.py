"""`python -m sop figure`: a paper figure (PDF, SVG or PNG) of one SOP explanation."""
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
                   help="an embedded model's name (digits, parts) or an SOP checkpoint (*_sop.safetensors)")
    p.add_argument("--input", required=True, metavar="IMG|SPLIT:INDEX",
                   help="an image file (PNG, JPEG, GIF, BMP, WebP, TIFF), or test:<index> (also val:, train:) "
                        "for a sample of the model's dataset")
    p.add_argument("--out", type=Path, required=True, help="output file: fig.pdf, fig.svg or fig.png")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="pixel-wise insertion/deletion steps")
    p.add_argument("--baseline", choices=BASELINES, default=DEFAULT_BASELINE, help="removal baseline of the curves")
    p.add_argument("--width", type=float, default=DEFAULT_WIDTH, help="figure width in inches")
    p.add_argument("--dpi", type=int, default=DEFAULT_DPI, help="PNG resolution (pixels per inch)")
    p.add_argument("--invert", action="store_true", help="invert the image file's brightness first "
                                                         "(black ink on white for a white-on-black model)")
    p.set_defaults(func=run)


def resolve_model(text: str) -> Path:
    from ..errors import InputError
    from ..zoo import embedded_models
    embedded = {m.name: m.sop_path for m in embedded_models()}
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
    x, label, name = read_input(model, args.input, invert=args.invert)
    model_name = checkpoint_name(args.model)
    logging.getLogger("sop.figure").info("explaining %s with %s and computing both curve kinds", name, model_name)
    data = figure_data(model, x, steps=args.steps, baseline=args.baseline, true_label=label,
                       title=f"{model_name} · {name}")
    fig = explanation_figure(data, width=args.width)
    path = save_figure(fig, args.out, dpi=args.dpi)
    w, h = fig.get_size_inches()
    size = f"{int(w * args.dpi)}x{int(h * args.dpi)} px" if fmt == "png" else f"{w:.2f}x{h:.2f} in"
    print(f"wrote {path} ({fmt.upper()}, {size}, {len(group_axes(fig))} scored groups)", flush=True)
    return 0
