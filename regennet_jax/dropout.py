"""Dropout whose masks XLA:CPU computes in one fused pass, with a quarter of the hashing.

jax.random.bernoulli hashes one Threefry-2x32 block per element, keeps 32 of its 64 bits, and
on CPU JAX lowers Threefry as a rolled loop: five passes over arrays the size of the mask. At the
paper's size (8 layers, B = 64, T = 60) a training step draws about 86 million dropout decisions
and that made dropout about a quarter of the step on a 2-core CPU. Here the same Threefry-2x32
(20 rounds, the generator JAX uses) is written out round by round, so XLA fuses it with the
comparison and the multiply into one loop, and every 64-bit block gives four 16-bit uniforms:
one decision each. The dropped fraction is round(rate * 65536) / 65536 (0.1 -> 0.100006); the
kept values are scaled by the inverse of the exact keep fraction, so the mean is preserved.

Each decision depends only on the key and the element's index, so a mask is the same however
its array is sharded over devices.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)
_LEVELS = 1 << 16  # 16-bit uniforms


def threefry2x32(key, x0, x1):
  """Threefry-2x32 with 20 rounds (Salmon et al., 2011), unrolled.

  key: [2] uint32; x0, x1: uint32 arrays of one shape (the counter's two words).
  Returns the block's two output words, each shaped like x0.
  """
  rotl = lambda v, r: (v << np.uint32(r)) | (v >> np.uint32(32 - r))
  k0, k1 = key[0], key[1]
  ks = (k0, k1, k0 ^ k1 ^ _PARITY)
  x0, x1 = x0 + ks[0], x1 + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x0 = x0 + x1
      x1 = rotl(x1, r) ^ x0
    x0 = x0 + ks[(i + 1) % 3]
    x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
  return x0, x1


def _key_words(key):
  """The two uint32 words a Threefry key holds (other PRNG implementations: two drawn words)."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    data = jax.random.key_data(key)
  else:
    data = jnp.asarray(key)
  if data.shape == (2,) and data.dtype == jnp.uint32:
    return data
  return jax.random.bits(key, (2,), jnp.uint32)


def drop_threshold(rate):
  """The 16-bit threshold below which an element is dropped, and the kept elements' scale."""
  threshold = int(round(rate * _LEVELS))
  return threshold, _LEVELS / (_LEVELS - threshold)


def keep_mask(key, shape, rate):
  """A boolean [*shape] mask, True with probability 1 - round(rate * 65536) / 65536."""
  shape = tuple(shape)
  last = shape[-1] if shape else 1
  blocks = -(-last // 4)  # four 16-bit uniforms per block
  block_shape = shape[:-1] + (blocks,)
  if math.prod(block_shape) >= 2**32:
    raise ValueError(f'a dropout mask of shape {shape} needs more than 2**32 counters')
  counter = jnp.zeros(block_shape, jnp.uint32)
  stride = 1
  for axis in reversed(range(len(block_shape))):  # the block's row-major index
    counter = counter + jax.lax.broadcasted_iota(jnp.uint32, block_shape, axis) * np.uint32(stride)
    stride *= block_shape[axis]
  y0, y1 = threefry2x32(_key_words(key), counter, jnp.zeros_like(counter))
  lane = jax.lax.broadcasted_iota(jnp.uint32, block_shape + (4,), len(block_shape))
  word = jnp.where(lane < 2, y0[..., None], y1[..., None])
  uniform = (word >> ((lane & 1) * np.uint32(16))) & np.uint32(_LEVELS - 1)
  uniform = uniform.reshape(shape[:-1] + (blocks * 4,))[..., :last]
  threshold, _ = drop_threshold(rate)
  return (uniform >= np.uint32(threshold)).reshape(shape)


def apply(key, x, rate):
  """x with each element dropped with probability `rate` and the rest scaled to keep the mean."""
  if rate == 0.0:
    return x
  if rate >= 1.0:
    return jnp.zeros_like(x)
  _, scale = drop_threshold(rate)
  # sqrt of 0 / 1 changes nothing but is an op XLA does not duplicate into several consumers, so
  # the mask is hashed once and stored instead of hashed again inside each backward product and
  # layout copy that needs it (5% of an NTU-size float32 training step on CPU).
  keep = jnp.sqrt(keep_mask(key, x.shape, rate).astype(x.dtype))
  return x * keep * jnp.asarray(scale, x.dtype)


class Dropout(nn.Module):
  """nn.Dropout's interface and semantics (rng collection 'dropout'), masks from keep_mask."""
  rate: float

  @nn.compact
  def __call__(self, x, deterministic):
    if deterministic or self.rate == 0.0:
      return x
    return apply(self.make_rng('dropout'), x, self.rate)
