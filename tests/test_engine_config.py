"""Training configs: the paper's recipe, YAML + base chains + overrides, checks, the committed
grid, and output paths that can neither leave the run folder nor land on the run's own files."""
import importlib.util
import os
import re
from pathlib import Path

import pytest

from taylor_fast.engine import atomic
from taylor_fast.engine import config as C
from taylor_fast.engine.paths import RUN_FILES, UnsafePathError, inside

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _yaml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_are_the_papers_recipe():
    c = C.resolve()
    assert c["train"]["lr"] == 1e-3 and c["train"]["epochs"] == 100 and c["train"]["iters"] is None
    assert c["train"]["milestones"] == [30, 50, 80] and c["train"]["gamma"] == 0.2 and c["train"]["lam"] == 1.0
    assert c["data"]["train"]["batch_size"] == 4 and c["data"]["train"]["patch"] == 100
    assert c["model"]["order"] == 3 and c["model"]["hidden"] == 32 and c["model"]["shared"] is True
    # paper.yaml spells out the same recipe (plus data-loading workers)
    from_file = C.resolve(CONFIGS / "paper.yaml")
    from_file["data"]["train"]["workers"] = 0
    assert from_file == c


def test_base_chain_then_file_then_overrides(tmp_path):
    _yaml(tmp_path / "base.yaml", "model: {order: 5, hidden: 16}\ntrain: {lr: 0.01}\n")
    child = _yaml(tmp_path / "sub" / "child.yaml", "base: ../base.yaml\nmodel: {order: 2}\n")
    c = C.resolve(child, {"train.lr": 5e-4, "model.backbone_options": {"width": 8}})
    assert c["model"]["order"] == 2 and c["model"]["hidden"] == 16  # file over base, base over defaults
    assert c["train"]["lr"] == 5e-4 and c["model"]["backbone_options"] == {"width": 8}


def test_iters_and_epochs_replace_each_other():
    assert C.resolve(overrides={"train.iters": 50})["train"]["epochs"] is None
    c = C.resolve(overrides={"train.iters": 50, "train.epochs": 3})
    assert c["train"] == {**c["train"], "iters": None, "epochs": 3}


@pytest.mark.parametrize("text, message", [
    ("modle: {order: 3}\n", "unknown key 'modle'"),
    ("model: {ordr: 3}\n", "unknown key 'model.ordr'"),
    ("model: {order: three}\n", "model.order: expected an integer, got 'three'"),
    ("model: {order: true}\n", "model.order: expected an integer"),
    ("model: {order: -1}\n", "model.order: expected a non-negative value"),
    ("train: {lr: 0}\n", "train.lr: expected a positive value"),
    ("train: {amp: fp8}\n", "train.amp: expected one of auto, bf16, off"),
    ("train: {milestones: [50, 30]}\n", "train.milestones: expected increasing"),
    ("train: {epochs: null}\n", "set exactly one of them"),
    ("eval: {sets: [{label: a/b, dataset: rain100h}]}\n", "eval.sets[0].label: expected a plain name"),
    ("eval: {sets: [{label: a, dataset: nope}]}\n", "eval.sets[0].dataset: unknown dataset name 'nope'"),
    ("eval: {sets: [{label: a, dataset: gopro, split: val}]}\n",
     "eval.sets[0].split: gopro has the splits 'train' and 'test', got 'val'"),
    ("model: {hidden: 0}\n", "model.hidden: expected a positive value, got 0"),
    ("data: {train: {dataset: nope}}\n", "data.train.dataset: unknown dataset name 'nope'; known: .*gopro"),
    ("data: {train: {options: {foo: 1}}}\n", "data.train.options: paired does not take foo; it takes input, target"),
    ("- a list\n", "expected a mapping of settings"),
    ("model: [1, 2\n", "not valid YAML"),
])
def test_bad_settings_name_the_key(tmp_path, text, message):
    with pytest.raises(C.ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        C.resolve(_yaml(tmp_path / "c.yaml", text))


def test_base_loop_and_missing_file(tmp_path):
    _yaml(tmp_path / "a.yaml", "base: b.yaml\n")
    _yaml(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(C.ConfigError, match="loops back"):
        C.resolve(tmp_path / "a.yaml")
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.resolve(tmp_path / "missing.yaml")


def test_environment_variables_in_paths_must_be_set(monkeypatch):
    monkeypatch.setenv("TAYLOR_FAST_DATA", "/data")
    assert C.expand("${TAYLOR_FAST_DATA}/GoPro") == "/data/GoPro" and C.expand("$TAYLOR_FAST_DATA/x") == "/data/x"
    assert C.expand(None) is None and C.expand("plain/$") == "plain/$"
    monkeypatch.setenv("TAYLOR_FAST_DATA", "")
    with pytest.raises(C.ConfigError, match=r"data.train.root: '\$\{TAYLOR_FAST_DATA\}/GoPro' uses the environment "
                                            "variable TAYLOR_FAST_DATA, which is empty; export TAYLOR_FAST_DATA="):
        C.expand("${TAYLOR_FAST_DATA}/GoPro", "data.train.root")
    monkeypatch.delenv("TAYLOR_FAST_DATA")
    with pytest.raises(C.ConfigError, match="TAYLOR_FAST_DATA, which is not set"):
        C.expand("$TAYLOR_FAST_DATA/GoPro")


def test_set_assignments_are_yaml_values():
    assert C.parse_assignment("train.lr=5e-4") == ("train.lr", 5e-4)
    assert C.parse_assignment("train.milestones=[10, 20]") == ("train.milestones", [10, 20])
    assert C.parse_assignment("train.grad_clip=null") == ("train.grad_clip", None)
    with pytest.raises(C.ConfigError, match="KEY=VALUE"):
        C.parse_assignment("train.lr")


@pytest.mark.parametrize("value", ["/etc/cron.d/x", "../outside", "tb/../../x", "..", "", "C:\\x", "a\\..\\..\\b"])
def test_config_paths_cannot_leave_the_run_folder(tmp_path, value):
    with pytest.raises(UnsafePathError, match="paths.log"):
        C.resolve(_yaml(tmp_path / "c.yaml", f"paths: {{log: '{value}'}}\n"))


@pytest.mark.parametrize("key", ["log", "tensorboard"])
@pytest.mark.parametrize("name", [*RUN_FILES, *(atomic.temporary_name(Path(n)).name for n in RUN_FILES),
                                  "./last.ckpt", "LAST.CKPT", "last.ckpt/events", "config.yaml/"])
def test_the_runs_own_files_are_reserved(tmp_path, key, name):
    with pytest.raises(UnsafePathError, match=rf"paths.{key}: .* would write over the run's .*reserved"):
        C.resolve(overrides={f"paths.{key}": name})


@pytest.mark.parametrize("paths, message", [
    ({"log": "."}, "paths.log: '.' is the run folder itself"),
    ({"tensorboard": "./"}, "paths.tensorboard: './' is the run folder itself"),
    ({"tensorboard": "train.log"}, "paths.tensorboard and paths.log: 'train.log' and 'train.log' would overlap"),
    ({"log": "tb"}, "paths.tensorboard and paths.log: 'tb' and 'tb' would overlap"),
    ({"log": "tb/train.log"}, "'tb' and 'tb/train.log' would overlap"),
    ({"log": "logs/train.log", "tensorboard": "./logs"}, "would overlap"),
])
def test_paths_may_not_name_the_run_folder_or_each_other(paths, message):
    with pytest.raises(UnsafePathError, match=re.escape(message)):
        C.resolve(overrides={f"paths.{k}": v for k, v in paths.items()})


def test_paths_side_by_side_or_below_a_reserved_name_are_fine():
    C.resolve(overrides={"paths.log": "logs/train.log", "paths.tensorboard": "logs/tb"})
    C.resolve(overrides={"paths.log": "sub/last.ckpt", "paths.tensorboard": "tb-config.yaml"})


def test_existing_files_and_folders_of_the_wrong_kind_are_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "logs").mkdir()
    with pytest.raises(UnsafePathError, match="is a folder, but a file is needed"):
        inside(tmp_path, "logs", "paths.log")
    with pytest.raises(UnsafePathError, match="is a file, but a folder is needed"):
        inside(tmp_path, "notes.txt", "paths.tensorboard", folder_wanted=True)
    with pytest.raises(UnsafePathError, match="notes.txt is a file, but 'notes.txt/train.log' needs a folder"):
        inside(tmp_path, "notes.txt/train.log", "paths.log")
    assert inside(tmp_path, "logs/train.log", "paths.log") == tmp_path / "logs" / "train.log"


def test_symlink_out_of_the_run_folder_is_refused(tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, run / "tb")
    with pytest.raises(UnsafePathError, match="through a symbolic link"):
        inside(run, "tb/events", "paths.tensorboard")
    assert inside(run, "logs/train.log", "paths.log") == run / "logs" / "train.log"


def test_resume_may_change_length_but_not_the_recipe():
    saved = C.resolve(overrides={"train.iters": 100})
    longer = C.resolve(overrides={"train.iters": 200, "data.train.root": "/moved", "log.every": 5}, base=saved)
    assert C.resume_conflicts(saved, longer) == []
    other = C.resolve(overrides={"model.order": 2, "train.gamma": 0.5}, base=saved)
    assert C.resume_conflicts(saved, other) == ["model.order: 3 -> 2", "train.gamma: 0.2 -> 0.5"]
    # the way past a divergence: a lower learning rate or gradient clipping
    recovery = C.resolve(overrides={"train.lr": 1e-4, "train.grad_clip": 1.0}, base=saved)
    assert C.resume_conflicts(saved, recovery) == []


def _generator():
    spec = importlib.util.spec_from_file_location("generate", CONFIGS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_grid_matches_the_generator_and_resolves(monkeypatch):
    generate = _generator()
    assert generate.main(["--check"]) == 0
    files = generate.paper_grid()
    assert len(files) == 46 and set(files) <= set(generate.grid())
    monkeypatch.setenv("TAYLOR_FAST_DATA", "/datasets")
    design_names = {"ddn", "prenet", "dualgcn", "mprnet_derain", "msresnet", "rdn"}
    seen = set()
    for path in files:
        c = C.resolve(CONFIGS / path)
        assert c["model"]["backbone"] in design_names
        assert c["train"]["lr"] == 1e-3 and c["train"]["epochs"] == 100 and c["data"]["train"]["patch"] == 100
        assert c["eval"]["channel"] == ("y" if path.startswith("derain/") else "rgb")
        assert C.expand(c["data"]["train"]["root"]).startswith("/datasets/")
        seen.add((c["model"]["backbone"], c["data"]["train"]["dataset"], c["model"]["order"]))
    # Tables 3 and 4: DCM at every order 0..6 on each training set
    for dataset in ("rain100h-train", "rain100l-train", "rain800", "gopro"):
        assert {o for b, d, o in seen if b == "dualgcn" and d == dataset} == set(range(7))
    assert ("mprnet_derain", "rain13k", 3) in seen and ("rdn", "gopro", 0) in seen


def test_the_task_fills_its_conventions_where_nothing_sets_them(tmp_path):
    sr = C.resolve(overrides={"task": "sr", "model.scale": 3})
    assert (sr["eval"]["channel"], sr["eval"]["crop_border"], sr["eval"]["quantize"]) == ("y", 3, "rgb")
    assert sr["data"]["train"]["patch"] == 144  # 48x48 low-resolution patches
    mine = C.resolve(_yaml(tmp_path / "c.yaml", "task: sr\nmodel: {scale: 2}\neval: {crop_border: 0}\n"),
                     {"data.train.patch": 64})
    assert mine["eval"]["crop_border"] == 0 and mine["data"]["train"]["patch"] == 64 and mine["eval"]["quantize"] == "rgb"
    noise = C.resolve(overrides={"task": "denoise", "model.channels": 1})
    assert (noise["eval"]["channel"], noise["eval"]["crop_border"], noise["eval"]["quantize"]) == ("rgb", 0, True)
    assert C.resolve()["eval"]["channel"] == "y" and C.resolve(overrides={"task": "deblur"})["eval"]["channel"] == "rgb"
    saved = C.resolve(overrides={"task": "sr", "model.scale": 2, "eval.crop_border": 5})
    assert C.resolve(base=saved)["eval"]["crop_border"] == 5  # a resumed run keeps what it had


@pytest.mark.parametrize("overrides, message", [
    ({"task": "sr"}, "model.scale: task sr needs the super-resolution factor"),
    ({"model.scale": 2}, "model.scale: 2 upscales, which is task sr, but task is 'derain'"),
    ({"task": "sr", "model.scale": 3, "data.train.patch": 100}, "data.train.patch: 100 is not a multiple of model.scale"),
    ({"model.channels": 1}, "eval.channel: y needs colour images, but model.channels is 1"),
    ({"model.channels": 2}, "model.channels: expected one of 1, 3, got 2"),
    ({"eval.quantize": "y"}, "eval.quantize: expected true, false or rgb, got 'y'"),
    ({"task": "inpaint"}, "task: expected one of derain, deblur, denoise, sr, other"),
])
def test_bad_task_settings_name_the_key(overrides, message):
    with pytest.raises(C.ConfigError, match=message):
        C.resolve(overrides=overrides)


def test_a_config_saved_before_the_new_keys_reads_as_before():
    old = C.resolve()
    del old["model"]["scale"], old["model"]["channels"]
    completed = C.complete(old)
    assert completed["model"]["scale"] == 1 and completed["model"]["channels"] == 3
    assert C.resume_conflicts(completed, C.resolve()) == []


def test_the_denoising_and_super_resolution_grid(monkeypatch):
    generate = _generator()
    files = generate.beyond()
    assert len(files) == 24 and all(text.startswith("# ") and "generate.py" in text for text in files.values())
    monkeypatch.setenv("TAYLOR_FAST_DATA", "/datasets")
    from taylor_fast.data.registry import spec

    for path in files:
        c = C.resolve(CONFIGS / path)
        if path.startswith("denoise/"):
            grey = "bsd400" in path
            assert c["task"] == "denoise" and c["model"]["backbone"] == "dncnn" and c["model"]["channels"] == (1 if grey else 3)
            assert c["train"]["lr"] == 1e-3 and c["train"]["epochs"] == 180 and c["data"]["train"]["batch_size"] == 128
            sigma = c["data"]["train"]["options"]["sigma"]
            assert f"_s{sigma}_" in path and all(s["options"] == {"sigma": sigma} for s in c["eval"]["sets"])
            assert {s["dataset"] for s in c["eval"]["sets"]} == ({"set12", "bsd68"} if grey else
                                                                 {"cbsd68", "kodak24", "mcmaster"})
            assert (c["eval"]["channel"], c["eval"]["quantize"]) == ("rgb", True)
        else:
            scale = c["model"]["scale"]
            assert c["task"] == "sr" and f"_x{scale}_" in path and c["eval"]["crop_border"] == scale
            assert c["train"]["lr"] == 1e-4 and c["data"]["train"]["dataset"] == "div2k"
            assert c["data"]["train"]["patch"] == scale * (48 if "edsr" in path else 32)
            assert [s["dataset"] for s in c["eval"]["sets"]] == ["set5", "set14", "bsd100", "urban100", "manga109"]
            assert (c["eval"]["channel"], c["eval"]["quantize"]) == ("y", "rgb")
        for entry in c["eval"]["sets"] + [c["data"]["train"]]:
            spec(entry["dataset"])  # a registered name
