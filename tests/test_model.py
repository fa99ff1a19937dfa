import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import diffusion
from regennet_jax import factory
from regennet_jax.model import Denoiser, count_params, gelu, sinusoidal_table

B, T = 2, 12
TINY = dict(num_layers=2, latent_dim=32, ff_size=64, num_heads=4)


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(B, T, 56, 6)).astype(np.float32))
  actor = jnp.asarray(rng.normal(size=(B, T, 56, 6)).astype(np.float32))
  t = jnp.array([3, 700])
  return x, t, actor


def _init(model, x, t, actor, action=None):
  return model.init(jax.random.PRNGKey(0), x, t, actor, action)


def test_paper_config_parameter_count():
  # The original: 26.80 M for online/unconstrained, + 26x512 with NTU action labels.
  x = jnp.zeros((1, 60, 56, 6))
  t = jnp.zeros((1,), jnp.int32)
  shapes = jax.eval_shape(Denoiser().init, jax.random.PRNGKey(0), x, t, x)
  assert count_params(shapes['params']) == 26_803_024
  shapes = jax.eval_shape(
      Denoiser(cond_mode='action', num_actions=26).init, jax.random.PRNGKey(0), x, t, x,
      jnp.zeros((1,), jnp.int32))
  assert count_params(shapes['params']) == 26_803_024 + 26 * 512


def test_sinusoidal_table_interleaves_sin_cos():
  table = sinusoidal_table(10, 8)
  pos, i = 7, 2
  freq = 10000**(-2 * i / 8)
  np.testing.assert_allclose(table[pos, 2 * i], np.sin(pos * freq), atol=1e-6)
  np.testing.assert_allclose(table[pos, 2 * i + 1], np.cos(pos * freq), atol=1e-6)


def test_gelu_is_exact_and_so_is_its_gradient():
  # x * Phi(x) and Phi(x) + x * phi(x) in float64 (math.erf), not the tanh approximation. As in
  # PyTorch's form, 1 + erf cancels in float32 far in the negative tail: absolute error < 1e-6.
  x = np.concatenate([np.linspace(-9, 9, 721), [-1e-3, 0.0, 1e-3, 30.0, -30.0]])
  cdf = 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x]))
  pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
  values, grads = jax.jit(jax.vmap(jax.value_and_grad(gelu)))(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(values, x * cdf, rtol=2e-6, atol=1e-6)
  np.testing.assert_allclose(grads, cdf + x * pdf, rtol=2e-6, atol=1e-6)
  tanh_form = np.asarray(jax.nn.gelu(jnp.asarray(x, jnp.float32), approximate=True))
  assert np.max(np.abs(tanh_form - x * cdf)) > 1e-4  # the check can tell the two apart


@pytest.mark.parametrize('fusion', ['concat', 'add'])
@pytest.mark.parametrize('cut', [0, 5, T - 2])
def test_online_output_ignores_future_frames_exactly(fusion, cut):
  model = Denoiser(arch='online', fusion=fusion, **TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor)
  out = model.apply(params, x, t, actor)
  future = np.arange(T) > cut
  rng = np.random.default_rng(1)
  x2 = jnp.where(future[None, :, None, None], rng.normal(size=x.shape).astype(np.float32), x)
  a2 = jnp.where(future[None, :, None, None], rng.normal(size=x.shape).astype(np.float32), actor)
  out2 = model.apply(params, x2, t, a2)
  np.testing.assert_array_equal(np.asarray(out2)[:, :cut + 1], np.asarray(out)[:, :cut + 1])
  assert not np.allclose(np.asarray(out2)[:, cut + 1:], np.asarray(out)[:, cut + 1:])


def test_without_position_encoding_frames_differ_only_by_what_they_see():
  from configs import synthetic
  config = synthetic.get_config()
  config.model.use_pos_emb = False
  config.model.center = 'zero'  # no trained run to take the reactors' mean from
  assert factory.make_model(config, 8).use_pos_emb is False  # the config switch reaches the model
  x, t, actor = _inputs()
  still = lambda m: jnp.broadcast_to(m[:, :1], m.shape)  # every frame a copy of the first
  for use_pos_emb, frames_equal in ((True, False), (False, True)):
    model = Denoiser(arch='online', use_pos_emb=use_pos_emb, **TINY)
    params = _init(model, x, t, actor)
    out = np.asarray(model.apply(params, still(x), t, still(actor)))
    # Causal attention over identical frames returns the same at every frame unless a position
    # encoding tells them apart.
    assert np.allclose(out, out[:, :1], atol=1e-5) == frames_equal
    # Still causal without it.
    x2 = x.at[:, 6:].set(0.0)
    np.testing.assert_allclose(model.apply(params, x2, t, actor)[:, :6],
                               model.apply(params, x, t, actor)[:, :6],
                               atol=1e-6)
  with pytest.raises(ValueError, match='use_pos_emb'):
    _init(Denoiser(arch='offline', use_pos_emb=False, **TINY), x, t, actor)


def test_offline_output_sees_future_frames():
  model = Denoiser(arch='offline', **TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor)
  out = model.apply(params, x, t, actor)
  a2 = actor.at[:, -1].add(1.0)
  out2 = model.apply(params, x, t, a2)
  assert not np.allclose(np.asarray(out2)[:, 0], np.asarray(out)[:, 0])


def test_offline_mask_hides_padding():
  model = Denoiser(arch='offline', **TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor)
  mask = jnp.arange(T)[None] < jnp.array([[8], [10]])
  out = model.apply(params, x, t, actor, mask=mask)
  out2 = model.apply(params, x, t, actor.at[:, 10:].add(3.0), mask=mask)
  np.testing.assert_allclose(np.asarray(out2)[:, :8], np.asarray(out)[:, :8], atol=1e-5)


def test_output_depends_on_timestep_and_actor():
  model = Denoiser(**TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor)
  out = np.asarray(model.apply(params, x, t, actor))
  assert out.shape == (B, T, 56, 6)
  assert not np.allclose(out, np.asarray(model.apply(params, x, t + 50, actor)))
  assert not np.allclose(out, np.asarray(model.apply(params, x, t, actor * 0.5)))


def test_unconstrained_model_has_no_action_embedding():
  model = Denoiser(cond_mode='no_cond', **TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor)
  assert set(params['params']['condition']) == {'time_embed'}
  np.testing.assert_array_equal(model.apply(params, x, t, actor, jnp.array([0, 1])),
                                model.apply(params, x, t, actor))


def test_action_conditioning_and_null_condition():
  model = Denoiser(cond_mode='action', num_actions=4, cond_mask_prob=0.0, **TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor, jnp.array([0, 1]))
  a0 = model.apply(params, x, t, actor, jnp.array([0, 0]))
  a1 = model.apply(params, x, t, actor, jnp.array([1, 1]))
  assert not np.allclose(a0, a1)
  u0 = model.apply(params, x, t, actor, jnp.array([0, 0]), uncond=jnp.array([True, True]))
  u1 = model.apply(params, x, t, actor, jnp.array([1, 1]), uncond=jnp.array([True, True]))
  np.testing.assert_array_equal(u0, u1)
  # Per-sample null condition: only sample 1 loses its label.
  mixed = model.apply(params, x, t, actor, jnp.array([0, 0]), uncond=jnp.array([False, True]))
  np.testing.assert_array_equal(mixed[0], a0[0])
  np.testing.assert_array_equal(mixed[1], u0[1])
  with pytest.raises(ValueError, match='action'):
    model.apply(params, x, t, actor)


@pytest.mark.parametrize('arch', ['online', 'offline'])
def test_guidance_pairs_equal_separate_conditional_and_unconditional_calls(arch):
  model = Denoiser(arch=arch, cond_mode='action', num_actions=4, cond_mask_prob=0.1, **TINY)
  x, t, actor = _inputs()
  labels = jnp.array([2, 3])
  params = _init(model, x, t, actor, labels)
  pairs = model.apply(params, x, t, actor, labels, guidance_pairs=True)
  assert pairs.shape == (2 * B, T, 56, 6)
  cond = model.apply(params, x, t, actor, labels)
  null = model.apply(params, x, t, actor, labels, uncond=jnp.array([True, True]))
  np.testing.assert_allclose(pairs[:B], cond, atol=1e-5)
  np.testing.assert_allclose(pairs[B:], null, atol=1e-5)
  assert not np.allclose(cond, null, atol=1e-3)
  with pytest.raises(ValueError, match='guidance_pairs'):
    Denoiser(**TINY).apply(_init(Denoiser(**TINY), x, t, actor), x, t, actor, guidance_pairs=True)


def test_condition_dropout_in_training():
  x, t, actor = _inputs()
  labels = jnp.array([2, 3])
  always = Denoiser(cond_mode='action', num_actions=4, cond_mask_prob=1.0, dropout=0.0, **TINY)
  params = _init(always, x, t, actor, labels)
  rngs = {'dropout': jax.random.PRNGKey(3)}
  dropped = always.apply(params, x, t, actor, labels, train=True, rngs=rngs)
  null = always.apply(params, x, t, actor, labels, uncond=jnp.array([True, True]))
  np.testing.assert_allclose(dropped, null, atol=1e-6)
  never = Denoiser(cond_mode='action', num_actions=4, cond_mask_prob=0.0, dropout=0.0, **TINY)
  kept = never.apply(params, x, t, actor, labels, train=True, rngs=rngs)
  np.testing.assert_allclose(kept, never.apply(params, x, t, actor, labels), atol=1e-6)
  assert not np.allclose(kept, null)


def test_dropout_only_in_training():
  model = Denoiser(**TINY)
  x, t, actor = _inputs()
  params = _init(model, x, t, actor)
  eval1 = model.apply(params, x, t, actor)
  np.testing.assert_array_equal(eval1, model.apply(params, x, t, actor))
  train = model.apply(params, x, t, actor, train=True, rngs={'dropout': jax.random.PRNGKey(1)})
  assert not np.allclose(train, eval1)


def test_bad_config_is_rejected():
  x, t, actor = _inputs()
  for bad in (dict(arch='gru'), dict(fusion='concat2'), dict(cond_mode='text')):
    with pytest.raises(ValueError, match=list(bad)[0]):
      _init(Denoiser(**TINY, **bad), x, t, actor)


@pytest.mark.parametrize('arch', ['online', 'offline'])
def test_preconditioned_prediction_mixes_x_t_and_the_network_output(arch):
  abar = np.cumprod(1.0 - diffusion.betas_for('cosine', 1000))
  sd = 0.1
  kind = dict(arch=arch, cond_mode='action', num_actions=4, cond_mask_prob=0.1, **TINY)
  pre = Denoiser(prediction='preconditioned',
                 sigma_data=sd,
                 alphas_cumprod=tuple(abar.tolist()),
                 **kind)
  x, _, actor = _inputs()
  labels = jnp.array([2, 3])
  t = jnp.array([0, 999])
  params = _init(Denoiser(**kind), x, t, actor, labels)  # the same parameters serve both
  out = Denoiser(**kind).apply(params, x, t, actor, labels)  # the raw network output
  x0 = pre.apply(params, x, t, actor, labels)
  for i in range(B):
    a = abar[int(t[i])]
    var = (1 - a) / a
    want = sd**2 / (var + sd**2) * x[i] / np.sqrt(a) + np.sqrt(var * sd**2 / (var + sd**2)) * out[i]
    np.testing.assert_allclose(x0[i], want, rtol=1e-4, atol=1e-5)
  # Nearly clean input (t = 0, noise 0.6% against a data spread of 10%): x0 is mostly x_t itself,
  # whatever the weights; pure noise (t = 999): x0 is sigma_data times the network's output.
  assert np.abs(x0[0] - x[0]).max() < 0.1 < np.abs(out[0] - x[0]).max()
  np.testing.assert_allclose(x0[1], sd * out[1], atol=1e-3)
  # Guidance pairs mix each half with the same x_t.
  pairs = pre.apply(params, x, t, actor, labels, guidance_pairs=True)
  np.testing.assert_allclose(pairs[:B], x0, atol=1e-5)
  null = pre.apply(params, x, t, actor, labels, uncond=jnp.array([True, True]))
  np.testing.assert_allclose(pairs[B:], null, atol=1e-5)
  with pytest.raises(ValueError, match='prediction'):
    _init(Denoiser(prediction='eps', **TINY), x, t, actor)
  with pytest.raises(ValueError, match='alphas_cumprod'):
    _init(Denoiser(prediction='preconditioned', **TINY), x, t, actor)


def test_preconditioned_about_the_reactor_mean_shifts_only_where_x_t_is_not_kept():
  abar = np.cumprod(1.0 - diffusion.betas_for('cosine', 1000))
  sd = 0.1
  mean = np.random.default_rng(3).normal(size=(56, 6)).astype(np.float32)
  common = dict(prediction='preconditioned', sigma_data=sd, alphas_cumprod=tuple(abar.tolist()))
  about_zero = Denoiser(**common, **TINY)
  about_mean = Denoiser(**common, reactor_mean=tuple(mean.reshape(-1).tolist()), **TINY)
  x, _, actor = _inputs()
  t = jnp.array([0, 999])
  params = _init(about_zero, x, t, actor)  # the mean is a constant, not a parameter
  zero = about_zero.apply(params, x, t, actor)
  shifted = about_mean.apply(params, x, t, actor)
  # x0 = mu + c_skip (x_t / sqrt(abar) - mu) + c_out F: the same as about zero plus (1 - c_skip) mu.
  for i in range(B):
    a = abar[int(t[i])]
    c_skip = sd**2 / ((1 - a) / a + sd**2)
    np.testing.assert_allclose(shifted[i] - zero[i],
                               np.broadcast_to((1 - c_skip) * mean, (T, 56, 6)),
                               rtol=1e-4,
                               atol=1e-4)
  # Pure noise: the prediction sits around the mean, not around zero; nearly clean: x_t is kept.
  assert np.abs(np.asarray(shifted[1] - mean)).mean() < 0.5 * np.abs(mean).mean()
  assert np.abs(np.asarray(shifted[0] - zero[0])).max() < 0.05 * np.abs(mean).max()
  with pytest.raises(ValueError, match='336 values'):
    _init(Denoiser(**common, reactor_mean=(0.0,) * 5, **TINY), x, t, actor)


def test_x0_about_the_reactor_mean_is_the_mean_plus_sigma_data_times_the_output():
  sd = 0.07
  mean = np.random.default_rng(4).normal(size=(56, 6)).astype(np.float32)
  plain = Denoiser(**TINY)
  centred = Denoiser(sigma_data=sd, reactor_mean=tuple(mean.reshape(-1).tolist()), **TINY)
  x, _, actor = _inputs()
  t = jnp.array([0, 999])
  params = _init(plain, x, t, actor)
  out = np.asarray(plain.apply(params, x, t, actor))
  x0 = np.asarray(centred.apply(params, x, t, actor))
  # At every noise level, unlike 'preconditioned': x_t never enters x0 except through the network.
  np.testing.assert_allclose(x0, mean + sd * out, rtol=1e-4, atol=1e-5)
  # A fresh network outputs values of order one, so a centred one starts near the mean.
  assert np.abs(x0 - mean).max() < 0.2 * np.abs(mean).max() < np.abs(out - mean).max()
  with pytest.raises(ValueError, match='336 values'):
    _init(Denoiser(reactor_mean=(0.0,) * 5, **TINY), x, t, actor)


def test_single_token_cross_attention_equals_general_attention():
  from regennet_jax.model import SingleTokenCrossAttention
  import flax.linen as nn
  rng = np.random.default_rng(3)
  h = jnp.asarray(rng.normal(size=(2, 7, 32)).astype(np.float32))
  memory = jnp.asarray(rng.normal(size=(2, 1, 32)).astype(np.float32))
  fast = SingleTokenCrossAttention(num_heads=4, dropout=0.5)
  params = fast.init(jax.random.PRNGKey(0), h, memory, True)
  general = nn.MultiHeadDotProductAttention(num_heads=4)
  assert jax.tree_util.tree_map(np.shape, params) == jax.tree_util.tree_map(
      np.shape, general.init(jax.random.PRNGKey(0), h, memory))
  np.testing.assert_allclose(fast.apply(params, h, memory, True),
                             general.apply(params, h, memory),
                             atol=1e-5)
  # Training: attention dropout keeps each head's weight (as 1/(1-p)) or drops it, per frame;
  # on average that is the deterministic output.
  draw = lambda k: fast.apply(params, h, memory, False, rngs={'dropout': k})
  draws = np.asarray(jax.jit(jax.vmap(draw))(jax.random.split(jax.random.PRNGKey(1), 8000)))
  assert not np.allclose(draws[0], draws[1])
  np.testing.assert_allclose(draws.mean(0), general.apply(params, h, memory), atol=0.08)


@pytest.mark.parametrize('arch', ['online', 'offline'])
def test_bfloat16_matmuls_same_parameters_close_outputs(arch):
  x, t, actor = _inputs()
  exact = Denoiser(arch=arch, **TINY)
  fast = Denoiser(arch=arch, matmul_dtype='bfloat16', **TINY)
  params = _init(exact, x, t, actor)['params']
  fast_shapes = jax.eval_shape(fast.init, jax.random.PRNGKey(0), x, t, actor)['params']
  assert (jax.tree_util.tree_map(lambda p: (p.shape, p.dtype),
                                 params) == jax.tree_util.tree_map(lambda p: (p.shape, p.dtype),
                                                                   fast_shapes))
  want = np.asarray(exact.apply({'params': params}, x, t, actor))
  apply_fast = jax.jit(lambda p: fast.apply({'params': p}, x, t, actor))
  got = np.asarray(apply_fast(params))
  assert got.dtype == np.float32
  rel = np.sqrt(np.mean((got - want)**2) / np.mean(want**2))
  assert 1e-5 < rel < 2e-2, rel  # bfloat16 rounding (~0.4% per operand), nothing worse
  # The layers' matrix multiplies really take bfloat16 operands and accumulate in float32.
  mixed = re.findall(r'dot_general.*\(tensor<\S*xbf16>, tensor<\S*xbf16>\) -> tensor<\S*xf32>',
                     apply_fast.lower(params).as_text())
  per_layer = 6 if arch == 'online' else 4  # q, k, v, out, ff1, ff2 (+ cross-attn value/out)
  assert len(mixed) >= per_layer * TINY['num_layers'], len(mixed)
