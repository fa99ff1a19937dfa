"""How well a trained denoiser predicts x0 at each noise level, on real test windows.

  python bench/denoiser_error.py --runs=runs/default,runs/other

For each run and timestep t: noise the real reactor to x_t, predict x0, and report the RMS error of
the rotations and of the translation against the real x0, the noise's own RMS error (what simply
returning x_t would score), and the frame-to-frame jitter of the predicted translation (the
interaction metric's: m/s left after a 5-frame moving average; the real reactors have ~0.01). A well-trained denoiser's error
falls towards 0 as t does; a flat curve means the network ignores x_t and final samples keep the
high-noise error (README, "Training recipe").
"""

import argparse

from common import emit, load_run, mean_jitter, run_config, windows_in_model_frame

import jax
import jax.numpy as jnp

from regennet_jax import diffusion
from regennet_jax import factory
from regennet_jax.body import skeleton

TIMESTEPS = (0, 5, 20, 50, 100, 200, 400, 600, 800, 999)


def rms(a, b):
  return float(jnp.sqrt(jnp.mean(jnp.square(a - b))))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated trained workdirs')
  parser.add_argument('--windows', type=int, default=64, help='test windows (from frame 0)')
  args = parser.parse_args()
  results = {}
  for run in args.runs.split(','):
    config = run_config(run)
    test, names, params, step = load_run(config, run)
    actor, reactor, label = windows_in_model_frame(config, test, args.windows)
    model = factory.make_model(config, len(names), for_sampling=True)
    schedule = factory.make_schedule(config)
    predict = jax.jit(lambda x_t, t: model.apply({'params': params}, x_t, t, actor, label))
    tr = skeleton.TRANSLATION_ROW
    rows = []
    for t in TIMESTEPS:
      ts = jnp.full((len(actor),), t, jnp.int32)
      noise = diffusion.correlate_frames(jax.random.normal(jax.random.PRNGKey(t), reactor.shape),
                                         schedule.noise_correlation)
      x_t = diffusion.q_sample(schedule, reactor, ts, noise)
      x0 = predict(x_t, ts)
      rows.append({
          't': t,
          'rotation_rms': rms(x0[:, :, :tr], reactor[:, :, :tr]),
          'translation_rms_m': rms(x0[:, :, tr, :3], reactor[:, :, tr, :3]),
          'noise_translation_rms_m': rms(x_t[:, :, tr, :3], reactor[:, :, tr, :3]),
          'jitter_m_per_s': mean_jitter(x0[:, :, tr, :3], config.data.fps)
      })
    results[run] = {
        'checkpoint_step': step,
        'prediction': config.model.prediction,
        'real_jitter_m_per_s': mean_jitter(reactor[:, :, tr, :3], config.data.fps),
        'by_timestep': rows
    }
  emit({'benchmark': 'denoiser_error', 'windows': args.windows, 'runs': results})


if __name__ == '__main__':
  main()
