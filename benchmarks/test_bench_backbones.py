"""Training-step time of every backbone as a TaylorNet on the CPU: order 0 (the bare backbone),
order 3 with backend="auto" (the fused CPU kernels wherever they are built) and order 3 with
the reference loop. The difference to order 0 is the framework's overhead.

    python -m pytest benchmarks/test_bench_backbones.py --benchmark-group-by=group \
        --benchmark-columns=min,median,mean,rounds --benchmark-json=backbones.json

A step is forward, taylor_loss, backward and an Adam step on one 1x3x64x64 patch.
"""
import pytest
import torch

from taylor_fast import TaylorNet, backbones, backends, taylor_loss

SIZE = (1, 3, 64, 64)
VARIANTS = {"order0": (0, "auto"), "order3-auto": (3, "auto"), "order3-reference": (3, "reference")}
# rounds per measurement: the 11-22 M parameter networks take seconds per step here
ROUNDS = {"rdn": 2, "mprnet_deblur": 2, "msresnet": 2, "dualgcn": 3, "mprnet_derain": 3}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", backbones.names())
def test_training_step(benchmark, name, variant):
    order, backend = VARIANTS[variant]
    torch.manual_seed(0)
    net = TaylorNet(backbones.create(name), order=order, backend=backend)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    y, x = (torch.rand(*SIZE, generator=generator) for _ in range(2))

    def step():
        optimizer.zero_grad(set_to_none=True)
        out, f = net.forward_terms(y)
        taylor_loss(out, f, x).backward()
        optimizer.step()

    benchmark.group = name
    benchmark.extra_info.update(
        backbone=name, order=order, backend=backend, size=list(SIZE), threads=torch.get_num_threads(),
        cpu_fused_available=backends()["cpu"][0],
    )
    benchmark.pedantic(step, rounds=ROUNDS.get(name, 10), warmup_rounds=1)
