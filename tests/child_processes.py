"""The one forkserver every test module shares for its child processes.

multiprocessing has a single forkserver per process and fixes its preloaded modules when it
starts; each test module adds the modules its children need here (at import, during pytest's
collection, so before any child starts), and every child then starts in milliseconds without
re-importing torch.
"""
import multiprocessing

_CONTEXT = multiprocessing.get_context("forkserver")
_PRELOAD: list[str] = []


def forkserver_context(*preload: str):
    """The shared forkserver context, after adding `preload` to the modules it imports once."""
    _PRELOAD.extend(name for name in preload if name not in _PRELOAD)
    _CONTEXT.set_forkserver_preload(list(_PRELOAD))
    return _CONTEXT
