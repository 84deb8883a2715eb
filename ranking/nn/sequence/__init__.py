"""User-sequence models (chapter 6): events as vectors, ways to summarize them, the ranker.

- ``events``: ``EventEmbedding`` (an event's item, category, action and pretrained
  embedding as one vector) and ``TimeDeltaEmbedding`` (how long ago).
- ``pooling``: ``SumPooling`` and ``IntervalSumPooling``, the cheap summaries.
- ``target_attention``: ``TargetAttention``, DIN's candidate-weighted sum.
- ``transformer``: ``TimeAwareTransformer``, self-attention with time-delta positions
  and optional early fusion of the candidate.
- ``long_short``: ``LongShort``, one summary of every event and one of the latest few.
- ``ranker``: ``SequenceRanker``, chapter 3's network plus any of these summaries.
"""

from .events import CONNECTIONS, PARTS, EventEmbedding, TimeDeltaEmbedding
from .long_short import LongShort
from .pooling import IntervalSumPooling, SumPooling
from .ranker import SequenceRanker
from .target_attention import TargetAttention
from .transformer import POSITIONS, TimeAwareTransformer

__all__ = ["CONNECTIONS", "PARTS", "EventEmbedding", "TimeDeltaEmbedding", "SumPooling", "IntervalSumPooling",
           "TargetAttention", "TimeAwareTransformer", "POSITIONS", "LongShort", "SequenceRanker"]
