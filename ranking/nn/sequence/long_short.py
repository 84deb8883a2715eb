"""Long- and short-term interest: one summary of every event, one of the latest few (the write-up's 8)."""

from __future__ import annotations

import torch
from torch import nn

from ... import checks


class LongShort(nn.Module):
    """[long(all events), short(the latest ``short_length`` events)]: (B, Z_long + Z_short).

    Sequences come most recent first, so the latest events are the first slots.
    """

    def __init__(self, long: nn.Module, short: nn.Module, short_length: int = 8):
        super().__init__()
        checks.positive_int("short_length", short_length)
        self.long, self.short, self.short_length = long, short, short_length
        self.output_dim = long.output_dim + short.output_dim

    def forward(self, events: torch.Tensor, mask: torch.Tensor, candidate: torch.Tensor,
                delta_hours: torch.Tensor) -> torch.Tensor:
        latest = slice(0, self.short_length)
        long = self.long(events, mask, candidate, delta_hours)          # (B, Z_long)
        short = self.short(events[:, latest], mask[:, latest], candidate,
                           delta_hours[:, latest])                      # (B, Z_short)
        return torch.cat([long, short], dim=1)
