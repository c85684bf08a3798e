"""framer_nb: a Jupyter-first reproduction of FRAMER (arXiv 2512.01390)."""

__version__ = "0.1.0"

from .config import FramerConfig, TrainConfig, profile, variant  # noqa: F401
from .losses import FramerOutput, framer_loss  # noqa: F401
