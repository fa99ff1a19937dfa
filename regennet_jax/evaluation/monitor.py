"""Quality of the generated reactions, measured on the test split while training and after it.

`QualityMonitor` generates reactions for the test actors (windows from each sequence's first
frame) with the evaluation sampler and scores them against the real reactions of the same actors:
the interaction metrics of `interaction.py` per class (needing no learned model) and, when an
ST-GCN recognizer has been trained for the dataset (--mode=train_recognizer), FID and accuracy of
the generated pairs against the real ones. Training calls it every `train.eval_every` steps, so
the curves in metrics.jsonl / TensorBoard show quality against steps and training time.
"""

import jax
import numpy as np

from regennet_jax import errors
from regennet_jax import factory
from regennet_jax import render
from regennet_jax import sample as sample_lib
from regennet_jax import sharding
from regennet_jax.data import pipeline
from regennet_jax.evaluation import interaction
from regennet_jax.evaluation import metrics as metrics_lib
from regennet_jax.evaluation import recognizer as recognizer_lib


def test_windows(config, test_src, count):
  """The first `count` test sequences as windows from frame 0, stacked, and their names."""
  indices = range(min(count, len(test_src)))
  return _first_frame_windows(config, test_src, indices), [_name(test_src, i) for i in indices]


def _first_frame_windows(config, source, indices):
  return pipeline.stack_windows(source, indices,
                                pipeline.Windowing(config.data.num_frames, crop='start'),
                                np.random.default_rng(0))


def _name(source, i):
  return str(source[i].get('name', i))


class QualityMonitor:
  """Callable: params -> (scalars for the metrics log, per-class table, generated motions)."""
  def __init__(self,
               config,
               workdir,
               test_src,
               class_names,
               count=None,
               respacing=None,
               method=None):
    """Scores min(count, split size) test actors (count defaults to eval.num_samples), sampling
    with `respacing` and `method` (default: eval.respacing and eval.method, the paper's
    evaluation sampler)."""
    self.config = config
    self.class_names = list(class_names)
    count = config.eval.num_samples if count is None else count
    self.batch, self.names = test_windows(config, test_src, count)
    self.rest = factory.make_rest_joints(config)
    self.lengths = self.batch['mask'].sum(1)
    self.actor_joints = render.world_joints(self.batch['actor'], self.rest)
    self.real_joints = render.world_joints(self.batch['reactor'], self.rest)
    self.real_rows = interaction.per_class(self.actor_joints, self.real_joints, self.batch['label'],
                                           self.class_names, config.data.fps, self.lengths)
    self.sampling = (config.eval.respacing if respacing is None else respacing,
                     config.eval.method if method is None else method)
    self.sampler = factory.make_sampler(config, len(class_names), *self.sampling)
    self.mesh = sharding.sampling_mesh()
    self.recognizer = None
    try:
      self.recognizer, _ = recognizer_lib.load_recognizer(config, workdir, len(class_names))
    except errors.MissingFileError:
      pass
    if self.recognizer is not None:
      real = recognizer_lib.pair_input(self.batch['actor'], self.batch['reactor'])
      _, self.real_features = self.recognizer(real)

  def generate(self, params, seed=0):
    return sample_lib.generate(self.sampler, params, self.batch['actor'], self.batch['label'],
                               jax.random.PRNGKey(seed), self.mesh, self.config.eval.batch_size)

  def __call__(self, params, seed=0):
    generated = self.generate(params, seed)
    scalars, table = self.score(generated)
    return scalars, table, generated

  def score(self, generated):
    """(scalars, per-class table) of reactions [N, T, 56, 6] to this monitor's test actors."""
    gen_joints = render.world_joints(generated, self.rest)
    gen_rows = interaction.per_class(self.actor_joints, gen_joints, self.batch['label'],
                                     self.class_names, self.config.data.fps, self.lengths)
    table = interaction.side_by_side(self.real_rows, gen_rows)
    scalars = summary_scalars(table)
    if self.recognizer is not None:
      logits, feats = self.recognizer(recognizer_lib.pair_input(self.batch['actor'], generated))
      scalars['fid'] = metrics_lib.fid(self.real_features, feats)
      scalars['accuracy'] = metrics_lib.accuracy(logits, self.batch['label'])
    return scalars, table


def score_saved_reactions(config, path, test_src=None, class_names=None):
  """The per-class table (as report.json's) of reactions saved by `sample.save_npz`, e.g. a run's
  samples/test_reactions.npz: rescores a run's own samples with the current interaction metrics,
  without its model. With K reactions per actor, the first is scored.

  Files written before the window lengths and class names were saved need the test split and the
  class names they were drawn from (`sources.load_splits`)."""
  with np.load(path) as saved:
    data = {k: saved[k] for k in saved.files}
  if 'real_reactor' not in data:
    raise errors.DataError(f'{path}: no real_reactor field, nothing to score against')
  if 'length' not in data or 'class_names' not in data:
    if test_src is None or class_names is None:
      raise errors.DataError(f'{path} has no window lengths or class names (an older file): '
                             'pass the test split and class names it was sampled from')
    index = {_name(test_src, i): i for i in range(len(test_src))}
    missing = [str(name) for name in data['name'] if str(name) not in index]
    if missing:
      raise errors.DataError(f'{path}: {len(missing)} of its sequences are not in the test split '
                             f'given (e.g. {missing[0]!r})')
    batch = _first_frame_windows(config, test_src, [index[str(name)] for name in data['name']])
    data['length'], data['class_names'] = batch['mask'].sum(1), np.array(class_names)
  rest = factory.make_rest_joints(config)
  generated = data['reactor'] if data['reactor'].ndim == 4 else data['reactor'][:, 0]
  actor, real, gen = (
      render.world_joints(m, rest) for m in (data['actor'], data['real_reactor'], generated))
  return interaction.compare(actor, real, gen, data['label'], [str(c) for c in data['class_names']],
                             float(data['fps']), data['length'])


def summary_scalars(table):
  """A few numbers that summarise a per-class table (generated vs real) for curves."""
  classes = [name for name in table if name != 'all' and table[name]['real']['event']]
  out = {}
  ratios = []
  for name in classes:
    real, gen = table[name]['real']['success_rate'], table[name]['generated']['success_rate']
    out[f'success/{name}'] = gen
    if real:
      ratios.append(gen / real)
  if ratios:
    out['success_ratio_min'] = float(min(ratios))  # the worst class, generated / real
    out['success_ratio_mean'] = float(np.mean(ratios))
  both = table['all']
  for field in ('latency_ms', 'penetration_frequency', 'foot_skate_ratio', 'jitter_m_s'):
    if both['generated'][field] is not None:
      out[field] = both['generated'][field]
  return out
