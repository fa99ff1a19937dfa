"""The paper's evaluation: for each seed, real actors from the train and test splits get generated
reactions; recognizer features of real vs generated pairs give FID, accuracy, diversity and
multimodality (plus KID and precision/recall); results are averaged over seeds.

Differences from the released code, on purpose: a split with fewer sequences than
eval.num_samples is evaluated on all of them (the original truncates Chi3D's 74 test sequences to
40 by its batching; eval.original_sample_counts=True reproduces that, see original_sample_count),
and the 'Real' row's FID compares two independent real draws (the original reports 0 by
construction).
"""

import json
import os

import jax
import numpy as np
from tqdm.auto import tqdm

from regennet_jax import factory
from regennet_jax import sample as sample_lib
from regennet_jax import sharding
from regennet_jax.data import pipeline
from regennet_jax.evaluation import interaction
from regennet_jax.evaluation import metrics
from regennet_jax.evaluation import monitor as monitor_lib
from regennet_jax.evaluation import recognizer as recognizer_lib

METRICS = ('fid', 'accuracy', 'diversity', 'multimodality', 'kid', 'precision', 'recall')


def original_sample_count(num_available, num_samples, batch_size):
  """How many sequences of a split the released evaluation scores (docs/architecture.md).

  Its loader drops incomplete batches and appends whole batches while (batches so far) x B <=
  num_samples, then cuts the last one to num_samples % B. NTU (1000 of 3845, B=64): 1000. Chi3D
  test (74 sequences: one batch): 40; Chi3D train: 3 x 64 + 40 = 232.
  """
  batches = min(num_available // batch_size, num_samples // batch_size + 1)
  if batches == 0:  # not one whole batch: the original scores nothing; use what there is
    return min(num_samples, num_available)
  return (batches - 1) * batch_size + num_samples % batch_size


def _draw(config, src, indices, rng):
  return pipeline.stack_windows(src, indices, pipeline.Windowing(config.data.num_frames, 'random'),
                                rng)


def _set_metrics(recog, x, labels, real_feats, num_classes, rng, e):
  logits, feats = recog(x)
  out = {
      'accuracy':
          metrics.accuracy(logits, labels),
      'fid':
          metrics.fid(real_feats, feats),
      'diversity':
          metrics.diversity(feats, rng, e.diversity_pairs),
      'multimodality':
          metrics.multimodality(feats, labels, num_classes, rng, e.multimodality_pairs),
      'kid':
          metrics.kid(real_feats, feats, rng, e.kid_subsets, e.kid_subset_size)
  }
  out['precision'], out['recall'] = metrics.precision_recall(real_feats, feats)
  return out


def evaluate(config, workdir, params, splits, progress=True):
  """The paper's protocol on `splits` (train source, test source, class names); writes
  eval_report.json and eval_report.md into `workdir` and returns the report."""
  e = config.eval
  train_src, test_src, class_names = splits
  num_classes = len(class_names)
  recog, recog_info = recognizer_lib.load_recognizer(config, workdir, num_classes)
  sampler = factory.make_sampler(config, num_classes, e.respacing, e.method)
  mesh = sharding.sampling_mesh()
  runs = {
      split: {
          'generated': {
              m: [] for m in METRICS
          },
          'real': {
              m: [] for m in METRICS
          }
      } for split in ('train', 'test')
  }
  counts = {
      split: (original_sample_count(len(src), e.num_samples, e.batch_size)
              if e.original_sample_counts else min(e.num_samples, len(src))
             ) for split, src in (('train', train_src), ('test', test_src))
  }
  for seed in tqdm(range(e.num_seeds), desc='eval seeds', disable=not progress):
    rng = np.random.default_rng(seed)
    for split, src in (('train', train_src), ('test', test_src)):
      count = counts[split]
      real = _draw(config, src, rng.permutation(len(src))[:count], rng)
      real2 = _draw(config, src, rng.permutation(len(src))[:count], rng)
      generated = sample_lib.generate(sampler, params, real['actor'], real['label'],
                                      jax.random.PRNGKey(1000 * seed + (split == 'test')), mesh,
                                      e.batch_size)
      _, real_feats = recog(recognizer_lib.pair_input(real['actor'], real['reactor']))
      gen = _set_metrics(recog, recognizer_lib.pair_input(real['actor'], generated), real['label'],
                         real_feats, num_classes, rng, e)
      gt = _set_metrics(recog, recognizer_lib.pair_input(real2['actor'], real2['reactor']),
                        real2['label'], real_feats, num_classes, rng, e)
      for m in METRICS:
        runs[split]['generated'][m].append(gen[m])
        runs[split]['real'][m].append(gt[m])
  summary = {
      split: {
          kind: {
              m: metrics.summarize(v) for m, v in vals.items()
          } for kind, vals in kinds.items()
      } for split, kinds in runs.items()
  }
  report = {
      'dataset': config.data.name,
      'num_seeds': e.num_seeds,
      'num_samples': counts,
      'sampling': f'{e.method} {e.respacing}, {config.sample.matmul_dtype} matmuls',
      'recognizer': recog_info,
      'results': summary,
      'per_class': interaction_per_class(config, workdir, params, test_src, class_names, progress)
  }
  if jax.process_index() != 0:  # every host sampled its share; the main one writes
    return report
  with open(os.path.join(workdir, 'eval_report.json'), 'w') as f:
    json.dump(report, f, indent=2)
  with open(os.path.join(workdir, 'eval_report.md'), 'w') as f:
    f.write(markdown(report))
  return report


def interaction_per_class(config, workdir, params, test_src, class_names, progress=False):
  """Interaction metrics per class (interaction.py) on the test actors' windows from frame 0, for
  each evaluation seed: {class: {'real': row, 'generated': {field: summarize over seeds}}}."""
  monitor = monitor_lib.QualityMonitor(config, workdir, test_src, class_names)
  tables = [
      monitor(params, seed=seed)[1] for seed in tqdm(
          range(config.eval.num_seeds), desc='interaction metrics', disable=not progress)
  ]
  out = {}
  for name, first in tables[0].items():
    generated = {'event': first['generated']['event'], 'count': first['generated']['count']}
    for field in interaction.SUMMARY_FIELDS:
      values = [t[name]['generated'][field] for t in tables]
      values = [v for v in values if v is not None]
      generated[field] = metrics.summarize(values) if values else None
    out[name] = {'real': first['real'], 'generated': generated}
  return out


def markdown(report):
  lines = [
      f"# Evaluation: {report['dataset']}", '',
      f"{report['num_seeds']} seeds; {report['num_samples']['train']} train-conditioned and "
      f"{report['num_samples']['test']} test-conditioned actors per seed; sampling "
      f"{report['sampling']}. Values are mean ± the paper's interval (1.96 × variance over "
      'seeds); the proper 95% confidence half-width of the mean is in eval_report.json (ci95).', '',
      '| split | reactor | FID ↓ | Acc ↑ | Div → | MM → | KID ↓ | Precision | Recall |',
      '|---|---|---|---|---|---|---|---|---|'
  ]
  for split, kinds in report['results'].items():
    for kind in ('real', 'generated'):
      r = kinds[kind]
      cell = lambda m: f"{r[m]['mean']:.3f} ± {r[m]['paper_interval']:.3f}"
      lines.append(f'| {split} | {kind} | ' + ' | '.join(cell(m) for m in METRICS) + ' |')
  if report.get('per_class'):
    means = {
        name: {
            'real': rows['real'],
            'generated': {
                k: (v['mean'] if isinstance(v, dict) else v) for k, v in rows['generated'].items()
            }
        } for name, rows in report['per_class'].items()
    }
    lines += [
        '', '## Interactions, per class', '',
        'Test actors, windows from frame 0; generated values are means over the evaluation '
        'seeds (their 95% intervals are in eval_report.json). See report.md of a training '
        'run for what each column measures.', '',
        interaction.markdown_table(means)
    ]
  return '\n'.join(lines) + '\n'
