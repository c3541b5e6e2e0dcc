"""Training, evaluation and restoration around TaylorNet, one job per module:

    config      YAML recipes + overrides, checked          checkpoint  safe, atomic checkpoints
    model       TaylorNet from a config / a checkpoint     train       the training loop (DDP-aware)
    evaluate    PSNR/SSIM over a dataset, by order         restore     restoring image files
    tiling      any image size through blended tiles       sampler     resumable per-epoch order
    distributed torchrun process groups                    progress    tqdm, log file, TensorBoard
    paths       outputs stay inside the output folder      atomic      write-fsync-rename
    rng         generator states                           commands/   the CLI subcommands
    chunks      a batch that runs out of memory is split, not failed
    lock        one writer per run folder (flock)          interrupt   SIGINT/SIGTERM: finish the step, save
"""
import importlib
import importlib.util


def __getattr__(name):
    # taylor_fast.engine.model works without importing the submodule first: each loads on first use
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
