"""One owner of a run folder: its key, config, lock, log, checkpoint, model, heads, done marker and scores.

    <runs>/<backbone>/<variant>/seed<s>-<key>/     an SR run (<runs>/prior/<backbone>-<key>/ for a prior)
        run.json                 config, data source and prior, written when the run starts
        lock                     held (flock) by the process that trains it
        log.csv                  per-step losses and per-layer diagnostics
        checkpoint.safetensors   model, heads, EMA, optimizer, scheduler, RNG, step
        model/                   the inference model (save_pretrained), heads.safetensors beside it
        done.json                written last, with provenance: the run is finished
        eval/<test set>-<n>steps/ an Evaluation: per_image.csv, summary.json, crops/<image>__<method>.png, sr.pt
    <runs>/prompts/              text-encoder embeddings of pipelines' prompts (shared)
    <runs>/latents/              fixed training pairs encoded once (shared; framer_nb.cache)
    <results>/bicubic/<protocol>/<test set>/   the bicubic reference, an Evaluation too

The key hashes everything that changes what is trained: the training config, the variant, the backbone's
objective, the data source's fingerprint and the prior's identity. Nothing else in the package, the notebooks
or the benchmarks builds these paths: they all go through `Run`, `Evaluation` and the functions below.
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

from .config import TrainConfig
from .errors import IncompleteRunError, RunLockedError


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

    @property
    def root(self) -> Path:
        """The runs folder this run lives in."""
        return self.path.parents[1] if self.path.parent.name == "prior" else self.path.parents[2]

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
    def heldout_curve(self) -> Path:
        """A prior's held-out objective over its steps (framer_nb.priors.pretrain)."""
        return self.path / "heldout_curve.json"

    @property
    def done_file(self) -> Path:
        return self.path / "done.json"

    @property
    def done(self) -> bool:
        """Finished and whole: a done marker that parses and every file it lists, at the size it lists. A marker
        with anything less raises IncompleteRunError, which names the path and what to do."""
        if not self.done_file.exists():
            return False
        self.done_record()
        return True

    def info(self) -> dict:
        """run.json, the record written when the run started."""
        if not self.info_file.exists():
            raise FileNotFoundError(f"{self.path}: not a run folder (no run.json)")
        return _read_json(self.info_file, "run record")

    def done_record(self) -> dict:
        """done.json, after checking the files it promises."""
        if not self.done_file.exists():
            raise FileNotFoundError(f"{self.path}: the run has not finished (no done.json); train it first")
        redo = f"delete {self.done_file} and train again (it resumes from its checkpoint)"
        try:
            record = _read_json(self.done_file, "done marker")
        except ValueError as e:
            raise IncompleteRunError(f"{e}; {redo}") from None
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict) or not files:
            raise IncompleteRunError(f"{self.done_file}: lists no files; {redo}")
        for rel, size in files.items():
            f = self.path / rel
            if not f.is_file():
                raise IncompleteRunError(f"{f}: missing, though {self.done_file.name} lists it; {redo}")
            if f.stat().st_size != size:
                raise IncompleteRunError(f"{f}: {f.stat().st_size} bytes, {self.done_file.name} says {size}; {redo}")
        return record

    def config(self) -> TrainConfig:
        """The TrainConfig this run was trained with (from run.json)."""
        try:
            return TrainConfig.from_dict(self.info()["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{self.info_file}: no valid training config ({e})") from e

    def evaluation(self, test_key: str, steps: int) -> Evaluation:
        """This run's scores on one test set with one sampler step count."""
        return Evaluation(self.path / "eval" / f"{test_key}-{steps}steps")

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
        """Write the done marker, listing the inference model's files (and the heads) with their sizes."""
        files = sorted(p for p in self.model_dir.rglob("*") if p.is_file()) if self.model_dir.exists() else []
        files += [self.heads_file] if self.heads_file.exists() else []
        if not files:
            raise IncompleteRunError(f"{self.path}: no model was saved; the run cannot be marked done")
        listed = {str(p.relative_to(self.path)): p.stat().st_size for p in files}
        _atomic_write(self.done_file, json.dumps({**record, "files": listed}, indent=2, default=str))

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


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable {what} ({e})") from e


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@dataclass(frozen=True)
class Evaluation:
    """One scoring of a model (or of bicubic) on one test set: per-image scores, summary, crops, SR tensors."""

    path: Path

    @property
    def per_image(self) -> Path:
        return self.path / "per_image.csv"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def crops(self) -> Path:
        return self.path / "crops"

    @property
    def sr_file(self) -> Path:
        return self.path / "sr.pt"

    @property
    def done(self) -> bool:
        """Whether the scores exist (the summary is written last)."""
        return self.summary_file.exists()

    def crop(self, image: str, method: str = "sr") -> Path:
        """The saved PNG of one method's output ('sr' for a model; 'lr_up' and 'hr' beside bicubic)."""
        return self.crops / f"{image}__{method}.png"

    def crop_images(self, method: str) -> list[str]:
        """The images whose `method` crop was saved, sorted."""
        return sorted(p.name.rsplit("__", 1)[0] for p in self.crops.glob(f"*__{method}.png"))

    def summary(self) -> dict:
        return json.loads(self.summary_file.read_text())


def bicubic_evaluation(results: str | Path, protocol: str, test_key: str) -> Evaluation:
    """Where the bicubic reference of one test set is scored."""
    return Evaluation(Path(results) / "bicubic" / protocol / test_key)


def prompt_cache(runs: str | Path) -> Path:
    """The folder of cached prompt embeddings of the runs under `runs`."""
    return Path(runs) / "prompts"


def latents_file(runs: str | Path, backbone: str, key: str) -> Path:
    """Where one set of fixed training pairs in model space is cached."""
    return Path(runs) / "latents" / f"{backbone}-{key}.safetensors"
