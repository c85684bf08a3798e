"""Frozen configs, the named FRAMER variants and the run profiles (smoke, small, gpu, paper)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class FramerConfig:
    """The FRAMER term and its ablation switches (docs/method.md, section 2)."""

    objective: str = "contrastive"  # contrastive (FRAMER) | l2 (plain self-distillation) | none (baseline)
    mask: str = "quantile"  # quantile (released code) | radial (the paper's rings)
    cutoff: float = 0.2  # quantile mode: share of the teacher's weakest |F| bins that form the "LF" band
    radius: float = 0.25  # radial mode: LF ring radius as a fraction of Nyquist
    tau: float = 1.0  # temperature of both contrastive losses
    teacher_layer: int | None = None  # None: final output teaches; k: student layer k teaches (Table 3)
    random_negatives: bool = True  # negative = same image at a random other layer
    in_batch_negatives: bool = True  # InterCL also contrasts against other images (gathered)
    bands: str = "paper"  # paper (Intra->LF, Inter->HF) | swapped | intra_both | inter_both
    faw: bool = True  # frequency-based adaptive weight
    fam: bool = True  # frequency-based alignment modulation
    weight: float = 0.1  # lambda: loss = objective + weight * distill
    # True: the FRAMER term also trains the output head that the students share with the model's output (SD3:
    # norm_out, proj_out). False (chosen on the validation photos, docs/method.md section 5): that head is seen
    # with its gradient stopped, as in the released setting where only the LR stream trains. U-Net lens heads
    # are the lens's own and always train.
    head_grad: bool = False

    def __post_init__(self) -> None:
        _check_choice(self, "objective", self.objective, ("contrastive", "l2", "none"))
        _check_choice(self, "mask", self.mask, ("quantile", "radial"))
        _check_choice(self, "bands", self.bands, ("paper", "swapped", "intra_both", "inter_both"))
        if not 0.0 < self.cutoff < 1.0:
            raise ValueError(f"FramerConfig.cutoff must lie in (0, 1), got {self.cutoff}")
        if self.radius <= 0.0:
            raise ValueError(f"FramerConfig.radius must be > 0, got {self.radius}")
        if self.tau <= 0.0:
            raise ValueError(f"FramerConfig.tau must be > 0, got {self.tau}")


def _check_choice(owner, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{type(owner).__name__}.{name}={value!r} is not one of {choices}")


# Every row of the paper's ablation tables (2-5) plus our mask ablation, by name.
VARIANTS: dict[str, FramerConfig] = {
    "baseline": FramerConfig(objective="none"),
    "l2": FramerConfig(objective="l2"),
    "framer": FramerConfig(),
    "framer-radial": FramerConfig(mask="radial"),
    "teacher-mid": FramerConfig(teacher_layer=2),
    "no-random-neg": FramerConfig(random_negatives=False),
    "no-inbatch-neg": FramerConfig(in_batch_negatives=False),
    "bands-swapped": FramerConfig(bands="swapped"),
    "intra-both": FramerConfig(bands="intra_both"),
    "inter-both": FramerConfig(bands="inter_both"),
    "faw-only": FramerConfig(fam=False),
    "fam-only": FramerConfig(faw=False),
    "no-faw-fam": FramerConfig(faw=False, fam=False),
}


# Variants identical to another by construction: InterCL without in-batch negatives is IntraCL, so
# `no-inbatch-neg` puts IntraCL on both bands exactly as `intra-both` does. Trained once, reported under both.
ALIASES: dict[str, str] = {"no-inbatch-neg": "intra-both"}


def variant(name: str) -> FramerConfig:
    """The FramerConfig of a named variant."""
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


# The registered backbones (framer_nb.backbones.REGISTRY, which imports diffusers: a test keeps the two equal), the
# ones we pretrain and ship priors for, and the crop sides the tiny ones accept: a multiple of their 4x
# pixel-unshuffle times the DiT's 2x2 patches (8 px) or the U-Net's two downsamplings (16 px).
BACKBONES = ("tiny-dit", "tiny-unet", "sd35-medium", "sd2-base")
TINY_BACKBONES = ("tiny-dit", "tiny-unet")
IMAGE_MULTIPLE = {"tiny-dit": 8, "tiny-unet": 16}

LR_SCHEDULES = ("constant", "cosine")
PRIOR_SOURCES = ("shipped", "train", "none")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: backbone, data, optimisation, logging."""

    backbone: str = "tiny-dit"
    image_size: int = 64  # HR crop side in pixels (tiny models: 16 LR pixels of context)
    scale: int = 4  # SR factor
    degradation: str = "bicubic"  # bicubic (classic x4) | a preset in data/degradations/ (light, realesrgan_x4plus)
    target: str = "residual"  # residual: diffuse HR - upsampled LR (SRDiff-style) | image: diffuse HR itself
    residual_scale: float = 4.0  # residual target only: x0 = scale * (HR - LR) in model space (see docs/method.md)
    lr_detail: float = 16.0  # > 0: the LR condition also carries lr_detail * (LR - blur(LR)) (pixel spaces; 0: the LR alone)
    loss_space: str = "x0"  # x0: clean-signal MSE (released code's preconditioning) | native: plain v / eps MSE
    time_bias: float = 32.0  # > 1: SR-stage training times drawn nearer to noise (diffusion.sample_time); sampler unchanged
    batch_size: int = 16
    prior: str = "shipped"  # shipped: fine-tune data/priors/<backbone> | train: pretrain here | none: from scratch
    pretrained: str | None = None  # a diffusers pipeline or model folder to fine-tune (overrides `prior`)
    prior_steps: int = 400  # prior="train": stage-1 steps of the unconditional denoiser
    prior_batch_size: int = 64  # prior="train": its batch size
    prior_ema_decay: float = 0.999  # prior="train": its EMA decay
    sr_steps: int = 900  # SR fine-tuning steps
    lr: float = 2e-3
    prior_lr: float = 1e-3
    lr_schedule: str = "constant"  # after the 20-step warm-up: constant | cosine (decays to 0 at the last step)
    ema_decay: float = 0.99  # > 0: keep an exponential moving average of the weights and save it as the model
    # (diffusers' EMAModel uses min(ema_decay, (1 + step) / (10 + step)): about 0.990 at step 900 for any decay >= 0.99)
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10  # CSV row every N steps
    diag_every: int = 50  # per-layer FAW/FAM/similarity columns every N steps
    ckpt_every: int = 100
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate)
    grad_accum: int = 1
    grad_checkpointing: bool = False
    sample_steps: int = 10  # sampler steps at evaluation
    crop_scale: tuple[float, float] = (0.25, 0.75)  # training crops come from the photos downscaled by s in range
    captions: str | None = None  # JSON file {image stem: caption} for per-image prompts (pipelines with text encoders)
    num_workers: int = 0  # data-loading processes (0: in the training process); results do not depend on it
    cache_pairs: int = 0  # > 0: train on this many fixed pairs encoded once into runs/latents/ (framer_nb.cache)

    def key(self) -> dict:
        """The fields that change what is trained (logging, checkpoint and loader settings do not)."""
        skip = ("log_every", "diag_every", "ckpt_every", "num_workers")
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    @classmethod
    def from_dict(cls, fields: dict) -> TrainConfig:
        """The config a run recorded in run.json (JSON lists back to tuples); unknown fields are an error."""
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    def __post_init__(self) -> None:
        _check_choice(self, "lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice(self, "prior", self.prior, PRIOR_SOURCES)
        _check_choice(self, "target", self.target, ("residual", "image"))
        _check_choice(self, "loss_space", self.loss_space, ("x0", "native"))
        _check_choice(self, "mixed_precision", self.mixed_precision, ("no", "fp16", "bf16"))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_decay must lie in [0, 1), got {self.ema_decay}")
        for name in ("image_size", "scale", "batch_size", "sr_steps", "grad_accum", "log_every", "diag_every",
                     "ckpt_every", "sample_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.prior_steps < 0 or (self.prior == "train" and self.prior_steps < 1):
            raise ValueError(f"TrainConfig.prior_steps must be >= 1 to train a prior, got {self.prior_steps}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"TrainConfig.seed must lie in [0, 2**63), got {self.seed}")
        if self.image_size % self.scale:
            raise ValueError(f"TrainConfig.image_size={self.image_size} is not divisible by scale={self.scale}")
        multiple = IMAGE_MULTIPLE.get(self.backbone)
        if multiple and self.image_size % multiple:
            raise ValueError(f"TrainConfig.image_size={self.image_size} does not fit {self.backbone}: it needs a "
                             f"multiple of {multiple} px")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"TrainConfig.crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.time_bias <= 0:
            raise ValueError(f"TrainConfig.time_bias must be > 0, got {self.time_bias}")
        if self.lr_detail < 0:
            raise ValueError(f"TrainConfig.lr_detail must be >= 0, got {self.lr_detail}")
        if self.cache_pairs < 0:
            raise ValueError(f"TrainConfig.cache_pairs must be >= 0, got {self.cache_pairs}")
        if self.num_workers < 0:
            raise ValueError(f"TrainConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.lr <= 0 or self.prior_lr <= 0:
            raise ValueError(f"TrainConfig learning rates must be > 0, got lr={self.lr}, prior_lr={self.prior_lr}")


@dataclass(frozen=True)
class Profile:
    """A named budget: what the notebooks and `reproduce` run."""

    name: str
    train: TrainConfig
    # TrainConfig fields that differ for one backbone, chosen on the validation photos: {backbone: {field: value}}
    per_backbone: dict[str, dict] = dataclasses.field(default_factory=dict)
    backbones: tuple[str, ...] = ("tiny-unet", "tiny-dit")  # the first also runs the ablations
    seeds: tuple[int, ...] = (0, 1, 2)  # the main variants on every backbone
    main_variants: tuple[str, ...] = ("baseline", "framer")
    ablations: tuple[str, ...] = tuple(VARIANTS)  # first backbone only
    ablation_seeds: tuple[int, ...] = (0, 1)  # the ablations; their tables compare every row on these seeds
    n_test: int = 8  # held-out test crops
    test_size: int = 128  # HR side of the test crops (NIQE is stable from 128 px)
    n_observe: int = 16  # images for the observation statistics
    observe_size: int = 128
    second_task: str | None = "light"  # a second degradation for the main table (None: skip)
    budget_min: float | None = None  # wall time `reproduce` should stay within on the profile's machine (None: no budget)

    def train_for(self, backbone: str, **overrides) -> TrainConfig:
        """The TrainConfig of one backbone: the profile's, its `per_backbone` fields, then `overrides` (None values
        ignored)."""
        return with_overrides(self.train, backbone=backbone, **{**self.per_backbone.get(backbone, {}),
                                                                 **{k: v for k, v in overrides.items() if v is not None}})


SMALL_DIT_STEPS = 1350  # the image-target DiT's SR steps in `small` (research/results/image_target_steps.json)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",  # small's shape (the image-target DiT first), with the residual U-Net beside it
        train=TrainConfig(image_size=64, batch_size=4, sr_steps=4, log_every=1, diag_every=2, ckpt_every=2,
                          sample_steps=2),
        per_backbone={"tiny-dit": {"target": "image"}}, backbones=("tiny-dit", "tiny-unet"),
        seeds=(0,), ablation_seeds=(0,), ablations=("l2", "framer-radial", "faw-only"),
        n_test=2, test_size=96, n_observe=8, observe_size=64, second_task=None,
    ),
    # 20 runs on two CPU cores within a 90-min budget: 10 main (5 seeds) and 10 ablations (one seed; `gpu` runs three).
    # Five seeds, not three: the effect of FRAMER varies from seed to seed (research/results/power.json), and the
    # t-interval over 3 seeds is twice as wide as over 5 for the same spread (docs/method.md, held-out sets and seeds).
    # The tiny DiT diffusing the whole image from its image prior: where the premise holds (research/premise.py).
    # It trains 1350 SR steps: it is short of training samples where the U-Net is not (docs/method.md §5).
    "small": Profile(name="small", train=TrainConfig(),
                     per_backbone={"tiny-dit": {"sr_steps": SMALL_DIT_STEPS, "target": "image"}},
                     backbones=("tiny-dit",), seeds=(0, 1, 2, 3, 4), ablation_seeds=(0,),
                     second_task=None, budget_min=90.0),
    # The contrast: both backbones diffusing the residual, where neither prior shows the premise; the U-Net runs the
    # ablations (22 runs, about 70 min). Its last results: research/results/small_residual/.
    "small-residual": Profile(name="small-residual", train=TrainConfig(), per_backbone={"tiny-dit": {"sr_steps": 1350}},
                              ablation_seeds=(0,), second_task=None, budget_min=90.0),
    "gpu": Profile(
        name="gpu",
        train=TrainConfig(batch_size=64, sr_steps=3000, mixed_precision="bf16", sample_steps=30),
        ablation_seeds=(0, 1, 2), n_test=24, n_observe=64, observe_size=128,
    ),
    "paper": Profile(
        name="paper",
        train=TrainConfig(backbone="sd35-medium", image_size=512, batch_size=32, prior="none", sr_steps=20000,
                          lr=5e-5, mixed_precision="fp16", degradation="realesrgan_x4plus", grad_checkpointing=True,
                          sample_steps=40, ckpt_every=10000, target="image", lr_schedule="constant", ema_decay=0.0,
                          crop_scale=(1.0, 1.0), time_bias=1.0,  # the objective's own time sampling, as the paper
                          lr_detail=0.0),  # latents: the LR latents alone, as the released code
        backbones=("sd35-medium", "sd2-base"), seeds=(0,), ablation_seeds=(0,), n_test=100, test_size=512,
        second_task=None,
    ),
}


def profile(name: str) -> Profile:
    """The named profile."""
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def with_overrides(cfg, **overrides):
    """A copy of a frozen config with some fields replaced (None values ignored)."""
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def with_pipeline(p: Profile, path: str) -> Profile:
    """A profile run on a diffusers pipeline folder: its backbone (SD3 family -> sd35-medium, U-Net ->
    sd2-base), fine-tuned from the pipeline's weights in its VAE latents, diffusing images (not residuals)."""
    index = Path(path) / "model_index.json"
    if not index.exists():
        raise FileNotFoundError(f"{path}: no model_index.json; `pretrained` must be a diffusers pipeline folder")
    parts = json.loads(index.read_text())
    backbone = "sd35-medium" if "transformer" in parts else "sd2-base" if "unet" in parts else None
    if backbone is None:
        raise ValueError(f"{index}: neither a transformer nor a unet; not an SD3 or SD2 pipeline")
    train = replace(p.train, backbone=backbone, pretrained=str(path), target="image", prior="none", lr_detail=0.0)
    return replace(p, train=train, backbones=(backbone,))
