"""Per-image prompts for pipelines with text encoders: a JSON file {image stem: caption}, embedded once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .backbones import Backbone, prompt_context
from .runs import prompt_cache


@dataclass
class Captions:
    """Each image's prompt embeddings [1, ...] per model input, and the null prompt's for images without one."""

    context_by_name: dict[str, dict]
    null: dict

    @classmethod
    def load(cls, path: str | Path, bb: Backbone, pipeline: str | None, runs: str | Path) -> Captions:
        try:
            table = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable JSON captions file ({e})") from e
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(f"{path}: captions must be a JSON object {{image stem: text}}")
        if not pipeline:
            raise ValueError(f"{path}: captions need a pipeline with text encoders (--pretrained)")
        names = sorted(table)
        ctx = prompt_context(bb.spec, pipeline, [table[n] for n in names], prompt_cache(runs))
        return cls({n: {k: v[i:i + 1] for k, v in ctx.items()} for i, n in enumerate(names)}, bb.context)

    def context(self, names: list[str]) -> dict:
        """Batch conditioning [B, ...]: each image's caption, the null prompt where it has none."""
        rows = [self.context_by_name.get(n, self.null) for n in names]
        return {k: torch.cat([r[k].expand(1, *r[k].shape[1:]) for r in rows]) for k in self.null}
