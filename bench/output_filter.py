"""Does a causal filter on the sampler's output remove the online model's shake, and what does it
cost? A stream could smooth each new frame with the ones before it (what AR/VR pose trackers do);
this scores that on trained runs, without training anything.

  python bench/output_filter.py --runs=runs/quality/recipe/seed0,runs/quality/recipe/seed1,... \
      --recognizer=runs/quality/recognizer/recognizer

For each run (one per training seed) the monitor's test windows are sampled once with the
evaluation's sampler (eval.method on eval.respacing), then filtered frame by frame over the whole
[56, 6] motion, causally (frame t uses frames <= t only); every variant, the unfiltered one too,
is then projected onto valid rotations (sample.valid_motion) before it is scored:

  ema<a>            y_t = y_(t-1) + a (x_t - y_(t-1))
  one_euro<c>_<b>   the same with a per-frame a from a cut-off c + b * speed (Hz), speed the
                    smoothed rate of change of the motion (Casiez et al., CHI 2012): little
                    smoothing when the body moves fast, much when it is still

Each variant is scored as the monitor scores (FID and accuracy with --recognizer, the interaction
metrics per class); prints JSON with mean ± 95% interval over the runs and each run's values.
"""

import argparse

from common import emit, interval, load_run, run_config

import jax.numpy as jnp
import numpy as np

from regennet_jax import sample as sample_lib
from regennet_jax.evaluation import monitor as monitor_lib

VARIANTS = {
    'none': None,
    'ema0.5': ('ema', 0.5),
    'ema0.3': ('ema', 0.3),
    'one_euro2_1': ('one_euro', 2.0, 1.0),
    'one_euro1_0.5': ('one_euro', 1.0, 0.5),
}
FIELDS = ('fid', 'accuracy', 'jitter_m_s', 'latency_ms', 'success_ratio_mean', 'success_ratio_min',
          'foot_skate_ratio')


def _smoothing_factor(cutoff_hz, fps):
  tau = 1.0 / (2 * np.pi * cutoff_hz)
  return 1.0 / (1.0 + tau * fps)


def causal_filter(motion, kind, *args, fps=30):
  """[N, T, ...] -> the same, each frame filtered with the frames before it."""
  x = np.asarray(motion, np.float64)
  y = x.copy()
  rate = np.zeros_like(x[:, 0])
  for t in range(1, x.shape[1]):
    if kind == 'ema':
      a = args[0]
    else:
      cutoff, beta = args
      rate += _smoothing_factor(1.0, fps) * ((x[:, t] - y[:, t - 1]) * fps - rate)
      speed = np.sqrt(np.mean(rate.reshape(len(x), -1)**2, axis=1))
      a = _smoothing_factor(cutoff + beta * speed, fps).reshape((-1,) + (1,) * (x.ndim - 2))
    y[:, t] = y[:, t - 1] + a * (x[:, t] - y[:, t - 1])
  return y.astype(np.float32)


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated trained workdirs')
  parser.add_argument('--recognizer', default='', help='a trained recognizer directory (for FID)')
  parser.add_argument('--seed', type=int, default=0, help='the sampler noise seed')
  args = parser.parse_args()
  per_run = []
  for run in args.runs.split(','):
    config = run_config(run)
    if args.recognizer:
      config.eval.recognizer_dir = args.recognizer
    test, names, params, _ = load_run(config, run)
    mon = monitor_lib.QualityMonitor(config, run, test, names)
    raw = np.asarray(mon.generate(params, seed=args.seed))
    row = {}
    for name, spec in VARIANTS.items():
      filtered = raw if spec is None else causal_filter(raw, *spec, fps=config.data.fps)
      motion = np.asarray(sample_lib.valid_motion(jnp.asarray(filtered)))
      row[name], _ = mon.score(motion)
    per_run.append(row)
  result = {'runs': args.runs.split(','), 'windows': len(raw), 'variants': {}}
  for name in VARIANTS:
    result['variants'][name] = {
        field: {
            'mean_and_95': interval([r[name][field] for r in per_run]),
            'per_run': [r[name][field] for r in per_run]
        } for field in FIELDS if field in per_run[0][name]
    }
  emit(result)


if __name__ == '__main__':
  main()
