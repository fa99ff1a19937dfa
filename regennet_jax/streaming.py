"""Online reaction synthesis: actor frames in one at a time, one reactor frame out for each.

The online denoiser is strictly causal, so the whole-sequence chain factorises over frames: at
diffusion step i, frame f's prediction needs only x_i and the actor at frames <= f. A stream keeps,
for every diffusion step, the self-attention keys/values of the frames seen so far (per layer one
buffer [steps, B, H, max_frames, Dh], model.StreamingSelfAttention), and draws frame f's noise from
per-frame keys (with `schedule.noise_correlation`, continuing each step's draw of the previous
frame). Each new frame then costs one single-token pass per diffusion step, which writes its row
into the buffers in place (they ride whole in the loop's carry: nothing the size of the history is
copied) and whose attention reads a fixed-size masked buffer -- so nearly constant, whatever the
history length -- and the stream reproduces `sample.make_sampler` on
the whole sequence with the same key. The cross-attention output of each step and layer depends
only on that step's memory token (timestep, label), so the constructor computes and caches it once
(running the first-frame step on a zero frame) and every frame runs a second compiled step that
reads it (Denoiser.cross_from_cache). On a CPU the token's products run on a hand-written kernel
(`kernels`, regennet_jax.native) instead of XLA's.

    stream = ReactionStream(model, params, schedule, key, batch_size=1, max_frames=300)
    for actor_frame in camera:            # [B, 56, 6]
      reactor_frame = stream.push(actor_frame)

Given a `mesh` (sharding.sampling_mesh(): every device of every host), the B streams are split
over its 'data' axis: every host pushes the same [B, 56, 6] frame, puts only its own devices'
rows, and gets all B reactor frames back (gathered from every host).
"""

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import NamedSharding, PartitionSpec as P

from regennet_jax import config_check
from regennet_jax import diffusion
from regennet_jax import errors
from regennet_jax import pair_frame
from regennet_jax import sample as sample_lib
from regennet_jax.body import skeleton


def _make_caches(decoder, batch, max_frames, guided, dtype=jnp.float32):
  """Zeroed caches of `decoder` (decode=True, cache_steps = the schedule's steps): per layer,
  keys/values [steps, B (2B guided), H, max_frames, Dh] and cross-attention outputs
  [steps, B, 1, D]."""
  x = jnp.zeros((batch, max_frames, decoder.njoints, decoder.nfeats), dtype)
  label = jnp.zeros((batch,), jnp.int32)
  shapes = jax.eval_shape(functools.partial(decoder.init, guidance_pairs=guided),
                          jax.random.PRNGKey(0), x, jnp.zeros((batch,), jnp.int32), x,
                          label)['cache']
  return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def make_stream_step(model,
                     schedule,
                     method='ddim',
                     eta=0.0,
                     guidance_scale=1.0,
                     cross_from_cache=False,
                     native_kernels=False):
  """(params, state, actor_frame [B,56,6], label [B], frame index, key) -> (reactor frame, state).

  state: {'model': the caches of every step (_make_caches), 'noise': [steps + 1, B, 56, 6] the
  previous frame's noise draws}. cross_from_cache: for frames after the first, which wrote the
  cross-attention outputs. native_kernels: the token's products and self-attention on
  regennet_jax.native.
  """
  n = schedule.num_steps
  decoder = model.clone(decode=True,
                        cross_from_cache=cross_from_cache,
                        cache_steps=n,
                        native_kernels=native_kernels)
  guided = sample_lib.uses_guidance(model, guidance_scale)
  rho = schedule.noise_correlation

  def step(params, state, actor_frame, label, frame, key):
    init_key, step_key = diffusion.chain_noise_keys(key)
    batch = actor_frame.shape[0]
    frame_shape = (batch,) + actor_frame.shape[1:]
    # The same per-frame draws as diffusion.frame_noise in sample_loop; correlated noise continues
    # from the previous frame's draw of the same step (state['noise'][i]; x_T's at [n]).
    draw = lambda k, previous: diffusion.next_correlated(
        previous, diffusion.noise_at(k, frame, frame_shape, actor_frame.dtype), frame, rho)
    x_T = draw(init_key, state['noise'][n])
    positions = frame[None]

    # The caches ride in the loop's carry, whole: each step writes its own frame row in place.
    def body(carry, inputs):
      x, caches = carry
      i, previous = inputs
      t = jnp.full((batch,), i, jnp.int32)
      updated = {}  # the caches after this step, captured from the (possibly CFG) call

      def model_fn(x_t, timesteps):  # [2B] rows (conditional; unconditional) when guided
        out, mutated = decoder.apply({
            'params': params,
            'cache': caches
        },
                                     x_t,
                                     timesteps,
                                     actor_frame[:, None],
                                     label,
                                     positions=positions,
                                     cache_step=i,
                                     guidance_pairs=guided,
                                     mutable=['cache'])
        updated['cache'] = mutated['cache']
        return out

      denoise = diffusion.classifier_free_guidance(model_fn, guidance_scale) if guided else model_fn
      x0 = denoise(x[:, None], schedule.timestep_map[t])[:, 0]
      noise = draw(step_key(i), previous)
      return (diffusion.reverse_step(schedule, method, x0, x, t, noise,
                                     eta), updated['cache']), noise

    (x, caches), noises = jax.lax.scan(body, (x_T, state['model']),
                                       (jnp.arange(n), state['noise'][:n]),
                                       reverse=True)
    return x, {'model': caches, 'noise': jnp.concatenate([noises, x_T[None]])}

  return step


def _kernels_in(params, dtype):
  """The decoder's kernels stored in `dtype`, the operand type of its products: cast once instead
  of on every denoising step (the casts read and write ~100 MB per step at paper size)."""
  def cast(path, leaf):
    names = [getattr(p, 'key', '') for p in path]
    return leaf.astype(dtype) if 'decoder' in names and names[-1] == 'kernel' else leaf

  return jax.tree_util.tree_map_with_path(cast, params)


KERNELS = config_check.CHOICES['stream.kernels']


def choose_kernels(kernels, mesh=None):
  """'native' or 'xla': what a stream's products run on (ReactionStream's `kernels`).

  'auto' takes regennet_jax.native where it builds and loads and the streams stay on one device
  (its custom calls have no rule for splitting their operands over several), else XLA's.
  """
  if kernels not in KERNELS:
    raise errors.ConfigError(f'stream.kernels must be one of {KERNELS}, got {kernels!r}')
  if kernels == 'xla':
    return 'xla'
  devices = 1 if mesh is None else mesh.size
  if devices > 1:
    reason = (f'the streams are split over {devices} devices; the native kernels run on one '
              "(use 'xla' or one device)")
  else:
    from regennet_jax import native  # builds the kernels on first use
    reason = native.why_unavailable()
  if reason is None:
    return 'native'
  if kernels == 'native':
    raise errors.ConfigError(f"stream.kernels='native' cannot be used here: {reason}")
  return 'xla'


class ReactionStream:
  """Stateful frame-by-frame generator around a jitted, cache-carrying step (see module doc).

  kernels: 'native' runs the one token's products and self-attention on regennet_jax.native
  (hand-written CPU kernels: products on several threads, attention reading the cache in place;
  together about twice XLA:CPU's speed here), 'xla' on XLA's, 'auto' (default) native where it can
  (choose_kernels). `self.kernels` says which was taken.
  """
  def __init__(self,
               model,
               params,
               schedule,
               key,
               batch_size=1,
               max_frames=300,
               method='ddim',
               eta=0.0,
               guidance_scale=1.0,
               label=None,
               actor_frame=False,
               orthonormalize=False,
               mesh=None,
               kernels='auto'):
    if model.arch != 'online':
      raise errors.ConfigError(
          "streaming needs model.arch='online' (the offline model sees the future)")
    self.model, self.params, self.key = model, params, key
    self.max_frames = max_frames
    self.batch_size = batch_size
    guided = sample_lib.uses_guidance(model, guidance_scale)
    if batch_size < 1 or max_frames < 1:
      raise errors.ConfigError(f'a stream needs batch_size >= 1 and max_frames >= 1, got '
                               f'{batch_size} and {max_frames}.')
    label = np.zeros((batch_size,), np.int32) if label is None else np.asarray(label, np.int32)
    if label.shape != (batch_size,):
      raise errors.ConfigError(f'label has shape {label.shape}: one label per stream, '
                               f'expected ({batch_size},).')
    # Over a mesh, the streams are padded (copies of the last one) to a multiple of its devices.
    devices = mesh.shape['data'] if mesh is not None else 1
    self.rows = -(-batch_size // devices) * devices  # streams computed: B padded
    self.kernels = choose_kernels(kernels, mesh)
    if model.matmul_dtype is not None and self.kernels == 'xla':
      # A one-row bfloat16 matrix-vector product takes XLA:CPU's slow path (4 GB/s of weights):
      # two rows take the fast one.
      self.rows = max(self.rows, 2 * devices)
    rows_sharding = NamedSharding(mesh, P('data')) if mesh is not None else None
    self._on_mesh = mesh is not None
    caches = {
        'model':
            _make_caches(model.clone(decode=True, cache_steps=schedule.num_steps), self.rows,
                         max_frames, guided),
        'noise':
            jnp.zeros(
                (schedule.num_steps + 1, self.rows, skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS),
                jnp.float32)
    }
    # Keys/values [steps, B (2B guided), heads, frames, dim], cross-attention outputs
    # [steps, B, 1, D] and the noise [steps + 1, B, 56, 6]: all split by stream (axis 1).
    caches_sharding = None if mesh is None else jax.tree_util.tree_map(
        lambda c: NamedSharding(mesh, P(None, 'data')), caches)
    replicated = NamedSharding(mesh, P()) if mesh is not None else None
    self._put_rows = lambda x: self._put(self._pad(x), rows_sharding)
    self.label = self._put_rows(label)
    self._caches = self._put(caches, caches_sharding)
    steps = [
        make_stream_step(model,
                         schedule,
                         method,
                         eta,
                         guidance_scale,
                         cross_from_cache=later,
                         native_kernels=self.kernels == 'native') for later in (False, True)
    ]
    # model.actor_frame: the network works in the heading frame of the actor's FIRST frame, which
    # is known once that frame arrives; every later frame is turned into it and back.
    self._actor_frame = actor_frame
    turn = lambda frame, rotation: pair_frame.rotate(frame[:, None], rotation)[:, 0]

    def framed_step(step, params, caches, actor_frame, label, frame, key, rotation):
      if self._actor_frame:
        out, caches = step(params, caches, turn(actor_frame, rotation), label, frame, key)
        out = turn(out, jnp.swapaxes(rotation, -1, -2))
      else:
        out, caches = step(params, caches, actor_frame, label, frame, key)
      return (sample_lib.valid_motion(out) if orthonormalize else out), caches

    # Compiled here, ahead of time, for the one set of shapes a stream ever sees, and run once:
    # no frame pays for a compilation or a first call (the latencies are the frames' own).
    start = time.perf_counter()
    frame_spec = jax.ShapeDtypeStruct((self.rows, skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS),
                                      jnp.float32,
                                      sharding=rows_sharding)
    if model.matmul_dtype is not None:
      params = _kernels_in(params, model.matmul_dtype)
    self.params = self._put(params, replicated)
    self.key = self._put(key, replicated)
    self._rotation = self._put_rows(np.broadcast_to(np.eye(3, dtype=np.float32),
                                                    (batch_size, 3, 3)))
    placed = {} if mesh is None else {
        'in_shardings': (replicated, caches_sharding, rows_sharding, rows_sharding, replicated,
                         replicated, rows_sharding),
        'out_shardings': (rows_sharding, caches_sharding)
    }
    # [the first-frame step (fills the cross-attention caches; run once, by _warm_up), the step
    # every frame runs]
    self._steps = [
        jax.jit(functools.partial(framed_step, step), donate_argnums=(1,),
                **placed).lower(self.params, self._caches, frame_spec, self.label, jnp.int32(0),
                                self.key, self._rotation).compile() for step in steps
    ]
    self._heading = jax.jit(
        pair_frame.heading,
        **({} if mesh is None else {
            'in_shardings': rows_sharding,
            'out_shardings': rows_sharding
        })).lower(frame_spec).compile()
    self._warm_up()
    self.compile_seconds = time.perf_counter() - start
    self.frame = 0
    self.latencies = []

  def _warm_up(self):
    """Fills the cross-attention caches before the first frame, then makes one untimed call.

    Each layer's cross-attention output at a denoising step depends only on that step's memory
    token (timestep and labels, both known now), so the first-frame step run once on a zero frame
    computes every output the stream will read. Its keys and values of frame 0 are overwritten by
    the real first frame before anything reads them (a step writes its row, then attends), and
    the noise state stays as it was. Every frame, the first included, then runs the later frames'
    step: the first no longer reads the cross-attention weights too (it took 1.6x the others).
    The untimed call of that step, on a scratch copy, pays an executable's one-time costs (for 8
    streams at paper size the first two frames took 3x the others) that no frame should.
    """
    frame = np.zeros((self.batch_size, skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS), np.float32)
    frame = self._put_rows(frame) if self._on_mesh else self._pad(frame)  # as push passes it
    scratch = jax.tree_util.tree_map(jnp.copy, self._caches)  # donated to the steps
    _, filled = self._steps[0](self.params, scratch, frame, self.label, np.int32(0), self.key,
                               self._rotation)
    self._caches = {'model': filled['model'], 'noise': self._caches['noise']}
    scratch = jax.tree_util.tree_map(jnp.copy, self._caches)
    jax.block_until_ready(self._steps[1](self.params, scratch, frame, self.label, np.int32(0),
                                         self.key, self._rotation))

  def _pad(self, rows):
    """[B, ...] -> [rows, ...], the last stream repeated."""
    rows = np.asarray(rows)
    extra = self.rows - len(rows)
    return np.concatenate([rows, np.repeat(rows[-1:], extra, 0)]) if extra else rows

  @staticmethod
  def _put(tree, sharding):
    if sharding is None:
      return jax.device_put(tree)
    if isinstance(sharding, NamedSharding):
      return sample_lib.on_mesh(tree, sharding)
    return jax.tree_util.tree_map(sample_lib.on_mesh, tree, sharding)

  def push(self, actor_frame):
    """One actor frame [B, 56, 6] -> the reactor frame [B, 56, 6] (numpy)."""
    if self.frame >= self.max_frames:
      raise errors.ConfigError(
          f'stream is full: max_frames={self.max_frames} frames were pushed; start a '
          'new ReactionStream (or make max_frames larger).')
    actor_frame = np.asarray(actor_frame, np.float32)
    want = (self.batch_size, skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS)
    if actor_frame.shape != want:
      raise errors.ConfigError(f'actor frame has shape {actor_frame.shape}, expected '
                               f'{want}.')
    if not np.all(np.isfinite(actor_frame)):
      raise errors.DataError(
          f'actor frame {self.frame} contains NaN or Inf (streams '
          f'{sorted({int(i) for i in np.nonzero(~np.isfinite(actor_frame))[0]})}).')
    start = time.perf_counter()
    # On one device the compiled steps take the host arrays as they are: a device_put first,
    # and a jnp scalar for the index, cost about half a millisecond a frame.
    actor_frame = self._put_rows(actor_frame) if self._on_mesh else self._pad(actor_frame)
    if self.frame == 0 and self._actor_frame:
      self._rotation = self._heading(actor_frame)
    out, self._caches = self._steps[1](self.params, self._caches, actor_frame, self.label,
                                       np.int32(self.frame), self.key, self._rotation)
    out = sample_lib.to_host(out)[:self.batch_size]
    self.latencies.append(time.perf_counter() - start)
    self.frame += 1
    return out

  def latency_report(self):
    """Per-frame latency in ms over every pushed frame (compilation and a warm-up call of each
    step happened in the constructor, `compile_ms`)."""
    lat = np.array(self.latencies) * 1000
    if not len(lat):
      return {}
    return {
        'frames': int(len(lat)),
        'p50_ms': float(np.percentile(lat, 50)),
        'p99_ms': float(np.percentile(lat, 99)),
        'max_ms': float(lat.max()),
        'mean_ms': float(lat.mean()),
        'compile_ms': float(self.compile_seconds * 1000),
        'kernels': self.kernels
    }
