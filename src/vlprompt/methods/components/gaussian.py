"""Diagonal Gaussian posteriors over a prompt residual, and the pieces of an ELBO.

`q(r) = N(mu, diag exp(log_var))`, either one global distribution or one per image from
small MLPs on the image feature. Samples are reparameterised: `r = mu + exp(log_var / 2) *
eps` with `eps ~ N(0, I)` drawn by the caller from an explicit generator.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..base import reset_linear


def kl_to_standard_normal(mu: torch.Tensor, log_var: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Closed-form KL(N(mu, diag exp(log_var)) || N(0, I)) over the last dim: (..., W) -> (...).

    `sum` is the KL of the W-dimensional Gaussian; `mean` divides it by W, as the variational
    prompt tuning reference does before weighting it (so its beta acts per dimension).
    """
    per_dim = 0.5 * (log_var.exp() + mu.pow(2) - 1.0 - log_var)
    if reduction == "mean":
        return per_dim.mean(dim=-1)
    if reduction == "sum":
        return per_dim.sum(dim=-1)
    raise ValueError(f"unknown KL reduction {reduction!r}; use mean or sum")


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(x))) along `dim`, computed stably."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


class GlobalPosterior(nn.Module):
    """One q(r) for every image: learned mean (zero init) and log-variance (W,), which starts
    at `init_log_var`, or uniform in [0, 1) per dimension as the reference draws it (None)."""

    def __init__(self, width: int, init_log_var: float | None, generator: torch.Generator | None = None):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(width))
        if init_log_var is None:
            log_var = torch.rand(width, generator=generator)
        else:
            log_var = torch.full((width,), float(init_log_var))
        self.log_var = nn.Parameter(log_var)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Any features -> mean and log-variance (1, W), shared by the batch."""
        return self.mu.unsqueeze(0), self.log_var.unsqueeze(0)


def _mlp(dim: int, hidden: int, width: int, generator: torch.Generator | None) -> nn.Sequential:
    return nn.Sequential(reset_linear(nn.Linear(dim, hidden), generator), nn.ELU(),
                         reset_linear(nn.Linear(hidden, hidden), generator), nn.ELU(),
                         reset_linear(nn.Linear(hidden, width), generator))


class ConditionalPosterior(nn.Module):
    """q(r|x): two MLPs (D -> h -> h -> W, ELU) on the normalised image feature.

    With `init_log_var` None every layer has PyTorch's default init, as the reference. With a
    number the output layers start small (weights scaled by 0.01, mean bias 0, log-variance
    bias `init_log_var`), so training starts near a global posterior with that variance while
    every layer still receives gradient from the first step.
    """

    def __init__(self, dim: int, width: int, hidden: int, init_log_var: float | None,
                 generator: torch.Generator | None):
        super().__init__()
        self.mu_net = _mlp(dim, hidden, width, generator)
        self.log_var_net = _mlp(dim, hidden, width, generator)
        if init_log_var is None:
            return
        with torch.no_grad():
            for net, bias in ((self.mu_net, 0.0), (self.log_var_net, float(init_log_var))):
                net[-1].weight.mul_(0.01)
                net[-1].bias.fill_(bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image features (B, D) -> mean and log-variance (B, W)."""
        f = nn.functional.normalize(features.float(), dim=-1)
        return self.mu_net(f), self.log_var_net(f)
