"""Random crop and horizontal flip as batched tensor ops on the training device.

As in airbench, the whole batch is augmented with one gather on the device: each image is
zero-padded by ``crop_padding`` and the crop at offset (dy, dx), mirrored when ``flip``, is
read out. The drawn parameters are kept (:class:`AugParams`) so that per-example
perturbation memories (ATTA, ATAS) can be moved between the image's own frame and the
augmented frame with the same transform: :meth:`Augment.apply` and its inverse
:meth:`Augment.store`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainables.registry import ConfigError


@dataclass(frozen=True)
class AugParams:
    """One batch's augmentation: crop offsets in [0, 2 * crop_padding] and flip flags, all (B,)."""

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor


@dataclass(frozen=True)
class Augment:
    """Zero-padded random crop and random horizontal flip, drawn per example."""

    crop_padding: int
    flip: bool

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ConfigError("crop_padding", self.crop_padding, "must be >= 0")

    @property
    def is_identity(self) -> bool:
        """True when nothing is ever changed (no padding, no flip)."""
        return self.crop_padding == 0 and not self.flip

    def sample(self, n: int, device: torch.device | str) -> AugParams:
        """Draw parameters for ``n`` examples from torch's global RNG on ``device``."""
        span = 2 * self.crop_padding + 1
        dy = torch.randint(span, (n,), device=device)
        dx = torch.randint(span, (n,), device=device)
        if self.flip:
            flip = torch.rand(n, device=device) < 0.5
        else:
            flip = torch.zeros(n, dtype=torch.bool, device=device)
        return AugParams(dy, dx, flip)

    def _where(self, p: AugParams, shape: torch.Size) -> tuple[torch.Tensor, ...]:
        """Indices into the padded batch of the pixel each output position (b, c, i, j) shows."""
        b, c, h, w = shape
        device = p.dy.device
        rows = p.dy[:, None] + torch.arange(h, device=device)
        cols = torch.arange(w, device=device)
        cols = p.dx[:, None] + torch.where(p.flip[:, None], w - 1 - cols, cols)
        return (torch.arange(b, device=device)[:, None, None, None],
                torch.arange(c, device=device)[None, :, None, None],
                rows[:, None, :, None], cols[:, None, None, :])

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.crop_padding,) * 4)

    def apply(self, x: torch.Tensor, p: AugParams) -> torch.Tensor:
        """Crop (zeros outside the image) and flip each image of ``x`` (B, C, H, W) as ``p`` says."""
        return self._pad(x)[self._where(p, x.shape)]

    def store(self, memory: torch.Tensor, values: torch.Tensor, p: AugParams) -> torch.Tensor:
        """Write augmented-frame ``values`` back into a memory kept in the images' own frame.

        Every image pixel that the crop showed takes its value from ``values``; pixels the
        crop did not show keep ``memory``; values that fell on the zero padding are dropped.
        So ``apply(store(m, v, p), p) == v`` exactly wherever the crop shows the image (and
        is 0 on the padding, as for the image itself).
        """
        pad = self.crop_padding
        h, w = memory.shape[-2:]
        padded = self._pad(memory).index_put(self._where(p, memory.shape), values.to(memory.dtype))
        return padded[:, :, pad : pad + h, pad : pad + w]
