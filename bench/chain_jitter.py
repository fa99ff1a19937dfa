"""Where along the sampling chain a trained denoiser's reactors start to shake.

  python bench/chain_jitter.py --runs=runs/default,runs/other [--method=ddpm --respacing=ddim5]

Runs the reverse chain (the evaluation's sampler by default) on test windows from frame 0 and, at
every step, reports the frame-to-frame jitter of the reactor's translation (the interaction
metric's: m/s left after a 5-frame moving average; real reactors ~0.01) in:

  x_t            the chain's current sample, divided by sqrt(alpha-bar) (data scale);
  x0             the denoiser's prediction;
  x0_noise_mean  the prediction averaged over --draws chains with different noise but the same
                 actors: the part of the shake that the noise does not cause (a pattern of the
                 network's own, e.g. from the position encoding);
and, for model.prediction='preconditioned', the prediction's two terms: `skip` (c_skip x_t /
sqrt(alpha-bar), the noisy input passed through) and `network` (c_out F). A shake already present
at the first steps, where x_t is pure noise and the skip term is negligible, comes from the
network's output itself, not from noise it fails to remove (README, "Training recipe").
"""

import argparse

from common import emit, load_run, mean_jitter, run_config, windows_in_model_frame

import jax
import numpy as np

from regennet_jax import diffusion
from regennet_jax import factory
from regennet_jax import model as model_lib
from regennet_jax.body import skeleton


def chain(config, params, num_actions, actor, label, key, method, respacing):
  """Every step's (original timestep, x_t, x0 prediction) of one chain, in sampling order."""
  model = factory.make_model(config, num_actions, for_sampling=True)
  schedule = factory.make_schedule(config, respacing)
  denoise = lambda x_t, t: model.apply({'params': params}, x_t, t, actor, label)
  _, (x_ts, x0s) = jax.jit(lambda k: diffusion.sample_loop(
      denoise, schedule, actor.shape, k, method=method, trajectory=True))(key)
  timesteps = np.asarray(schedule.timestep_map)[::-1]
  return [(int(t), x_t, x0) for t, x_t, x0 in zip(timesteps, x_ts, x0s)]


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated trained workdirs')
  parser.add_argument('--windows', type=int, default=64, help='test windows (from frame 0)')
  parser.add_argument('--draws', type=int, default=4, help='chains per window, different noise')
  parser.add_argument('--method', default=None, help="'ddpm' or 'ddim' (default: eval.method)")
  parser.add_argument('--respacing', default=None, help='default: eval.respacing')
  args = parser.parse_args()
  results = {}
  tr = skeleton.TRANSLATION_ROW
  for run in args.runs.split(','):
    config = run_config(run)
    method = args.method or config.eval.method
    respacing = args.respacing or config.eval.respacing
    test, names, params, step = load_run(config, run)
    actor, reactor, label = windows_in_model_frame(config, test, args.windows)
    alphas = np.asarray(factory.make_schedule(config).alphas_cumprod)
    fps = config.data.fps
    draws = [
        chain(config, params, len(names), actor, label, jax.random.PRNGKey(d), method, respacing)
        for d in range(args.draws)
    ]
    rows = []
    for k, (t, x_t, x0) in enumerate(draws[0]):
      abar = float(alphas[t])
      row = {
          't':
              t,
          'x_t':
              mean_jitter(x_t[:, :, tr, :3] / np.sqrt(abar), fps),
          'x0':
              mean_jitter(x0[:, :, tr, :3], fps),
          'x0_noise_mean':
              mean_jitter(np.mean([d[k][2][:, :, tr, :3] for d in draws], axis=0), fps),
      }
      if config.model.prediction == 'preconditioned':
        c_skip, _ = model_lib.preconditioning(abar, config.model.sigma_data)
        skip = float(c_skip) * x_t[:, :, tr, :3] / np.sqrt(abar)
        row.update(c_skip=float(c_skip),
                   skip=mean_jitter(skip, fps),
                   network=mean_jitter(x0[:, :, tr, :3] - skip, fps))
      rows.append(row)
    results[run] = {
        'checkpoint_step': step,
        'prediction': config.model.prediction,
        'noise_correlation': config.diffusion.noise_correlation,
        'sampler': f'{method} on {respacing}',
        'real_jitter_m_per_s': mean_jitter(reactor[:, :, tr, :3], fps),
        'by_step': rows
    }
  emit({'benchmark': 'chain_jitter', 'windows': args.windows, 'draws': args.draws, 'runs': results})


if __name__ == '__main__':
  main()
