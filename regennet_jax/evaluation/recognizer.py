"""Training and using the ST-GCN recognizer on real actor+reactor pairs of a dataset."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from regennet_jax import errors
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.evaluation.stgcn import STGCN


def pair_input(actor, reactor):
  """[B, T, 56, 6] x 2 -> [B, T, 56, 12]: actor channels 0:6, reactor 6:12 (the original layout)."""
  return np.concatenate([actor, reactor], axis=-1)


def _directory(workdir):
  return os.path.join(os.path.abspath(workdir), 'recognizer')


def train_recognizer(config, workdir, splits, progress=True):
  """Trains on the train split of `splits` (train source, test source, class names), reports
  train/test accuracy, saves to <workdir>/recognizer."""
  r = config.recognizer
  train_src, test_src, class_names = splits
  windowing = pipeline.Windowing(config.data.num_frames, 'random')
  data = iter(
      pipeline.make_dataset(train_src,
                            r.batch_size,
                            windowing,
                            seed=config.seed,
                            num_threads=config.data.num_threads))
  model = STGCN(len(class_names), r.width)
  example = jnp.zeros((1, config.data.num_frames, skeleton.MOTION_ROWS, skeleton.PAIR_CHANNELS))
  variables = model.init(jax.random.PRNGKey(config.seed), example)
  tx = optax.adamw(r.learning_rate, weight_decay=r.weight_decay)
  opt_state = tx.init(variables['params'])

  @jax.jit
  def step(variables, opt_state, x, y, key):
    def loss_fn(params):
      (logits, _), updates = model.apply({
          'params': params,
          'batch_stats': variables['batch_stats']
      },
                                         x,
                                         train=True,
                                         mutable=['batch_stats'],
                                         rngs={'dropout': key})
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, (updates, jnp.mean(jnp.argmax(logits, -1) == y))

    (loss, (updates, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables['params'])
    upd, opt_state = tx.update(grads, opt_state, variables['params'])
    params = optax.apply_updates(variables['params'], upd)
    return {'params': params, 'batch_stats': updates['batch_stats']}, opt_state, loss, acc

  bar = tqdm(range(r.num_steps), desc='recognizer', disable=not progress, unit='step')
  for i in bar:
    batch = next(data)
    variables, opt_state, loss, acc = step(variables, opt_state,
                                           pair_input(batch['actor'], batch['reactor']),
                                           batch['label'], jax.random.PRNGKey(i))
    if i % 10 == 0:
      bar.set_postfix(loss=f'{float(loss):.3f}', acc=f'{float(acc):.2f}')
  directory = _directory(workdir)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, 'variables'), variables, force=True)
  checkpointer.wait_until_finished()
  recognizer = Recognizer(model, variables)
  accuracies = {}
  for split, src in (('train', train_src), ('test', test_src)):
    x, labels = real_pairs(config, src, min(len(src), 2048))
    logits, _ = recognizer(x)
    accuracies[split] = float(np.mean(np.argmax(logits, -1) == labels))
  info = {
      'num_classes': len(class_names),
      'num_frames': config.data.num_frames,
      'width': r.width,
      'steps': r.num_steps,
      'accuracy': accuracies,
      'dataset': config.data.name
  }
  with open(os.path.join(directory, 'recognizer.json'), 'w') as f:
    json.dump(info, f, indent=2)
  return {'recognizer': directory, **info}


def real_pairs(config, src, count, rng=None, crop='start'):
  """`count` real windows of `src` as recognizer input (+ labels)."""
  batch = pipeline.stack_windows(src, range(count),
                                 pipeline.Windowing(config.data.num_frames,
                                                    crop), rng or np.random.default_rng(0))
  return pair_input(batch['actor'], batch['reactor']), batch['label']


class Recognizer:
  """Callable: [N, T, 56, 12] -> (logits [N, C], features [N, 256]) in jitted batches."""
  def __init__(self, model, variables, batch_size=256):
    self.model, self.variables, self.batch_size = model, variables, batch_size
    self._apply = jax.jit(lambda v, x: model.apply(v, x, train=False))

  def __call__(self, x):
    logits, feats = [], []
    for start in range(0, len(x), self.batch_size):
      chunk = x[start:start + self.batch_size]
      n = len(chunk)
      if n < self.batch_size:  # keep one compiled shape
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, 0)])
      lo, fe = self._apply(self.variables, chunk)
      logits.append(np.asarray(lo)[:n])
      feats.append(np.asarray(fe)[:n])
    return np.concatenate(logits), np.concatenate(feats)


def load_recognizer(config, workdir, num_classes):
  directory = config.eval.recognizer_dir or _directory(workdir)
  info_path = os.path.join(directory, 'recognizer.json')
  if not os.path.exists(info_path):
    raise errors.MissingFileError(f'{directory}: no trained recognizer; run python run.py '
                                  f'--mode=train_recognizer --workdir={workdir} first (or set '
                                  'config.eval.recognizer_dir).')
  with open(info_path) as f:
    info = json.load(f)
  if info['num_classes'] != num_classes or info['num_frames'] != config.data.num_frames:
    raise errors.RunError(
        f"{info_path}: recognizer was trained for {info['num_classes']} classes and "
        f"{info['num_frames']} frames, this run has {num_classes} and "
        f'{config.data.num_frames}.')
  model = STGCN(num_classes, info.get('width', 1.0))
  abstract = jax.eval_shape(
      model.init, jax.random.PRNGKey(0),
      jnp.zeros((1, config.data.num_frames, skeleton.MOTION_ROWS, skeleton.PAIR_CHANNELS)))
  # Every host scores with its own copy, on its first local device (whoever saved it).
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
  variables = ocp.StandardCheckpointer().restore(os.path.join(directory, 'variables'), abstract)
  return Recognizer(model, variables), info
