"""Sampling at equal quality: test FID / accuracy / worst-class success and reactions/s of several
samplers on trained synthetic runs (one per training seed), with 95% intervals over the seeds.

  python bench/sampling_quality.py --runs=runs/quality/recipe/seed0,runs/quality/recipe/seed1 \\
      --recognizer_dir=runs/quality/recognizer/recognizer

The reference is the paper's evaluation sampler (DDPM ancestral sampling on 5 respaced steps,
'ddpm:5'). A setting is 'within the interval' when its mean FID is at most the reference's mean FID
plus the reference's 95% interval. Reactions/s are measured here on the trained (small) model; the
speed of the chosen setting at paper size is what bench/sampling.py measures. One step is not
offered: the released respacings cannot keep exactly one of 1,000 steps but its last ('ddim1' has
no stride, '1' keeps timestep 0 and so starts from noise labelled as almost clean).
"""

import argparse
import time

from common import emit, interval

import jax
import numpy as np

from configs import synthetic as synthetic_config
from regennet_jax import checkpoints
from regennet_jax import factory
from regennet_jax.data import sources
from regennet_jax.evaluation import monitor


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated trained workdirs')
  parser.add_argument('--settings',
                      default='ddpm:5,ddim:2,ddim:3,ddim:5,ddim:10,ddpm:2,ddpm:3,ddpm:10')
  parser.add_argument('--dtypes', default='float32,bfloat16')
  parser.add_argument('--samples', type=int, default=128, help='test actors scored per run')
  parser.add_argument('--recognizer_dir',
                      default='',
                      help="the runs' recognizer (default: each run's own)")
  args = parser.parse_args()
  runs = args.runs.split(',')
  rows = {}
  for run in runs:
    config = synthetic_config.get_config()
    checkpoints.adopt_run_config(run, config)
    config.eval.recognizer_dir = args.recognizer_dir
    _, test, names = sources.load_splits(config.data)
    params, _ = factory.load_sampling_params(config, run, len(names))
    for dtype in args.dtypes.split(','):
      config.sample.matmul_dtype = dtype
      for setting in args.settings.split(','):
        method, steps = setting.split(':')
        m = monitor.QualityMonitor(config,
                                   run,
                                   test,
                                   names,
                                   count=args.samples,
                                   respacing=f'ddim{steps}',
                                   method=method)
        m.generate(params)  # compile
        start = time.perf_counter()
        jax.block_until_ready(m.generate(params, seed=1))
        seconds = time.perf_counter() - start
        scalars, _, _ = m(params, seed=2)
        row = rows.setdefault(f'{setting}/{dtype}', {
            'fid': [],
            'accuracy': [],
            'success_ratio_min': [],
            'per_sec': []
        })
        row['fid'].append(scalars.get('fid', float('nan')))
        row['accuracy'].append(scalars.get('accuracy', float('nan')))
        row['success_ratio_min'].append(scalars.get('success_ratio_min', float('nan')))
        row['per_sec'].append(len(m.batch['actor']) / seconds)
  summary = {name: {k: interval(v) for k, v in row.items()} for name, row in rows.items()}
  reference_name = 'ddpm:5/float32' if 'ddpm:5/float32' in summary else next(iter(summary))
  reference = summary[reference_name]['fid']
  bound = reference[0] + (reference[1] if np.isfinite(reference[1]) else 0.0)
  within = {name: s for name, s in summary.items() if s['fid'][0] <= bound}
  fastest = max(within, key=lambda name: within[name]['per_sec'][0])
  lines = [
      '| sampler | matmuls | test FID | accuracy | worst-class success ratio | reactions/s |',
      '|---|---|---|---|---|---|'
  ]
  for name, s in summary.items():
    setting, dtype = name.split('/')
    method, steps = setting.split(':')
    cells = [f'{s[k][0]:.3g} ± {s[k][1]:.2g}' for k in ('fid', 'accuracy', 'success_ratio_min')]
    lines.append(f'| {method.upper()} {steps} step{"s" if steps != "1" else ""} | {dtype} | ' +
                 ' | '.join(cells) + f" | {s['per_sec'][0]:.0f} |")
  emit({
      'benchmark': 'sampling_quality',
      'runs': runs,
      'samples': args.samples,
      'summary': summary,
      'reference': reference_name,
      'fid_bound': bound,
      'fastest_within_interval': fastest,
      'table': '\n'.join(lines)
  })


if __name__ == '__main__':
  main()
