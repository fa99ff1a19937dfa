"""The ReGenNet denoiser (CMDM) as Flax Linen modules.

Motion tensors are [B, T, 56, 6] (batch, frames, 55 rot6d joints + translation row, features); inside,
each frame is one token of width `latent_dim`. The network predicts the clean reactor x0.

- 'online' (the paper's model): post-norm Transformer *decoder* whose self-attention is causal, so
  output frame t depends only on noisy-reactor and actor frames <= t. Cross-attention reads a single
  memory token: timestep embedding (+ action embedding when action-conditioned).
- 'offline' (ablation): post-norm Transformer *encoder* over [memory token; frames], no mask.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import attention
from regennet_jax import dropout
from regennet_jax import errors
from regennet_jax import layer_norm
from regennet_jax import matmul
from regennet_jax.body import kinematics
from regennet_jax.body import skeleton

MAX_LEN = 5000
PREDICTIONS = ('x0', 'preconditioned')


def sinusoidal_table(max_len, dim):
  """[max_len, dim] positional table with sin/cos *interleaved* (PE[p, 2i] = sin, PE[p, 2i+1] = cos)."""
  position = np.arange(max_len, dtype=np.float64)[:, None]
  div_term = np.exp(np.arange(0, dim, 2, dtype=np.float64) * (-np.log(10000.0) / dim))
  table = np.zeros((max_len, dim), np.float64)
  table[:, 0::2] = np.sin(position * div_term)
  table[:, 1::2] = np.cos(position * div_term)
  return table.astype(np.float32)


def gelu(x):
  """Exact GELU as PyTorch writes it: x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2))), any shape.

  jax.nn.gelu(approximate=False) goes through erfc, whose two-branch approximation XLA:CPU
  evaluates everywhere: at paper size that made a float32 training step 45-70 ms slower (2-3%).
  Far in the negative tail 1 + erf cancels to 0 in float32 (as in PyTorch; error < 1e-6).
  """
  return x * 0.5 * (1 + jax.lax.erf(x * np.asarray(np.sqrt(0.5), x.dtype)))


class FeedForward(nn.Module):
  width: int
  ff_size: int
  dropout: float
  dtype: jnp.dtype = jnp.float32
  matmul_dtype: str | None = None
  native_kernels: bool = False  # decode: the token's products on native.few_rows

  @nn.compact
  def __call__(self, h, deterministic):
    dot = matmul.for_layers(self.matmul_dtype, self.native_kernels)
    h = nn.Dense(self.ff_size, dtype=self.dtype, dot_general=dot, name='linear1')(h)
    h = gelu(h)
    h = dropout.Dropout(self.dropout)(h, deterministic=deterministic)
    return nn.Dense(self.width, dtype=self.dtype, dot_general=dot, name='linear2')(h)


def _einsum(dot):
  return functools.partial(jnp.einsum, _dot_general=dot)


def _attention(num_heads, dropout_rate, dtype, name, matmul_dtype=None):
  # PyTorch drops attention probabilities element-wise, as attention.dot_product_attention does.
  dot = matmul.operands_in(matmul_dtype)
  einsum = lambda: _einsum(dot)
  return nn.MultiHeadDotProductAttention(num_heads=num_heads,
                                         dropout_rate=dropout_rate,
                                         attention_fn=attention.dot_product_attention,
                                         dtype=dtype,
                                         name=name,
                                         qkv_dot_general=dot,
                                         out_dot_general=dot,
                                         qk_attn_weights_einsum_cls=einsum,
                                         attn_weights_value_einsum_cls=einsum)


class StreamingSelfAttention(nn.Module):
  """Causal self-attention of ONE new frame against the frames before it, for streaming.

  Parameters are nn.MultiHeadDotProductAttention's (query/key/value/out), so the same weights serve
  the whole-sequence model. The keys and values of past frames live in the 'cache' collection with
  one slice per denoising step, [cache_steps, B, H, T, Dh] (T: the longest stream, the length the
  cache was initialised with): a stream carries the whole buffer through its loop over denoising
  steps and each call writes one [B, H, Dh] row at (step, frame) in place. Slicing a cache per step
  instead made XLA copy every step's buffer on every frame, a cost that grew with the stream's
  length. Head-major, so each head's scores and weighted sum read one contiguous [T, Dh] block.
  """
  num_heads: int
  cache_steps: int = 1
  dtype: jnp.dtype = jnp.float32
  matmul_dtype: str | None = None
  native_kernels: bool = False  # native.few_rows and native.one_token_attention

  @nn.compact
  def __call__(self, h, frame, step):
    """h: [B, 1, D] the new frame's token; frame, step: [] int. Returns [B, 1, D]."""
    batch, length, width = h.shape
    head_dim = width // self.num_heads
    dot = matmul.for_layers(self.matmul_dtype, self.native_kernels)
    dense = lambda name: nn.DenseGeneral(
        (self.num_heads, head_dim), dtype=self.dtype, dot_general=dot, name=name)
    query, key, value = (dense(name)(h) for name in ('query', 'key', 'value'))  # [B, 1, H, Dh]
    out = nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, dot_general=dot, name='out')
    shape = (self.cache_steps, batch, self.num_heads, length, head_dim)
    keys = self.variable('cache', 'cached_key', jnp.zeros, shape, key.dtype)
    values = self.variable('cache', 'cached_value', jnp.zeros, shape, value.dtype)
    if self.is_initializing():  # sizes the cache by the longest stream; the output is unused
      return out(value)
    if length != 1:
      raise ValueError(f'a streaming step takes one frame, got {length}')
    write = lambda cache, row: jax.lax.dynamic_update_slice(
        cache, row[None].transpose(0, 1, 3, 2, 4).astype(cache.dtype), (step, 0, 0, frame, 0))
    keys.value = write(keys.value, key)
    values.value = write(values.value, value)
    if self.native_kernels:  # reads the step's slice in place, up to the frame
      from regennet_jax import native  # pylint: disable=g-import-not-at-top
      bf16 = self.matmul_dtype is not None and jnp.dtype(self.matmul_dtype) == jnp.bfloat16
      mixed = native.one_token_attention(query[:, 0], keys.value, values.value, step, frame, bf16)
      return out(mixed[:, None].astype(self.dtype))
    step_keys = jax.lax.dynamic_index_in_dim(keys.value, step, keepdims=False)  # [B, H, T, Dh]
    step_values = jax.lax.dynamic_index_in_dim(values.value, step, keepdims=False)
    einsum = _einsum(dot)
    # As nn.dot_product_attention: query / sqrt(Dh), masked scores at the dtype's minimum.
    scores = einsum('bhd,bhtd->bht', query[:, 0] / jnp.sqrt(head_dim).astype(query.dtype),
                    step_keys)
    seen = jnp.arange(step_keys.shape[2]) <= frame
    scores = jnp.where(seen, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores).astype(self.dtype)
    mixed = einsum('bht,bhtd->bhd', weights, step_values)
    return out(mixed[:, None])


class SingleTokenCrossAttention(nn.Module):
  """Multi-head attention whose memory is ONE token, computed without the wasted work.

  With a single key the softmax weight is exactly 1, so every query gets out(value(memory)): the
  per-frame query and output projections of a general attention layer (about 20% of the
  denoiser's multiply-adds) drop out. Parameters are those of nn.MultiHeadDotProductAttention
  (query/key/value/out), so checkpoints and imported PyTorch weights are unchanged; query and key
  never influence the output (their gradient is 0, as in the original). In training, attention
  dropout on that weight of 1 still zeroes or rescales each head per frame, as PyTorch does.
  """
  num_heads: int
  dropout: float
  dtype: jnp.dtype = jnp.float32
  matmul_dtype: str | None = None
  decode: bool = False  # streaming: keep the output in the 'cache' collection ('cross_out')
  from_cache: bool = False  # streaming after frame 0: read that output instead of computing it
  cache_steps: int = 1  # decode: one output per denoising step, [cache_steps, B, 1, D]
  native_kernels: bool = False

  @nn.compact
  def __call__(self, h, memory, deterministic, step=0):
    """h: [B, T, D] queries; memory: [B, 1, D]; step: decode only, the denoising step's slice of
    the cache. Returns [B, T, D]."""
    width = h.shape[-1]
    head_dim = width // self.num_heads
    dot = matmul.for_layers(self.matmul_dtype, self.native_kernels)
    dense = lambda name: nn.DenseGeneral(
        (self.num_heads, head_dim), dtype=self.dtype, dot_general=dot, name=name)
    if self.is_initializing():  # create query/key so the parameter tree matches real attention
      dense('query')(h[:, :1])
      dense('key')(memory)
    if self.decode:
      # A stream's memory token at a given denoising step (timestep, label) is the same for every
      # frame, so this output is too: frame 0 computes it, later frames skip the value and output
      # projections (a fifth of the weights a step reads for its one token).
      cached = self.variable('cache', 'cross_out', jnp.zeros,
                             (self.cache_steps, memory.shape[0], 1, width), h.dtype)
      if self.from_cache and not self.is_initializing():
        own = jax.lax.dynamic_index_in_dim(cached.value, step, keepdims=False)
        return jnp.broadcast_to(own, h.shape[:2] + (width,))
    value = dense('value')(memory)  # [B, 1, H, Dh]
    out = nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, dot_general=dot, name='out')
    shared = out(value)  # [B, 1, D]: what every frame receives without dropout
    if self.decode:
      cached.value = jax.lax.dynamic_update_index_in_dim(cached.value, shared.astype(h.dtype), step,
                                                         0)
    if deterministic or self.dropout == 0:
      return jnp.broadcast_to(shared, h.shape[:2] + (width,)).astype(h.dtype)
    # Each (frame, head) keeps its weight as 1 / (1 - p) or drops it: mix per-head projections.
    params = out.variables['params']
    per_head = jnp.einsum('bhd,hdo->bho', value[:, 0], params['kernel'].astype(value.dtype))
    keep = dropout.Dropout(self.dropout)(jnp.ones(h.shape[:2] + (self.num_heads,), per_head.dtype),
                                         deterministic=False)  # [B, T, H]
    mixed = jnp.einsum('bth,bho->bto', keep, per_head) + params['bias'].astype(per_head.dtype)
    return mixed.astype(h.dtype)


class DecoderLayer(nn.Module):
  """Post-norm layer: LN(h + SelfAttn), LN(h + CrossAttn(memory)), LN(h + FF)."""
  num_heads: int
  ff_size: int
  dropout: float
  dtype: jnp.dtype = jnp.float32
  decode: bool = False  # one frame at a time, past keys/values from the 'cache' collection
  matmul_dtype: str | None = None
  cross_from_cache: bool = False  # decode: the cross-attention output cached at frame 0
  cache_steps: int = 1  # decode: denoising steps the cache keeps a slice for
  native_kernels: bool = False  # decode: the token's products on native.few_rows

  @nn.compact
  def __call__(self, h, memory, self_mask, deterministic, copies=1, frame=None, step=0):
    """h: [B, T, D]; memory: [copies * B, 1, D]. Returns [copies * B, T, D]: the rows after
    self-attention are repeated `copies` times before they meet their memory tokens. Decoding:
    T = 1, the frame's index `frame` and the denoising step `step` (scalars) address the cache."""
    width = h.shape[-1]
    drop = lambda x: dropout.Dropout(self.dropout)(x, deterministic=deterministic)
    norm = lambda name: layer_norm.LayerNorm(epsilon=1e-5, dtype=self.dtype, name=name)
    if self.decode:
      a = StreamingSelfAttention(self.num_heads,
                                 self.cache_steps,
                                 self.dtype,
                                 self.matmul_dtype,
                                 self.native_kernels,
                                 name='self_attn')(h, frame, step)
    else:
      a = _attention(self.num_heads, self.dropout, self.dtype, 'self_attn',
                     self.matmul_dtype)(h, h, mask=self_mask, deterministic=deterministic)
    h = norm('norm1')(h + drop(a))
    h = jnp.tile(h, (copies, 1, 1))
    a = SingleTokenCrossAttention(self.num_heads,
                                  self.dropout,
                                  self.dtype,
                                  self.matmul_dtype,
                                  self.decode,
                                  self.cross_from_cache,
                                  self.cache_steps,
                                  self.native_kernels,
                                  name='cross_attn')(h, memory, deterministic, step)
    h = norm('norm2')(h + drop(a))
    f = FeedForward(width,
                    self.ff_size,
                    self.dropout,
                    self.dtype,
                    self.matmul_dtype,
                    self.native_kernels,
                    name='ff')(h, deterministic)
    return norm('norm3')(h + drop(f))


class EncoderLayer(nn.Module):
  """Post-norm layer: LN(h + SelfAttn), LN(h + FF)."""
  num_heads: int
  ff_size: int
  dropout: float
  dtype: jnp.dtype = jnp.float32
  matmul_dtype: str | None = None

  @nn.compact
  def __call__(self, h, mask, deterministic):
    width = h.shape[-1]
    drop = lambda x: dropout.Dropout(self.dropout)(x, deterministic=deterministic)
    norm = lambda name: layer_norm.LayerNorm(epsilon=1e-5, dtype=self.dtype, name=name)
    a = _attention(self.num_heads,
                   self.dropout,
                   self.dtype,
                   'self_attn',
                   matmul_dtype=self.matmul_dtype)(h, h, mask=mask, deterministic=deterministic)
    h = norm('norm1')(h + drop(a))
    f = FeedForward(width, self.ff_size, self.dropout, self.dtype, self.matmul_dtype,
                    name='ff')(h, deterministic)
    return norm('norm2')(h + drop(f))


class TimestepEmbedding(nn.Module):
  """Sinusoidal row t of the positional table -> Dense -> SiLU -> Dense; [B] -> [B, latent_dim]."""
  latent_dim: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, timesteps):
    table = jnp.asarray(sinusoidal_table(MAX_LEN, self.latent_dim))
    h = table[timesteps]
    h = nn.Dense(self.latent_dim, dtype=self.dtype, name='dense1')(h)
    return nn.Dense(self.latent_dim, dtype=self.dtype, name='dense2')(nn.silu(h))


def positional_encoding(h, positions=None):
  """h [B, N, D] plus the sinusoidal table's rows 0..N-1 (or `positions` [N])."""
  table = jnp.asarray(sinusoidal_table(MAX_LEN, h.shape[-1]))
  return h + (table[:h.shape[1]] if positions is None else table[positions]).astype(h.dtype)


class ConditionEmbedding(nn.Module):
  """The cross-attention memory: ONE token per sample, the timestep embedding plus, for an
  action-conditioned model, the action's embedding (zeroed where `keep_action` is False: the null
  condition of classifier-free guidance, and at random in training with cond_mask_prob)."""
  latent_dim: int
  cond_mode: str = 'no_cond'
  num_actions: int = 1
  cond_mask_prob: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, timesteps, action, keep_action, train):
    """timesteps, action, keep_action: [R]. Returns the memory [R, 1, D]."""
    emb = TimestepEmbedding(self.latent_dim, self.dtype, name='time_embed')(timesteps)
    if self.cond_mode == 'action':
      if action is None:
        raise errors.ConfigError("model.cond_mode='action' needs action labels")
      table = self.param('action_embedding', nn.initializers.normal(1.0),
                         (self.num_actions, self.latent_dim))
      keep = keep_action
      if train and self.cond_mask_prob > 0:
        keep = keep & ~jax.random.bernoulli(self.make_rng('dropout'), self.cond_mask_prob,
                                            keep.shape)
      emb = emb + table[action] * keep[:, None].astype(emb.dtype)
    return emb[:, None, :]


class FrameTokens(nn.Module):
  """One token per frame from the noisy reactor and the actor: separate input projections of the
  flattened [56 * 6] rows (and of the actor's joint positions when `actor_positions_rest` is set),
  fused by a Dense over the concatenation ('concat', the paper's) or a sum ('add')."""
  latent_dim: int
  fusion: str = 'concat'
  actor_positions_rest: tuple | None = None
  dtype: jnp.dtype = jnp.float32
  native_kernels: bool = False  # decode: the token's products on native.few_rows

  @nn.compact
  def __call__(self, x_t, actor):
    """x_t, actor: [B, T, 56, 6]. Returns [B, T, D]."""
    batch, frames = x_t.shape[:2]
    flat = lambda m: m.reshape(batch, frames, -1)
    # Float32 like the output projection; XLA's own product unless decoding natively.
    dot = matmul.for_layers(None, True) if self.native_kernels else None
    dense = lambda name: nn.Dense(self.latent_dim, dtype=self.dtype, dot_general=dot, name=name)
    x_feat = dense('input_process')(flat(x_t))
    a_feat = dense('actor_process')(flat(actor))
    if self.actor_positions_rest is not None:
      rest = jnp.asarray(self.actor_positions_rest, actor.dtype)
      # jnp.asarray: numpy inputs (e.g. init's example batch) must not take the numpy FK path.
      joints = kinematics.motion_to_joints(jnp.asarray(actor), rest, with_translation=True)
      a_feat = a_feat + dense('actor_positions_process')(flat(joints))
    if self.fusion == 'concat':
      return dense('fuse')(jnp.concatenate([x_feat, a_feat], axis=-1))
    return x_feat + a_feat


class OnlineDecoder(nn.Module):
  """The paper's model: positional encoding, then post-norm decoder layers whose self-attention
  is causal (frame t sees frames <= t) and whose cross-attention reads the memory token."""
  num_layers: int
  num_heads: int
  ff_size: int
  dropout: float
  use_pos_emb: bool = True
  decode: bool = False
  dtype: jnp.dtype = jnp.float32
  matmul_dtype: str | None = None
  cross_from_cache: bool = False
  cache_steps: int = 1
  native_kernels: bool = False

  @nn.compact
  def __call__(self, h, memory, positions, deterministic, copies=1, cache_step=0):
    """h: [B, T, D]; memory: [copies * B, 1, D]. Returns [copies * B, T, D].

    copies > 1 (classifier-free guidance pairs): the rows differ only in their memory token,
    which first enters at layer 0's cross-attention, so everything before it runs once.
    Decoding: one frame, at positions[0], for the denoising step `cache_step`.
    """
    if self.use_pos_emb:
      h = positional_encoding(h, positions)
    h = dropout.Dropout(self.dropout)(h, deterministic=deterministic)
    causal = nn.make_causal_mask(jnp.ones((1, h.shape[1]), bool))  # broadcasts over any batch
    for i in range(self.num_layers):
      h = DecoderLayer(self.num_heads,
                       self.ff_size,
                       self.dropout,
                       self.dtype,
                       self.decode,
                       self.matmul_dtype,
                       self.cross_from_cache,
                       self.cache_steps,
                       self.native_kernels,
                       name=f'layer_{i}')(h,
                                          memory,
                                          causal,
                                          deterministic,
                                          copies=copies if i == 0 else 1,
                                          frame=None if positions is None else positions[0],
                                          step=cache_step)
    return h


class OfflineEncoder(nn.Module):
  """The offline ablation: post-norm encoder layers over [memory token; frames], no mask (every
  frame sees the whole sequence), positional encoding on all T + 1 tokens."""
  num_layers: int
  num_heads: int
  ff_size: int
  dropout: float
  use_pos_emb: bool = True
  dtype: jnp.dtype = jnp.float32
  matmul_dtype: str | None = None

  @nn.compact
  def __call__(self, h, memory, mask, deterministic, copies=1):
    """h: [B, T, D]; memory: [copies * B, 1, D]; mask: optional [B, T] valid frames.
    Returns [copies * B, T, D]."""
    h = jnp.tile(h, (copies, 1, 1))  # every token attends to the memory: nothing to share
    h = jnp.concatenate([memory.astype(h.dtype), h], axis=1)  # [copies * B, T + 1, D]
    if self.use_pos_emb:
      h = positional_encoding(h)
    h = dropout.Dropout(self.dropout)(h, deterministic=deterministic)
    key_mask = None
    if mask is not None:
      mask = jnp.tile(mask.astype(bool), (copies, 1))
      valid = jnp.concatenate([jnp.ones((len(mask), 1), bool), mask], axis=1)
      key_mask = nn.make_attention_mask(jnp.ones_like(valid), valid)
    for i in range(self.num_layers):
      h = EncoderLayer(self.num_heads,
                       self.ff_size,
                       self.dropout,
                       self.dtype,
                       self.matmul_dtype,
                       name=f'layer_{i}')(h, key_mask, deterministic)
    return h[:, 1:]


class Denoiser(nn.Module):
  """Predicts the clean reactor motion x0 from the noisy reactor, the timestep and the actor.

  Made of named parts: ConditionEmbedding (the memory token), FrameTokens (per-frame input),
  OnlineDecoder or OfflineEncoder, and the output projection 'output_process'. Classifier-free
  guidance pairs are formed in one place, `__call__`.

  Attributes:
    arch: 'online' (causal decoder) or 'offline' (bidirectional encoder).
    fusion: how reactor and actor tokens combine: 'concat' (Dense over [x; actor]) or 'add'.
    cond_mode: 'no_cond' (unconstrained: actor only) or 'action' (plus an action label).
    cond_mask_prob: in training, probability of dropping a sample's action label (for CFG).
    use_pos_emb: add the sinusoidal frame-position table to every token (the paper's). The causal
      decoder can do without: its mask already tells frame f from frame f + 1, while the table's
      fast sinusoids (periods of a few frames) leak into the output as a shake that every sample
      shares (README, "Training recipe").
    decode: streaming, one frame per call at `positions`, past self-attention keys and values in
      the 'cache' collection (online only; initialise with the longest sequence to stream).
    cache_steps: decode only: the cache keeps a slice for each of this many denoising steps (a
      stream's schedule steps); a call reads and writes the slice `cache_step`.
    native_kernels: decode only: the one token a call decodes runs its products and its
      self-attention on regennet_jax.native (hand-written CPU kernels: few_rows on several
      threads; one_token_attention reading the cache in place) instead of XLA's.
    cross_from_cache: decode only, for every frame after a stream's first: each layer's
      cross-attention output is read from the cache its first frame wrote (the memory token, i.e.
      timestep and label, must be the same as then; streaming.py keeps one cache per step).
    matmul_dtype: 'bfloat16': the Transformer layers' matrix multiplies take bfloat16 operands and
      accumulate in float32 (matmul.operands_in). Parameters, the input/output projections
      (they carry the motion itself: bfloat16 there cost FID) and everything else stay float32.
    actor_positions_rest: rest skeleton [55][3] (nested tuples) to also feed the actor's joint
      POSITIONS (forward kinematics with translation): where its hands are, which rotations encode
      only through the kinematic chain. None: the original's rotations-only input.
    prediction: what the network's last layer outputs. 'x0' (the paper's): x0 itself.
      'preconditioned': F in x0 = c_skip x_t / sqrt(abar) + c_out F, with the noise level
      sigma^2 = (1 - abar) / abar, c_skip = sd^2 / (sigma^2 + sd^2) and
      c_out = sigma sd / sqrt(sigma^2 + sd^2), sd = `sigma_data` (Karras et al., 2022, "EDM").
      Every caller still gets x0. Where the noise is below the data's own spread, x0 is then
      mostly x_t: a small network predicting x0 directly never learns to copy its input through
      its layers (its x0 error stays at its high-noise level down to t = 0).
    sigma_data: the data's standard deviation per feature: for 'preconditioned', and for 'x0' about
      `reactor_mean`.
    reactor_mean: x0 about this point instead of 0 (flat [56 * 6], e.g. the training reactors'
      mean, factory.reactor_mean). 'x0': x0 = mu + sigma_data F, the network outputs the reactor's
      deviation from the mean in units of the data's spread. 'preconditioned': x0 = mu +
      c_skip (x_t / sqrt(abar) - mu) + c_out F. () is zero (the paper's x0; EDM's). A reactor's
      rot6d features sit near large constants (its root turned to face the actor, arms down): about
      zero the last layer must first learn those constants before any motion, and
      'preconditioned' F outputs them in units of sigma_data (up to ~1 / sigma_data).
    alphas_cumprod: abar for every original timestep (tuple, [num_timesteps]); needed by
      'preconditioned'.
  """
  arch: str = 'online'
  num_layers: int = 8
  latent_dim: int = 512
  ff_size: int = 1024
  num_heads: int = 4
  dropout: float = 0.1
  fusion: str = 'concat'
  cond_mode: str = 'no_cond'
  num_actions: int = 1
  cond_mask_prob: float = 0.0
  use_pos_emb: bool = True
  njoints: int = skeleton.MOTION_ROWS
  nfeats: int = skeleton.MOTION_CHANNELS
  dtype: jnp.dtype = jnp.float32
  decode: bool = False
  cross_from_cache: bool = False
  cache_steps: int = 1
  native_kernels: bool = False
  matmul_dtype: str | None = None
  actor_positions_rest: tuple | None = None
  prediction: str = 'x0'
  sigma_data: float = 0.1
  reactor_mean: tuple = ()
  alphas_cumprod: tuple | None = None

  def setup(self):
    if self.arch not in ('online', 'offline'):
      raise errors.ConfigError(f"model.arch must be 'online' or 'offline', got {self.arch!r}")
    if self.fusion not in ('concat', 'add'):
      raise errors.ConfigError(f"model.fusion must be 'concat' or 'add', got {self.fusion!r}")
    if self.cond_mode not in ('no_cond', 'action'):
      raise errors.ConfigError(
          f"model.cond_mode must be 'no_cond' or 'action', got {self.cond_mode!r}")
    if self.prediction not in PREDICTIONS:
      raise errors.ConfigError(
          f'model.prediction must be one of {PREDICTIONS}, got {self.prediction!r}')
    if self.prediction == 'preconditioned' and self.alphas_cumprod is None:
      raise errors.ConfigError(
          "model.prediction='preconditioned' needs the noise schedule (alphas_cumprod)")
    if self.reactor_mean and len(self.reactor_mean) != self.njoints * self.nfeats:
      raise errors.ConfigError(f'model.reactor_mean needs {self.njoints * self.nfeats} values (one '
                               f'per feature of [{self.njoints}, {self.nfeats}]), got '
                               f'{len(self.reactor_mean)}')
    if not self.use_pos_emb and self.arch != 'online':
      raise errors.ConfigError('model.use_pos_emb=False needs the causal online arch: without a '
                               'position encoding the offline encoder cannot tell frame order')
    if self.decode and self.arch != 'online':
      raise errors.ConfigError('frame-by-frame decoding needs the causal online arch')
    if self.cross_from_cache and not self.decode:
      raise ValueError('cross_from_cache reads the decoding cache: it needs decode=True')
    if self.native_kernels and not self.decode:
      raise ValueError('native_kernels are for decoding one token: they need decode=True')
    self.condition = ConditionEmbedding(self.latent_dim, self.cond_mode, self.num_actions,
                                        self.cond_mask_prob, self.dtype)
    self.frames = FrameTokens(self.latent_dim, self.fusion, self.actor_positions_rest, self.dtype,
                              self.native_kernels)
    stack = dict(num_layers=self.num_layers,
                 num_heads=self.num_heads,
                 ff_size=self.ff_size,
                 dropout=self.dropout,
                 use_pos_emb=self.use_pos_emb,
                 dtype=self.dtype,
                 matmul_dtype=self.matmul_dtype)
    if self.arch == 'online':
      self.decoder = OnlineDecoder(decode=self.decode,
                                   cross_from_cache=self.cross_from_cache,
                                   cache_steps=self.cache_steps,
                                   native_kernels=self.native_kernels,
                                   **stack)
    else:
      self.encoder = OfflineEncoder(**stack)
    self.output_process = nn.Dense(
        self.njoints * self.nfeats,
        dtype=self.dtype,
        dot_general=matmul.for_layers(None, True) if self.native_kernels else None)

  def __call__(self,
               x_t,
               timesteps,
               actor,
               action=None,
               *,
               uncond=None,
               mask=None,
               positions=None,
               cache_step=0,
               guidance_pairs=False,
               train=False):
    """Args:
      x_t: [B, T, 56, 6] noisy reactor.
      timesteps: [B] int, original-scale diffusion step (0..999).
      actor: [B, T, 56, 6] actor motion.
      action: [B] int labels (used when cond_mode == 'action').
      uncond: optional [B] bool; True replaces that sample's action embedding by the null (zero)
        condition.
      mask: optional [B, T] bool of valid frames; only 'offline' needs it (online attention is
        causal, so trailing padding never reaches valid frames).
      positions: optional [T] int frame indices for the positional encoding (default 0..T-1);
        decoding passes the index of its one frame.
      cache_step: decoding: the denoising step whose slice of the cache this call uses.
      guidance_pairs: classifier-free guidance in one call: returns [2B, T, 56, 6], rows :B
        conditioned on `action` and rows B: on the null condition, sharing everything before the
        memory token first enters (online). Inference only.
      train: enables dropout and random condition dropping (needs the 'dropout' rng).
    Returns:
      [B, T, 56, 6] predicted x0 ([2B, ...] with guidance_pairs).
    """
    batch, frames = x_t.shape[:2]
    deterministic = not train
    # Classifier-free guidance: the memory tokens of the conditional and null halves.
    keep_action = jnp.ones((batch,), bool) if uncond is None else ~jnp.asarray(uncond, bool)
    copies = 1
    if guidance_pairs:
      if self.cond_mode != 'action' or train:
        raise ValueError('guidance_pairs needs an action-conditioned model, at inference')
      copies = 2
      timesteps = jnp.concatenate([timesteps, timesteps])
      action = None if action is None else jnp.concatenate([action, action])
      keep_action = jnp.concatenate([jnp.ones((batch,), bool), jnp.zeros((batch,), bool)])
    memory = self.condition(timesteps, action, keep_action, train)  # [copies * B, 1, D]

    tokens = self.frames(x_t, actor)  # [B, T, D]
    if self.arch == 'online':
      h = self.decoder(tokens,
                       memory,
                       positions,
                       deterministic,
                       copies=copies,
                       cache_step=cache_step)
    else:
      h = self.encoder(tokens, memory, mask, deterministic, copies=copies)
    out = self.output_process(h)
    out = out.reshape(copies * batch, frames, self.njoints, self.nfeats).astype(x_t.dtype)
    mean = 0.0
    if self.reactor_mean:
      mean = jnp.asarray(self.reactor_mean, jnp.float32).reshape(self.njoints, self.nfeats)
    if self.prediction == 'x0':
      return (mean + self.sigma_data * out).astype(x_t.dtype) if self.reactor_mean else out
    abar = jnp.asarray(self.alphas_cumprod, jnp.float32)[timesteps][:, None, None, None]
    x_t = jnp.concatenate([x_t] * copies) if copies > 1 else x_t
    c_skip, c_out = preconditioning(abar, self.sigma_data)
    return (mean + c_skip * (x_t / jnp.sqrt(abar) - mean) + c_out * out).astype(x_t.dtype)


def preconditioning(abar, sigma_data):
  """(c_skip, c_out) of prediction='preconditioned' at alpha-bar `abar` (any shape): x0 =
  c_skip x_t / sqrt(abar) + c_out F, noise level sigma^2 = (1 - abar) / abar."""
  var, sd2 = (1.0 - abar) / abar, sigma_data**2
  return sd2 / (var + sd2), jnp.sqrt(var * sd2 / (var + sd2))


def count_params(params):
  return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
