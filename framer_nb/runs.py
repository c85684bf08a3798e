"""One owner of a run folder: its key, config, lock, log, checkpoint, model, heads, done marker and scores.

    <runs>/<backbone>/<variant>/seed<s>-<key>/     an SR run (<runs>/prior/<backbone>-<key>/ for a prior)
        run.json                 config, data source and prior, written when the run starts
        lock                     held (flock) by the process that trains it
        log.csv                  per-step losses and per-layer diagnostics
        checkpoint.safetensors   model, heads, EMA, optimizer, scheduler, RNG, step
        model/                   the inference model (save_pretrained), heads.safetensors beside it
        done.json                written last, with provenance: the run is finished
        eval/<test set>-<n>steps/ per_image.csv, summary.json, crops/, sr.pt

The key hashes everything that changes what is trained: the training config, the variant, the backbone's
objective, the data source's fingerprint and the prior's identity. Train, pipeline, evaluate, the CLI, the
notebooks and the benchmarks all go through `Run`.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class RunLockedError(RuntimeError):
    """Another process is training this run."""


def stable_hash(*parts, length: int = 12) -> str:
    """A short hash of JSON-able parts (dataclasses are taken as dicts)."""
    def plain(x):
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x
    payload = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Run:
    """A run folder and everything in it."""

    path: Path

    # ------------------------------------------------------------ naming
    @classmethod
    def sr(cls, runs: str | Path, backbone: str, variant: str, seed: int, *key_parts) -> Run:
        return cls(Path(runs) / backbone / variant / f"seed{seed}-{stable_hash(*key_parts)}")

    @classmethod
    def prior(cls, runs: str | Path, backbone: str, *key_parts) -> Run:
        return cls(Path(runs) / "prior" / f"{backbone}-{stable_hash(*key_parts)}")

    @property
    def name(self) -> str:
        return self.path.name

    # ------------------------------------------------------------ files
    @property
    def info_file(self) -> Path:
        return self.path / "run.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.csv"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.safetensors"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def heads_file(self) -> Path:
        return self.path / "heads.safetensors"

    @property
    def done_file(self) -> Path:
        return self.path / "done.json"

    @property
    def done(self) -> bool:
        return self.done_file.exists()

    def info(self) -> dict:
        """run.json, or done.json's record for runs finished before run.json existed."""
        for f in (self.info_file, self.done_file):
            if f.exists():
                return json.loads(f.read_text())
        raise FileNotFoundError(f"{self.path}: not a run folder (no run.json or done.json)")

    def done_record(self) -> dict:
        if not self.done:
            raise FileNotFoundError(f"{self.path}: the run has not finished (no done.json); train it first")
        return json.loads(self.done_file.read_text())

    def eval_dir(self, test_key: str, steps: int) -> Path:
        """Where this run's scores on one test set with one sampler step count live."""
        return self.path / "eval" / f"{test_key}-{steps}steps"

    # ------------------------------------------------------------ lifecycle
    def start(self, record: dict) -> None:
        """Create the folder and write run.json (the config a resume must match)."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self.info_file.exists():
            old = json.loads(self.info_file.read_text())
            if old.get("key_parts") != record.get("key_parts"):
                raise RuntimeError(f"{self.info_file}: this folder holds a run with another config or data source; "
                                   "move it away or use --no-resume")
        _atomic_write(self.info_file, json.dumps(record, indent=2, default=str))

    def finish(self, record: dict) -> None:
        _atomic_write(self.done_file, json.dumps(record, indent=2, default=str))

    @contextmanager
    def lock(self):
        """Hold an exclusive lock on the run folder while training it; a second trainer fails at once."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise RunLockedError(f"{self.path}: another process (pid {holder}) is training this run; "
                                         "wait for it or stop it") from None
                raise
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield self
        finally:
            os.close(fd)  # closing releases the lock


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
