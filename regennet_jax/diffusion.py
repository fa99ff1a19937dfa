"""Gaussian diffusion as pure functions: schedules, forward noising, posterior, DDPM/DDIM steps,
timestep respacing, classifier-free guidance and full sampling loops in `lax.scan`.

The model predicts x0 (START_X) and the reverse process uses FIXED_SMALL variance, as ReGenNet does.
Every motion tensor is [B, T, 56, 6]; nothing here depends on that beyond "batch first, frames second"
(per-frame noise keys, see `frame_noise`).
"""

import math
from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from regennet_jax import errors


def betas_for(kind, num_timesteps):
  """float64 [num_timesteps] beta schedule: 'cosine' (Nichol & Dhariwal) or 'linear' (DDPM)."""
  if kind == 'linear':
    scale = 1000 / num_timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)
  if kind == 'cosine':
    alpha_bar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2)**2
    return np.array([
        min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), 0.999)
        for i in range(num_timesteps)
    ], np.float64)
  raise errors.ConfigError(f"diffusion.noise_schedule must be 'cosine' or 'linear', got {kind!r}")


def space_timesteps(num_timesteps, respacing):
  """Sorted kept steps for a respacing spec, as guided-diffusion's `space_timesteps`.

  '' keeps all; 'ddimN' takes the first integer stride k with len(range(0, T, k)) == N
  (ddim5 -> 0, 200, 400, 600, 800); '10' or '10,15,20' split [0, T) into equal sections and take
  evenly spaced steps (rounded) from each. 'trailingN' (not in guided-diffusion) keeps N evenly
  spaced steps that END at T - 1 (trailing5 -> 199, 399, 599, 799, 999; trailing1 -> 999): the
  chain starts from the noise level the network was trained on for pure noise, and one step is
  possible (Lin et al., 2024, "Common diffusion noise schedules and sample steps are flawed").
  """
  if not respacing:
    return list(range(num_timesteps))
  if respacing.startswith('trailing') and respacing[len('trailing'):].isdigit():
    desired = int(respacing[len('trailing'):])
    if not 1 <= desired <= num_timesteps:
      raise errors.ConfigError(f'timestep respacing {respacing!r}: expected 1 to {num_timesteps} '
                               'steps')
    return sorted(
        {int(round(num_timesteps - k * num_timesteps / desired)) - 1 for k in range(desired)})
  if respacing.startswith('ddim'):
    desired = int(respacing[len('ddim'):])
    for stride in range(1, num_timesteps):
      if len(range(0, num_timesteps, stride)) == desired:
        return list(range(0, num_timesteps, stride))
    raise errors.ConfigError(f'timestep respacing {respacing!r}: no integer stride gives exactly '
                             f'{desired} of {num_timesteps} steps')
  try:
    counts = [int(c) for c in respacing.split(',')]
  except ValueError:
    raise errors.ConfigError(
        f"timestep respacing {respacing!r}: expected '', 'ddimN', 'trailingN' or comma-separated "
        'step counts like "10" or "10,20,30"') from None
  size_per, extra = divmod(num_timesteps, len(counts))
  start, steps = 0, []
  for i, count in enumerate(counts):
    size = size_per + (1 if i < extra else 0)
    if size < count or count < 1:
      raise errors.ConfigError(
          f'timestep respacing {respacing!r}: cannot take {count} steps from a '
          f'section of {size}')
    stride = 1 if count <= 1 else (size - 1) / (count - 1)
    steps += [start + round(stride * k) for k in range(count)]
    start += size
  return sorted(set(steps))


@flax.struct.dataclass
class Schedule:
  """All per-step constants of one (possibly respaced) chain; arrays are [num_steps]."""
  betas: jnp.ndarray
  alphas_cumprod: jnp.ndarray
  alphas_cumprod_prev: jnp.ndarray
  posterior_variance: jnp.ndarray
  posterior_log_variance_clipped: jnp.ndarray
  posterior_mean_coef1: jnp.ndarray
  posterior_mean_coef2: jnp.ndarray
  timestep_map: jnp.ndarray  # spaced index -> original timestep the model sees
  # The noise's correlation between consecutive frames (see correlate_frames): part of the chain's
  # definition, so training, every sampler and the stream draw the same kind of noise.
  noise_correlation: float = flax.struct.field(pytree_node=False, default=0.0)

  @property
  def num_steps(self):
    return self.betas.shape[0]


def make_schedule(kind='cosine', num_timesteps=1000, respacing='', noise_correlation=0.0):
  """The chain for `kind` with `num_timesteps` steps, respaced as `respacing` (see space_timesteps),
  whose noise has `noise_correlation` between consecutive frames (0: white, the paper's).

  Respaced betas are recomputed from alpha-bar at the kept steps, so the kept steps have exactly the
  original alpha-bar; the model is still called with the original timestep (no rescaling).
  """
  base_cumprod = np.cumprod(1.0 - betas_for(kind, num_timesteps))
  kept = space_timesteps(num_timesteps, respacing)
  betas, last = [], 1.0
  for step in kept:
    betas.append(1.0 - base_cumprod[step] / last)
    last = base_cumprod[step]
  betas = np.array(betas, np.float64)
  alphas = 1.0 - betas
  cumprod = np.cumprod(alphas)
  cumprod_prev = np.append(1.0, cumprod[:-1])
  post_var = betas * (1.0 - cumprod_prev) / (1.0 - cumprod)
  # At t=0 the posterior variance is 0; guided-diffusion clips its log with the t=1 value.
  post_log_var = np.log(np.append(post_var[1], post_var[1:])) if len(betas) > 1 else np.log(
      np.maximum(post_var, 1e-20))
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  return Schedule(betas=f32(betas),
                  alphas_cumprod=f32(cumprod),
                  alphas_cumprod_prev=f32(cumprod_prev),
                  posterior_variance=f32(post_var),
                  posterior_log_variance_clipped=f32(post_log_var),
                  posterior_mean_coef1=f32(betas * np.sqrt(cumprod_prev) / (1.0 - cumprod)),
                  posterior_mean_coef2=f32(
                      (1.0 - cumprod_prev) * np.sqrt(alphas) / (1.0 - cumprod)),
                  timestep_map=jnp.asarray(kept, jnp.int32),
                  noise_correlation=check_noise_correlation(noise_correlation))


def check_noise_correlation(rho):
  if not 0.0 <= rho < 1.0:
    raise errors.ConfigError(f'diffusion.noise_correlation must be in [0, 1), got {rho!r}')
  return float(rho)


def _per_sample(v, like):
  """[B] -> [B, 1, ..., 1] to broadcast against `like` ([B, ...])."""
  return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def _at(values, t, like):
  """values[t] shaped to broadcast against `like` ([B, ...])."""
  return _per_sample(values[t], like)


def q_sample(schedule, x0, t, noise):
  """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise; t is a [B] spaced index."""
  abar = _at(schedule.alphas_cumprod, t, x0)
  return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise


def q_posterior(schedule, x0, x_t, t):
  """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x0)."""
  mean = (_at(schedule.posterior_mean_coef1, t, x_t) * x0 +
          _at(schedule.posterior_mean_coef2, t, x_t) * x_t)
  return (mean, _at(schedule.posterior_variance, t,
                    x_t), _at(schedule.posterior_log_variance_clipped, t, x_t))


def ddpm_step(schedule, x0_pred, x_t, t, noise):
  """Ancestral step with FIXED_SMALL variance: x_{t-1} = mu + [t > 0] sigma_t z."""
  mean, _, log_var = q_posterior(schedule, x0_pred, x_t, t)
  nonzero = _per_sample((t > 0).astype(x_t.dtype), x_t)
  return mean + nonzero * jnp.exp(0.5 * log_var) * noise


def predict_eps(schedule, x_t, t, x0_pred):
  abar = _at(schedule.alphas_cumprod, t, x_t)
  return (x_t / jnp.sqrt(abar) - x0_pred) / jnp.sqrt(1.0 / abar - 1.0)


def ddim_step(schedule, x0_pred, x_t, t, noise, eta=0.0):
  """DDIM step; eta=0 is deterministic, eta=1 matches DDPM's variance."""
  eps = predict_eps(schedule, x_t, t, x0_pred)
  abar = _at(schedule.alphas_cumprod, t, x_t)
  abar_prev = _at(schedule.alphas_cumprod_prev, t, x_t)
  sigma = eta * jnp.sqrt((1 - abar_prev) / (1 - abar)) * jnp.sqrt(1 - abar / abar_prev)
  mean = x0_pred * jnp.sqrt(abar_prev) + jnp.sqrt(1 - abar_prev - sigma**2) * eps
  nonzero = _per_sample((t > 0).astype(x_t.dtype), x_t)
  return mean + nonzero * sigma * noise


def noise_at(key, frame, per_frame_shape, dtype=jnp.float32):
  """The standard normal draw [B, ...] of one frame: it depends only on (key, frame)."""
  return jax.random.normal(jax.random.fold_in(key, frame), per_frame_shape, dtype)


def frame_noise(key, shape, dtype=jnp.float32, correlation=0.0):
  """Standard normal noise [B, T, ...] where frame f's values depend only on (key, frames <= f).

  Drawing each frame from its own folded key makes a whole-sequence chain and a frame-by-frame
  (streaming) chain see identical noise, whatever the sequence length; `correlation` makes it
  correlated over frames (correlate_frames).
  """
  per_frame = (shape[0],) + tuple(shape[2:])
  draw = lambda f: noise_at(key, f, per_frame, dtype)
  return correlate_frames(jnp.moveaxis(jax.vmap(draw)(jnp.arange(shape[1])), 0, 1), correlation)


def correlate_frames(white, rho):
  """Causal, stationary AR(1) noise over frames from white noise [B, T, ...] (frames on axis 1):
  n_0 = w_0 and n_f = rho n_{f-1} + sqrt(1 - rho^2) w_f.

  Every n_f is still standard normal, so the chain's formulas hold unchanged (the process is white
  diffusion seen through a fixed linear map), but frame-to-frame differences shrink to
  sqrt(2 (1 - rho)) of white noise's: noise a denoiser fails to remove makes a slow drift instead
  of a shake. Causal, so frame f's noise needs only frames <= f (streams: next_correlated).
  rho = 0 returns `white` itself (the paper's noise).
  """
  if not rho:
    return white
  frames = np.arange(white.shape[1])
  lag = frames[:, None] - frames[None, :]
  mix = np.where(lag >= 0, float(rho)**np.maximum(lag, 0), 0.0) * math.sqrt(1.0 - rho**2)
  mix[:, 0] = float(rho)**frames
  return jnp.einsum('fk,bk...->bf...',
                    jnp.asarray(mix, white.dtype),
                    white,
                    precision=jax.lax.Precision.HIGHEST)


def next_correlated(previous, white, frame, rho):
  """Frame `frame`'s noise [B, ...] of correlate_frames from the previous frame's noise and this
  frame's white draw, for chains that run frame by frame."""
  if not rho:
    return white
  return jnp.where(frame == 0, white, rho * previous + math.sqrt(1.0 - rho**2) * white)


def chain_noise_keys(key):
  """(key of x_T, function i -> key of step i's noise): the one way every sampler splits its key."""
  init_key, step_key = jax.random.split(key)
  return init_key, lambda i: jax.random.fold_in(step_key, i)


SAMPLING_METHODS = ('ddpm', 'ddim')


def check_method(method):
  if method not in SAMPLING_METHODS:
    raise errors.ConfigError(f'sampling method must be one of {SAMPLING_METHODS}, got {method!r}')


def reverse_step(schedule, method, x0_pred, x_t, t, noise, eta=0.0):
  """One step of the reverse chain: 'ddpm' (ancestral, FIXED_SMALL) or 'ddim'."""
  check_method(method)
  if method == 'ddpm':
    return ddpm_step(schedule, x0_pred, x_t, t, noise)
  return ddim_step(schedule, x0_pred, x_t, t, noise, eta)


def classifier_free_guidance(paired_fn, scale):
  """Wraps paired_fn(x_t [B], t [B]) -> [2B] x0 predictions (conditional rows first, then
  unconditional) into denoise_fn(x_t, t) = u + s (c - u). `scale` is a scalar or [B].
  """
  def denoise_fn(x_t, t):
    b = x_t.shape[0]
    out = paired_fn(x_t, t)
    cond, unc = out[:b], out[b:]
    return unc + _per_sample(jnp.asarray(scale, out.dtype), out) * (cond - unc)

  return denoise_fn


def sample_loop(denoise_fn: Callable,
                schedule: Schedule,
                shape,
                key,
                method='ddim',
                eta=0.0,
                x_init=None,
                trajectory=False):
  """Runs the reverse chain from x_T ~ N(0, I) (correlated over frames as the schedule says) to x_0
  with `lax.scan`.

  Args:
    denoise_fn: (x_t [B, T, ...], timestep [B] original scale) -> x0 prediction.
    schedule: the (respaced) chain; sampling starts at its last kept step, as guided-diffusion does
      (with ddim5 that is t=800 -- a known quirk of the original kept for parity).
    shape: [B, T, ...] of the sample.
    method: 'ddpm' (ancestral, FIXED_SMALL) or 'ddim'.
    trajectory: also return every step's input and prediction (diagnostics, e.g.
      bench/chain_jitter.py).
  Returns:
    x_0 with `shape`; with `trajectory`, (x_0, (x_t, x0_pred)), both [num_steps, *shape] in
    sampling order (the step at the last kept timestep first).
  """
  check_method(method)
  n = schedule.num_steps
  init_key, step_key = chain_noise_keys(key)
  rho = schedule.noise_correlation
  x = frame_noise(init_key, shape, correlation=rho) if x_init is None else x_init

  def step(x, i):
    t = jnp.full((shape[0],), i, jnp.int32)
    x0 = denoise_fn(x, schedule.timestep_map[t])
    noise = frame_noise(step_key(i), shape, x.dtype, rho)
    return reverse_step(schedule, method, x0, x, t, noise, eta), (x, x0) if trajectory else None

  x, steps = jax.lax.scan(step, x, jnp.arange(n - 1, -1, -1))
  return (x, steps) if trajectory else x
