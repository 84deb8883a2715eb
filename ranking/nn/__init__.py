"""Building blocks (embeddings, dense inputs, MLP, cross network, heads) and the ranking models.

Every model takes a batch, a dict of tensors, and returns a dict of logits,
one (B,) tensor per task, so one training loop trains them all. The shape
comments in every module use one legend:

    B   rows in a batch
    F   categorical fields (one embedding table each)
    E   width of a field's embedding
    D   dense (numeric) features
    X   width of the model's input vector, F * E + D
    H   width of an MLP's output, the hidden vector a head reads
    T   tasks (one logit each)
    M   experts (MMoE)
    S   surfaces, one tower each (MultiTower)
    L   events in a user's sequence (attention tokens: L, or 1 + L with the candidate)
    V   width of an event vector, and of the candidate embedded as one
    A   attention heads (V / A wide each)
    W   width of target attention's scoring layer
    K   time intervals (interval sum pooling)
    Z   width of a sequence summary
    P   width of a pretrained item embedding
    G   feature groups, one token each (the whole ranker's summarization layer)
    Q   tokens the whole ranker's mixer reads, V wide each
    R   bins of a piecewise-linear encoding of a number

Outside ``ranking.nn`` the same letters hold, and N counts the rows of a whole
dataset (B those of one batch); the generator (``ranking.simulate``) also
writes U for users, I for items and d for the width of the latent taste.
"""

from .cross import CrossNetV2
from .dense import DenseInput
from .embed import FeatureEmbedding
from .heads import TaskBias, TaskHeads, set_output_bias
from .inputs import ModelInput
from .mlp import MLP
from .models import DCN_STRUCTURES, DCNv2, EmbeddingMLP, LogisticRegression
from .norm import ResilientBatchNorm1d, make_resilient

__all__ = ["FeatureEmbedding", "DenseInput", "ModelInput", "MLP", "CrossNetV2", "TaskHeads",
           "TaskBias", "set_output_bias", "EmbeddingMLP", "LogisticRegression", "DCNv2",
           "DCN_STRUCTURES", "ResilientBatchNorm1d", "make_resilient"]
