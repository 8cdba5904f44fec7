"""Write the small sample images under assets/samples/ (for trying uploads and for the tests).

    python -m explorer.make_samples

Every file is rendered from a test split of the bundled datasets, so the expected class is
known (it is in the file name):
  digit_<k>_test<i>.png       a digit scan, white ink on black, 32x32 greyscale (as the model sees it)
  digit_<k>_test<i>_large.jpg the same digit at 256x256 as an RGB JPEG (resized by the app)
  parts_<label>_test<i>.png   a parts scene, 32x32 RGB
The output is deterministic (same pixels every run).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assets" / "samples"


def digit_samples() -> list[tuple[str, Image.Image]]:
    from sop.data.digits import digits_arrays, split_indices
    images, labels = digits_arrays()
    test = split_indices(labels)["test"]
    out = []
    for want in (7, 3):
        pos = int(np.flatnonzero(labels[test] == want)[0])
        i = int(test[pos])
        small = Image.fromarray(np.round(images[i] * 255).astype(np.uint8), mode="L")
        img32 = small.resize((32, 32), Image.Resampling.NEAREST)
        out.append((f"digit_{want}_test{pos}.png", img32))
        if want == 3:
            out.append((f"digit_{want}_test{pos}_large.jpg",
                        small.resize((256, 256), Image.Resampling.NEAREST).convert("RGB")))
    return out


def parts_samples() -> list[tuple[str, Image.Image]]:
    from sop.data import PartsScenes
    scenes = PartsScenes.generate("test", size=64)
    out = []
    for label, name in ((1, "positive"), (0, "negative")):
        i = int(np.flatnonzero(scenes.labels == label)[0])
        arr = np.round(scenes.images[i].transpose(1, 2, 0) * 255).astype(np.uint8)
        out.append((f"parts_{name}_test{i}.png", Image.fromarray(arr, mode="RGB")))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, img in digit_samples() + parts_samples():
        path = args.out / name
        if name.endswith(".jpg"):
            img.save(path, quality=90)
        else:
            img.save(path, optimize=True)
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
