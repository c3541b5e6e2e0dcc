"""Helpers for the engine tests: a small rain dataset on disk, and CLI runs in child processes.

Child processes come from a forkserver that imported torch and taylor_fast once, so each run
starts in milliseconds instead of re-importing torch (seconds on this machine); they are real
processes all the same, which kill -9 and torch.distributed need.
"""
import os
import re
import socket
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from child_processes import forkserver_context
from taylor_fast.data import add_rain, write_image

# torch._dynamo: Adam imports it on first use (seconds); tensorboard: the run logs
_CONTEXT = forkserver_context("taylor_fast.cli", "taylor_fast.engine.commands.train", "torch._dynamo",
                              "torch.utils.tensorboard", "engine_helpers")


def smooth_image(h, w, seed):
    """A random smooth colour image (blurred noise), so that models have something to learn."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=gen)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


def make_rain_set(root: Path, count=8, size=(40, 48), seed=0) -> Path:
    """ROOT/input + ROOT/target of `count` light-rain pairs (a `paired` dataset)."""
    for side in ("input", "target"):
        (root / side).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        clean = torch.floor(smooth_image(*size, seed + i) * 255 + 0.5) / 255
        write_image(root / "target" / f"{i:02d}.png", clean)
        write_image(root / "input" / f"{i:02d}.png", add_rain(clean, "light", seed=[seed, i]))
    return root


def _child(argv, env, stall_on_save, stall_at, setup, output):
    os.environ.update(env)
    torch.set_num_threads(1)
    if output:  # the child's stdout and stderr into OUTPUT.stdout and OUTPUT.stderr
        for fd, name in ((1, "stdout"), (2, "stderr")):
            handle = os.open(f"{output}.{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
    if stall_on_save:
        _stall_writes(stall_on_save, stall_at)
    if setup:
        setup()
    from taylor_fast import cli

    sys.exit(cli.main(argv))


def _stall_writes(marker: str, nth: int):
    """Make the nth checkpoint write stop halfway: write half the bytes, leave a marker file, hang."""
    from taylor_fast.engine import atomic

    original, calls = atomic.write_chunks, []

    def half_then_hang(fh, blob):
        if "last.ckpt" in fh.name:
            calls.append(1)
        if len(calls) < nth:
            return original(fh, blob)
        fh.write(memoryview(blob)[: len(blob) // 2])
        fh.flush()
        Path(marker).write_text("stalled")
        time.sleep(600)

    atomic.write_chunks = half_then_hang


def start_cli(argv, env=None, stall_on_save=None, stall_at=2, setup=None, output=None):
    """taylor-fast ARGV in a child process (started, not waited for). stall_on_save: a marker file
    to create when the stall_at-th checkpoint write stops halfway; setup: a function of this module
    to call in the child first; output: a path prefix for the child's stdout and stderr files."""
    process = _CONTEXT.Process(target=_child, args=([str(a) for a in argv], env or {}, stall_on_save, stall_at,
                                                    setup, output and str(output)))
    process.start()
    return process


def child_output(output, stream="stderr") -> list[str]:
    """The lines a child started with start_cli(output=OUTPUT) wrote to `stream`."""
    return Path(f"{output}.{stream}").read_text().strip().splitlines()


def slow_image_reads():
    """In a restore child: every input takes 20 ms longer to read, so that a kill lands mid-folder."""
    from taylor_fast.engine.commands import restore

    original = restore.read_picture

    def slow(path, channels=3):
        time.sleep(0.02)
        return original(path, channels)

    restore.read_picture = slow


def stall_fifth_image_write():
    """In a restore child: the 5th output is written, cut to half its bytes under its temporary
    name, and the process hangs after creating the file named by $STALL_MARKER."""
    from taylor_fast.engine.commands import restore

    original, calls = restore.write_image, []

    def half_then_hang(path, image, **options):
        calls.append(path)
        original(path, image, **options)
        if len(calls) == 5:
            os.truncate(path, os.path.getsize(path) // 2)
            Path(os.environ["STALL_MARKER"]).write_text(str(path))
            time.sleep(600)

    restore.write_image = half_then_hang


def run_cli(argv, env=None, timeout=300, output=None) -> int:
    process = start_cli(argv, env, output=output)
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        raise TimeoutError(f"taylor-fast {' '.join(map(str, argv))} did not finish in {timeout} s")
    return process.exitcode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_iterations(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^iter (\d+) ", text, flags=re.M)]


def max_difference(a: dict, b: dict) -> float:
    """The largest absolute difference between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())
