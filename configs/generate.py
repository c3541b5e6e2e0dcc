"""Write the paper's experiment grid (backbone x dataset x order) as small YAML files that build
on derain.yaml / deblur.yaml (which build on paper.yaml), and the grid of the tasks the paper
leaves as future work, denoising and super-resolution (on denoise.yaml / sr.yaml, which follow
DnCNN's and EDSR's recipes). Run from anywhere:

    python configs/generate.py          # (re)write configs/{derain,deblur,denoise,sr}/*.yaml
    python configs/generate.py --check  # exit 1 if the committed files differ from the grid

Dataset folders are named as distributed, under ${TAYLOR_FAST_DATA} (see README, "Reproducing
the paper"). The tests check that the committed files equal what this script writes.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DATA = "${TAYLOR_FAST_DATA}"

# training set -> (train dataset, its folder, [(label, eval dataset, folder, split)])
DERAIN = {
    "rain100h": ("rain100h-train", "RainTrainH", [("rain100h", "rain100h", "Rain100H", "test")]),
    "rain100l": ("rain100l-train", "RainTrainL", [("rain100l", "rain100l", "Rain100L", "test")]),
    "rain800": ("rain800", "Rain800", [("rain800", "rain800", "Rain800", "test")]),
    # MPRNet's setting: trained on Rain13K, tested on Rain100H/L as MPRNet ships them (input/, target/)
    "rain13k": ("rain13k", "MPRNet/train/Rain13K", [("rain100h", "rain13k", "MPRNet/test/Rain100H", "test"),
                                                     ("rain100l", "rain13k", "MPRNet/test/Rain100L", "test")]),
}
DEBLUR = {
    # trained on GoPro, tested on GoPro, HIDE and RealBlur without retraining, as the paper evaluates them
    "gopro": ("gopro", "GoPro", [("gopro", "gopro", "GoPro", "test"), ("hide", "hide", "HIDE", "test"),
                                 ("realblur-j", "realblur-j", "RealBlur", "test"),
                                 ("realblur-r", "realblur-r", "RealBlur", "test")]),
}

# (table, task, backbones, training sets, orders); DCM = dualgcn, MSCNN = msresnet
TABLES = [
    ("Table 1", "derain", ("ddn", "prenet", "dualgcn"), ("rain100h", "rain100l", "rain800"), (0, 3)),
    ("Table 1", "derain", ("mprnet_derain",), ("rain13k",), (0, 3)),
    ("Table 2", "deblur", ("dualgcn", "msresnet", "rdn"), ("gopro",), (0, 3)),
    ("Table 3", "derain", ("dualgcn",), ("rain100h", "rain100l", "rain800"), tuple(range(7))),
    ("Table 4", "deblur", ("dualgcn",), ("gopro",), tuple(range(7))),
]
# MPRNet's published evaluation rounds Y to 8 bits (docs/datasets.md); PReNet's and DCM's do not
QUANTIZE = {"mprnet_derain"}


def _entry(backbone: str, train_set: str, order: int, task: str, tables: list[str]) -> tuple[str, str]:
    sets = (DERAIN if task == "derain" else DEBLUR)[train_set]
    name = f"{backbone}_{train_set}_o{order}"
    dataset, folder, tests = sets
    config = {
        "base": f"../{task}.yaml",
        "name": name,
        "model": {"backbone": backbone, "order": order},
        "data": {"train": {"dataset": dataset, "root": f"{DATA}/{folder}"}},
        "eval": {"sets": [{"label": label, "dataset": ds, "root": f"{DATA}/{path}", "split": split}
                          for label, ds, path, split in tests]},
    }
    if backbone in QUANTIZE:
        config["eval"]["quantize"] = True
    header = (f"# {', '.join(tables)}: {backbone} trained on {train_set}, Taylor order {order}"
              f"{' (the plain backbone)' if order == 0 else ''}.\n")
    return f"{task}/{name}.yaml", _text(header, config)


# ---- beyond the paper: denoising (DnCNN's settings) and super-resolution (EDSR's, RDN's)
NOISE_LEVELS = (15, 25, 50)  # sigma on the 0..255 scale: the field's three levels
# setting -> (training folder, channels, patch, [(label, test set, folder)])
DENOISE = {
    # DnCNN's grey setting: 400 BSD images for training, Set12 and BSD68 for testing
    "bsd400": ("BSD400", 1, 40, [("set12", "set12", "Set12"), ("bsd68", "bsd68", "BSD68")]),
    # its colour setting: the 432 colour BSD images (patch 50), tested on CBSD68, Kodak24, McMaster
    "cbsd432": ("CBSD432", 3, 50, [("cbsd68", "cbsd68", "CBSD68"), ("kodak24", "kodak24", "Kodak24"),
                                   ("mcmaster", "mcmaster", "McMaster")]),
}
SR_SCALES = (2, 3, 4)
SR_TESTS = [("set5", "Set5"), ("set14", "Set14"), ("bsd100", "BSD100"), ("urban100", "Urban100"),
            ("manga109", "Manga109")]
# backbone -> (low-resolution patch side, recipe beyond sr.yaml, what it follows)
SR_BACKBONES = {
    "edsr_baseline": (48, {}, "EDSR's recipe (sr.yaml)"),
    # RDN's paper: 16 patches of 32x32, lr 1e-4 halved every 200 epochs of 1000 iterations; it
    # gives no total, 1000 epochs here
    "rdn_sr": (32, {"epochs": 1000, "milestones": [200, 400, 600, 800]},
               "RDN's recipe: 32x32 low-resolution patches, lr halved every 200 epochs, 1000 epochs (the paper "
               "gives no total)"),
}
BEYOND_ORDERS = (0, 3)


def _text(header: str, config: dict) -> str:
    return header + "# Written by configs/generate.py: change that script, not this file.\n" + yaml.safe_dump(
        config, sort_keys=False, default_flow_style=None)


def _denoise(setting: str, sigma: int, order: int) -> tuple[str, str]:
    folder, channels, patch, tests = DENOISE[setting]
    name = f"dncnn_{setting}_s{sigma}_o{order}"
    sets = [{"label": label, "dataset": ds, "root": f"{DATA}/{path}", "split": "test", "options": {"sigma": sigma}}
            for label, ds, path in tests]
    config = {
        "base": "../denoise.yaml",
        "name": name,
        "model": {"backbone": "dncnn", "channels": channels, "order": order},
        "data": {"train": {"dataset": "clean-folder", "root": f"{DATA}/{folder}", "patch": patch,
                           "options": {"sigma": sigma}}},
        "eval": {"sets": sets},
    }
    kind = "grey" if channels == 1 else "colour"
    header = (f"# Denoising, {kind}, sigma {sigma}: dncnn trained on {folder}, Taylor order {order}"
              f"{' (the plain backbone)' if order == 0 else ''}.\n")
    return f"denoise/{name}.yaml", _text(header, config)


def _sr(backbone: str, scale: int, order: int) -> tuple[str, str]:
    low, recipe, follows = SR_BACKBONES[backbone]
    name = f"{backbone}_div2k_x{scale}_o{order}"
    config = {
        "base": "../sr.yaml",
        "name": name,
        "model": {"backbone": backbone, "scale": scale, "order": order},
        "data": {"train": {"patch": low * scale}},
        "eval": {"crop_border": scale,
                 "sets": [{"label": label, "dataset": label, "root": f"{DATA}/{path}", "split": "test"}
                          for label, path in SR_TESTS]},
    }
    if recipe:
        config["train"] = recipe
    header = (f"# Super-resolution x{scale}: {backbone} trained on DIV2K, Taylor order {order}"
              f"{' (the plain backbone)' if order == 0 else ''}; {follows}.\n")
    return f"sr/{name}.yaml", _text(header, config)


def beyond() -> dict[str, str]:
    """{path relative to configs/: file text} of the denoising and super-resolution configs."""
    files = [_denoise(setting, sigma, order) for setting in DENOISE for sigma in NOISE_LEVELS
             for order in BEYOND_ORDERS]
    files += [_sr(backbone, scale, order) for backbone in SR_BACKBONES for scale in SR_SCALES
              for order in BEYOND_ORDERS]
    return dict(files)


def paper_grid() -> dict[str, str]:
    """{path relative to configs/: file text} of the paper's tables."""
    tables: dict[tuple, list[str]] = {}
    for table, task, backbones, train_sets, orders in TABLES:
        for backbone in backbones:
            for train_set in train_sets:
                for order in orders:
                    tables.setdefault((backbone, train_set, order, task), []).append(table)
    return dict(_entry(*key, sorted(set(names))) for key, names in tables.items())


def grid() -> dict[str, str]:
    """{path relative to configs/: file text} of every generated config."""
    return {**paper_grid(), **beyond()}


def main(argv: list[str]) -> int:
    files = grid()
    if "--check" in argv:
        stale = [p for p, text in files.items() if not (HERE / p).is_file() or (HERE / p).read_text() != text]
        extra = [str(p.relative_to(HERE)) for task in ("derain", "deblur", "denoise", "sr")
                 for p in (HERE / task).glob("*.yaml")
                 if str(p.relative_to(HERE)) not in files]
        for path in stale + extra:
            print(f"out of date: configs/{path} (run python configs/generate.py)")
        return 1 if stale or extra else 0
    for path, text in files.items():
        (HERE / path).parent.mkdir(exist_ok=True)
        (HERE / path).write_text(text)
    print(f"wrote {len(files)} configs under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
