import os

import pytest
import torch

# Triton kernels run on CPU tensors through Triton's interpreter when no GPU is present; the
# variable is read when a kernel is decorated, so it is set before any test imports them. Not
# when collecting as if a GPU were present (TAYLOR_FAST_PRETEND_GPU, tests/backend_cases.py):
# then the kernels are decorated compiled, as on a GPU machine.
if not torch.cuda.is_available() and os.environ.get("TAYLOR_FAST_PRETEND_GPU", "") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def exact_fp32():
    """fp32 stays fp32 on a GPU: the tests hold fp32 results to fp32 tolerances against fp64,
    and torch's default lets cuDNN (the reference) and the Triton kernels (which follow the same
    flag) multiply in TF32. Tests of TF32 itself turn it back on."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = saved
