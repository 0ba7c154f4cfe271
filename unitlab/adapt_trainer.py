"""UNIT domain adaptation on digits: the training loop, its presets and its run folder.

The recipe is the authors' digit one (``shared/GUIDE.md`` section 2), in two alternating steps:

* **Discriminator step** (generator fixed). The shared discriminator learns (1) real vs fake on
  both domains, the fakes being reconstructions and translations; (2) the digit classes of the
  *source* images (cross-entropy, weight ``cls``); (3) **feature matching**: the top shared
  features of ``x_ab`` (a's code decoded as b, seen through b's private layer) must equal those
  of ``x_aa`` (the same code decoded as a, seen through a's), and likewise ``x_ba`` vs ``x_bb``.
  Both images come from one code, i.e. one digit, so (3) teaches b's private layer to describe
  a target digit the way a's describes the source digit - and the classifier head, trained on
  source labels only, then reads target digits correctly.
* **Generator step** (discriminator fixed): the coupled VAE's reconstruction (summed squared
  error per image), full-Gaussian KL, and fooling the discriminator with both reconstructions and
  translations. The authors' digit code has no cycle term; ``cycle > 0`` adds UNIT's.

Both steps work as written, but on CPU budgets (1,000 steps) the translations do not form yet.
The ``cpu`` preset's accuracies come mostly from size-normalising the digits and warping the
batches, which a source-only classifier gets too: ``docs/results.md`` has the measurements.

Target labels never enter training: the trainer is given ``split.source_train`` (images +
labels) and ``split.target_train`` (images only); ``split.target_eval`` is read only to *report*
accuracy. The reported number is the last step's, never the best seen, so the evaluation set
selects nothing.

Batches are a pure function of (seed, step), and checkpoints hold every RNG state, so a resumed
run continues exactly as an uninterrupted one on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from . import losses
from .adapt import BETAS, DigitDiscriminator, accuracy, fit_source_classifier
from .checkpoint import config_mismatch, load_checkpoint, save_checkpoint
from .data.adaptation import AdaptationSplit, adaptation_split
from .data.digit_geometry import random_affine
from .digit_vae import CoupledDigitVAE
from .trainer import NonFiniteLossError, _logged_seconds, _StopAtStepBoundary

# The paper's digit accuracies (Table 3 of the NIPS paper), for the results table.
PAPER = {("svhn", "mnist"): 0.9053, ("mnist", "usps"): 0.9597, ("usps", "mnist"): 0.9358}


@dataclass
class AdaptConfig:
    """One adaptation run. ``dis_width`` is the discriminator's private width; its shared
    layers are 2x, 4x, 8x that (the paper: 64 -> 64/128/256/512)."""

    preset: str = "cpu"
    source: str = "usps"
    target: str = "mnist"
    seed: int = 0
    steps: int = 3000
    batch_size: int = 64
    gen_width: int = 32
    dis_width: int = 32
    lr: float = 2e-4
    weight_decay: float = 5e-4
    gan: float = 1.0
    cls: float = 10.0
    feature: float = 1e-4
    # Not in the authors' recipe: cross-entropy of the source labels on the source images
    # *translated* into the target domain, read through the target's private layer.
    cls_translated: float = 0.0
    # UNIT's cycle stream (summed squared error, like ``recon``); the authors' digit code has none.
    cycle: float = 0.0
    # Tie the discriminator's first layer too (the authors keep it private per domain).
    dis_share_first: bool = False
    # The VAE's posterior standard deviation at initialisation (the authors': log 2 = 0.69).
    initial_sigma: float = 0.6931
    # Start the target's private generator layers as copies of the source's (see
    # CoupledDigitVAE.mirror_private_layers): translations begin as reconstructions.
    mirror_init: bool = False
    # Size-normalise MNIST and USPS digits (data.digit_geometry.normalise_size), training and
    # evaluation images alike: the datasets frame their digits differently (see docs/results.md).
    normalise: bool = False
    # Random affine warps of every training batch, both domains (data.digit_geometry).
    augment: bool = False
    # Source-only steps that train the discriminator's classifier path before adaptation starts
    # (as ADDA starts from a source classifier): ~20x cheaper per step than an adaptation step.
    warm_start: int = 0
    kl: float = 1e-3
    recon: float = 1e-2
    eval_every: int = 250
    checkpoint_every: int = 250
    log_every: int = 25

    def validate(self) -> None:
        counts = ("steps", "warm_start", "batch_size", "gen_width", "dis_width", "eval_every")
        for name in (*counts, "log_every"):
            if getattr(self, name) < (0 if name in ("steps", "warm_start") else 1):
                raise ValueError(f"{name}={getattr(self, name)} is out of range")
        weights = ("gan", "cls", "feature", "cls_translated", "kl", "recon", "cycle")
        for name in ("lr", "weight_decay", *weights):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def dis_channels(self) -> tuple[int, ...]:
        w = self.dis_width
        return (w, 2 * w, 4 * w, 8 * w)


# What the CPU presets change from the authors' recipe, and why (docs/results.md has the
# trials): narrower networks (16 instead of 64: ~16x fewer FLOPs per step); the discriminator's
# first layer tied too, so the target's path starts as the source classifier instead of from
# random weights (USPS -> MNIST after 200 steps: 0.42 against 0.26); feature matching weighted
# 0.01 instead of 1e-4; MNIST and USPS size-normalised and batches randomly warped (the two
# datasets frame digits differently: this alone lifts the source-only USPS -> MNIST classifier
# from 0.42 to 0.89 at 1,000 steps); and 1,500 cheap source-only steps before the 1,000
# adaptation steps.
_CPU = dict(
    gen_width=16,
    dis_width=16,
    steps=1000,
    dis_share_first=True,
    feature=0.01,
    normalise=True,
    augment=True,
    warm_start=1500,
)
ADAPT_PRESETS: dict[str, dict] = {
    # The authors' setting: full widths, 200k iterations of batch 64 (days on a CPU).
    "paper": dict(gen_width=64, dis_width=64, steps=200_000, eval_every=5000),
    # Well inside the 60-minute CPU budget on 2 cores (~15-30 minutes).
    "cpu": _CPU,
    # A minutes-long smoke run for tests and the notebook's CI mode.
    "tiny": {
        **_CPU,
        "gen_width": 8,
        "dis_width": 8,
        "steps": 200,
        "batch_size": 32,
        "eval_every": 100,
        "warm_start": 200,
    },  # fmt: skip
}


def adapt_preset(name: str, **overrides) -> AdaptConfig:
    """The named preset with ``overrides`` (field=value) applied and validated."""
    if name not in ADAPT_PRESETS:
        raise ValueError(f"unknown adaptation preset {name!r}; choose from {sorted(ADAPT_PRESETS)}")
    cfg = AdaptConfig(preset=name, **{**ADAPT_PRESETS[name], **overrides})
    cfg.validate()
    return cfg


def feature_matching(features_translated: Tensor, features_reconstructed: Tensor) -> Tensor:
    """Squared distance between two batches of features, summed per image, batch mean.

    This is the authors' ``MSELoss * C*H*W``: one image's features are a vector, and the loss
    is the squared Euclidean distance between the translated and the reconstructed image's.
    """
    return (features_translated - features_reconstructed).pow(2).flatten(1).sum(1).mean()


def summed_squared_error(x: Tensor, target: Tensor) -> Tensor:
    """Reconstruction error of the digit VAE: squared error summed over each image, batch mean."""
    return (x - target).pow(2).flatten(1).sum(1).mean()


def batch_rows(n: int, batch_size: int, seed: int, step: int) -> Tensor:
    """Rows of batch number ``step``: epoch-wise permutations, a pure function of the arguments.

    A pure function (no iterator state) is what lets a resumed run draw the very same batches.
    """
    if n < batch_size:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training images")
    per_epoch = n // batch_size
    epoch, i = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return order[i * batch_size : (i + 1) * batch_size]


class AdaptTrainer:
    """The coupled VAE (``gen``), the shared discriminator-classifier (``dis``) and their steps.

    Only ``split.source_train`` and ``split.target_train`` are read by the training steps;
    ``evaluate`` is the single reader of ``split.target_eval``.
    """

    def __init__(self, cfg: AdaptConfig, split: AdaptationSplit, device: str = "cpu") -> None:
        cfg.validate()
        if split.normalised != cfg.normalise:
            state = "size-normalised" if split.normalised else "not size-normalised"
            raise ValueError(
                f"the config has normalise={cfg.normalise} but the split is {state}: "
                "build the split with config_split(cfg)"
            )
        self.cfg, self.device, self.step = cfg, torch.device(device), 0
        self.source, self.target = split.source_train, split.target_train
        self._target_eval = split.target_eval
        channels = split.channels
        torch.manual_seed(cfg.seed)
        self.gen = CoupledDigitVAE(
            channels, channels, cfg.gen_width, cfg.initial_sigma, cfg.mirror_init
        ).to(device)
        self.dis = DigitDiscriminator(
            channels, cfg.dis_channels, share_first=cfg.dis_share_first
        ).to(device)
        opt = dict(lr=cfg.lr, betas=BETAS, weight_decay=cfg.weight_decay)
        self.gen_opt = torch.optim.Adam(self.gen.parameters(), **opt)
        self.dis_opt = torch.optim.Adam(self.dis.parameters(), **opt)

    # ---- one iteration ------------------------------------------------------------------------

    def batch(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(x_a, y_a, x_b)`` for ``step``: source images and labels, target images; with
        ``cfg.augment``, randomly warped (the warps too are a pure function of seed and step)."""
        cfg = self.cfg
        rows_a = batch_rows(len(self.source), cfg.batch_size, cfg.seed, step)
        rows_b = batch_rows(len(self.target), cfg.batch_size, cfg.seed + 1, step)
        x_a, y_a = self.source.images[rows_a], self.source.labels[rows_a]
        x_b = self.target.images[rows_b]
        if cfg.augment:
            warps = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            x_a, x_b = random_affine(x_a, warps), random_affine(x_b, warps)
        to = self.device
        return x_a.to(to), y_a.to(to), x_b.to(to)

    def dis_step(self, x_a: Tensor, y_a: Tensor, x_b: Tensor) -> dict[str, float]:
        """Real/fake on both domains, source classification, feature matching; G fixed."""
        cfg, dis = self.cfg, self.dis
        with torch.no_grad():
            fake = self.gen(x_a, x_b)
        real_a, class_a = dis(x_a, "a")
        real_b, _ = dis(x_b, "b")
        heads = [dis(fake[k], k[-1]) for k in ("ab", "ba", "aa", "bb")]
        fake_logits, fake_classes = [h[0] for h in heads], [h[1] for h in heads]
        gan = 0.5 * (
            losses.gan_term([real_a], real=True) + losses.gan_term([real_b], real=True)
        ) + 0.25 * sum(losses.gan_term([f], real=False) for f in fake_logits)
        cls = F.cross_entropy(class_a, y_a)
        cls_translated = F.cross_entropy(fake_classes[0], y_a)  # x_ab carries x_a's digit
        feature = feature_matching(
            dis.features(fake["ab"], "b"), dis.features(fake["aa"], "a")
        ) + feature_matching(dis.features(fake["ba"], "a"), dis.features(fake["bb"], "b"))
        total = cfg.gan * gan + cfg.cls * cls + cfg.feature * feature
        total = total + cfg.cls_translated * cls_translated
        self._update(self.dis_opt, total, "discriminator")
        correct = (class_a.argmax(1) == y_a).float().mean()
        return {"d_gan": gan.item(), "cls": cls.item(), "feature": feature.item(),
                "cls_translated": cls_translated.item(),
                "source_batch_acc": correct.item()}  # fmt: skip

    def gen_step(self, x_a: Tensor, x_b: Tensor) -> dict[str, float]:
        """Reconstruction + KL + fooling D with reconstructions and translations; D fixed."""
        cfg, dis = self.cfg, self.dis
        out = self.gen(x_a, x_b)
        gan = 0.25 * sum(
            losses.gan_term([dis(out[k], k[-1])[0]], real=True) for k in ("ab", "ba", "aa", "bb")
        )
        recon = summed_squared_error(out["aa"], x_a) + summed_squared_error(out["bb"], x_b)
        total = cfg.gan * gan + cfg.kl * out["kl"] + cfg.recon * recon
        row = {"g_gan": gan.item(), "kl": out["kl"].item(), "recon": recon.item()}
        if cfg.cycle > 0:
            # UNIT's cycle stream: re-encode each translation in its new domain and decode it
            # back; gen(x_ba, x_ab)["ba"] is x_aba (x_ab re-encoded as b, decoded as a).
            back = self.gen(out["ba"], out["ab"])
            cycle = summed_squared_error(back["ba"], x_a) + summed_squared_error(back["ab"], x_b)
            total = total + cfg.cycle * cycle + cfg.kl * back["kl"]
            row["cycle"] = cycle.item()
        self._update(self.gen_opt, total, "generator")
        return row

    def _update(self, opt: torch.optim.Optimizer, total: Tensor, who: str) -> None:
        if not torch.isfinite(total):
            raise NonFiniteLossError(
                f"step {self.step + 1}: the {who} loss is {total.item()}; stopping "
                f"(the last checkpoint is kept). Try a lower lr."
            )
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    def warm_start(self) -> None:
        """``cfg.warm_start`` source-only steps on the classifier path (source labels only), before
        step 1: the adaptation then starts from a source classifier instead of from scratch."""
        cfg = self.cfg
        if self.step != 0:
            raise RuntimeError(f"warm_start is for a fresh run, this one is at step {self.step}")
        generator = torch.Generator().manual_seed(cfg.seed + 2)
        fit_source_classifier(
            self.dis, self.source, cfg.warm_start, cfg.batch_size, cfg.lr, generator, None,
            cfg.augment,
        )  # fmt: skip

    def train_step(self) -> dict[str, float]:
        """One discriminator step then one generator step on the batch of ``self.step``."""
        x_a, y_a, x_b = self.batch(self.step)
        row = self.dis_step(x_a, y_a, x_b)
        row.update(self.gen_step(x_a, x_b))
        self.step += 1
        return row

    # ---- evaluation -------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Target accuracy on ``target_eval`` (b's path), the classifier as the paper scores it;
        source accuracy on 2,000 source training images (a's path); and translation accuracy:
        the same 2,000 source digits translated into the target domain and read by b's path,
        against their source labels. The last is a diagnostic of the generator: near chance
        (0.1), the translations carry no digit, whatever they look like."""
        ev, src = self._target_eval, self.source
        images, labels = src.images[:2000].to(self.device), src.labels[:2000]
        translated = torch.cat([self.gen.translate(x, "a2b") for x in images.split(500)])
        return {
            "target_accuracy": accuracy(self.dis, ev.images, ev.labels, "b"),
            "source_accuracy": accuracy(self.dis, images, labels, "a"),
            "translation_accuracy": accuracy(self.dis, translated, labels, "b"),
        }

    # ---- checkpoints ------------------------------------------------------------------------

    def state(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "gen": self.gen.state_dict(),
            "dis": self.dis.state_dict(),
            "gen_opt": self.gen_opt.state_dict(),
            "dis_opt": self.dis_opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state(self, state: dict, where: str = "checkpoint") -> None:
        """Restore a ``state()``; refuses one written by another config (naming the fields)."""
        # A field added after the checkpoint was written counts as its default value.
        defaults = {f.name: f.default for f in dataclasses.fields(AdaptConfig)}
        problems = config_mismatch({**defaults, **state["config"]}, self.cfg.to_dict())
        # A run may be resumed with a larger step budget; everything else must match.
        problems = [p for p in problems if not p.startswith("steps")]
        if problems:
            raise ValueError(f"{where} was written by another config: {'; '.join(problems)}")
        self.gen.load_state_dict(state["gen"])
        self.dis.load_state_dict(state["dis"])
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.dis_opt.load_state_dict(state["dis_opt"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.step = int(state["step"])


def config_split(cfg: AdaptConfig, root: str | Path | None = None) -> AdaptationSplit:
    """The data of ``cfg``'s run: its direction, seed and preprocessing (``normalise``)."""
    root = None if root is None else Path(root)
    return adaptation_split(cfg.source, cfg.target, root, cfg.seed, normalise=cfg.normalise)


def load_trainer(run_or_file: str | Path, split: AdaptationSplit) -> AdaptTrainer:
    """The trainer (models, optimisers, step) saved in a run folder or checkpoint file."""
    state = load_checkpoint(run_or_file)
    trainer = AdaptTrainer(AdaptConfig(**state["config"]), split)
    trainer.load_state(state, where=str(run_or_file))
    return trainer


def run_adaptation(
    cfg: AdaptConfig,
    split: AdaptationSplit,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Train ``cfg.steps`` steps into ``out_dir`` (config.json, log.jsonl, checkpoint.pt).

    Every ``eval_every`` steps (and at the end) the target accuracy is logged and passed to
    ``on_eval``. ``resume`` continues from ``out_dir/checkpoint.pt``. Ctrl-C stops at the end of
    the current step, saves it, and raises ``KeyboardInterrupt``. Returns the final log row.
    ``device``: where to train ("cuda" for the ``paper`` preset); resuming is exact on the CPU.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = AdaptTrainer(cfg, split, device)
    ckpt, log = out / "checkpoint.pt", out / "log.jsonl"
    start = time.perf_counter() - (_logged_seconds(log) if resume else 0.0)
    if resume:
        trainer.load_state(load_checkpoint(ckpt, map_location=device), where=str(ckpt))
    else:
        if log.exists():
            log.unlink()  # a fresh run does not append to an old log
        if cfg.warm_start:  # counted in the run's seconds: it is part of its cost
            trainer.warm_start()
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    bar = tqdm(total=cfg.steps, initial=trainer.step, disable=not progress, desc="adapt")
    row: dict = {"step": trainer.step}
    with bar, _StopAtStepBoundary() as stop:
        while trainer.step < cfg.steps:
            losses_now = trainer.train_step()
            bar.update(1)
            step, final = trainer.step, trainer.step == cfg.steps
            if step % cfg.log_every == 0 or step % cfg.eval_every == 0 or final:
                row = {"step": step, "seconds": round(time.perf_counter() - start, 2)}
                row |= {k: round(v, 5) for k, v in losses_now.items()}
                if step % cfg.eval_every == 0 or final:
                    row |= trainer.evaluate()
                    bar.set_postfix(target=f"{row['target_accuracy']:.4f}")
                    if on_eval is not None:
                        on_eval(row)
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if step % cfg.checkpoint_every == 0 or final or stop.requested:
                save_checkpoint(trainer.state(), ckpt)
            if stop.requested:
                raise KeyboardInterrupt(f"stopped at step {step}; {ckpt} holds that step")
    if "target_accuracy" not in row:  # resumed at or past the end: score what is there
        row |= trainer.evaluate()
    return row
