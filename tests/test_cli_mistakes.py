"""Every command of the CLI fed the mistakes a new user makes: each must end in one line on
stderr naming what was wrong (no traceback), a non-zero exit, and nothing written.

Most cases call taylor_fast.cli.main in this process (a child process would spend seconds
importing torch for each); a few run `python -m taylor_fast` in real processes to prove the
exit path end to end, and CASES in one table keeps them all in sight.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from engine_helpers import make_rain_set, smooth_image
from imaging import random_rgb, save, snapshot

from taylor_fast import cli
from taylor_fast.data import write_image
from taylor_fast.engine import checkpoint
from taylor_fast.engine.lock import exclusive

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a mistake only where no CUDA GPU is visible")

# (command line, exit status, a fragment of the one line on stderr); {names} are the files the
# `sandbox` fixture makes, OUT a path that must not come to exist, FILE an existing plain file
CASES = [
    # ---- info
    (["info", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["info", "--json", "extra"], 2, "unrecognized arguments: extra"),
    # ---- demo (checked before the rain set is synthesised)
    (["demo", "--out", "{OUT}", "--iters", "0"], 2, "argument --iters: expected an integer >= 1, got '0'"),
    (["demo", "--out", "{OUT}", "--time-budget", "-1"], 2, "argument --time-budget: expected a number >= 0, got '-1'"),
    (["demo", "--out", "{OUT}", "--seed", "-2"], 2, "argument --seed: expected an integer >= 0"),
    (["demo", "--out", "{OUT}", "--patch", "999"], 2, "--patch 999: at --size 256 the smallest training photograph"),
    (["demo", "--out", "{OUT}", "--size", "8", "--patch", "4"], 2, "SSIM needs at least 11: raise --size"),
    (["demo", "--out", "{FILE}"], 2, "expected a folder, but it is an existing file"),
    (["demo", "--out", "{OUT}", "--preset", "drizzle"], 2, "invalid choice: 'drizzle'"),
    # ---- synth
    (["synth", "--kind", "snow", "--out", "{OUT}"], 2, "invalid choice: 'snow'"),
    (["synth", "--kind", "rain", "--out", "{OUT}", "--count", "0"], 2, "--count: expected a positive number"),
    (["synth", "--kind", "rain", "--out", "{OUT}", "--clean", "{MISSING}"], 2, "it does not exist"),
    (["synth", "--kind", "rain", "--out", "{OUT}", "--clean", "{EMPTY}"], 2, "holds no images"),
    (["synth", "--kind", "rain", "--out", "{FILE}"], 2, "expected a folder, but it is an existing file"),
    (["synth", "--kind", "blur", "--out", "{OUT}", "--preset", "light"], 2, "--preset applies to --kind rain only"),
    (["synth", "--kind", "rain", "--out", "{DATA}"], 1, "pass --overwrite to replace them"),
    (["synth", "--kind", "noise", "--out", "{OUT}", "--sigma", "-5"], 2,
     "--sigma: expected a noise standard deviation >= 0 on the 0..255 scale"),
    (["synth", "--kind", "noise", "--out", "{OUT}", "--sigma", "0"], 2, "sigma and poisson are both 0"),
    (["synth", "--kind", "noise", "--out", "{OUT}", "--scale", "2"], 2, "--scale applies to --kind sr only"),
    (["synth", "--kind", "sr", "--out", "{OUT}"], 2, "--kind sr needs --scale 2, 3 or 4"),
    (["synth", "--kind", "sr", "--out", "{OUT}", "--scale", "5"], 2, "argument --scale: invalid choice: 5"),
    (["synth", "--kind", "rain", "--out", "{OUT}", "--sigma", "5"], 2, "--sigma and --poisson apply to --kind noise"),
    # ---- bench (checked before any timing)
    (["bench", "--size", "0x3x4x4"], 2, "argument --size: a size must be NxCxHxW with positive integers"),
    (["bench", "--size", "1x3x4"], 2, "argument --size: a size must be NxCxHxW"),
    (["bench", "--backends", "nope"], 2, "--backends: nope not among"),
    (["bench", "--json", "{FILE}/results.json"], 2, "is a file, not a folder"),
    (["bench", "--json", "{EMPTY}"], 2, "is a folder; name a file"),
    pytest.param(["bench", "--device", "cuda"], 2, "torch sees no CUDA GPU", marks=NO_GPU),
    # ---- train (checked before the run folder is created)
    (["train", "--out", "{OUT}", "--dataset", "nope"], 2, "data.train.dataset: unknown dataset name 'nope'"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--backbone", "nope"], 2, "unknown backbone 'nope'"),
    pytest.param(["train", "--out", "{OUT}", "--root", "{DATA}", "--backend", "cuda"], 2,
                 "model.backend: backend 'cuda' cannot run this call", marks=NO_GPU),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--backend", "gpu"], 2, "model.backend: expected one of"),
    (["TAYLOR_FAST_BACKEND=cpuu", "train", "--out", "{OUT}", "--root", "{DATA}"], 2,
     "TAYLOR_FAST_BACKEND must be 'auto' or one of"),
    pytest.param(["train", "--out", "{OUT}", "--root", "{DATA}", "--device", "cuda"], 2,
                 "--device cuda: torch sees no CUDA device", marks=NO_GPU),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--device", "tpu"], 2, "invalid choice: 'tpu'"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "model.hidden=0"], 2,
     "model.hidden: expected a positive value, got 0"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "model.backbone_options.width=0"], 2,
     "model.backbone_options {'width': 0}: tiny cannot run with them"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "model.backbone_options.width=-1"], 2,
     "model.backbone_options for tiny"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "model.backbone_options.bogus=1"], 2,
     "unexpected keyword argument 'bogus'"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "nope=1"], 2, "unknown key 'nope'"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "train.lr"], 2, "--set: expected KEY=VALUE"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "data.train.options.foo=1"], 2,
     "data.train.options: paired does not take foo"),
    (["train", "--out", "{OUT}", "--dataset", "rain100h", "--root", "{DATA}"], 2,
     "data.train.split: rain100h has the split 'test', got 'train'"),
    (["train", "--out", "{OUT}", "--config", "{MISSING}"], 2, "does not exist"),
    (["train", "--out", "{OUT}", "--config", "{MISSING}", "--resume"], 2, "does not exist"),
    (["train", "--out", "{OUT}", "--config", "{BADYAML}"], 2, "not valid YAML"),
    (["train", "--out", "{OUT}", "--root", "{MISSING}"], 1, "does not exist"),
    (["train", "--out", "{OUT}", "--root", "${TAYLOR_FAST_DATA}/RainTrainH"], 2,
     "uses the environment variable TAYLOR_FAST_DATA, which is not set"),
    (["TAYLOR_FAST_DATA=", "train", "--out", "{OUT}", "--root", "${TAYLOR_FAST_DATA}/RainTrainH"], 2,
     "TAYLOR_FAST_DATA, which is empty"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--patch", "41"], 2, "data.train.patch: 41 is larger than"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--iters", "0"], 2, "train.iters: expected a positive value"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--iters", "2", "--epochs", "1"], 2, "not allowed with"),
    (["train", "--out", "{FILE}", "--root", "{DATA}"], 2, "--out {FILE}: expected a folder, but it is an existing"),
    (["train", "--out", "{OUT}", "--root", "{MIXED}"], 1, "ambiguous name"),
    (["train", "--out", "{OUT}", "--root", "{UNEVEN}"], 1, "pass --set data.train.skip_bad=true to skip"),
    (["train", "--out", "{RUN}", "--root", "{DATA}"], 1, "already holds a checkpoint"),
    # ---- train: denoising and super-resolution settings (checked before the run folder is created)
    (["train", "--out", "{OUT}", "--task", "sr", "--scale", "5", "--backbone", "edsr_baseline", "--dataset",
      "hr-folder", "--root", "{HR}"], 2, "model.scale: edsr_baseline upscales by 2, 3, 4, got 5"),
    (["train", "--out", "{OUT}", "--task", "sr", "--scale", "2", "--dataset", "hr-folder", "--root", "{HR}"], 2,
     "model.scale: tiny keeps the input's size, so it cannot upscale by 2; super-resolution backbones: edsr"),
    (["train", "--out", "{OUT}", "--task", "sr", "--backbone", "edsr_baseline", "--dataset", "hr-folder", "--root",
      "{HR}"], 2, "model.scale: task sr needs the super-resolution factor (2, 3 or 4), got 1"),
    (["train", "--out", "{OUT}", "--task", "derain", "--scale", "2", "--root", "{DATA}"], 2,
     "model.scale: 2 upscales, which is task sr, but task is 'derain'"),
    (["train", "--out", "{OUT}", "--task", "sr", "--scale", "3", "--backbone", "edsr_baseline", "--patch", "32",
      "--dataset", "hr-folder", "--root", "{HR}"], 2, "data.train.patch: 32 is not a multiple of model.scale (3)"),
    (["train", "--out", "{OUT}", "--task", "sr", "--scale", "2", "--backbone", "edsr_baseline", "--dataset",
      "hr-folder", "--root", "{HR}", "--set", "data.train.options.scale=3"], 2,
     "data.train.options: the dataset option scale=3 differs from the model's scale 2 (model.scale)"),
    (["train", "--out", "{OUT}", "--task", "sr", "--scale", "2", "--backbone", "edsr_baseline", "--dataset",
      "hr-folder", "--root", "{HR}", "--patch", "48"], 2, "data.train.patch: 48 is larger than {HR}/0.png"),
    (["train", "--out", "{OUT}", "--task", "denoise", "--dataset", "clean-folder", "--root", "{HR}"], 2,
     "data.train.dataset: clean-folder: give sigma= the noise standard deviation"),
    (["train", "--out", "{OUT}", "--task", "denoise", "--dataset", "clean-folder", "--root", "{HR}", "--set",
      "data.train.options.sigma=-5"], 2, "sigma: expected a noise standard deviation >= 0 on the 0..255 scale"),
    (["train", "--out", "{OUT}", "--task", "denoise", "--dataset", "clean-folder", "--root", "{HR}", "--set",
      "data.train.options.noise=5"], 2, "data.train.options: clean-folder does not take noise; it takes sigma"),
    (["train", "--out", "{OUT}", "--channels", "1", "--root", "{DATA}"], 2,
     "eval.channel: y needs colour images, but model.channels is 1"),
    (["train", "--out", "{OUT}", "--channels", "2", "--root", "{DATA}"], 2, "argument --channels: invalid choice: 2"),
    (["train", "--out", "{OUT}", "--task", "inpaint", "--root", "{DATA}"], 2, "argument --task: invalid choice"),
    # ---- train: the run folder's own files, its lock, and what a resumed run may not change
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "paths.log=last.ckpt"], 2,
     "paths.log: 'last.ckpt' would write over the run's last.ckpt"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "paths.log=.taylor_fast.lock"], 2,
     "would write over the run's .taylor_fast.lock"),
    (["train", "--out", "{OUT}", "--root", "{DATA}", "--set", "paths.tensorboard=train.log"], 2, "would overlap"),
    (["train", "--out", "{RUN}", "--resume", "--set", "paths.log=."], 2, "is the run folder itself"),
    (["train", "--out", "{RUN}", "--resume", "--set", "paths.log=tb"], 2, "would overlap"),
    (["train", "--out", "{RUN}", "--resume", "--set", "model.hidden=8"], 2,
     "a resumed run cannot change model.hidden: 4 -> 8"),
    (["train", "--out", "{RUN}", "--resume", "--root", "{MISSING}"], 1, "does not exist"),
    (["train", "--out", "{RUN}", "--resume", "--root", "{UNEVEN}"], 1, "pass --set data.train.skip_bad=true"),
    (["train", "--out", "{BUSY}", "--resume"], 1, "{BUSY} is in use by train (pid"),
    # ---- eval (checked before the model runs)
    (["eval", "{EVAL}", "--dataset", "nope"], 2, "--dataset: unknown dataset name 'nope'"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--option", "foo=1"], 2,
     "--option: paired does not take foo; it takes input, target"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--option", "foo"], 2,
     "--option: expected KEY=VALUE"),
    (["eval", "{EVAL}", "--dataset", "gopro", "--root", "{DATA}", "--option", "blur=xx"], 1,
     "option blur: expected 'blur' or 'blur_gamma', got 'xx'"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--split", "train"], 2,
     "--split train: paired has no splits"),
    (["eval", "{EVAL}", "--dataset", "rain100h", "--root", "{DATA}", "--split", "train"], 2,
     "--split: rain100h has the split 'test', got 'train'"),
    (["eval", "{EVAL}", "--root", "{DATA}"], 2, "--root needs --dataset"),
    (["eval", "{EVAL}"], 2, "the checkpoint's config lists no eval.sets"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--crop-border", "200"], 2,
     "--crop-border 200 crops the whole image away"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--crop-border", "15"], 2,
     "--crop-border 15 leaves 10x18; SSIM needs at least 11x11 pixels: lower --crop-border"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--crop-border", "-1"], 2,
     "--crop-border: expected 0 or more pixels, got -1"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{SMALL}"], 2,
     "is 5x5 (HxW); SSIM needs at least 11x11 pixels"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--orders", "3-1"], 2,
     "--orders: the range '3-1' is reversed; write 1-3"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--orders", "x"], 2, "--orders: expected e.g."),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--orders", "40"], 2, "orders in 0..32"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--channel", "lab"], 2, "invalid choice: 'lab'"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--tile", "16", "--overlap", "20"], 2,
     "--overlap: expected 0 <= overlap < tile"),
    pytest.param(["eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}", "--device", "cuda"], 2,
                 "--device cuda: torch sees no CUDA device", marks=NO_GPU),
    (["TAYLOR_FAST_BACKEND=cpuu", "eval", "{EVAL}", "--dataset", "paired", "--root", "{DATA}"], 2,
     "TAYLOR_FAST_BACKEND must be"),
    (["eval", "--checkpoint", "{MISSING}", "--out", "{OUT}", "--dataset", "paired", "--root", "{DATA}"], 1,
     "does not exist"),
    (["eval", "--checkpoint", "{RUN}", "--out", "{OUT}", "--dataset", "paired", "--root", "{DATA}"], 1,
     "checkpoint {RUN} is a folder; give the checkpoint file itself"),
    (["eval", "--checkpoint", "{TRUNCATED}", "--out", "{OUT}", "--dataset", "paired", "--root", "{DATA}"], 1,
     "is truncated or not a checkpoint"),
    (["eval", "--checkpoint", "{HIDDEN16}", "--out", "{OUT}", "--dataset", "paired", "--root", "{DATA}"], 1,
     "derivative.w1 is (4, 6, 3, 3) where the config gives (16, 6, 3, 3)"),
    (["eval", "--checkpoint", "{PER_ORDER}", "--out", "{OUT}", "--dataset", "paired", "--root", "{DATA}"], 1,
     "derivative.w1 is (4, 6, 3, 3) where the config gives (3, 4, 6, 3, 3)"),
    (["eval", "{EVAL}", "--dataset", "rain100h", "--root", "${TAYLOR_FAST_DATA}/Rain100H"], 2,
     "--root: '${TAYLOR_FAST_DATA}/Rain100H' uses the environment variable TAYLOR_FAST_DATA, which is not set"),
    (["eval", "--checkpoint", "{CKPT}", "--out", "{FILE}", "--dataset", "paired", "--root", "{DATA}"], 2,
     "expected a folder, but it is an existing file"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{MIXED}"], 1, "ambiguous name"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{UNEVEN}"], 1,
     "size mismatch: input {UNEVEN}/input/b.png is 12x12 (HxW), target {UNEVEN}/target/b.png is 12x14"),
    (["eval", "{EVAL}", "--dataset", "paired", "--root", "{UNEVEN}"], 1, "pass --skip-bad to skip such pairs"),
    # ---- eval: denoising and super-resolution
    (["eval", "{EVAL}", "--task", "sr", "--dataset", "paired", "--root", "{DATA}"], 2,
     "--task sr: the checkpoint was trained for task 'derain'"),
    (["eval", "--checkpoint", "{SR_CKPT}", "--out", "{OUT}", "--dataset", "set5", "--root", "{SET5}", "--option",
      "scale=3"], 2, "--option: the dataset option scale=3 differs from the model's scale 2"),
    (["eval", "--checkpoint", "{SR_CKPT}", "--out", "{OUT}", "--dataset", "set5", "--root", "{SET5_UNEVEN}"], 1,
     "size mismatch: input {SET5_UNEVEN}/LRbicx2/b.png is 12x17 (HxW), target {SET5_UNEVEN}/GTmod12/b.png is "
     "24x36; at scale 2 the target should be 24x34"),
    (["eval", "--checkpoint", "{SR_CKPT}", "--out", "{OUT}", "--dataset", "set5", "--root", "{SET5_NO_LR}"], 1,
     "target {SET5_NO_LR}/GTmod12/a.png has no input {SET5_NO_LR}/LRbicx2/a.png (and 4 more problems)"),
    (["eval", "--checkpoint", "{SR_CKPT}", "--out", "{OUT}", "--dataset", "set5", "--root", "{SET5}/GTmod12"], 1,
     "set5: expected folder {SET5}/GTmod12/GTmod12, which does not exist"),
    (["eval", "--checkpoint", "{SR_CKPT}", "--out", "{OUT}", "--dataset", "set5", "--root", "{SET5}", "--crop-border",
      "7"], 2, "{SET5}/GTmod12/a.png is 24x36 (HxW); --crop-border 7 leaves 10x22; SSIM needs at least 11x11"),
    (["eval", "--checkpoint", "{GREY_CKPT}", "--out", "{OUT}", "--dataset", "set12", "--root", "{SET12}", "--option",
      "sigma=-5"], 2, "--dataset: sigma: expected a noise standard deviation >= 0"),
    (["eval", "--checkpoint", "{GREY_CKPT}", "--out", "{OUT}", "--dataset", "set12", "--root", "{SET12}"], 2,
     "--dataset: set12: give sigma= the noise standard deviation"),
    (["eval", "{EVAL}", "--dataset", "set12", "--root", "{SET12}", "--option", "sigma=25"], 2,
     "channels: set12 is a grey test set; open it with channels=1 (a 1-channel model"),
    (["eval", "--checkpoint", "{GREY_CKPT}", "--out", "{OUT}", "--dataset", "set12", "--root", "{SET12}", "--option",
      "sigma=25", "--channel", "y"], 2, "--channel y: the checkpoint's model is grey (model.channels 1)"),
    # ---- restore (checked before anything is read or written)
    (["restore", "{IMAGE}", "-o", "{OUT}/", "--checkpoint", "{CKPT}"], 1,
     "the input is a file, so the output must be a file name with an image extension"),
    (["restore", "{DATA}/input", "-o", "{OUT}.png", "--checkpoint", "{CKPT}"], 1,
     "the input is a folder, so the output must be a folder too"),
    (["restore", "{MISSING}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}"], 1, "does not exist"),
    (["restore", "{IMAGE}", "-o", "{IMAGE}", "--checkpoint", "{CKPT}", "--overwrite"], 1,
     "restore never overwrites its inputs"),
    (["restore", "{IMAGE}", "-o", "{DONE}", "--checkpoint", "{CKPT}"], 1, "exists; pass --overwrite"),
    (["restore", "{IMAGE}", "-o", "{OUT}.jpg", "--checkpoint", "{CKPT}", "--bits", "16"], 1, "only PNG holds 16 bits"),
    (["restore", "{IMAGE}", "-o", "{OUT}.txt", "--checkpoint", "{CKPT}"], 1, "unknown image extension '.txt'"),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}", "--format", "jpg"], 1,
     "--format jpg but -o"),
    (["restore", "{DATA}/input", "-o", "{OUT}", "--checkpoint", "{CKPT}", "--format", "gif"], 2,
     "invalid choice: 'gif'"),
    (["restore", "{IMAGE}", "-o", "{OUT}.jpg", "--checkpoint", "{CKPT}", "--quality", "0"], 2,
     "argument --quality: expected an integer in 1..100, got '0'"),
    (["restore", "{IMAGE}", "-o", "{OUT}.jpg", "--checkpoint", "{CKPT}", "--quality", "101"], 2,
     "argument --quality: expected an integer in 1..100"),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}", "--channels", "bgr"], 2,
     "invalid choice: 'bgr'"),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}", "--order", "-1"], 2,
     "--order: order must be an int in [0, 32], got -1"),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}", "--tile", "-1"], 2,
     "--tile: expected a positive size in pixels, got -1"),
    pytest.param(["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}", "--device", "cuda"], 2,
                 "--device cuda: torch sees no CUDA device", marks=NO_GPU),
    (["TAYLOR_FAST_BACKEND=cpuu", "restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}"], 2,
     "environment variable TAYLOR_FAST_BACKEND must be 'auto' or one of"),
    pytest.param(["TAYLOR_FAST_BACKEND=cuda", "restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}"], 2,
                 "the environment variable TAYLOR_FAST_BACKEND chose it", marks=NO_GPU),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{HIDDEN16}"], 1,
     "its weights do not fit the model its config describes (tiny, hidden 16, shared G, order 3)"),
    (["restore", "{NOT_AN_IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}"], 1, "cannot read image"),
    (["restore", "{BROKEN_FOLDER}", "-o", "{OUT}", "--checkpoint", "{CKPT}"], 1, "cannot read image"),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{SR_CKPT}", "--task", "denoise"], 2,
     "--task denoise: the checkpoint was trained for task 'sr' (x2)"),
    (["restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{CKPT}", "--task", "zoom"], 2,
     "argument --task: invalid choice: 'zoom'"),
    # ---- restore: the long-job switches
    (["restore", "{DATA}/input", "-o", "{OUT}", "--checkpoint", "{CKPT}", "--resume", "--overwrite"], 2,
     "argument --overwrite: not allowed with argument --resume"),
    (["restore", "{BROKEN_FOLDER}", "-o", "{OUT}", "--checkpoint", "{CKPT}", "--resume"], 1,
     "pass --skip-bad to skip unreadable inputs"),
    (["restore", "{COLLIDING}", "-o", "{OUT}", "--checkpoint", "{CKPT}", "--format", "png"], 1,
     "inputs photo.jpg and photo.png would both be written to {OUT}/photo.png"),
    (["restore", "{COLLIDING}", "-o", "{OUT}", "--checkpoint", "{CKPT}", "--format", "png", "--resume", "--skip-bad"],
     1, "would both be written to"),
    (["restore", "{DATA}/input", "-o", "{OUT}", "--checkpoint", "{HIDDEN16}", "--resume"], 1,
     "its weights do not fit the model its config describes"),
    (["restore", "{IMAGE}", "-o", "{OUT}.jpg", "--checkpoint", "{CKPT}", "--resume", "--quality", "0"], 2,
     "argument --quality: expected an integer in 1..100"),
]
# also run as real processes (python -m taylor_fast), one per way out: argparse's exit, and a
# command's error turned into a line and an exit status (each process spends seconds importing torch)
IN_CHILD_PROCESSES = [("info", "--bogus"), ("restore", "{IMAGE}", "-o", "{OUT}.png", "--checkpoint", "{HIDDEN16}")]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder holding every file the cases name, and the names ({DATA}, {CKPT}, ...)."""
    root = tmp_path_factory.mktemp("mistakes")
    names = {"DATA": make_rain_set(root / "data", count=4), "OUT": root / "out", "FILE": root / "notes.txt",
             "MISSING": root / "missing", "EMPTY": root / "empty", "BADYAML": root / "bad.yaml", "RUN": root / "run"}
    names["FILE"].write_text("not an image, not a folder\n")
    names["EMPTY"].mkdir()
    names["BADYAML"].write_text("model: [1, 2\n")
    assert cli.main(["train", "--root", str(names["DATA"]), "--out", str(names["RUN"]), "--iters", "1", "--patch", "16",
                     "--set", "model.hidden=4", "--set", "model.backbone_options.width=4", "--no-progress"]) == 0
    names["CKPT"] = names["RUN"] / "last.ckpt"
    state = checkpoint.load(names["CKPT"])
    # checkpoints whose config and weights disagree: another hidden width, per-order G weights
    for key, change in (("HIDDEN16", {"hidden": 16}), ("PER_ORDER", {"shared": False})):
        names[key] = root / f"{key.lower()}.ckpt"
        checkpoint.save(names[key], {**state, "config": {**state["config"],
                                                         "model": {**state["config"]["model"], **change}}})
    names["TRUNCATED"] = root / "truncated.ckpt"
    names["TRUNCATED"].write_bytes(names["CKPT"].read_bytes()[:1000])
    names["IMAGE"] = names["DATA"] / "input" / "00.png"
    names["DONE"] = root / "done.png"
    names["DONE"].write_bytes(names["IMAGE"].read_bytes())
    names["SMALL"] = root / "small"  # a 5x5 pair: too small for SSIM's 11x11 window
    for side in ("input", "target"):
        save(names["SMALL"] / side / "a.png", random_rgb(5, 5, seed=1))
    names["MIXED"] = root / "mixed"  # input/a.png and input/a.jpg: which one pairs with target/a.png?
    save(names["MIXED"] / "input" / "a.png", random_rgb(20, 20, seed=2))
    save(names["MIXED"] / "input" / "a.jpg", random_rgb(20, 20, seed=3))
    save(names["MIXED"] / "target" / "a.png", random_rgb(20, 20, seed=4))
    names["UNEVEN"] = root / "uneven"  # pair b differs in size
    for side, size in (("input", (12, 12)), ("target", (12, 14))):
        save(names["UNEVEN"] / side / "a.png", random_rgb(12, 12, seed=5))
        save(names["UNEVEN"] / side / "b.png", random_rgb(*size, seed=6))
    names["NOT_AN_IMAGE"] = root / "junk.png"
    names["NOT_AN_IMAGE"].write_bytes(b"this is not an image")
    names["BROKEN_FOLDER"] = root / "broken"  # a good image and a bad one
    names["BROKEN_FOLDER"].mkdir()
    write_image(names["BROKEN_FOLDER"] / "a.png", smooth_image(12, 12, seed=7))
    (names["BROKEN_FOLDER"] / "b.png").write_bytes(b"not a png")
    names["COLLIDING"] = root / "colliding"  # photo.png and photo.jpg: one output name under --format png
    save(names["COLLIDING"] / "photo.png", random_rgb(12, 12, seed=8))
    save(names["COLLIDING"] / "photo.jpg", random_rgb(12, 12, seed=9))
    _task_files(root, names)
    names["BUSY"] = root / "busy"  # a run folder whose lock another writer holds (this fixture, by its own handle)
    shutil.copytree(names["RUN"], names["BUSY"])
    with exclusive(names["BUSY"], "train"):
        yield root, {key: str(value) for key, value in names.items()}


def _task_files(root, names: dict) -> None:
    """The denoising and super-resolution files: high-resolution images, BasicSR's Set5 layout
    whole, without its low-resolution half and with one low-resolution image of the wrong size, a
    grey Set12, and an x2 and a grey checkpoint trained on them for one step."""
    names["HR"] = root / "hr"
    for folder in ("hr", "set5/GTmod12", "set5/LRbicx2", "set5_uneven/GTmod12", "set5_uneven/LRbicx2",
                   "set5_no_lr/GTmod12", "set12"):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        write_image(names["HR"] / f"{i}.png", smooth_image(24, 36, seed=20 + i))
    for key, low_sizes in (("SET5", {}), ("SET5_UNEVEN", {"b": (12, 17)}), ("SET5_NO_LR", None)):
        names[key] = root / key.lower()
        for i, stem in enumerate("abcde"):  # five images, as the published Set5
            write_image(names[key] / "GTmod12" / f"{stem}.png", smooth_image(24, 36, seed=30 + i))
            if low_sizes is not None:
                write_image(names[key] / "LRbicx2" / f"{stem}.png",
                            smooth_image(*low_sizes.get(stem, (12, 18)), seed=40 + i))
    names["SET12"] = root / "set12"
    for i in range(2):
        write_image(names["SET12"] / f"{i + 1:02d}.png", smooth_image(20, 20, seed=50 + i)[:1])
    names["SR_CKPT"], names["GREY_CKPT"] = root / "sr_run" / "last.ckpt", root / "grey_run" / "last.ckpt"
    short = ["--iters", "1", "--patch", "16", "--batch-size", "2", "--set", "model.hidden=4", "--no-progress"]
    assert cli.main(["train", "--task", "sr", "--scale", "2", "--backbone", "edsr_baseline", "--set",
                     "model.backbone_options={blocks: 1, width: 4}", "--dataset", "hr-folder", "--root",
                     str(names["HR"]), "--out", str(names["SR_CKPT"].parent), *short]) == 0
    assert cli.main(["train", "--task", "denoise", "--channels", "1", "--set", "model.backbone_options.width=4",
                     "--dataset", "clean-folder", "--root", str(names["HR"]), "--set", "data.train.options.sigma=25",
                     "--out", str(names["GREY_CKPT"].parent), *short]) == 0


def _command(argv: list[str], names: dict) -> tuple[list[str], dict]:
    """(argv with the names filled in, the environment variables the case sets)."""
    env = {}
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        key, value = argv[0].split("=", 1)
        env[key] = value
        argv = argv[1:]
    filled = []
    for arg in argv:
        if arg == "{EVAL}":  # the common start of an eval command line
            filled += ["--checkpoint", names["CKPT"], "--out", names["OUT"], "--no-progress"]
        else:
            filled.append(_fill(arg, names))
    return filled, env


def _fill(text: str, names: dict) -> str:
    """{NAME} replaced by the sandbox's path; ${VAR} (an environment variable) left alone."""
    return re.sub(r"(?<!\$)\{(\w+)\}", lambda match: names[match.group(1)], text)


def _check_output(stdout: str, stderr: str, fragment: str, names: dict):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stdout + stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert _fill(fragment, names) in lines[0], lines[0]
    assert lines[0].startswith("taylor-fast "), lines[0]  # which command is speaking
    assert not stdout.strip(), stdout


@pytest.mark.parametrize("argv, status, fragment", CASES)
def test_a_mistake_is_one_line_and_writes_nothing(sandbox, argv, status, fragment, capsys, monkeypatch):
    _attempt(sandbox, argv, status, fragment, capsys, monkeypatch)


@pytest.mark.parametrize("argv", [["synth", "--kind", "rain", "--out", "{OUT}"], ["demo", "--out", "{OUT}"]])
def test_without_scikit_image_the_photo_commands_say_so(sandbox, argv, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # what `import skimage` meets when it is not installed
    _attempt(sandbox, argv, 2, "the bundled photographs come from scikit-image: pip install scikit-image", capsys,
             monkeypatch)


def _attempt(sandbox, argv, status, fragment, capsys, monkeypatch):
    """taylor_fast.cli.main(argv) in this process: one line, `status`, nothing written."""
    root, names = sandbox
    argv, env = _command(argv, names)
    monkeypatch.delenv("TAYLOR_FAST_DATA", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)  # so that a default output folder (demo_out) would land in the sandbox too
    before = snapshot(root)
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse exits itself
        code = exc.code
    captured = capsys.readouterr()
    _check_output(captured.out, captured.err, fragment, names)
    assert code == status
    assert snapshot(root) == before


def test_mistakes_in_real_processes(sandbox):
    """`python -m taylor_fast` in child processes: the one line, the exit status and nothing
    written hold end to end (the processes run side by side, each importing torch)."""
    root, names = sandbox
    cases = [case for case in CASES if isinstance(case, tuple) and tuple(case[0]) in IN_CHILD_PROCESSES]
    assert len(cases) == len(IN_CHILD_PROCESSES)
    before = snapshot(root)
    children = []
    for argv, status, fragment in cases:
        argv, env = _command(argv, names)
        environment = {k: v for k, v in os.environ.items() if k != "TAYLOR_FAST_DATA"} | env
        children.append(subprocess.Popen([sys.executable, "-m", "taylor_fast", *argv], cwd=root, env=environment,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for child, (argv, status, fragment) in zip(children, cases):
        stdout, stderr = child.communicate(timeout=120)
        _check_output(stdout, stderr, fragment, names)
        assert child.returncode == status, (argv, stderr)
    assert snapshot(root) == before
