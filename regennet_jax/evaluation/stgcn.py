"""Two-person ST-GCN action recognizer (the paper's evaluator) in Flax.

Input: [N, T, 56, 12] -- actor (channels 0:6) and reactor (6:12), each 55 rot6d joints + the
translation row, as the original feeds `batch['output']`. The graph has 56 nodes: the SMPL-X tree
plus an edge pelvis - translation node, 'spatial' partitioning with max hop 1 (K = 3 adjacency
matrices, column-normalised A D^-1). Ten ST-GCN blocks (64, 64, 64, 64, 128/2, 128, 128, 256/2, 256,
256), global average pooling over time and joints, mean over the two people: the 256-d features used
for FID, diversity and multimodality; a 1x1 layer gives the logits.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax.body import skeleton

NUM_NODES = skeleton.MOTION_ROWS  # the joints plus the translation row
BLOCKS = ((64, 1, False), (64, 1, True), (64, 1, True), (64, 1, True), (128, 2, True),
          (128, 1, True), (128, 1, True), (256, 2, True), (256, 1, True), (256, 1, True))


def spatial_adjacency(center=0):
  """[3, 56, 56] ST-GCN 'spatial' partition (self, centripetal, centrifugal), column-normalised."""
  edges = list(skeleton.BONES) + [(skeleton.TRANSLATION_ROW, 0)]
  adj = np.eye(NUM_NODES)
  for i, j in edges:
    adj[i, j] = adj[j, i] = 1
  # hop distances (BFS over the tree)
  hop = np.full((NUM_NODES, NUM_NODES), np.inf)
  reach = [np.linalg.matrix_power(adj, d) > 0 for d in range(NUM_NODES)]
  for d in range(NUM_NODES - 1, -1, -1):
    hop[reach[d]] = d
  within = (hop <= 1).astype(np.float64)
  norm = within / within.sum(0, keepdims=True)  # A D^-1 with D the column degree
  root, close, further = (np.zeros_like(norm) for _ in range(3))
  for i in range(NUM_NODES):
    for j in range(NUM_NODES):
      if hop[j, i] > 1:
        continue
      if hop[j, center] == hop[i, center]:
        root[j, i] = norm[j, i]
      elif hop[j, center] > hop[i, center]:
        close[j, i] = norm[j, i]
      else:
        further[j, i] = norm[j, i]
  return np.stack([root, close, further]).astype(np.float32)


class TemporalConv(nn.Module):
  """A (kernel, 1) convolution over time of [B, T, V, C], with nn.Conv's parameters (kernel
  [k, 1, C, F], bias [F]), computed as a 1-D convolution with the joints folded into the batch:
  its gradient runs about 4x faster on a CPU than XLA's 2-D convolution with a width-1 kernel."""
  features: int
  kernel_size: int = 9
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    b, t, v, c = x.shape
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (self.kernel_size, 1, c, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    pad = (self.kernel_size - 1) // 2
    y = jnp.transpose(x, (0, 2, 1, 3)).reshape(b * v, t, c)
    y = jax.lax.conv_general_dilated(y,
                                     kernel[:, 0], (self.stride,), ((pad, pad),),
                                     dimension_numbers=('NWC', 'WIO', 'NWC'))
    return jnp.transpose(y.reshape(b, v, -1, self.features), (0, 2, 1, 3)) + bias


class PointwiseConv(nn.Module):
  """A 1x1 convolution of [B, T, V, C] (optionally strided in time) with nn.Conv's parameters
  (kernel [1, 1, C, F], bias [F]), computed as one matrix multiply: its gradient is several times
  faster on a CPU than XLA's convolution."""
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (1, 1, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    return x[:, ::self.stride] @ kernel[0, 0] + bias


class STGCNBlock(nn.Module):
  features: int
  stride: int
  residual: bool
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, adjacency, train):
    """x: [B, T, V, C] -> [B, T / stride, V, features]."""
    k = adjacency.shape[0]
    importance = self.param('edge_importance', nn.initializers.ones, adjacency.shape)
    bn = lambda name: nn.BatchNorm(
        use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)
    h = PointwiseConv(k * self.features, name='gcn_conv')(x)
    b, t, v = h.shape[:3]
    # The graph convolution as one matrix multiply over (partition, joint): [B, T, F, K * V].
    h = h.reshape(b, t, v, k, self.features).transpose(0, 1, 4, 3, 2).reshape(b, t, -1, k * v)
    h = (h @ (adjacency * importance).reshape(k * v, v)).transpose(0, 1, 3, 2)
    h = nn.relu(bn('gcn_bn')(h))
    h = TemporalConv(self.features, 9, self.stride, name='tcn_conv')(h)
    h = bn('tcn_bn')(h)
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    if not self.residual:
      res = 0.0
    elif x.shape[-1] == self.features and self.stride == 1:
      res = x
    else:
      res = bn('res_bn')(PointwiseConv(self.features, self.stride, name='res_conv')(x))
    return nn.relu(h + res)


class STGCN(nn.Module):
  """Returns (logits [N, num_classes], features [N, 256 * width]).

  width scales every block's channels (1.0 is the paper's network; smaller is for CPU budgets).
  """
  num_classes: int
  width: float = 1.0

  @nn.compact
  def __call__(self, motion, train=False):
    n, t, v, c = motion.shape
    people = c // 6
    # data_bn: one BatchNorm channel per (person, node, feature), as the original's BatchNorm1d(M*V*C).
    x = motion.reshape(n, t, v, people, 6).transpose(0, 1, 3, 2, 4).reshape(n, t, people * v * 6)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name='data_bn')(x)
    x = x.reshape(n, t, people, v, 6).transpose(0, 2, 1, 3, 4).reshape(n * people, t, v, 6)
    adjacency = jnp.asarray(spatial_adjacency())
    for i, (features, stride, residual) in enumerate(BLOCKS):
      x = STGCNBlock(max(8, int(features * self.width)), stride, residual,
                     name=f'block_{i}')(x, adjacency, train)
    feats = x.mean(axis=(1, 2)).reshape(n, people, -1).mean(axis=1)
    logits = nn.Dense(self.num_classes, name='fcn')(feats)
    return logits, feats
