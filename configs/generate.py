"""Write the paper's experiment grid (backbone x dataset x order) as small YAML files that build
on derain.yaml / deblur.yaml (which build on paper.yaml). Run from anywhere:

    python configs/generate.py          # (re)write configs/derain/*.yaml and configs/deblur/*.yaml
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
    # trained on GoPro, tested on GoPro, HIDE and RealBlur without retraining (paper §4.1)
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
# MPRNet's published evaluation rounds Y to 8 bits (DATASETS.md); PReNet's and DCM's do not
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
              f"{' (the plain backbone)' if order == 0 else ''}.\n"
              "# Written by configs/generate.py: change that script, not this file.\n")
    return f"{task}/{name}.yaml", header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def grid() -> dict[str, str]:
    """{path relative to configs/: file text} of every grid config."""
    tables: dict[tuple, list[str]] = {}
    for table, task, backbones, train_sets, orders in TABLES:
        for backbone in backbones:
            for train_set in train_sets:
                for order in orders:
                    tables.setdefault((backbone, train_set, order, task), []).append(table)
    return dict(_entry(*key, sorted(set(names))) for key, names in tables.items())


def main(argv: list[str]) -> int:
    files = grid()
    if "--check" in argv:
        stale = [p for p, text in files.items() if not (HERE / p).is_file() or (HERE / p).read_text() != text]
        extra = [str(p.relative_to(HERE)) for task in ("derain", "deblur") for p in (HERE / task).glob("*.yaml")
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
