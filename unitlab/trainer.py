"""UNIT's alternating update, with logging, samples, checkpoints and exact resume.

One training iteration is two steps (the paper's Algorithm): first the discriminators learn to
tell real images from translations while the encoders/generators stay fixed; then the
encoders/generators learn, with the discriminators fixed, from three streams:

* reconstruction  ``x_a -> z -> x_aa``  (L1 + KL),
* translation     ``x_a -> z -> x_ab``  (GAN),
* cycle           ``x_a -> z -> x_ab -> z' -> x_aba``  (L1 + KL on the re-encoded code),

and symmetrically for domain b.

Data-parallel training (``torchrun``, see :mod:`unitlab.distributed`) splits each step's
*global* batch of ``cfg.batch_size`` images between the processes; every random draw (batch
indices, the reparameterisation noise) is made for the global batch on every process, each
taking its own slice, and DistributedDataParallel averages the gradients. So N processes take
the same steps as one (to float rounding), and a checkpoint resumes on any number of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from . import losses, metrics, ops
from .checkpoint import config_mismatch, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import sources
from .evaluate import translate_uint8
from .models import UNIT, check_images
from .run import NonFiniteLossError, RunFolder, fit

__all__ = ["NonFiniteLossError", "Streams", "Trainer", "train_with_curve"]

#: A domain's training images: a tensor (N, C, H, W) in memory (the map world), or a dataset
#: on disk (:class:`unitlab.data.image_folders.ImageDomain`), loaded by DataLoader workers.
TrainingImages = Tensor | Dataset


@dataclass
class Streams:
    """Everything one generator step computes (kept for plots and sample grids)."""

    x_aa: Tensor
    x_bb: Tensor
    x_ab: Tensor
    x_ba: Tensor
    x_aba: Tensor | None
    x_bab: Tensor | None
    terms: dict[str, Tensor]


class Trainer:
    """Owns the model, both optimisers and the data-sampling RNG of one run.

    Inside an initialised ``torch.distributed`` process group it trains data-parallel: this
    process's share of each global batch, gradients averaged by DistributedDataParallel.
    """

    def __init__(self, cfg: TrainConfig, device: str | torch.device = "cpu") -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(device)
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world_size = dist.get_world_size() if distributed else 1
        if cfg.batch_size % self.world_size:
            raise ValueError(
                f"batch_size={cfg.batch_size} (the global batch) must be divisible by the "
                f"{self.world_size} processes"
            )
        self.local_batch = cfg.batch_size // self.world_size
        if cfg.kernels == "triton" and self.device.type != "cuda" and not ops.interpreting():
            raise ValueError(
                "kernels=triton needs a CUDA device (or TRITON_INTERPRET=1 to run the kernels "
                "slowly on the CPU); use kernels=auto or torch here"
            )
        torch.manual_seed(cfg.seed)
        self.model = UNIT(cfg.model).to(self.device)
        o = cfg.optim
        adam = dict(lr=o.lr, betas=(o.beta1, o.beta2), weight_decay=o.weight_decay)
        self.opt_gen = torch.optim.Adam(list(self.model.generator_parameters()), **adam)
        self.opt_dis = torch.optim.Adam(
            list(self.model.discriminator_parameters()), **{**adam, "lr": o.lr * o.dis_lr_mult}
        )
        # Batches are drawn with their own generator so that resuming restores them exactly.
        self.data_rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.last_translations: tuple[Tensor, Tensor] | None = None
        self.data: tuple[TrainingImages, TrainingImages] | None = None  # train_step() draws
        self.held_out: tuple[np.ndarray, np.ndarray] | None = None  # what evaluate() scores
        self._loaders: tuple[Iterator[Tensor], Iterator[Tensor]] | None = None
        self._loaders_step = 0  # the step the loaders' next batch is for
        # DistributedDataParallel must see the forward of each update, so each update's loss
        # is computed by a module that owns exactly the parameters that update changes.
        self._generator_forward: Callable[..., Streams] = self.streams
        self._discriminator_forward: Callable[..., Tensor] = self.discriminator_loss
        if distributed:
            m = self.model
            self._generator_forward = _data_parallel(
                self.streams, [m.enc_a, m.enc_b, m.gen_a, m.gen_b], self.device
            )
            self._discriminator_forward = _data_parallel(
                self.discriminator_loss, [m.dis_a, m.dis_b], self.device
            )

    def attach(self, data_a: TrainingImages, data_b: TrainingImages) -> Trainer:
        """The unpaired training images that :meth:`train_step` draws batches of: tensors
        (N, C, H, W) in [-1, 1], or datasets on disk yielding such images."""
        self.data = (data_a, data_b)
        self._loaders = None
        return self

    # ------------------------------------------------------------------ the two updates
    def streams(self, x_a: Tensor, x_b: Tensor) -> Streams:
        """Run the three streams for both domains and compute every weighted loss term."""
        with self.autocast():
            return self._streams(x_a, x_b)

    def _streams(self, x_a: Tensor, x_b: Tensor) -> Streams:
        m, w = self.model, self.cfg.loss
        mu_a, mu_b = m.encode_pair(x_a, x_b)
        z_a, kl_a = self.reparameterize(mu_a)
        z_b, kl_b = self.reparameterize(mu_b)
        # Both codes through both generators. The generators share their first (tied) blocks,
        # so ``decode_both`` runs those once; instance norm is per sample, so batching the two
        # domains changes nothing but the number of (slow, on the CPU) small convolutions.
        to_a, to_b = m.decode_both(torch.cat([z_a, z_b]))
        x_aa, x_ba = to_a.split([x_a.shape[0], x_b.shape[0]])
        x_ab, x_bb = to_b.split([x_a.shape[0], x_b.shape[0]])
        terms = {
            "gan": losses.generator_gan_loss(m.dis_a(x_ba), w.gan_mode)
            + losses.generator_gan_loss(m.dis_b(x_ab), w.gan_mode),
            "kl": kl_a + kl_b,
            "recon": losses.l1(x_aa, x_a) + losses.l1(x_bb, x_b),
        }
        x_aba = x_bab = None
        if w.use_cycle:
            mu_ba, mu_ab = m.encode_pair(x_ba, x_ab)  # enc_a(x_ba), enc_b(x_ab)
            z_ab, kl_ab = self.reparameterize(mu_ab)
            z_ba, kl_ba = self.reparameterize(mu_ba)
            x_aba, x_bab = m.decode_pair(z_ab, z_ba)  # gen_a(z_ab), gen_b(z_ba)
            terms["cycle_kl"] = kl_ab + kl_ba
            terms["cycle"] = losses.l1(x_aba, x_a) + losses.l1(x_bab, x_b)
        return Streams(x_aa, x_bb, x_ab, x_ba, x_aba, x_bab, terms)

    def reparameterize(self, mu: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, kl)`` of a code, in fp32. With N processes the noise is drawn for the global
        batch and sliced, so that each image gets the noise it would get in one process."""
        mu = mu.float()
        if self.world_size == 1:
            return ops.reparameterize(mu)
        n = mu.shape[0]
        eps = torch.randn((n * self.world_size, *mu.shape[1:]), device=mu.device)
        return ops.reparameterize(mu, noise=eps[self.rank * n : (self.rank + 1) * n])

    def autocast(self) -> AbstractContextManager[None]:
        """bfloat16 autocast of the forward passes when ``precision=bf16`` (else nothing)."""
        if self.cfg.precision != "bf16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def total_loss(self, terms: dict[str, Tensor]) -> Tensor:
        w = self.cfg.loss
        weights = {
            "gan": w.gan,
            "kl": w.kl,
            "recon": w.recon,
            "cycle_kl": w.cycle_kl,
            "cycle": w.cycle,
        }
        return sum(weights[k] * v for k, v in terms.items())

    def dis_step(
        self, x_a: Tensor, x_b: Tensor, translations: tuple[Tensor, Tensor] | None = None
    ) -> dict[str, float]:
        """Update D_a, D_b on real images vs translations; encoders/generators stay fixed.

        ``translations`` = ``(x_ab, x_ba)`` from the encoder/generator step just taken (as
        :meth:`train_step` passes them); without them they are computed here.
        """
        m = self.model
        if translations is None:
            with torch.no_grad(), self.autocast():
                mu_a, mu_b = m.encode_pair(x_a, x_b)
                z_a, z_b = self.reparameterize(mu_a)[0], self.reparameterize(mu_b)[0]
                x_ba, x_ab = m.decode_pair(z_b, z_a)
        else:
            x_ab, x_ba = (t.detach() for t in translations)
        weighted = self.cfg.loss.gan * self._discriminator_forward(x_a, x_b, x_ab, x_ba)
        logged = self._check_finite({"dis": weighted})
        self.opt_dis.zero_grad(set_to_none=True)
        weighted.backward()
        self.opt_dis.step()
        return logged

    def discriminator_loss(self, x_a: Tensor, x_b: Tensor, x_ab: Tensor, x_ba: Tensor) -> Tensor:
        """D_a and D_b on real images vs (detached) translations, unweighted."""
        m, mode = self.model, self.cfg.loss.gan_mode
        # D has no normalisation layers: real and fake batched in one call score the same.
        with self.autocast():
            return _real_vs_fake(m.dis_a, x_a, x_ba, mode) + _real_vs_fake(m.dis_b, x_b, x_ab, mode)

    def gen_step(self, x_a: Tensor, x_b: Tensor) -> dict[str, float]:
        """Update encoders + generators through all streams; discriminators stay fixed."""
        dis_params = list(self.model.discriminator_parameters())
        for p in dis_params:  # D only passes gradients through, it must not accumulate any
            p.requires_grad_(False)
        try:
            streams = self._generator_forward(x_a, x_b)
            terms = streams.terms
            self.last_translations = (streams.x_ab.detach(), streams.x_ba.detach())
            total = self.total_loss(terms)
            logged = self._check_finite({"gen": total, **terms})
            self.opt_gen.zero_grad(set_to_none=True)
            total.backward()
            self.opt_gen.step()
        finally:
            for p in dis_params:
                p.requires_grad_(True)
        return logged

    def train_step(self, x_a: Tensor | None = None, x_b: Tensor | None = None) -> dict[str, float]:
        """One iteration: an encoder/generator step, then a discriminator step on the
        translations that step made (as CycleGAN's and pix2pix's code do: the discriminator
        does not pay for a second translation pass, which cost ~15% of an iteration).

        Without batches, draws one per domain from the :meth:`attach`-ed data.
        """
        if x_a is None or x_b is None:
            x_a, x_b = self.next_batches()
        cfg = self.cfg.model
        check_images(x_a, cfg.channels_a, cfg.image_size, "domain a batch")
        check_images(x_b, cfg.channels_b, cfg.image_size, "domain b batch")
        self.model.train()
        with self.kernel_backend():
            out = self.gen_step(x_a, x_b)
            out = {**self.dis_step(x_a, x_b, self.last_translations), **out}
        self.step += 1
        return out

    def kernel_backend(self) -> AbstractContextManager[None]:
        """The kernel backend of this run's steps, in force only while they run.

        ``kernels=torch|triton`` forces one for this trainer alone; ``auto`` follows whatever
        is in force around it (``ops.use_backend``, ``UNITLAB_KERNELS``, else Triton on CUDA).
        Never set globally from here: a trainer must not change what other code runs.
        """
        kernels = self.cfg.kernels
        return nullcontext() if kernels == "auto" else ops.use_backend(kernels)

    def evaluate(self) -> dict[str, float]:
        """The held-out satellite->map pixel accuracy (the paper's metric) of the model now.

        Scores ``self.held_out`` (uint8 satellites, maps), by default the config's evaluation
        pairs, generated on first use. Deterministic (z = mu): evaluating changes no RNG state.
        """
        if self.held_out is None:
            self.held_out = sources.evaluation_pairs(self.cfg)
        sat, maps = self.held_out
        return {"accuracy": metrics.pixel_accuracy(translate_uint8(self.model, sat), maps)}

    def _check_finite(self, values: dict[str, Tensor]) -> dict[str, float]:
        """The losses as floats (averaged over the processes), or a stop if any is not finite.

        Averaged first, so that a NaN on one process stops them all at the same step.
        """
        names = list(values)
        stacked = torch.stack([values[k].detach().float() for k in names])
        if self.world_size > 1:
            dist.all_reduce(stacked)
            stacked /= self.world_size
        floats = dict(zip(names, stacked.tolist(), strict=True))
        bad = [k for k, v in floats.items() if not np.isfinite(v)]
        if bad:
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1}: {', '.join(bad)}; stopping. The last "
                f"good checkpoint is kept; try a lower learning rate or resume from it."
            )
        return floats

    # ------------------------------------------------------------------ data
    def next_batches(self) -> tuple[Tensor, Tensor]:
        """This process's batch of each domain for the next step, from the attached data."""
        if self.data is None:
            raise ValueError("train_step() without batches needs attach(data_a, data_b)")
        data_a, data_b = self.data
        if isinstance(data_a, Tensor) and isinstance(data_b, Tensor):
            return self.sample_batch(data_a), self.sample_batch(data_b)
        if self._loaders is None or self._loaders_step != self.step:  # first, or resumed
            self._loaders = self._disk_loaders(data_a, data_b)
        self._loaders_step = self.step + 1
        return tuple(next(loader).to(self.device, non_blocking=True) for loader in self._loaders)

    def close(self) -> None:
        """Stop the DataLoader workers of data on disk (they restart on the next step).

        A worker is a fork of this process and holds a copy of each of its open files, the
        run folder's lock included: a run stops its workers before it lets go of the lock.
        """
        self._loaders = None  # the iterators' finalisers shut their workers down

    def _disk_loaders(self, data_a: Dataset, data_b: Dataset) -> tuple[Iterator, Iterator]:
        """DataLoaders whose batch of step k depends on (seed, k) alone: a resume starts
        them at its step, and the workers' order cannot change what a step sees."""
        from .data.image_folders import make_loader

        def loader(data: Dataset, seed: int) -> Iterator[Tensor]:
            return iter(
                make_loader(
                    data,
                    self.cfg.batch_size,
                    seed,
                    start_step=self.step,
                    rank=self.rank,
                    world_size=self.world_size,
                    workers=self.cfg.data.workers,
                    pin_memory=self.device.type == "cuda",
                )
            )

        return loader(data_a, 2 * self.cfg.seed + 1), loader(data_b, 2 * self.cfg.seed + 2)

    def sample_batch(self, data: Tensor) -> Tensor:
        """Draw the global batch's indices, keep this process's slice of them."""
        idx = torch.randint(len(data), (self.cfg.batch_size,), generator=self.data_rng)
        idx = idx[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]
        return data[idx].to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "model": self.model.state_dict(),
            "opt_gen": self.opt_gen.state_dict(),
            "opt_dis": self.opt_dis.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_data": self.data_rng.get_state(),
        }

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(self.state_dict(), path)

    def load(self, run_or_file: str | Path) -> None:
        """Restore everything needed to continue bit-for-bit (on the CPU) from a checkpoint."""
        self.load_state_dict(load_checkpoint(run_or_file, map_location=self.device))

    def load_state_dict(self, state: dict) -> None:
        """Restore from an already loaded checkpoint (refusing one of another model config)."""
        diffs = config_mismatch(state["config"]["model"], self.cfg.to_dict()["model"], "model.")
        if diffs:
            raise ValueError(
                "checkpoint was written by another model config:\n  " + "\n  ".join(diffs)
            )
        self.model.load_state_dict(state["model"])
        self.opt_gen.load_state_dict(state["opt_gen"])
        self.opt_dis.load_state_dict(state["opt_dis"])
        torch.set_rng_state(state["rng_torch"])
        self.data_rng.set_state(state["rng_data"])
        self.step = int(state["step"])
        self._loaders = None

    # ------------------------------------------------------------------ the loop
    def fit(
        self,
        data_a: TrainingImages,
        data_b: TrainingImages,
        run_dir: str | Path | None = None,
        steps: int | None = None,
        progress: bool = True,
        on_sample: Callable[[int, Path], None] | None = None,
        evaluate: Callable[[], dict[str, float]] | None = None,
        eval_every: int = 0,
        on_eval: Callable[[dict], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train on unpaired ``data_a``/``data_b`` until ``steps`` (default ``cfg.steps``)
        total iterations, through :func:`unitlab.run.fit`; return the loss rows.

        With ``run_dir`` the run's files are kept there (config, log, samples every
        ``sample_every`` steps, checkpoints); ``evaluate``/``eval_every``/``on_eval`` add
        held-out numbers along the way. Ctrl-C saves the step it stopped at.
        """
        cfg = self.cfg
        self.attach(data_a, data_b)
        folder = RunFolder(run_dir) if run_dir is not None else None
        after_step = None
        if folder is not None:
            folder.write_config(cfg.to_dict())
            fixed = (sources.first_images(data_a, 4), sources.first_images(data_b, 4))
            fixed = tuple(x.to(self.device) for x in fixed)

            def after_step(step: int, boundary: bool) -> None:
                if step % cfg.sample_every == 0 or boundary:
                    from .images import save_grid  # matplotlib is only needed when writing

                    path = folder.sample_path(step)
                    save_grid(self.sample_rows(*fixed), path)
                    if on_sample is not None:
                        on_sample(step, path)

        return fit(
            self,
            cfg.steps if steps is None else steps,
            folder=folder,
            log_every=cfg.log_every,
            checkpoint_every=cfg.checkpoint_every,
            evaluate=evaluate,
            eval_every=eval_every,
            on_eval=on_eval,
            after_step=after_step,
            progress=progress,
        )

    @torch.no_grad()
    def sample_rows(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        """Rows for a sample grid: input | reconstruction | translation | cycle, per domain."""
        m = self.model
        was_training = m.training
        m.eval()
        try:
            mu_a, mu_b = m.enc_a(x_a), m.enc_b(x_b)
            x_ab, x_ba = m.gen_b(mu_a), m.gen_a(mu_b)
            rows = [
                x_a,
                m.gen_a(mu_a),
                x_ab,
                m.gen_a(m.enc_b(x_ab)),
                x_b,
                m.gen_b(mu_b),
                x_ba,
                m.gen_b(m.enc_a(x_ba)),
            ]
        finally:
            m.train(was_training)
        return [r.cpu() for r in rows]


class _Objective(nn.Module):
    """A loss function as a module owning the parameters it trains, for DistributedDataParallel
    (which averages gradients of the parameters of the module whose forward it ran)."""

    def __init__(self, compute: Callable, owned: list[nn.Module]) -> None:
        super().__init__()
        self.owned = nn.ModuleList(owned)  # tied blocks appear twice; parameters() dedups
        self.compute = compute

    def forward(self, *args: Tensor):
        return self.compute(*args)


def _data_parallel(compute: Callable, owned: list[nn.Module], device: torch.device) -> nn.Module:
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(_Objective(compute, owned), device_ids=ids)


def _real_vs_fake(dis: torch.nn.Module, real: Tensor, fake: Tensor, mode: str) -> Tensor:
    """A discriminator's loss on one batch of real and one of fake images, in one pass."""
    scores = dis(torch.cat([real, fake]))
    n = real.shape[0]
    return losses.discriminator_loss([s[:n] for s in scores], [s[n:] for s in scores], mode)


def train_with_curve(
    trainer: Trainer,
    data_a: TrainingImages,
    data_b: TrainingImages,
    held_out: tuple[np.ndarray, np.ndarray],
    every: int,
    run_dir: str | Path | None = None,
    progress: bool = False,
    on_point: Callable[[int, float], None] | None = None,
) -> list[tuple[int, float]]:
    """Train to ``trainer.cfg.steps``, measuring every ``every`` steps (and at the end) the
    held-out pixel accuracy of ``held_out = (satellites, maps)``; return ``[(step, accuracy)]``.

    The points fall on multiples of ``every``, so a resumed run keeps the same grid of points.
    """
    if every < 1:
        raise ValueError(f"every={every} must be >= 1")
    trainer.held_out = held_out
    curve: list[tuple[int, float]] = []

    def record(row: dict) -> None:
        curve.append((row["step"], row["accuracy"]))
        if on_point is not None:
            on_point(row["step"], row["accuracy"])

    trainer.fit(
        data_a, data_b, run_dir, progress=progress, evaluate=trainer.evaluate, eval_every=every,
        on_eval=record,
    )  # fmt: skip
    return curve
