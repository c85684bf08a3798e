"""An independent, loop-based transcription of the released code's FRAMER term (docs/method.md, section 2).

Deliberately naive (one layer and one sample at a time) so that it checks the vectorised version.
"""

import torch
import torch.nn.functional as F


def _spec(x):
    return torch.fft.fftshift(torch.fft.fft2(x.float()), dim=(-2, -1))


def reference_framer(students, teacher, neg_layers, cutoff=0.2, tau=1.0, eps=1e-9):
    """students [L,B,C,H,W], teacher [B,C,H,W]; returns the mean over layers of the batch-mean loss."""
    L, B = students.shape[:2]
    t_mag = _spec(teacher.detach()).abs()
    q = torch.quantile(t_mag.reshape(B, -1), cutoff, dim=1).view(B, 1, 1, 1)
    m_low, m_high = (t_mag < q).float(), (t_mag >= q).float()

    def vec(mag, m):
        return F.normalize((mag * m).reshape(mag.shape[0], -1), dim=1)

    def energy(mag, m):
        return ((mag * m).sum((-2, -1)) / (m.sum((-2, -1)) + eps)).mean(-1)

    kL, kH = vec(t_mag, m_low), vec(t_mag, m_high)
    eT_L, eT_H = energy(t_mag, m_low), energy(t_mag, m_high)
    layer_losses = []
    for i in range(L):
        s_mag = _spec(students[i]).abs()
        n_mag = _spec(students[neg_layers[i]].detach()).abs()
        qL, qH = vec(s_mag, m_low), vec(s_mag, m_high)
        nL, nH = vec(n_mag, m_low).detach(), vec(n_mag, m_high).detach()
        # IntraCL: CE over [s+, s-] with label 0
        logits_l = torch.stack([(qL * kL).sum(1), (qL * nL).sum(1)], 1) / tau
        intra = F.cross_entropy(logits_l, torch.zeros(B, dtype=torch.long), reduction="none")
        # InterCL: q_H against [all teachers ; all random-layer negatives], target = own index
        logits_h = qH @ torch.cat([kH, nH]).T / tau
        inter = F.cross_entropy(logits_h, torch.arange(B), reduction="none")
        # FAW (relative gap) and FAM (relu cos), detached
        eS_L, eS_H = energy(s_mag, m_low), energy(s_mag, m_high)
        wL = (1 / (1 + (eT_L - eS_L).abs() / (eS_L + eps))).detach()
        wH = (1 / (1 + (eT_H - eS_H).abs() / (eS_H + eps))).detach()
        aL = torch.relu((qL * kL).sum(1)).detach()
        aH = torch.relu((qH * kH).sum(1)).detach()
        layer_losses.append((wL * aL * intra + wH * aH * inter).mean())
    return torch.stack(layer_losses).mean()
