import math

import pytest
import torch
from reference_framer import reference_framer

from framer_nb.config import FramerConfig
from framer_nb.losses import (
    adaptive_weight,
    alignment_modulation,
    framer_loss,
    inter_contrastive,
    intra_contrastive,
    random_negative_layers,
)


def test_intra_golden():
    q, k, n = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[[0.0, 1.0]]])
    assert intra_contrastive(q, k, n, tau=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert intra_contrastive(q, k, n, tau=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)
    assert intra_contrastive(q, k, None, tau=1.0).item() == pytest.approx(0.0, abs=1e-7)  # aligned, no negative


def test_inter_golden():
    eye = torch.eye(2)
    q, k, n = eye[None], eye, eye.flip(0)[None]  # logits per sample: keys [1, 0], negatives [0, 1]
    expected = math.log(2 * math.e + 2) - 1
    assert torch.allclose(inter_contrastive(q, k, n, 1.0), torch.full((1, 2), expected), rtol=1e-6)
    # without negatives from other images it is the two-way IntraCL form
    assert torch.allclose(inter_contrastive(q, k, n, 1.0, in_batch=False), intra_contrastive(q, k, n, 1.0))


def test_faw_fam_golden():
    w = adaptive_weight(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 1.0, 3.0]))
    assert torch.allclose(w, torch.tensor([0.5, 2 / 3, 1.0]), rtol=1e-6)
    a = alignment_modulation(torch.tensor([-0.3, 0.4], requires_grad=True))
    assert a.tolist() == pytest.approx([0.0, 0.4]) and not a.requires_grad


def test_matches_released_definition(maps):
    students, teacher = maps
    neg = [2, 0, 3, 1]
    ours = framer_loss(students, teacher, FramerConfig(mask="quantile", cutoff=0.2, tau=1.0), neg_layers=neg)
    ref_students = students.detach().clone().requires_grad_()
    ref = reference_framer(ref_students, teacher, neg)
    assert ours.distill.item() == pytest.approx(ref.item(), rel=1e-5)
    ours.distill.backward()
    ref.backward()
    assert torch.allclose(students.grad, ref_students.grad, rtol=1e-4, atol=1e-7)


def test_list_input_equals_stacked(maps):
    students, teacher = maps
    a = framer_loss(students, teacher, neg_layers=[1, 2, 3, 0]).distill
    b = framer_loss(list(students), teacher, neg_layers=[1, 2, 3, 0]).distill
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_teacher_scale_invariance(maps):
    students, teacher = maps
    neg = [1, 2, 3, 0]
    no_faw = FramerConfig(faw=False)
    a = framer_loss(students, teacher, no_faw, neg_layers=neg).distill
    b = framer_loss(students, 7.5 * teacher, no_faw, neg_layers=neg).distill
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
    # FAW compares band energies, so with FAW the term is invariant to a joint rescaling
    c = framer_loss(students, teacher, neg_layers=neg).distill
    d = framer_loss(3.0 * students, 3.0 * teacher, neg_layers=neg).distill
    assert c.item() == pytest.approx(d.item(), rel=1e-5)


def test_batch_permutation_equivariance(maps):
    students, teacher = maps
    perm = torch.tensor([2, 0, 1])
    a = framer_loss(students, teacher, neg_layers=[1, 2, 3, 0])
    b = framer_loss(students[:, perm], teacher[perm], neg_layers=[1, 2, 3, 0])
    assert torch.allclose(a.hf_loss[:, perm], b.hf_loss, rtol=1e-5)
    assert a.distill.item() == pytest.approx(b.distill.item(), rel=1e-5)


def test_teacher_gets_no_gradient_and_weights_detached(maps):
    students, teacher = maps
    teacher = teacher.clone().requires_grad_()
    out = framer_loss(students, teacher)
    out.distill.backward()
    assert teacher.grad is None
    assert students.grad is not None and students.grad.abs().sum() > 0
    for w in (out.faw_lf, out.faw_hf, out.fam_lf, out.fam_hf):
        assert not w.requires_grad and (w >= 0).all() and (w <= 1 + 1e-6).all()


def test_recomputed_term_equals_the_plain_one(maps, monkeypatch):
    # on accelerators the term is recomputed in the backward pass (framer_nb.recompute); values and gradients
    # are those of the plain computation that runs on the CPU
    from framer_nb import recompute
    students, teacher = maps
    results = []
    for on_cpu in (False, True):
        monkeypatch.setattr(recompute, "ON_CPU", on_cpu)
        s = students.detach().clone().requires_grad_()
        out = framer_loss(s, teacher, neg_layers=[1, 0, 3, 2])
        out.distill.backward()
        results.append((out.distill.detach(), s.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


@pytest.mark.parametrize("shape", [(2, 1, 1, 5, 7), (2, 3, 2, 9, 9), (3, 2, 4, 6, 5)])
def test_zero_maps_small_batches_odd_sizes(shape):
    L, B, C, H, W = shape
    for students, teacher in [(torch.zeros(shape, requires_grad=True), torch.zeros(B, C, H, W)),
                              (torch.randn(shape, requires_grad=True), torch.randn(B, C, H, W))]:
        for cfg in (FramerConfig(), FramerConfig(mask="radial"), FramerConfig(bands="inter_both")):
            out = framer_loss(students, teacher, cfg)
            out.distill.backward()
            assert torch.isfinite(out.distill) and torch.isfinite(students.grad).all()


def test_single_image_inter_reduces_to_two_way():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(3, 1, 2, 6, 6, generator=g), torch.randn(1, 2, 6, 6, generator=g)
    out = framer_loss(s, t, neg_layers=[1, 2, 0])
    swapped = framer_loss(s, t, FramerConfig(bands="intra_both"), neg_layers=[1, 2, 0])
    assert torch.allclose(out.hf_loss, swapped.hf_loss, rtol=1e-6)


def test_random_negative_layers_never_self():
    g = torch.Generator().manual_seed(0)
    for L in (2, 3, 7):
        for _ in range(50):
            j = random_negative_layers(L, g)
            assert (j != torch.arange(L)).all() and (j >= 0).all() and (j < L).all()
    with pytest.raises(ValueError, match="at least 2"):
        random_negative_layers(1)


def test_objectives_and_switches(maps):
    students, teacher = maps
    base = framer_loss(students, teacher, FramerConfig(objective="none"))
    assert base.distill.item() == 0.0 and not base.distill.requires_grad
    l2 = framer_loss(students, teacher, FramerConfig(objective="l2"))
    assert l2.distill.item() == pytest.approx((students - teacher).pow(2).mean().item(), rel=1e-6)
    fixed = framer_loss(students, teacher, FramerConfig(teacher_layer=1))
    assert fixed.per_layer.shape == (3,)  # layer 1 teaches, three students remain
    off = framer_loss(students, teacher, FramerConfig(faw=False, fam=False), neg_layers=[1, 2, 3, 0])
    assert torch.allclose(off.per_layer, (off.lf_loss + off.hf_loss).mean(1))
    swapped = framer_loss(students, teacher, FramerConfig(bands="swapped"), neg_layers=[1, 2, 3, 0])
    paper = framer_loss(students, teacher, neg_layers=[1, 2, 3, 0])
    assert not torch.allclose(swapped.lf_loss, paper.lf_loss)
    no_neg = framer_loss(students, teacher, FramerConfig(random_negatives=False))
    assert no_neg.neg_layers is None and torch.isfinite(no_neg.distill)


def test_config_validation():
    with pytest.raises(ValueError, match="mask"):
        FramerConfig(mask="ring")
    with pytest.raises(ValueError, match="cutoff"):
        FramerConfig(cutoff=1.5)


@pytest.mark.parametrize("mask", ["quantile", "radial"])
@pytest.mark.parametrize("hw", [(8, 8), (9, 7), (6, 11)])
def test_half_spectrum_equals_full_spectrum(mask, hw):
    """The term works on the non-redundant half of each real spectrum (rfft2), mirrored columns counted twice;
    its similarities, FAW weights and masks equal those of the full spectrum, for even and odd sizes.

    One difference by design: on the full spectrum, rounding can put a bin and its mirrored twin (equal in
    exact arithmetic) on both sides of the quantile cutoff; the half keeps twins together. The full-spectrum
    side here therefore takes its masks from the twin-averaged magnitudes."""
    from framer_nb.freq import band_energy, band_masks, band_vectors, half_band_masks, half_magnitudes
    g = torch.Generator().manual_seed(1)
    students, teacher = torch.randn(3, 4, 2, *hw, generator=g), torch.randn(4, 2, *hw, generator=g)
    out = framer_loss(students, teacher, FramerConfig(mask=mask, cutoff=0.3, radius=0.4), neg_layers=[1, 2, 0])

    def full(x):  # centred |F| with each bin averaged with its mirrored twin (index -k)
        mag = torch.fft.fft2(x).abs()
        twin = torch.roll(torch.flip(mag, (-2, -1)), (1, 1), (-2, -1))
        return torch.fft.fftshift((mag + twin) / 2, dim=(-2, -1))
    s_full, t_full = full(students), full(teacher)
    low, high = band_masks(t_full, mask, 0.3, 0.4)
    for m, sim, faw in ((low, out.sim_lf, out.faw_lf), (high, out.sim_hf, out.faw_hf)):
        full_sim = (band_vectors(s_full, m) * band_vectors(t_full, m)).sum(-1)
        full_faw = adaptive_weight(band_energy(s_full, m), band_energy(t_full, m))
        assert torch.allclose(sim, full_sim, atol=1e-6) and torch.allclose(faw, full_faw, atol=1e-6)
    half, mult = half_magnitudes(teacher)
    half_low, _ = half_band_masks(half, hw[1], mask, 0.3, 0.4)
    assert (half_low * mult).sum() == low.sum()  # the same number of bins in each band


@pytest.mark.slow
def test_the_compiled_framer_term_equals_the_eager_one():
    # StepOptions.compile: torch.compile of framer_loss (about a minute of compilation on 2 CPU cores)
    from framer_nb.step import compiled_framer_loss
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(4, 3, 16, 16, generator=g)
    grads = []
    for fn in (framer_loss, compiled_framer_loss()):
        students = torch.randn(5, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
        out = fn(students, teacher, FramerConfig(), generator=torch.Generator().manual_seed(2))
        out.distill.backward()
        grads.append((out.distill.detach(), students.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-4, atol=1e-7)
