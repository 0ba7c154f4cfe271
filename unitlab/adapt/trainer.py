"""UNIT domain adaptation on digits: the trainer and its run.

The recipe is the authors' digit one (their NIPS code's ``CoVAE32x32`` + ``CoDis32x32``), in two
alternating steps:

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

Both steps work as written, but on CPU budgets (1,000 steps) the translations do not form: the
``cpu`` preset's accuracies come mostly from size-normalising the digits and warping the
batches, which a source-only classifier gets too. Three options (off by default) make the
generator translate within the budget: ``gen_warm_start`` (the coupled VAE trained alone first,
so translations start as digits), ``dis_mirror_first`` (a private first discriminator layer that
starts as the source's) and ``style`` (a plain real/fake critic per domain for translations:
the shared discriminator-classifier stays near chance as a real/fake judge); ``frame_lr`` adds
a learnable frame per domain, so that translations can change the digits' size (MNIST -> USPS).
For printed digits two more: ``latent_size=8`` (a spatial code, so a translation redraws the
digit where it is) and ``semantic`` (CyCADA's semantic consistency: a frozen copy of the
warm-started source classifier must read x_ab as x_a's label, a generator term).
``docs/results.md`` has the measurements.

Target labels never enter training: the trainer is given ``split.source_train`` (images +
labels) and ``split.target_train`` (images only); ``split.target_eval`` is read only to *report*
accuracy. The reported number is the last step's, never the best seen, so the evaluation set
selects nothing.

Batches are a pure function of (seed, step), and checkpoints hold every RNG state, so a resumed
run continues exactly as an uninterrupted one on the CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..checkpoint import config_mismatch, load_checkpoint
from ..data.adaptation import COLOUR, AdaptationSplit, adaptation_split
from ..data.digit_geometry import random_affine
from ..images import save_grid
from ..run import NonFiniteLossError, RunFolder, fit
from .baseline import accuracy, fit_source_classifier
from .config import AdaptConfig
from .models import BETAS, CoupledDigitVAE, DigitDiscriminator, StyleCritic

# How many source training digits are translated and read to judge the translations: by the
# run's own classifier (``evaluate``) and by the oracle (report.translation_oracle), the same
# digits, so that the two readings compare.
PROBE = 2000


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
        if split.source_grey != (cfg.source_grey and cfg.source in COLOUR):
            raise ValueError(
                f"the config has source_grey={cfg.source_grey} but the split's {cfg.source} "
                f"source is {'grey' if split.source_grey else 'as loaded'}: build it with "
                "config_split(cfg)"
            )
        if split.target_inverted != cfg.target_inverted:
            raise ValueError(
                f"the config has target_inverted={cfg.target_inverted} but the split was built "
                f"with target_inverted={split.target_inverted}: build it with config_split(cfg)"
            )
        self.cfg, self.device, self.step = cfg, torch.device(device), 0
        self.source, self.target = split.source_train, split.target_train
        self._target_eval = split.target_eval
        channels = split.channels
        torch.manual_seed(cfg.seed)
        self.gen = CoupledDigitVAE(
            channels, channels, cfg.gen_width, cfg.initial_sigma, cfg.mirror_init,
            frames=cfg.frame_lr > 0, latent_size=cfg.latent_size,
        ).to(device)  # fmt: skip
        self.dis = DigitDiscriminator(
            channels, cfg.dis_channels, share_first=cfg.dis_share_first
        ).to(device)
        if cfg.dis_mirror_first:
            self.dis.mirror_private_layer()
        opt = dict(lr=cfg.lr, betas=BETAS, weight_decay=cfg.weight_decay)
        self.gen_opt = torch.optim.Adam(_generator_groups(self.gen, cfg.frame_lr), **opt)
        self.dis_opt = torch.optim.Adam(self.dis.parameters(), **opt)
        # Only with style > 0, so that runs without it keep their checkpoints' layout.
        # Seeded on its own, so that adding the critics leaves every other draw of the run as is.
        self.critic = None
        if cfg.style > 0:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + 3)
                self.critic = StyleCritic(channels, cfg.critic_width).to(device)
            self.critic_opt = torch.optim.Adam(self.critic.parameters(), **opt)
        # The weight average of ``dis`` (cfg.cls_ema > 0), started at the first adaptation step.
        self.dis_ema: DigitDiscriminator | None = None
        # The frozen source classifier of ``cfg.semantic`` (copied at the end of the warm start).
        self.reader: DigitDiscriminator | None = None

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
        feature = torch.zeros((), device=x_a.device)
        if cfg.feature > 0:  # four more passes through D: skipped when the weight is 0
            feature = feature_matching(
                dis.features(fake["ab"], "b"), dis.features(fake["aa"], "a")
            ) + feature_matching(dis.features(fake["ba"], "a"), dis.features(fake["bb"], "b"))
        total = cfg.gan * gan + cfg.cls * cls + cfg.feature * feature
        total = total + cfg.cls_translated * cls_translated
        self._update(self.dis_opt, total, "discriminator")
        correct = (class_a.argmax(1) == y_a).float().mean()
        row = {"d_gan": gan.item(), "cls": cls.item(), "feature": feature.item(),
               "cls_translated": cls_translated.item(),
               "source_batch_acc": correct.item()}  # fmt: skip
        if self.critic is not None:  # each domain's real images against translations into it
            critic = sum(
                0.5 * losses.gan_term([self.critic(real, k)], real=True)
                + 0.5 * losses.gan_term([self.critic(fake[t], k)], real=False)
                for real, k, t in ((x_a, "a", "ba"), (x_b, "b", "ab"))
            )
            self._update(self.critic_opt, critic, "style critic")
            row["critic"] = critic.item()
        return row

    def gen_step(self, x_a: Tensor, x_b: Tensor, y_a: Tensor | None = None) -> dict[str, float]:
        """Reconstruction + KL + fooling D with reconstructions and translations; D fixed.
        ``y_a`` (the source labels) is needed with ``cfg.semantic`` > 0."""
        total, row = self._generator_loss(x_a, x_b, adversarial=True, y_a=y_a)
        self._update(self.gen_opt, total, "generator")
        return row

    def _generator_loss(
        self, x_a: Tensor, x_b: Tensor, adversarial: bool, y_a: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The generator's objective: the VAE terms (reconstruction, KL, and with ``cycle`` > 0
        UNIT's cycle stream), plus with ``adversarial`` the GAN term against the current D, and
        with ``semantic`` > 0 the frozen source classifier's cross-entropy on x_ab."""
        cfg, dis = self.cfg, self.dis
        out = self.gen(x_a, x_b)
        recon = summed_squared_error(out["aa"], x_a) + summed_squared_error(out["bb"], x_b)
        total = cfg.kl * out["kl"] + cfg.recon * recon
        row = {"kl": out["kl"].item(), "recon": recon.item()}
        if adversarial:
            gan = 0.25 * sum(
                losses.gan_term([dis(out[k], k[-1])[0]], real=True)
                for k in ("ab", "ba", "aa", "bb")
            )
            total = total + cfg.gan * gan
            row["g_gan"] = gan.item()
            if self.critic is not None:
                style = sum(
                    losses.gan_term([self.critic(out[t], t[-1])], real=True) for t in ("ab", "ba")
                )
                total = total + cfg.style * style
                row["style"] = style.item()
        if cfg.cycle > 0:
            # UNIT's cycle stream: re-encode each translation in its new domain and decode it
            # back; gen(x_ba, x_ab)["ba"] is x_aba (x_ab re-encoded as b, decoded as a).
            back = self.gen(out["ba"], out["ab"])
            cycle = summed_squared_error(back["ba"], x_a) + summed_squared_error(back["ab"], x_b)
            total = total + cfg.cycle * cycle + cfg.kl * back["kl"]
            row["cycle"] = cycle.item()
        if cfg.semantic > 0:
            if self.reader is None or y_a is None:
                raise RuntimeError(
                    "semantic > 0 needs the source labels and the frozen reader: call "
                    "warm_start() first and pass y_a"
                )
            semantic = F.cross_entropy(self.reader(out["ab"], "a")[1], y_a)
            total = total + cfg.semantic * semantic
            row["semantic"] = semantic.item()
        return total, row

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
        """Before step 1: ``cfg.warm_start`` source-only steps on the classifier path (source
        labels only), so the adaptation starts from a source classifier instead of from scratch;
        then ``cfg.gen_warm_start`` steps of the coupled VAE alone (no discriminator; with
        ``cfg.semantic`` the frozen copy of the warmed classifier already reads x_ab), so the
        translations start as digits."""
        cfg = self.cfg
        if self.step != 0:
            raise RuntimeError(f"warm_start is for a fresh run, this one is at step {self.step}")
        generator = torch.Generator().manual_seed(cfg.seed + 2)
        fit_source_classifier(
            self.dis, self.source, cfg.warm_start, cfg.batch_size, cfg.lr, generator, None,
            cfg.augment,
        )  # fmt: skip
        if cfg.dis_mirror_first:  # the target's path starts as the warmed source classifier
            self.dis.mirror_private_layer()
        if cfg.semantic > 0:
            self.reader = _frozen_copy(self.dis)
        if cfg.gen_warm_start:
            fit(
                _GeneratorWarmStart(self), cfg.gen_warm_start, progress=False, desc="VAE warm start"
            )

    def train_step(self) -> dict[str, float]:
        """One discriminator step then one generator step on the batch of ``self.step``."""
        x_a, y_a, x_b = self.batch(self.step)
        row = self.dis_step(x_a, y_a, x_b)
        row.update(self.gen_step(x_a, x_b, y_a))
        self._average_classifier()
        self.step += 1
        return row

    @torch.no_grad()
    def _average_classifier(self) -> None:
        """Move ``dis_ema`` towards ``dis`` by ``1 - cfg.cls_ema`` (a copy at the first step)."""
        if self.cfg.cls_ema <= 0:
            return
        if self.dis_ema is None:
            self.dis_ema = copy.deepcopy(self.dis).requires_grad_(False)
            return
        for average, current in zip(self.dis_ema.parameters(), self.dis.parameters(), strict=True):
            average.lerp_(current, 1 - self.cfg.cls_ema)
        for average, current in zip(self.dis_ema.buffers(), self.dis.buffers(), strict=True):
            average.copy_(current)

    @property
    def classifier(self) -> DigitDiscriminator:
        """What ``evaluate`` scores: the weight average where there is one, else ``dis``."""
        return self.dis if self.dis_ema is None else self.dis_ema

    # ---- evaluation -------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Target accuracy on ``target_eval`` (b's path), the classifier as the paper scores it;
        source accuracy on ``PROBE`` source training images (a's path); and translation
        accuracy: the same source digits translated into the target domain and read by b's path,
        against their source labels. The last is a diagnostic of the generator: near chance
        (0.1), the translations carry no digit, whatever they look like. With a weight average
        (``cfg.cls_ema``) the average is scored, and ``target_accuracy_last`` gives the last
        step's weights' target accuracy beside it."""
        ev, src, reader = self._target_eval, self.source, self.classifier
        images, labels = src.images[:PROBE].to(self.device), src.labels[:PROBE]
        translated = torch.cat([self.gen.translate(x, "a2b") for x in images.split(500)])
        scores = {
            "target_accuracy": accuracy(reader, ev.images, ev.labels, "b"),
            "source_accuracy": accuracy(reader, images, labels, "a"),
            "translation_accuracy": accuracy(reader, translated, labels, "b"),
        }
        if self.dis_ema is not None:
            scores["target_accuracy_last"] = accuracy(self.dis, ev.images, ev.labels, "b")
        return scores

    # ---- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return (
            {
                "config": self.cfg.to_dict(),
                "step": self.step,
                "gen": self.gen.state_dict(),
                "dis": self.dis.state_dict(),
                "gen_opt": self.gen_opt.state_dict(),
                "dis_opt": self.dis_opt.state_dict(),
                "torch_rng": torch.get_rng_state(),
            }
            | (
                {}
                if self.critic is None
                else {
                    "critic": self.critic.state_dict(),
                    "critic_opt": self.critic_opt.state_dict(),
                }
            )
            | ({} if self.dis_ema is None else {"dis_ema": self.dis_ema.state_dict()})
            | ({} if self.reader is None else {"reader": self.reader.state_dict()})
        )

    def load_state_dict(self, state: dict, where: str = "checkpoint") -> None:
        """Restore a ``state_dict()``; refuses one written by another config (naming the fields)."""
        # A field added after the checkpoint was written counts as its default value.
        defaults = {f.name: f.default for f in dataclasses.fields(AdaptConfig)}
        problems = config_mismatch({**defaults, **state["config"]}, self.cfg.to_dict())
        # A run may be resumed with a larger step budget; everything else must match.
        problems = [p for p in problems if not p.startswith("steps")]
        if problems:
            raise ValueError(f"{where} was written by another config: {'; '.join(problems)}")
        self.gen.load_state_dict(state["gen"])
        self.dis.load_state_dict(state["dis"])
        if self.critic is not None:
            self.critic.load_state_dict(state["critic"])
        self.dis_ema = None
        if "dis_ema" in state:
            self.dis_ema = copy.deepcopy(self.dis).requires_grad_(False)
            self.dis_ema.load_state_dict(state["dis_ema"])
        self.reader = None
        if "reader" in state:
            self.reader = _frozen_copy(self.dis)
            self.reader.load_state_dict(state["reader"])
        self.step = int(state["step"])
        if "gen_opt" not in state:  # an exported model (weights only): to read, not to resume
            return
        self.gen_opt.load_state_dict(state["gen_opt"])
        self.dis_opt.load_state_dict(state["dis_opt"])
        if self.critic is not None:
            self.critic_opt.load_state_dict(state["critic_opt"])
        torch.set_rng_state(state["torch_rng"].cpu())


def _frozen_copy(dis: DigitDiscriminator) -> DigitDiscriminator:
    """The semantic term's reader: a copy of ``dis`` in eval mode (no dropout, so it is one
    fixed function) whose weights no optimiser holds and no gradient reaches."""
    return copy.deepcopy(dis).eval().requires_grad_(False)


def _generator_groups(gen: CoupledDigitVAE, frame_lr: float) -> list[dict]:
    """Adam's parameter groups for the generator: the frames (if any) at ``frame_lr``."""
    rest = {"params": gen.parameters_without_frames()}
    frames = gen.frame_parameters()
    return [rest, {"params": frames, "lr": frame_lr}] if frames else [rest]


class _GeneratorWarmStart:
    """The coupled VAE alone (reconstruction, KL, cycle, and the frozen reader's semantic term;
    no discriminator that trains): the trainer that
    :func:`unitlab.run.fit` drives for ``cfg.gen_warm_start`` steps, with its own Adam at
    ``cfg.gen_warm_lr``, on the adaptation's batches of steps 0, 1, ..."""

    def __init__(self, trainer: AdaptTrainer) -> None:
        self.trainer, self.step = trainer, 0
        lr = trainer.cfg.gen_warm_lr
        # The frames stay put: nothing in the VAE terms asks them to move (a reconstruction goes
        # through a frame and its inverse), and Adam would move them by lr per step on noise.
        self.opt = torch.optim.Adam(trainer.gen.parameters_without_frames(), lr=lr, betas=BETAS)

    def train_step(self) -> dict[str, float]:
        x_a, y_a, x_b = self.trainer.batch(self.step)
        total, row = self.trainer._generator_loss(x_a, x_b, adversarial=False, y_a=y_a)
        self.trainer._update(self.opt, total, "generator warm-start")
        self.step += 1
        return row

    def state_dict(self) -> dict:
        return {"step": self.step, "opt": self.opt.state_dict()}


def config_split(cfg: AdaptConfig, root: str | Path | None = None) -> AdaptationSplit:
    """The data of ``cfg``'s run: its direction, seed and preprocessing (``normalise``,
    ``target_inverted``, ``source_grey``)."""
    root = None if root is None else Path(root)
    return adaptation_split(
        cfg.source,
        cfg.target,
        root,
        cfg.seed,
        normalise=cfg.normalise,
        target_inverted=cfg.target_inverted,
        source_grey=cfg.source_grey,
    )


def load_trainer(run_or_file: str | Path, split: AdaptationSplit) -> AdaptTrainer:
    """The trainer (models, optimisers, step) saved in a run folder or checkpoint file; from a
    file written by :func:`unitlab.adapt.report.export_weights`, the models only."""
    state = load_checkpoint(run_or_file)
    trainer = AdaptTrainer(AdaptConfig(**state["config"]), split)
    trainer.load_state_dict(state, where=str(run_or_file))
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
    """Train ``cfg.steps`` steps into ``out_dir`` (config, log and checkpoint: a RunFolder).

    Every ``eval_every`` steps (and at the end) the target accuracy is logged and passed to
    ``on_eval``. ``resume`` continues from the folder's checkpoint. Ctrl-C stops at the end of
    the current step, saves it, and raises ``KeyboardInterrupt``. Returns the final log row.
    ``device``: where to train ("cuda" for the ``paper`` preset); resuming is exact on the CPU.
    """
    folder = RunFolder(out_dir)
    trainer = AdaptTrainer(cfg, split, device)
    started = time.perf_counter()
    if resume:
        trainer.load_state_dict(folder.load(map_location=device), where=str(folder.checkpoint))
        folder.truncate(trainer.step)
    else:
        folder.clear_logs()  # a fresh run does not append to an old log
        if cfg.warm_start or cfg.gen_warm_start:  # counted in the run's seconds: part of its cost
            trainer.warm_start()
    folder.write_config(cfg.to_dict())
    last: dict = {"step": trainer.step}

    def record(row: dict) -> None:
        last.clear()
        last.update(row)
        if on_eval is not None:
            on_eval(row)

    fit(
        trainer,
        cfg.steps,
        folder=folder,
        log_every=cfg.log_every,
        checkpoint_every=cfg.checkpoint_every,
        evaluate=trainer.evaluate,
        eval_every=cfg.eval_every,
        on_eval=record,
        progress=progress,
        desc="adapt",
        spent=time.perf_counter() - started,
    )
    if "target_accuracy" not in last:  # resumed at or past the end: score what is there
        last |= trainer.evaluate()
    return last


def saved_config(run_dir: str | Path) -> AdaptConfig:
    """The config an adaptation run folder's checkpoint was written with."""
    folder = RunFolder(run_dir)
    try:
        return AdaptConfig(**folder.load()["config"])
    except TypeError:  # e.g. a `unitlab train` checkpoint
        raise ValueError(
            f"{folder.checkpoint} is not a digit-adaptation checkpoint "
            f"(written by `unitlab train`?); resume it with the command that wrote it"
        ) from None


def load_run(
    run: str | Path, data_root: str | Path | None = None
) -> tuple[AdaptTrainer, AdaptationSplit]:
    """A finished run folder's trainer (from its checkpoint) and the data split its
    ``config.json`` was trained on, for what is computed from a run afterwards."""
    cfg = AdaptConfig(**json.loads((Path(run) / "config.json").read_text()))
    split = config_split(cfg, data_root)
    return load_trainer(run, split), split


def save_translations(
    run: str | Path, path: str | Path, data_root: str | Path | None = None, count: int = 16
) -> Path:
    """Write a run's picture for ``docs/``: ``count`` source training digits, their translations
    into the target domain (the last step's generator), and ``count`` target training digits,
    one row each, from the run folder's checkpoint and its own data split."""
    trainer, split = load_run(run, data_root)
    source = split.source_train.images[:count]
    rows = [source, trainer.gen.translate(source, "a2b"), split.target_train.images[:count]]
    save_grid(rows, path)
    return Path(path)
