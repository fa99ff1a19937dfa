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
  batch = pipeline.stack_windows(test_src, indices,
                                 pipeline.Windowing(config.data.num_frames, crop='start'),
                                 np.random.default_rng(0))
  return batch, [str(test_src[i].get('name', i)) for i in indices]


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
    gen_joints = render.world_joints(generated, self.rest)
    gen_rows = interaction.per_class(self.actor_joints, gen_joints, self.batch['label'],
                                     self.class_names, self.config.data.fps, self.lengths)
    table = {
        name: {
            'real': self.real_rows[name],
            'generated': gen_rows[name]
        } for name in self.real_rows
    }
    scalars = summary_scalars(table)
    if self.recognizer is not None:
      logits, feats = self.recognizer(recognizer_lib.pair_input(self.batch['actor'], generated))
      scalars['fid'] = metrics_lib.fid(self.real_features, feats)
      scalars['accuracy'] = metrics_lib.accuracy(logits, self.batch['label'])
    return scalars, table, generated


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
