"""Prompt generators of UPT: the lightweight Transformer layer (Eq. 5), the layer of the
authors' released code, and the MLP ablation.

All map prompts (P, n, d) -> (P, n, d), one set of n tokens per prompted layer. In Eq. 5's
layer tokens attend within their own layer's set; in the released code's they never attend
to each other (see `AuthorsPromptLayer`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import reset_linear


def _ffn(dim: int, hidden: int, dropout: float, generator: torch.Generator | None) -> nn.Sequential:
    return nn.Sequential(reset_linear(nn.Linear(dim, hidden), generator), nn.GELU(), nn.Dropout(dropout),
                         reset_linear(nn.Linear(hidden, dim), generator))


class UnifiedPromptLayer(nn.Module):
    """UPT's Eq. 5: `U' = SA(U) + LN(U)`, `U_hat = FFN(LN(U')) + LN(U')`.

    Unlike a pre-norm Transformer block, self-attention reads the raw U and each residual
    branch adds the *normalised* input; one head and dropout 0.1 in the authors' code.
    """

    def __init__(self, dim: int, heads: int = 1, hidden: int | None = None, dropout: float = 0.1,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        with torch.no_grad():  # xavier as torch does, but from the explicit generator
            bound = (6.0 / (dim + dim)) ** 0.5
            self.attn.in_proj_weight.uniform_(-bound, bound, generator=generator)
            self.attn.in_proj_bias.zero_()
            reset_linear(self.attn.out_proj, generator).bias.zero_()
        self.ln_1 = nn.LayerNorm(dim)
        self.ln_2 = nn.LayerNorm(dim)
        self.ffn = _ffn(dim, hidden or dim, dropout, generator)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (P, n, d) -> (P, n, d)."""
        u1 = self.attn(u, u, u, need_weights=False)[0] + self.ln_1(u)  # U'
        v = self.ln_2(u1)  # LN(U')
        return self.ffn(v) + v  # U_hat


class AuthorsPromptLayer(nn.Module):
    """The generator as UPT's released code (trainers/unified.py) runs it, reproduced exactly.

    The attention block is post-norm, `x = LN1(x + Drop1(SA(x)))`; the FFN block is pre-norm,
    `x = x + Drop2(W2 Drop(ReLU(W1 LN2(x))))` (ReLU, not GELU; hidden width d). The released
    code hands the prompts to an attention that is not `batch_first` as a (1, L, d) tensor, so
    it reads them as L sequences of length one: each token attends only to itself and the
    attention reduces to `out_proj(v_proj(x))`. We feed the tokens the same way.
    """

    def __init__(self, dim: int, heads: int = 1, hidden: int | None = None, dropout: float = 0.1,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout)  # not batch_first, as released
        with torch.no_grad():  # torch's own init, drawn from the explicit generator
            bound = (6.0 / (dim + dim)) ** 0.5
            self.attn.in_proj_weight.uniform_(-bound, bound, generator=generator)
            self.attn.in_proj_bias.zero_()
            reset_linear(self.attn.out_proj, generator).bias.zero_()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = reset_linear(nn.Linear(dim, hidden or dim), generator)
        self.linear2 = reset_linear(nn.Linear(hidden or dim, dim), generator)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (P, n, d) -> (P, n, d); every token is its own length-1 sequence."""
        p, n, d = u.shape
        x = u.reshape(1, p * n, d)  # (seq 1, batch P*n, d)
        x = self.norm1(x + self.dropout1(self.attn(x, x, x, need_weights=False)[0]))
        x = x + self.dropout2(self.linear2(self.dropout(torch.relu(self.linear1(self.norm2(x))))))
        return x.reshape(p, n, d)


class MLPPromptGenerator(nn.Module):
    """Table 2's ablation: two MLP layers applied to each token, no interaction between tokens."""

    def __init__(self, dim: int, hidden: int | None = None, dropout: float = 0.1,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.mlp = _ffn(dim, hidden or dim, dropout, generator)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (P, n, d) -> (P, n, d)."""
        return self.mlp(u)
