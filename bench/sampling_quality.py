"""Sampling at equal quality: test FID / accuracy / worst-class success and reactions/s of several
samplers on trained synthetic runs (one per training seed), with 95% intervals over the seeds.

  python bench/sampling_quality.py --runs=runs/quality/recipe/seed0,runs/quality/recipe/seed1 \\
      --recognizer_dir=runs/quality/recognizer/recognizer

The reference is the paper's evaluation sampler (DDPM ancestral sampling on 5 respaced steps,
'ddpm:5'). A setting is 'within the interval' when its mean FID is at most the reference's mean FID
plus the reference's 95% interval, and its mean jitter at most the reference's plus its interval
(see below). Reactions/s are measured here on the trained (small) model; the
speed of the chosen setting at paper size is what bench/sampling.py measures.

A setting is METHOD:N (respacing ddimN: steps 0, 1000/N, ...) or METHOD:trailingN (N steps ending at
999, so one step is possible: the released respacings cannot keep only the last of 1,000 steps).
Jitter (pelvis shaking, m/s; real motion ~0.01) counts beside FID because a chain that ends at a
noisier level (one trailing step ends at pure noise) can keep its FID while its reactors visibly
shake: the recognizer barely notices, a person does.

--guidance_scales=1,2.5 runs every setting without and with classifier-free guidance (runs of an
action-conditioned model trained with condition dropout; rows 'SETTING+cfg2.5'); the paper's
setting for them is --reference=ddpm:5+cfg2.5/float32.

--students adds one-pass students of the runs (configs/distill.py), one per run in the same order,
each scored with its own sampling (one unguided pass, respacing trailing1) as 'student:1'.
"""

import argparse
import time

from common import emit, interval, load_run, respacing_for, run_config

import jax
import numpy as np

from regennet_jax import distill
from regennet_jax.evaluation import monitor

METRICS = ('fid', 'accuracy', 'success_ratio_mean', 'success_ratio_min', 'jitter_m_s')


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated trained workdirs')
  parser.add_argument('--settings',
                      default='ddpm:5,ddim:2,ddim:3,ddim:5,ddim:10,ddpm:2,ddpm:3,ddpm:10,'
                      'ddim:trailing1,ddim:trailing2')
  parser.add_argument('--dtypes', default='float32,bfloat16')
  parser.add_argument('--samples', type=int, default=128, help='test actors scored per run')
  parser.add_argument('--guidance_scales',
                      default='1',
                      help='classifier-free guidance scales to run every setting with (runs of an '
                      'action-conditioned model trained with condition dropout); 1 = none')
  parser.add_argument('--reference',
                      default='ddpm:5/float32',
                      help="the paper's evaluation setting, e.g. ddpm:5+cfg2.5/float32 for "
                      'guided runs')
  parser.add_argument('--students',
                      default='',
                      help='comma-separated one-step students of the runs (config.distill), one '
                      "per run in --runs' order: scored with their one-pass sampling")
  parser.add_argument('--recognizer_dir',
                      default='',
                      help="the runs' recognizer (default: each run's own)")
  args = parser.parse_args()
  runs = args.runs.split(',')
  students = args.students.split(',') if args.students else []
  if students and len(students) != len(runs):
    parser.error(f'--students names {len(students)} runs, --runs {len(runs)}: give one per run')
  rows = {}
  for index, run in enumerate(runs):
    for dtype in args.dtypes.split(','):
      for scale in [float(g) for g in args.guidance_scales.split(',')]:
        for setting in args.settings.split(','):
          method, steps = setting.split(':')
          guided = f'+cfg{scale:g}' if scale != 1 else ''
          _score(rows, f'{setting}{guided}/{dtype}', run, dtype, respacing_for(steps), method, args,
                 scale)
      if students:  # the student's own one-pass sampling (distill.STUDENT_SAMPLING)
        sampling = distill.STUDENT_SAMPLING
        _score(rows, f'student:1/{dtype}', students[index], dtype, sampling['sample.respacing'],
               sampling['sample.method'], args)
  summary = {name: {k: interval(v) for k, v in row.items()} for name, row in rows.items()}
  reference_name = args.reference if args.reference in summary else next(iter(summary))
  upper = lambda metric: sum(v for v in summary[reference_name][metric] if np.isfinite(v))
  bound, jitter_bound = upper('fid'), upper('jitter_m_s')
  # Equal quality: FID within the reference's interval, and no more shaking than it has either
  # (a one-step chain ends at pure noise: its FID may hold while its reactors visibly jitter).
  within = {
      name: s
      for name, s in summary.items()
      if s['fid'][0] <= bound and not s['jitter_m_s'][0] > jitter_bound
  }
  fastest = max(within, key=lambda name: within[name]['per_sec'][0])
  lines = [
      '| sampler | matmuls | test FID | accuracy | success ratio, mean over classes | worst class '
      '| jitter m/s | reactions/s |', '|---|---|---|---|---|---|---|---|'
  ]
  for name, s in summary.items():
    setting, dtype = name.split('/')
    setting, _, guidance = setting.partition('+cfg')
    method, steps = setting.split(':')
    cells = [f'{s[k][0]:.3g} ± {s[k][1]:.2g}' for k in METRICS]
    count = steps[len('trailing'):] if steps.startswith('trailing') else steps
    label = f'{method.upper()} {count} step{"s" if count != "1" else ""}' + (' (trailing)' if count
                                                                             != steps else '')
    if method == 'student':
      label = 'one-pass student (config.distill)'
    if guidance:
      label += f' + CFG {guidance}'
    lines.append(f'| {label} | {dtype} | ' + ' | '.join(cells) + f" | {s['per_sec'][0]:.0f} |")
  emit({
      'benchmark': 'sampling_quality',
      'runs': runs,
      'students': students,
      'samples': args.samples,
      'summary': summary,
      'reference': reference_name,
      'fid_bound': bound,
      'jitter_bound': jitter_bound,
      'fastest_within_interval': fastest,
      'table': '\n'.join(lines)
  })


_LOADED = {}  # run -> (test split, class names, sampling weights), loaded once per run


def _score(rows, name, run, dtype, respacing, method, args, guidance_scale=1.0):
  """Appends the scores of `run` sampled with (respacing, method, guidance_scale) in `dtype`
  matmuls to rows[name] (a student samples as it does: its guidance is baked in)."""
  config = run_config(run)
  config.sample.guidance_scale = guidance_scale
  distill.student_sampling(config)
  config.eval.recognizer_dir = args.recognizer_dir
  config.sample.matmul_dtype = dtype
  if run not in _LOADED:
    _LOADED[run] = load_run(config, run)[:3]
  test, names, params = _LOADED[run]
  m = monitor.QualityMonitor(config,
                             run,
                             test,
                             names,
                             count=args.samples,
                             respacing=respacing,
                             method=method)
  m.generate(params)  # compile
  start = time.perf_counter()
  jax.block_until_ready(m.generate(params, seed=1))
  seconds = time.perf_counter() - start
  scalars, _, _ = m(params, seed=2)
  row = rows.setdefault(name, {k: [] for k in METRICS + ('per_sec',)})
  for k in METRICS:
    row[k].append(scalars.get(k, float('nan')))
  row['per_sec'].append(len(m.batch['actor']) / seconds)


if __name__ == '__main__':
  main()
