import jax
import jax.numpy as jnp
import numpy as np
import pytest

from regennet_jax import diffusion
from regennet_jax.model import Denoiser
from tests.helpers import lag1_correlation


def test_cosine_schedule_matches_reference_values():
  # Measured on the original (docs/architecture.md, "What the tests check against the original").
  betas = diffusion.betas_for('cosine', 1000)
  np.testing.assert_allclose(betas[0], 4.13e-5, rtol=1e-2)
  assert betas[-1] == 0.999
  abar = np.cumprod(1 - betas)
  np.testing.assert_allclose(abar[[0, 200, 400, 600, 800]],
                             [0.99996, 0.8978, 0.6460, 0.3393, 0.0931],
                             atol=1e-4)
  np.testing.assert_allclose(abar[999], 2.4e-9, rtol=0.05)


def test_linear_schedule():
  betas = diffusion.betas_for('linear', 1000)
  np.testing.assert_allclose([betas[0], betas[-1]], [1e-4, 0.02])
  assert np.all(np.diff(betas) > 0)
  with pytest.raises(ValueError, match='noise_schedule'):
    diffusion.betas_for('quadratic', 1000)


def test_respacing():
  assert diffusion.space_timesteps(1000, 'ddim5') == [0, 200, 400, 600, 800]
  assert diffusion.space_timesteps(1000, 'ddim50') == list(range(0, 1000, 20))
  ten = diffusion.space_timesteps(1000, '10')
  assert len(ten) == 10 and ten[0] == 0 and ten[-1] == 999
  assert len(diffusion.space_timesteps(1000, '10,20')) == 30
  assert diffusion.space_timesteps(1000, '') == list(range(1000))
  assert diffusion.space_timesteps(1000, 'trailing5') == [199, 399, 599, 799, 999]
  assert diffusion.space_timesteps(1000, 'trailing1') == [999]
  assert diffusion.space_timesteps(1000, 'trailing3') == [332, 666, 999]
  assert diffusion.space_timesteps(1000, 'trailing1000') == list(range(1000))
  for bad in ('ddim999', 'fast', '2000', 'trailing0', 'trailing1001', 'trailing'):
    with pytest.raises(ValueError, match='respacing'):
      diffusion.space_timesteps(1000, bad)
  full = diffusion.make_schedule('cosine', 1000)
  spaced = diffusion.make_schedule('cosine', 1000, 'ddim5')
  assert spaced.num_steps == 5
  np.testing.assert_array_equal(spaced.timestep_map, [0, 200, 400, 600, 800])
  # Kept steps keep their alpha-bar exactly.
  np.testing.assert_allclose(spaced.alphas_cumprod,
                             full.alphas_cumprod[spaced.timestep_map],
                             rtol=1e-6)


def test_q_sample_statistics():
  sched = diffusion.make_schedule('cosine', 1000)
  x0 = jnp.full((20000, 1), 2.0)
  t = jnp.full((20000,), 400)
  xt = diffusion.q_sample(sched, x0, t, jax.random.normal(jax.random.PRNGKey(0), x0.shape))
  abar = float(np.cumprod(1 - diffusion.betas_for('cosine', 1000))[400])
  np.testing.assert_allclose(float(xt.mean()), 2.0 * np.sqrt(abar), atol=0.02)
  np.testing.assert_allclose(float(xt.var()), 1 - abar, rtol=0.03)


@pytest.mark.parametrize('respacing', ['', 'ddim5'])
def test_posterior_is_the_gaussian_product(respacing):
  sched = diffusion.make_schedule('cosine', 1000, respacing)
  betas = np.asarray(sched.betas, np.float64)
  abar = np.cumprod(1 - betas)
  rng = np.random.default_rng(0)
  x0 = rng.normal(size=(3, 4)).astype(np.float32)
  xt = rng.normal(size=(3, 4)).astype(np.float32)
  for step in (1, sched.num_steps // 2, sched.num_steps - 1):
    t = jnp.full((3,), step)
    mean, var, _ = diffusion.q_posterior(sched, jnp.asarray(x0), jnp.asarray(xt), t)
    # q(x_{t-1}|x_t,x0) ~ N(x_t; sqrt(a_t) x_{t-1}, b_t) * N(x_{t-1}; sqrt(abar_{t-1}) x0, 1-abar_{t-1})
    precision = (1 - betas[step]) / betas[step] + 1 / (1 - abar[step - 1])
    ref_var = 1 / precision
    ref_mean = ref_var * (np.sqrt(1 - betas[step]) * xt / betas[step] +
                          np.sqrt(abar[step - 1]) * x0 / (1 - abar[step - 1]))
    np.testing.assert_allclose(np.asarray(var).squeeze(), ref_var, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(mean), ref_mean, rtol=1e-4, atol=1e-5)


def test_ddim_eta_one_matches_posterior_variance():
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  x0 = jnp.zeros((1, 1))
  xt = jnp.zeros((1, 1))
  t = jnp.array([3])
  sample = diffusion.ddim_step(sched, x0, xt, t, jnp.ones((1, 1)), eta=1.0)
  np.testing.assert_allclose(float(sample[0, 0]),
                             float(jnp.sqrt(sched.posterior_variance[3])),
                             rtol=1e-4)


@pytest.mark.parametrize('method', ['ddpm', 'ddim'])
@pytest.mark.parametrize('respacing', ['ddim5', '50', 'trailing1', 'trailing3'])
def test_sampling_with_oracle_denoiser_returns_x0(method, respacing):
  sched = diffusion.make_schedule('cosine', 1000, respacing)
  x0 = jax.random.normal(jax.random.PRNGKey(4), (2, 6, 56, 6))
  seen = []

  def oracle(x_t, t):
    seen.append(t)
    return x0

  out = jax.jit(lambda k: diffusion.sample_loop(oracle, sched, x0.shape, k, method=method))(
      jax.random.PRNGKey(1))
  np.testing.assert_allclose(np.asarray(out), np.asarray(x0), atol=1e-4)
  assert len(seen) == 1  # traced once: the chain is a lax.scan, not a Python loop


def test_sampler_calls_model_with_original_timesteps_high_to_low():
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')
  calls = []

  def spy(x_t, t):
    jax.debug.callback(lambda tt: calls.append(int(tt[0])), t)
    return jnp.zeros_like(x_t)

  final = diffusion.sample_loop(spy, sched, (1, 2, 56, 6), jax.random.PRNGKey(0), method='ddpm')
  jax.effects_barrier()
  assert calls == [800, 600, 400, 200, 0]
  # The trajectory is the same chain, step by step: each step's input follows from the previous
  # one, and the first is the chain's initial noise.
  again, (x_ts, x0s) = diffusion.sample_loop(spy,
                                             sched, (1, 2, 56, 6),
                                             jax.random.PRNGKey(0),
                                             method='ddpm',
                                             trajectory=True)
  np.testing.assert_array_equal(again, final)
  assert x_ts.shape == x0s.shape == (5, 1, 2, 56, 6) and not np.allclose(x_ts[0], x_ts[1])
  init_key, _ = diffusion.chain_noise_keys(jax.random.PRNGKey(0))
  np.testing.assert_array_equal(x_ts[0], diffusion.frame_noise(init_key, (1, 2, 56, 6)))
  with pytest.raises(ValueError, match='ddpm'):
    diffusion.sample_loop(spy, sched, (1, 2, 56, 6), jax.random.PRNGKey(0), method='euler')


def test_frame_noise_is_independent_of_sequence_length():
  key = jax.random.PRNGKey(7)
  long = diffusion.frame_noise(key, (3, 10, 56, 6))
  short = diffusion.frame_noise(key, (3, 4, 56, 6))
  np.testing.assert_array_equal(long[:, :4], short)
  assert not np.allclose(long[:, 0], long[:, 1])
  np.testing.assert_allclose(float(long.std()), 1.0, atol=0.05)
  correlated = diffusion.frame_noise(key, (3, 10, 56, 6), correlation=0.8)
  np.testing.assert_allclose(diffusion.frame_noise(key, (3, 4, 56, 6), correlation=0.8),
                             correlated[:, :4],
                             atol=1e-6)
  np.testing.assert_array_equal(correlated[:, 0], long[:, 0])


def test_cfg_combines_both_halves_of_one_call():
  calls = []

  def paired_fn(x_t, t):
    calls.append(x_t.shape[0])
    # conditional rows predict 3, unconditional rows 1
    return jnp.concatenate([3.0 * jnp.ones_like(x_t), jnp.ones_like(x_t)])

  fn = diffusion.classifier_free_guidance(paired_fn, jnp.array([1.0, 2.5]))
  out = fn(jnp.zeros((2, 4, 56, 6)), jnp.array([5, 5]))
  assert calls == [2]
  np.testing.assert_allclose(np.asarray(out[0]), 3.0)  # s = 1: just the conditional
  np.testing.assert_allclose(np.asarray(out[1]), 1.0 + 2.5 * 2.0)


def test_online_sampling_chain_is_causal():
  # The whole chain (not just one forward pass) must keep frame t independent of actor frames > t.
  model = Denoiser(num_layers=2, latent_dim=32, ff_size=64, num_heads=4)
  rng = np.random.default_rng(0)
  actor = jnp.asarray(rng.normal(size=(2, 10, 56, 6)).astype(np.float32))
  params = model.init(jax.random.PRNGKey(0), actor, jnp.zeros((2,), jnp.int32), actor)
  sched = diffusion.make_schedule('cosine', 1000, 'ddim5')

  @jax.jit
  def generate(actor):
    fn = lambda x_t, t: model.apply(params, x_t, t, actor)
    return diffusion.sample_loop(fn, sched, actor.shape, jax.random.PRNGKey(3), method='ddpm')

  out = np.asarray(generate(actor))
  out2 = np.asarray(generate(actor.at[:, 6:].set(0.0)))
  np.testing.assert_array_equal(out2[:, :6], out[:, :6])
  assert not np.allclose(out2[:, 6:], out[:, 6:])


def test_correlated_noise_is_standard_normal_causal_and_smooth():
  rho = 0.9
  white = jax.random.normal(jax.random.PRNGKey(0), (8192, 12, 3))
  noise = np.asarray(diffusion.correlate_frames(white, rho))
  # Every frame is still standard normal ...
  np.testing.assert_allclose(noise.std(axis=(0, 2)), 1.0, atol=0.03)
  # ... neighbours are correlated by rho, so frame-to-frame steps shrink to sqrt(2 (1 - rho)).
  np.testing.assert_allclose(lag1_correlation(noise), rho, atol=0.01)
  np.testing.assert_allclose(np.diff(noise, axis=1).std(), np.sqrt(2 * (1 - rho)), rtol=0.03)
  # Causal: later white draws never reach earlier frames.
  later_changed = np.asarray(diffusion.correlate_frames(white.at[:, 7:].set(0.0), rho))
  np.testing.assert_array_equal(later_changed[:, :7], noise[:, :7])
  assert not np.allclose(later_changed[:, 7:], noise[:, 7:])
  # Frame by frame (as a stream draws it) gives the same noise.
  previous, frames = jnp.zeros_like(white[:, 0]), []
  for f in range(white.shape[1]):
    previous = diffusion.next_correlated(previous, white[:, f], f, rho)
    frames.append(previous)
  np.testing.assert_allclose(np.stack(frames, axis=1), noise, atol=1e-5)
  # rho = 0 is the paper's white noise.
  assert diffusion.correlate_frames(white, 0.0) is white
  with pytest.raises(ValueError, match=r'noise_correlation must be in \[0, 1\), got 1.0'):
    diffusion.make_schedule('cosine', 1000, noise_correlation=1.0)
