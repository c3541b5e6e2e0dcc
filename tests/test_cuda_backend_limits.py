"""What the cuda backend says it can serve agrees with what csrc/cuda implements (checked on any
machine: no GPU needed to read the limits)."""
import re
from pathlib import Path

import torch

from taylor_fast._ext_ops import MAX_CHANNELS, ExtensionBackend
from taylor_fast._validation import Call

CSRC = Path(__file__).resolve().parents[1] / "csrc" / "cuda"


def cuda_call(channels, dtype=torch.float32):
    return Call(torch.device("cuda"), dtype, channels, 32, 3, False, "relu", 0.2)


def test_channel_limit_matches_the_kernels():
    source = (CSRC / "step_params.h").read_text()
    assert int(re.search(r"constexpr int kMaxChannels = (\d+);", source).group(1)) == MAX_CHANNELS["cuda"]


def test_cuda_backend_refuses_too_many_channels_with_the_reason():
    backend = ExtensionBackend("cuda")
    assert backend.cannot_serve(cuda_call(MAX_CHANNELS["cuda"])) is None
    assert "at most 4" in backend.cannot_serve(cuda_call(MAX_CHANNELS["cuda"] + 1))

