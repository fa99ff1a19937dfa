import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import diffusion
from regennet_jax import native
from regennet_jax import sample
from regennet_jax import streaming
from regennet_jax.model import Denoiser

TINY = dict(num_layers=2, latent_dim=32, ff_size=64, num_heads=4)
B, T = 2, 9


def _setup(**model_kwargs):
  model = Denoiser(**TINY, **model_kwargs)
  rng = np.random.default_rng(0)
  actor = jnp.asarray(rng.normal(size=(B, T, 56, 6)).astype(np.float32))
  label = jnp.array([1, 2])
  params = model.init(jax.random.PRNGKey(0), actor, jnp.zeros((B,), jnp.int32), actor,
                      label)['params']
  return model, params, actor, label


@pytest.mark.parametrize('method, respacing, use_pos_emb, noise_correlation',
                         [('ddim', 'ddim5', True, 0.0), ('ddpm', 'ddim5', True, 0.0),
                          ('ddim', '3', True, 0.0), ('ddim', 'trailing2', False, 0.0),
                          ('ddpm', 'ddim5', True, 0.9)])
def test_stream_reproduces_the_whole_sequence_sampler(method, respacing, use_pos_emb,
                                                      noise_correlation):
  model, params, actor, label = _setup(use_pos_emb=use_pos_emb)
  sched = diffusion.make_schedule('cosine', 1000, respacing, noise_correlation)
  key = jax.random.PRNGKey(3)
  full = np.asarray(jax.jit(sample.make_sampler(model, sched, method))(params, actor, label, key))
  stream = streaming.ReactionStream(model,
                                    params,
                                    sched,
                                    key,
                                    batch_size=B,
                                    max_frames=16,
                                    method=method)
  frames = np.stack([stream.push(actor[:, f]) for f in range(T)], axis=1)
  np.testing.assert_allclose(frames, full, atol=2e-5)
  # Two steps compiled ahead of time (the first frame's, every later frame's) serve every frame: a
  # frame never waits for a compilation (a compiled executable cannot recompile), and every
  # frame's latency is reported.
  assert all(isinstance(step, jax.stages.Compiled) for step in stream._steps)
  report = stream.latency_report()
  assert report['frames'] == T and report['p50_ms'] > 0 and report['compile_ms'] > 0


def test_stream_with_classifier_free_guidance():
  model, params, actor, label = _setup(cond_mode='action', num_actions=4, cond_mask_prob=0.1)
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  key = jax.random.PRNGKey(5)
  full = np.asarray(
      jax.jit(sample.make_sampler(model, sched, 'ddim', guidance_scale=2.5))(params, actor, label,
                                                                             key))
  stream = streaming.ReactionStream(model,
                                    params,
                                    sched,
                                    key,
                                    batch_size=B,
                                    max_frames=T,
                                    guidance_scale=2.5,
                                    label=label)
  frames = np.stack([stream.push(actor[:, f]) for f in range(T)], axis=1)
  np.testing.assert_allclose(frames, full, atol=2e-5)
  unguided = np.asarray(
      jax.jit(sample.make_sampler(model, sched, 'ddim'))(params, actor, label, key))
  assert not np.allclose(frames, unguided, atol=1e-3)


def test_stream_of_a_preconditioned_model_reproduces_the_whole_sequence_sampler():
  abar = tuple(np.cumprod(1.0 - diffusion.betas_for('cosine', 1000)).tolist())
  mean = tuple(np.random.default_rng(5).normal(size=56 * 6).tolist())
  for centre in ((), mean):  # about zero, and about a reactor mean
    model, params, actor, label = _setup(prediction='preconditioned',
                                         alphas_cumprod=abar,
                                         reactor_mean=centre)
    sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
    key = jax.random.PRNGKey(4)
    full = np.asarray(jax.jit(sample.make_sampler(model, sched))(params, actor, label, key))
    stream = streaming.ReactionStream(model, params, sched, key, batch_size=B, max_frames=T)
    frames = np.stack([stream.push(actor[:, f]) for f in range(T)], axis=1)
    np.testing.assert_allclose(frames, full, atol=2e-5)


def test_frames_read_the_cross_attention_output_cached_before_the_first():
  model, params, actor, label = _setup(cond_mode='action', num_actions=4)
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  make = lambda: streaming.ReactionStream(
      model, params, sched, jax.random.PRNGKey(6), batch_size=B, max_frames=T, label=label)
  intact, tampered = make(), make()
  cached = lambda path: path[-1].key == 'cross_out'
  # Every step of every layer has an output cached before any frame, per stream.
  leaves = [(p, v) for p, v in jax.tree_util.tree_leaves_with_path(tampered._caches) if cached(p)]
  assert len(leaves) == TINY['num_layers'] and all(v.shape[:2] == (5, B) for _, v in leaves)
  assert all(float(jnp.abs(v).max()) > 0 for _, v in leaves)
  flip = lambda p, v: -v if cached(p) else v  # (a uniform shift would vanish in the post-norm)
  tampered._caches = jax.tree_util.tree_map_with_path(flip, tampered._caches)
  # Every frame, the first included, takes it from the cache (a changed cache changes them) ...
  for f in range(2):
    assert not np.allclose(intact.push(actor[:, f]), tampered.push(actor[:, f]), atol=1e-3)
  # ... and skips its projections: less arithmetic than the step that filled the cache.
  flops = [float(s.cost_analysis().get('flops', 0)) for s in intact._steps]
  assert 0 < flops[1] < flops[0]


def test_a_frame_copies_no_cache_whatever_the_stream_length():
  # A frame's step writes one row per layer and denoising step into caches it carries whole; a
  # step that copies a cache (as slicing the caches per step did) costs more as max_frames grows.
  model, params, _, _ = _setup()
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  stream = streaming.ReactionStream(model,
                                    params,
                                    sched,
                                    jax.random.PRNGKey(0),
                                    batch_size=B,
                                    max_frames=64)
  smallest = min(
      int(np.prod(leaf.shape[1:]))  # one step's keys of one layer: [B, H, 64, Dh]
      for path, leaf in jax.tree_util.tree_leaves_with_path(stream._caches['model'])
      if path[-1].key == 'cached_key')
  for step in stream._steps:
    copies = re.findall(r'= [a-z0-9]+\[([0-9,]*)\][^ ]* copy\(', step.as_text())
    assert copies, 'the pattern matches XLA copies'  # (the RNG's small copies)
    sizes = [int(np.prod([int(d) for d in shape.split(',') if d])) for shape in copies]
    assert max(sizes) < smallest, sorted(sizes)[-3:]


def test_stream_rejects_misuse():
  model, params, actor, _ = _setup()
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  stream = streaming.ReactionStream(model,
                                    params,
                                    sched,
                                    jax.random.PRNGKey(0),
                                    batch_size=B,
                                    max_frames=2)
  with pytest.raises(ValueError, match=r'expected \(2, 56, 6\)'):
    stream.push(actor[:1, 0])
  stream.push(actor[:, 0])
  stream.push(actor[:, 1])
  with pytest.raises(ValueError, match='stream is full: max_frames=2'):
    stream.push(actor[:, 2])
  offline = Denoiser(arch='offline', **TINY)
  with pytest.raises(ValueError, match='online'):
    streaming.ReactionStream(offline, params, sched, jax.random.PRNGKey(0))


@pytest.mark.parametrize('kernels', ['xla', 'native'])
def test_stream_with_bfloat16_matmuls_follows_the_whole_sequence_sampler(kernels):
  if kernels == 'native' and not native.available():
    pytest.skip(f'native kernels unavailable: {native.why_unavailable()}')
  model, params, actor, label = _setup(matmul_dtype='bfloat16')
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  key = jax.random.PRNGKey(3)
  sampler = jax.jit(sample.make_sampler(model, sched))
  full = np.asarray(sampler(params, actor, label, key))
  make = lambda batch: streaming.ReactionStream(
      model, params, sched, key, batch_size=batch, max_frames=T, kernels=kernels)
  stream = make(B)
  assert stream.kernels == kernels
  frames = np.stack([stream.push(actor[:, f]) for f in range(T)], axis=1)
  np.testing.assert_allclose(frames, full, atol=1e-4)
  # The decoder's kernels are stored in bfloat16 once (the products' operand type), the rest stay
  # float32. On XLA one stream is computed as two rows (a one-row bfloat16 product is XLA:CPU's
  # slow path), the extra row a copy that does not change the first; natively as one.
  dtypes = {
      jax.tree_util.keystr(path): leaf.dtype
      for path, leaf in jax.tree_util.tree_leaves_with_path(stream.params)
  }
  assert all((d == jnp.bfloat16) == ('decoder' in k and k.endswith("['kernel']"))
             for k, d in dtypes.items())
  assert any(d == jnp.bfloat16 for d in dtypes.values())
  single = make(1)
  assert single.rows == (2 if kernels == 'xla' else 1)
  alone = np.stack([single.push(actor[:1, f]) for f in range(T)], axis=1)
  assert alone.shape == (1, T, 56, 6)
  # The stream computes the one stream as two identical rows, so the sampler does the same: on an
  # Intel Xeon with AMX the whole-sequence sampler's bfloat16 attention products round
  # differently for one row than for two (up to ~0.007 apart from the third frame on), the
  # sampler's own batch-size dependence, not the stream's.
  pair = lambda x: jnp.repeat(x[:1], 2, 0)
  one = np.asarray(sampler(params, pair(actor), pair(label), key))[:1]
  np.testing.assert_allclose(alone, one, atol=1e-4)
  alone_sampled = np.asarray(sampler(params, actor[:1], label[:1], key))
  np.testing.assert_allclose(alone, alone_sampled, atol=3e-2)
