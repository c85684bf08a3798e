import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def maps():
    """Random students [L=4, B=3, C=2, H=8, W=8] (leaf, requires grad) and a teacher [B, C, H, W]."""
    g = torch.Generator().manual_seed(0)
    students = torch.randn(4, 3, 2, 8, 8, generator=g).requires_grad_()
    teacher = torch.randn(3, 2, 8, 8, generator=g)
    return students, teacher
