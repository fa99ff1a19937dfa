"""The per-class interaction table of several trained runs (one per training seed), rescored from
each run's saved test reactions with the current metrics, as mean ± 95% interval over the runs.

  python bench/interaction_table.py --runs=runs/quality/recipe/seed0,runs/quality/recipe/seed1,...

Each run's samples/test_reactions.npz (written with its report.json after training) is scored by
`monitor.score_saved_reactions`: the same reactions, no model and no sampling, so a change of the
interaction metrics can be applied to runs trained before it. Prints JSON: per class the real and
generated success rates, the ratio generated / real, latency, penetration, foot skating and
jitter; the mean and worst ratio over classes (the report's success_ratio_mean / _min); and the
table as markdown.
"""

import argparse
import os

from common import emit, interval

from configs import synthetic as synthetic_config
from regennet_jax import checkpoints
from regennet_jax import errors
from regennet_jax.data import sources
from regennet_jax.evaluation import monitor

FIELDS = ('latency_ms', 'penetration_frequency', 'foot_skate_ratio', 'jitter_m_s')


def score(workdir):
  config = synthetic_config.get_config()
  checkpoints.adopt_run_config(workdir, config, ())
  path = os.path.join(workdir, 'samples', 'test_reactions.npz')
  try:
    return monitor.score_saved_reactions(config, path)
  except errors.DataError:  # an older file: the test split gives its window lengths and class names
    _, test_src, class_names = sources.load_splits(config.data)
    return monitor.score_saved_reactions(config, path, test_src, class_names)


def _stats(rows):
  """{field: (mean, 95% half-width)} over runs of one class's real or generated rows."""
  fields = ('success_rate',) + FIELDS
  return {f: interval(v) for f in fields if (v := [r[f] for r in rows if r[f] is not None])}


def cell(values, spec='.2f'):
  values = [v for v in values if v is not None]
  if not values:
    return '–'
  mean, half = interval(values)
  return format(mean, spec) if len(values) < 2 or half < 5e-3 else f'{mean:{spec}} ± {half:{spec}}'


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--runs', required=True, help='comma-separated run directories')
  args = parser.parse_args()
  runs = args.runs.split(',')
  tables = [score(run) for run in runs]
  summaries = [monitor.summary_scalars(t) for t in tables]
  classes = list(tables[0])
  per_class, lines = {}, [
      '| class | success real | success generated | ratio | latency ms real / gen | '
      'penetration freq real / gen | foot skate real / gen | jitter m/s real / gen |',
      '|---|---|---|---|---|---|---|---|'
  ]
  for name in classes:
    real = [t[name]['real'] for t in tables]
    gen = [t[name]['generated'] for t in tables]
    ratios = [g['success_rate'] / r['success_rate'] for r, g in zip(real, gen) if r['success_rate']]
    per_class[name] = {
        'real': _stats(real),
        'generated': _stats(gen),
        'ratio': interval(ratios) if ratios else None
    }
    pair = lambda f, spec: f"{cell([r[f] for r in real], spec)} / {cell([g[f] for g in gen], spec)}"
    lines.append(f"| {name} | {cell([r['success_rate'] for r in real])} | "
                 f"{cell([g['success_rate'] for g in gen])} | {cell(ratios)} | "
                 f"{pair('latency_ms', '.0f')} | {pair('penetration_frequency', '.2f')} | "
                 f"{pair('foot_skate_ratio', '.2f')} | {pair('jitter_m_s', '.2f')} |")
  emit({
      'runs': runs,
      'per_class': per_class,
      'success_ratio_mean': interval([s['success_ratio_mean'] for s in summaries]),
      'success_ratio_min': interval([s['success_ratio_min'] for s in summaries]),
      'per_run': [{
          k: v for k, v in s.items() if k.startswith('success')
      } for s in summaries],
      'markdown': '\n'.join(lines)
  })


if __name__ == '__main__':
  main()
