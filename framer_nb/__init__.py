"""framer_nb: a Jupyter-first reproduction of FRAMER (arXiv 2512.01390)."""

import logging

__version__ = "0.1.0"

# bitsandbytes (pulled in by pyiqa, imported by the diffusers/transformers stack) warns at import, on CPUs with
# AVX512-BF16, that its optional 4-bit CPU kernel (the `kernels` package) is missing. Nothing here uses 4-bit
# layers; the warning would be the first line of every CLI error and a stderr output in every notebook. Left as
# it is when the user has set that logger's level.
if logging.getLogger("bitsandbytes").level == logging.NOTSET:
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

from .config import FramerConfig, TrainConfig, profile, variant  # noqa: E402, F401


def __getattr__(name: str):
    """`framer_loss` and `FramerOutput` import torch on first use, so `import framer_nb` (and the command line's
    argument checks) stay light."""
    if name in ("framer_loss", "FramerOutput"):
        from . import losses
        return getattr(losses, name)
    raise AttributeError(f"module 'framer_nb' has no attribute {name!r}")
