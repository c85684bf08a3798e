"""Run in each of 2 processes by accelerate: InterCL with gathered in-batch negatives on half the batch."""

import json
import os

import torch


def worker() -> None:
    from accelerate import Accelerator

    from framer_nb.losses import framer_loss

    acc = Accelerator(cpu=True)
    g = torch.Generator().manual_seed(0)  # the same full batch in every process
    students = torch.randn(3, 4, 2, 6, 6, generator=g)
    teacher = torch.randn(4, 2, 6, 6, generator=g)
    half = 4 // acc.num_processes
    rows = slice(acc.process_index * half, (acc.process_index + 1) * half)
    local = students[:, rows].clone().requires_grad_()
    out = framer_loss(local, teacher[rows], neg_layers=[2, 0, 1], gather=acc.gather)
    out.distill.backward()
    result = {"loss": out.distill.item(), "grad": local.grad.tolist(), "hf": out.hf_loss.tolist(),
              "world": acc.num_processes}
    with open(os.path.join(os.environ["FRAMER_DIST_OUT"], f"rank{acc.process_index}.json"), "w") as f:
        json.dump(result, f)
    acc.wait_for_everyone()
    torch.distributed.destroy_process_group()  # leaving with gloo still up can abort a process at exit


if __name__ == "__main__":
    worker()
