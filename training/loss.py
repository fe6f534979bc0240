"""StyleGAN2 losses with lazy regularisation and ADA augmentation, one method per phase.

Facts from the papers (Karras et al. 2019, "Analyzing and Improving the Image Quality of
StyleGAN", §2.2 and App. B; Karras et al. 2020, "Training GANs with Limited Data", §2-3):

* non-saturating logistic loss: D minimises softplus(D(fake)) + softplus(-D(real)), G minimises
  softplus(-D(fake));
* R1 on reals, (gamma / 2) * |grad_x D(x)|^2, computed lazily every 16 D steps and scaled by the
  interval so its average weight is unchanged;
* path-length regularisation, weight 2 on (|J_w^T y| - a)^2 with y ~ N(0, I) / sqrt(H W) and a an
  exponential moving average of the lengths (decay 0.01), lazily every 4 G steps on half the batch;
* style mixing with probability 0.9;
* ADA: every image D sees, real or fake, goes through the same augmentation pipe, including the
  reals of the R1 term (the gradient is taken with respect to the image before augmentation).

Randomness comes only from the `generator` passed to each phase, so a phase's result depends on
its inputs and that generator alone (the loop seeds one per phase and round).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from likeness.errors import ConfigError
from training.discriminator import Discriminator
from training.generator import Generator

Augment = Callable[..., torch.Tensor]   # AugmentPipe: (images, generator=...) -> images


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Loss and regulariser settings; the defaults are the StyleGAN2/ADA ones."""

    r1_gamma: float | None = None       # R1 weight (0: off; None: ADA's 0.0002 * resolution**2 / batch)
    r1_interval: int = 16               # lazy R1: one regularisation step every this many D steps
    pl_weight: float = 2.0              # path-length weight (0: off)
    pl_interval: int = 4                # lazy path length: every this many G steps
    pl_decay: float = 0.01              # update rate of the target length pl_mean
    pl_batch_shrink: int = 2            # path length runs on (round batch // this) samples
    style_mixing_prob: float = 0.9      # share of fakes whose fine styles come from a second z

    def __post_init__(self) -> None:
        if self.r1_gamma is not None and not self.r1_gamma >= 0:
            raise ConfigError(f"loss.r1_gamma must be >= 0 or None (automatic), got {self.r1_gamma!r}")
        for name in ("r1_interval", "pl_interval", "pl_batch_shrink"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"loss.{name} must be a positive int, got {value!r}")
        if not self.pl_weight >= 0:
            raise ConfigError(f"loss.pl_weight must be >= 0, got {self.pl_weight!r}")
        if not 0 <= self.pl_decay <= 1:
            raise ConfigError(f"loss.pl_decay must be in [0, 1], got {self.pl_decay!r}")
        if not 0 <= self.style_mixing_prob <= 1:
            raise ConfigError(f"loss.style_mixing_prob must be in [0, 1], got {self.style_mixing_prob!r}")

    def resolved_r1_gamma(self, resolution: int, batch: int) -> float:
        """r1_gamma, or ADA's heuristic 0.0002 * resolution**2 / batch when it is None."""
        return 0.0002 * resolution ** 2 / batch if self.r1_gamma is None else float(self.r1_gamma)


class StyleGAN2Loss:
    """The four training phases' losses for one G and D: d_main, d_r1, g_main, g_path_length.

    Each returns a scalar loss (the mean over the samples given, before any lazy-regulariser
    gain) and detached statistics the loop aggregates across rounds and processes. The only state
    is `pl_mean`, the path-length target, which the loop updates once per regularisation step
    with the mean length over the whole batch (`update_pl_mean`); the penalty uses the value
    from before that update, so every round and process of a step sees the same target.
    """

    def __init__(
        self,
        G: Generator,
        D: Discriminator,
        *,
        config: LossConfig,
        r1_gamma: float,                # resolved R1 weight (LossConfig.resolved_r1_gamma)
        augment_pipe: Augment | None = None,  # applied to every image D sees (None: no augmentation)
    ) -> None:
        self.G, self.D = G, D
        self.config = config
        self.r1_gamma = r1_gamma
        self.augment_pipe = augment_pipe
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)

    # -- shared pieces -----------------------------------------------------------------------

    def generate(self, z: torch.Tensor, c: torch.Tensor | None, *, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fakes with style mixing: (images, ws fed to synthesis, w of the first latents).

        Each sample independently mixes with probability `style_mixing_prob`: its ws from a
        uniformly drawn cutoff in [1, num_ws) on come from a second latent.
        """
        G, n = self.G, z.shape[0]
        c = c if G.c_dim > 0 else None
        if self.config.style_mixing_prob > 0 and G.num_ws > 1:
            mix_z = torch.randn(z.shape, generator=generator, device=z.device)
            cutoff = torch.randint(1, G.num_ws, (n,), generator=generator, device=z.device)
            mixes = torch.rand((n,), generator=generator, device=z.device) < self.config.style_mixing_prob
            cutoff = torch.where(mixes, cutoff, torch.full_like(cutoff, G.num_ws))
            both = G.mapping.embed_latents(torch.cat([z, mix_z]), None if c is None else torch.cat([c, c]))
            ws_both = G.mapping.broadcast(both)
            ws = G.mix_styles(ws_both[:n], ws_both[n:], cutoff)
            w = both[:n]
        else:
            w = G.mapping.embed_latents(z, c)
            ws = G.mapping.broadcast(w)
        img = G.synthesis(ws, noise_mode="random", generator=generator)
        return img, ws, w

    def discriminate(self, img: torch.Tensor, c: torch.Tensor | None, *, generator: torch.Generator
                     ) -> torch.Tensor:
        """D's logits (N,) for images, augmented first when there is a pipe."""
        if self.augment_pipe is not None:
            img = self.augment_pipe(img, generator=generator)
        return self.D(img, c if self.D.c_dim > 0 else None).flatten()

    # -- phases ------------------------------------------------------------------------------

    def d_main(self, real: torch.Tensor, real_c: torch.Tensor | None, z: torch.Tensor,
               gen_c: torch.Tensor | None, *, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logistic D loss on fakes (G frozen) and reals; returns (loss, real logits detached).

        The two batches go through D separately so that minibatch-std groups never mix reals
        with fakes.
        """
        with torch.no_grad():
            fake, _, _ = self.generate(z, gen_c, generator=generator)
        fake_logits = self.discriminate(fake, gen_c, generator=generator)
        real_logits = self.discriminate(real, real_c, generator=generator)
        loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        return loss, real_logits.detach()

    def d_r1(self, real: torch.Tensor, real_c: torch.Tensor | None, *, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma / 2) |grad D(real)|^2 on reals; returns (loss, per-sample penalty detached)."""
        real = real.detach().requires_grad_(True)
        logits = self.discriminate(real, real_c, generator=generator)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grad.square().sum(dim=[1, 2, 3])
        return penalty.mean() * (self.r1_gamma / 2), penalty.detach()

    def g_main(self, z: torch.Tensor, c: torch.Tensor | None, *, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-saturating G loss softplus(-D(G(z))); returns (loss, w of z detached for w_avg)."""
        fake, _, w = self.generate(z, c, generator=generator)
        loss = F.softplus(-self.discriminate(fake, c, generator=generator)).mean()
        return loss, w.detach()

    def g_path_length(self, z: torch.Tensor, c: torch.Tensor | None, *, generator: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """pl_weight * (|J_w^T y| - pl_mean)^2; returns (loss, per-sample lengths detached)."""
        fake, ws, _ = self.generate(z, c, generator=generator)
        h, w = fake.shape[2], fake.shape[3]
        y = torch.randn(fake.shape, generator=generator, device=fake.device) / math.sqrt(h * w)
        (grad,) = torch.autograd.grad((fake * y).sum(), ws, create_graph=True)
        lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
        penalty = (lengths - self.pl_mean).square()
        return penalty.mean() * self.config.pl_weight, lengths.detach()

    # -- state -------------------------------------------------------------------------------

    @torch.no_grad()
    def update_pl_mean(self, mean_length: torch.Tensor | float) -> None:
        """pl_mean <- pl_mean + pl_decay * (mean_length - pl_mean), with the whole batch's mean."""
        target = torch.as_tensor(mean_length, dtype=self.pl_mean.dtype, device=self.pl_mean.device)
        self.pl_mean.copy_(self.pl_mean.lerp(target, self.config.pl_decay))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"pl_mean": self.pl_mean.detach().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.pl_mean.copy_(state["pl_mean"])
