"""A folder restore killed part-way (kill -9, real processes) and continued with --resume: every
output equals the uninterrupted run's, no truncated image is ever left under an output's name,
and only the missing outputs are written."""
import os
import random
import signal
import time

import numpy as np
import pytest
from engine_helpers import (child_output, make_rain_set, run_cli, slow_image_reads, smooth_image,
                            stall_fifth_image_write, start_cli)

from taylor_fast.data import read_image, write_image
from taylor_fast.data.image_io import to_uint8
from taylor_fast.engine import atomic

COUNT = 40


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(checkpoint, a folder of COUNT images, the outputs of an uninterrupted restore of it)."""
    root = tmp_path_factory.mktemp("restore")
    data, run = make_rain_set(root / "data", count=4), root / "run"
    assert run_cli(["train", "--root", data, "--out", run, "--patch", 16, "--iters", 2, "--set", "model.hidden=4",
                    "--no-progress"]) == 0
    images = root / "in"
    images.mkdir()
    for i in range(COUNT):
        write_image(images / f"{i:02d}.png", smooth_image(24, 32, seed=100 + i))
    reference = root / "reference"
    assert run_cli(_restore(run / "last.ckpt", images, reference)) == 0
    return run / "last.ckpt", images, {p.name: p.read_bytes() for p in reference.iterdir()}


def _restore(ckpt, images, out, *more):
    return ["restore", images, "-o", out, "--checkpoint", ckpt, "--tile", 0, "--no-progress", *more]


def _outputs(folder):
    """{name: (inode, mtime_ns)} of the files under output names (temporaries aside)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir() if not atomic.is_temporary(p)}


def _resume_and_check(ckpt, images, out, expected, tmp_path):
    done = _outputs(out)
    for name in done:  # no truncated file under an output's name: each is the uninterrupted run's, byte for byte
        assert (out / name).read_bytes() == expected[name]
        read_image(out / name)
    assert run_cli(_restore(ckpt, images, out, "--resume"), output=tmp_path / "resume") == 0
    missing = COUNT - len(done)
    assert child_output(tmp_path / "resume", "stdout") == [
        f"restored {missing} image{'s' if missing != 1 else ''} -> {out}" + (f" ({len(done)} already there kept)"
                                                                            if done else "")]
    after = _outputs(out)
    assert {name: after[name] for name in done} == done  # the outputs already there were not written again
    assert {p.name: p.read_bytes() for p in out.iterdir()} == expected  # all there, no temporary left


def test_killed_at_a_random_point_then_resumed(setup, tmp_path):
    ckpt, images, expected = setup
    out = tmp_path / "out"
    chooser = random.Random(23)
    target = chooser.randint(1, COUNT - 10)
    process = start_cli(_restore(ckpt, images, out), setup=slow_image_reads)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.is_alive() and not (out.is_dir() and len(_outputs(out)) >= target):
        time.sleep(0.002)
    time.sleep(chooser.uniform(0.0, 0.03))  # anywhere in the next image: reading, computing or writing it
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL
    assert target <= len(_outputs(out)) < COUNT
    _resume_and_check(ckpt, images, out, expected, tmp_path)


def test_killed_in_the_middle_of_writing_an_output(setup, tmp_path):
    ckpt, images, expected = setup
    out, marker = tmp_path / "out", tmp_path / "stalled"
    process = start_cli(_restore(ckpt, images, out), env={"STALL_MARKER": str(marker)}, setup=stall_fifth_image_write)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "the fifth output was never written"
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    partial = atomic.leftovers(out / "04.png")
    assert len(partial) == 1 and partial[0].stat().st_size < len(expected["04.png"])  # the half-written temporary
    assert sorted(_outputs(out)) == ["00.png", "01.png", "02.png", "03.png"]  # not under its output's name
    _resume_and_check(ckpt, images, out, expected, tmp_path)


def test_resumed_outputs_keep_what_their_inputs_had(setup, tmp_path, capsys):
    """Outputs written by --resume go through the first run's writer: alpha, greyness, the EXIF
    orientation applied, the ICC profile, JPEG at --quality; each equals the uninterrupted run's."""
    from PIL import Image, ImageCms

    from taylor_fast import cli

    ckpt = setup[0]
    images = tmp_path / "in"
    images.mkdir()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = to_uint8(smooth_image(20, 28, seed=1))
    Image.fromarray(np.concatenate([pixels, pixels[:, :, 1:2]], axis=2)).save(images / "a.png")  # RGBA
    Image.fromarray(pixels[:, :, 1]).save(images / "b.png")  # grey
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 20x28 (HxW), shown 28x20
    Image.fromarray(pixels).save(images / "c.jpg", exif=exif.tobytes(), icc_profile=profile)

    def restore(out, *more):
        assert cli.main([str(a) for a in _restore(ckpt, images, out, "--quality", 80, *more)]) == 0

    restore(tmp_path / "whole")
    restore(tmp_path / "part")
    for name in ("b.png", "c.jpg"):
        (tmp_path / "part" / name).unlink()
    restore(tmp_path / "part", "--resume")
    assert capsys.readouterr().out.splitlines()[-1] == f"restored 2 images -> {tmp_path / 'part'} (1 already there kept)"
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert {p.name: p.read_bytes() for p in (tmp_path / "part").iterdir()} == whole
    with Image.open(tmp_path / "part" / "b.png") as grey, Image.open(tmp_path / "part" / "c.jpg") as turned:
        assert grey.mode == "L"
        assert turned.size == (20, 28) and turned.info["icc_profile"] == profile
    with Image.open(tmp_path / "part" / "a.png") as rgba:
        assert rgba.mode == "RGBA"
