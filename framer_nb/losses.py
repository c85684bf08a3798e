"""The FRAMER term: IntraCL, InterCL, FAW, FAM (docs/method.md, section 2), vectorised over layers.

Shapes: L layers, B images, D = C*H*W flattened band bins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .config import FramerConfig
from .freq import band_energy, band_vectors, cosine_to, half_band_masks, half_magnitudes
from .recompute import recompute

Gather = Callable[[Tensor], Tensor]


@dataclass
class FramerOutput:
    """The distillation term (before lambda) and its per-layer diagnostics (all [L, B] unless noted)."""

    distill: Tensor  # scalar: mean over layers of the batch-mean weighted loss
    per_layer: Tensor  # [L]
    lf_loss: Tensor
    hf_loss: Tensor
    faw_lf: Tensor
    faw_hf: Tensor
    fam_lf: Tensor
    fam_hf: Tensor
    sim_lf: Tensor
    sim_hf: Tensor
    neg_layers: Tensor | None  # [L]

    def layer_means(self) -> dict[str, list[float]]:
        """Batch-mean diagnostics per layer, as plain lists (for logs and figures)."""
        names = ("faw_lf", "faw_hf", "fam_lf", "fam_hf", "sim_lf", "sim_hf")
        return {n: getattr(self, n).float().mean(1).tolist() for n in names}


def intra_contrastive(q: Tensor, k: Tensor, n: Tensor | None, tau: float) -> Tensor:
    """IntraCL: two-way softmax of student q vs teacher k (positive) and random layer n: [L, B].

    Without a negative the softmax is identically zero, so we fall back to the alignment term (1 - s+)/tau.
    """
    pos = cosine_to(q, k) / tau
    if n is None:
        return (1.0 - pos * tau) / tau
    neg = (q * n).sum(-1) / tau
    return F.softplus(neg - pos)  # = -log(e^pos / (e^pos + e^neg)), stable


def inter_contrastive(q: Tensor, k: Tensor, n: Tensor | None, tau: float,
                      gather: Gather | None = None, in_batch: bool = True) -> Tensor:
    """InterCL: InfoNCE of q against all teachers' and all random-layer vectors in the global batch: [L, B]."""
    if not in_batch:
        return intra_contrastive(q, k, n, tau)
    gather = gather or (lambda t: t)
    keys = gather(k.detach())  # [Bg, D]
    logits = [torch.einsum("lbd,kd->lbk", q, keys)]
    if n is not None:
        negs = gather(n.detach().transpose(0, 1).contiguous()).transpose(0, 1)  # [L, Bg, D]
        logits.append(torch.einsum("lbd,lkd->lbk", q, negs))
    logits = torch.cat(logits, dim=-1) / tau
    target = torch.arange(q.shape[1], device=q.device) + _rank(gather) * q.shape[1]
    pos = logits.gather(-1, target.view(1, -1, 1).expand(q.shape[0], -1, 1)).squeeze(-1)
    return torch.logsumexp(logits, dim=-1) - pos


def _rank(gather: Gather | None) -> int:
    """This process's block in a gathered batch (0 when not distributed)."""
    if gather is None or not (dist.is_available() and dist.is_initialized()):
        return 0
    return dist.get_rank()


def adaptive_weight(student_energy: Tensor, teacher_energy: Tensor, eps: float = 1e-9) -> Tensor:
    """FAW: w = 1 / (1 + |E_teacher - E_student| / E_student), detached, in (0, 1]."""
    delta = (teacher_energy - student_energy).abs() / (student_energy + eps)
    return (1.0 / (1.0 + delta)).detach()


def alignment_modulation(similarity: Tensor) -> Tensor:
    """FAM: a = stopgrad(relu(cos(student band, teacher band)))."""
    return similarity.detach().clamp_min(0.0)


def random_negative_layers(num_layers: int, generator: torch.Generator | None = None) -> Tensor:
    """For each layer i, one layer drawn uniformly from the other layers: [L] long."""
    if num_layers < 2:
        raise ValueError("random-layer negatives need at least 2 student layers")
    j = torch.randint(0, num_layers - 1, (num_layers,), generator=generator)
    return j + (j >= torch.arange(num_layers)).long()


def framer_loss(students: Tensor | Sequence[Tensor], teacher: Tensor, config: FramerConfig = FramerConfig(),
                neg_layers: Tensor | Sequence[int] | None = None, gather: Gather | None = None,
                generator: torch.Generator | None = None) -> FramerOutput:
    """The FRAMER term for students [L, B, C, H, W] (or a list) and the final output's estimate [B, C, H, W]."""
    students = torch.stack(list(students)) if not isinstance(students, Tensor) else students
    students, teacher = _select_teacher(students, teacher, config.teacher_layer)
    if config.objective == "l2":
        return _l2_output(students, teacher)
    if config.objective == "none":
        return _empty_output(students)
    neg = None
    if config.random_negatives:
        neg = random_negative_layers(students.shape[0], generator) if neg_layers is None else neg_layers
        # drawn on the CPU (the same in every process); copied without waiting for the queued forward pass: a
        # blocking host-to-device copy here would stall the GPU while the backward pass is being launched
        neg = torch.as_tensor(neg, dtype=torch.long).to(students.device, non_blocking=True)
    # on accelerators recomputed in the backward pass: of the FFTs, masks and band vectors only the students are
    # kept, so the term adds almost no memory to a training step (framer_nb.recompute)
    return recompute(_contrastive, students, teacher, config, neg, gather)


def _select_teacher(students: Tensor, teacher: Tensor, layer: int | None) -> tuple[Tensor, Tensor]:
    """Final output teaches by default; with a fixed layer k, layer k teaches and leaves the students."""
    if layer is None:
        return students, teacher.detach()
    k = layer % students.shape[0]
    rest = torch.cat([students[:k], students[k + 1:]])
    return rest, students[k].detach()


def _contrastive(students: Tensor, teacher: Tensor, cfg: FramerConfig, neg: Tensor | None,
                 gather: Gather | None) -> FramerOutput:
    # the non-redundant half of each real spectrum, its mirrored columns counted twice: the same cosines,
    # energies and masks as on the full centred spectrum (docs/method.md, section 2), at half the cost
    t_mag, mult = half_magnitudes(teacher)
    s_mag, _ = half_magnitudes(students)  # one FFT for all layers
    low, high = half_band_masks(t_mag, teacher.shape[-1], cfg.mask, cfg.cutoff, cfg.radius)
    losses, sims, weights = {}, {}, {}
    for band, mask in (("lf", low), ("hf", high)):
        weighted = mask * mult.sqrt()  # a cosine weights each bin's product by its multiplicity
        q, k = band_vectors(s_mag, weighted), band_vectors(t_mag, weighted)
        n = q[neg].detach() if neg is not None else None
        sims[band] = cosine_to(q, k)
        use_inter = {"paper": band == "hf", "swapped": band == "lf", "intra_both": False,
                     "inter_both": True}[cfg.bands]
        losses[band] = (inter_contrastive(q, k, n, cfg.tau, gather, cfg.in_batch_negatives)
                        if use_inter else intra_contrastive(q, k, n, cfg.tau))
        faw = adaptive_weight(band_energy(s_mag, mask, mult=mult), band_energy(t_mag, mask, mult=mult))
        weights[band] = (faw if cfg.faw else torch.ones_like(faw),
                         alignment_modulation(sims[band]) if cfg.fam else torch.ones_like(faw))
    per_sample = sum(weights[b][0] * weights[b][1] * losses[b] for b in ("lf", "hf"))
    per_layer = per_sample.mean(1)
    return FramerOutput(per_layer.mean(), per_layer, losses["lf"], losses["hf"], weights["lf"][0],
                        weights["hf"][0], weights["lf"][1], weights["hf"][1],
                        sims["lf"].detach(), sims["hf"].detach(), neg)


def _l2_output(students: Tensor, teacher: Tensor) -> FramerOutput:
    """Plain self-distillation: mean squared error of every student to the (detached) teacher."""
    per_sample = (students - teacher).pow(2).flatten(2).mean(-1)
    per_layer = per_sample.mean(1)
    ones = torch.ones_like(per_sample).detach()
    zeros = torch.zeros_like(ones)
    return FramerOutput(per_layer.mean(), per_layer, per_sample, per_sample, ones, ones, ones, ones,
                        zeros, zeros, None)


def _empty_output(students: Tensor) -> FramerOutput:
    """Baseline: a zero term (no graph), with zero diagnostics of the right shape."""
    zeros = students.new_zeros(students.shape[:2])
    return FramerOutput(zeros.sum(), zeros.mean(1), zeros, zeros, zeros, zeros, zeros, zeros,
                        zeros, zeros, None)
