"""The package's error types, in a module that imports nothing heavy: the command line catches them before torch,
diffusers or pyiqa are imported."""

import threading

# Set by the command line's Ctrl-C handler. A KeyboardInterrupt that lands while a finalizer (__del__) runs is
# swallowed by Python ("Exception ignored in ..."), so training loops also check this flag each step: Ctrl-C always
# stops them.
INTERRUPTED = threading.Event()


def on_interrupt(signum, frame) -> None:
    """SIGINT handler of the command line: remember the interrupt, then raise it as Python's default would."""
    INTERRUPTED.set()
    raise KeyboardInterrupt


class ImageLoadError(ValueError):
    """An image file that cannot be read, or that cannot be used as asked; the message names the file."""


class RunLockedError(RuntimeError):
    """Another process is training this run."""


class IncompleteRunError(RuntimeError):
    """A run folder that claims to be finished but is not whole (a damaged done marker, a missing model)."""


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read."""


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss; the run stopped with its last good checkpoint."""
