"""With torch.use_deterministic_algorithms(True), training from the same seed gives bitwise-equal
gradients and weights, step after step, on every backend (README "Determinism"): reference, cpu,
cuda, triton. The Triton kernels run through the interpreter on CPU tensors here, compiled on a
GPU; the cuda cases need a GPU. That one call of an op repeats bitwise is in
test_backend_conformance.py."""
import os
import subprocess
import sys

import pytest
import torch

from backend_cases import backend_device_params
from taylor_fast import TaylorNet, backbones, taylor_loss

BACKENDS = backend_device_params()


@pytest.fixture(autouse=True)
def deterministic(monkeypatch):
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    # cuBLAS is deterministic only with a fixed workspace; torch refuses to run it otherwise
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before, warn_only=warn_only)


def train(backend, device, shared, steps=2):
    """Per step the gradients of every parameter, then the final weights, of a tiny TaylorNet
    trained with Adam from seed 0 on fixed random batches."""
    torch.manual_seed(0)
    mapping = backbones.create("tiny", width=8, depth=1)
    net = TaylorNet(mapping, order=3, hidden=8, shared=shared, backend=backend).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(steps):
        y, x = (torch.rand(1, 3, 12, 12, generator=data).to(device) for _ in range(2))
        optimizer.zero_grad()
        out, f = net.forward_terms(y)
        taylor_loss(out, f, x).backward()
        grads.append([p.grad.clone() for p in net.parameters()])
        optimizer.step()
    return grads, [p.detach().clone() for p in net.parameters()]


def assert_bitwise_equal(first, second, what):
    assert len(first) == len(second)
    for i, (a, b) in enumerate(zip(first, second)):
        assert torch.equal(a, b), f"{what} {i} differs between two identical runs (max |diff| {(a - b).abs().max()})"


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per_order"])
@pytest.mark.parametrize("backend, device", BACKENDS)
def test_training_steps_are_bitwise_reproducible(backend, device, shared):
    grads, weights = train(backend, device, shared)
    grads_again, weights_again = train(backend, device, shared)
    for step, (a, b) in enumerate(zip(grads, grads_again)):
        assert_bitwise_equal(a, b, f"step {step}: gradient of parameter")
    assert_bitwise_equal(weights, weights_again, "trained parameter")
    assert any(g.abs().sum() > 0 for g in grads[-1]), "nothing was trained"


# Each child process trains once under determinism and prints a digest of what it computed.
FRESH_PROCESS = """
import hashlib, sys, torch
sys.path.insert(0, {tests!r})
from test_determinism import train
torch.use_deterministic_algorithms(True)
grads, weights = train({backend!r}, "cuda", shared=True)
digest = hashlib.sha256()
for t in [g for step in grads for g in step] + weights:
    digest.update(t.cpu().numpy().tobytes())
print(digest.hexdigest())
"""


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_fresh_processes_agree_bitwise(backend):
    # A fresh process re-runs Triton's autotuner, which picks by timing: determinism pins one config.
    script = FRESH_PROCESS.format(tests=os.path.dirname(__file__), backend=backend)
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    digests = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                              timeout=600).stdout.split()[-1] for _ in range(2)]
    assert digests[0] == digests[1], f"two processes trained differently: {digests}"
