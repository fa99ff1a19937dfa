"""One check of the whole configuration, before anything is written.

`validate(config)` raises errors.ConfigError naming the field, the value and what is allowed, for
wrong types, out-of-range numbers, unknown names of enumerated settings, and settings that
contradict each other. `validate_against_data` adds the rules that need the dataset (windows
longer than every sequence). run.py calls both before creating the run directory.
"""

import numbers

from regennet_jax import diffusion
from regennet_jax import errors

# Enumerated settings and their allowed values.
CHOICES = {
    'model.arch': ('online', 'offline'),
    'model.fusion': ('concat', 'add'),
    'model.cond_mode': ('no_cond', 'action'),
    'model.prediction': ('x0', 'preconditioned'),
    'model.center': ('zero', 'data'),
    'model.dtype': ('float32', 'bfloat16'),
    'model.matmul_dtype': ('float32', 'bfloat16'),
    'diffusion.noise_schedule': ('cosine', 'linear'),
    'losses.normalization': ('code', 'paper'),
    'data.crop': ('random', 'start'),
    'train.lr_schedule': ('constant', 'cosine'),
    'sample.method': diffusion.SAMPLING_METHODS,
    'sample.matmul_dtype': ('float32', 'bfloat16'),
    'eval.method': diffusion.SAMPLING_METHODS,
    'stream.kernels': ('auto', 'native', 'xla'),
}

# Numeric ranges: (lowest, highest, lowest included, highest included); None is unbounded.
POSITIVE = (0, None, False, False)
NON_NEGATIVE = (0, None, True, False)
AT_LEAST_ONE = (1, None, True, False)
PROBABILITY = (0, 1, True, False)  # [0, 1)
FRACTION = (0, 1, True, True)  # [0, 1]
RANGES = {
    'seed': NON_NEGATIVE,
    'data.seed': NON_NEGATIVE,
    'data.synthetic_train_size': AT_LEAST_ONE,
    'data.synthetic_test_size': AT_LEAST_ONE,
    'data.synthetic_min_frames': AT_LEAST_ONE,
    'data.synthetic_max_frames': AT_LEAST_ONE,
    'data.num_frames': AT_LEAST_ONE,
    'data.swap_prob': FRACTION,
    'data.start_prob': FRACTION,
    'data.num_threads': AT_LEAST_ONE,
    'data.prefetch': AT_LEAST_ONE,
    'data.fps': POSITIVE,
    'model.num_layers': AT_LEAST_ONE,
    'model.latent_dim': AT_LEAST_ONE,
    'model.ff_size': AT_LEAST_ONE,
    'model.num_heads': AT_LEAST_ONE,
    'model.dropout': PROBABILITY,
    'model.sigma_data': POSITIVE,
    'model.cond_mask_prob': PROBABILITY,
    'diffusion.num_timesteps': AT_LEAST_ONE,
    'diffusion.noise_correlation': PROBABILITY,
    'losses.orient': NON_NEGATIVE,
    'losses.body': NON_NEGATIVE,
    'losses.transl': NON_NEGATIVE,
    'losses.rcxyz': NON_NEGATIVE,
    'losses.world_joints': NON_NEGATIVE,
    'losses.world_vel': NON_NEGATIVE,
    'losses.vel': NON_NEGATIVE,
    'losses.fc': NON_NEGATIVE,
    'losses.fc_threshold': POSITIVE,
    'losses.min_snr_gamma': NON_NEGATIVE,
    'train.batch_size': AT_LEAST_ONE,
    'train.num_steps': AT_LEAST_ONE,
    'train.learning_rate': POSITIVE,
    'train.warmup_steps': NON_NEGATIVE,
    'train.final_lr_fraction': FRACTION,
    'train.weight_decay': NON_NEGATIVE,
    'train.grad_clip': NON_NEGATIVE,
    'train.ema_decay': PROBABILITY,
    'train.log_every': AT_LEAST_ONE,
    'train.eval_every': NON_NEGATIVE,
    'train.checkpoint_every': AT_LEAST_ONE,
    'train.keep_checkpoints': AT_LEAST_ONE,
    'train.model_parallel': AT_LEAST_ONE,
    'sample.eta': NON_NEGATIVE,
    'sample.guidance_scale': NON_NEGATIVE,
    'sample.chunk_size': NON_NEGATIVE,
    'sample.num_render': NON_NEGATIVE,
    'sample.batch_size': AT_LEAST_ONE,
    'sample.num_samples': AT_LEAST_ONE,
    'sample.num_repetitions': AT_LEAST_ONE,
    'recognizer.batch_size': AT_LEAST_ONE,
    'recognizer.width': POSITIVE,
    'recognizer.num_steps': AT_LEAST_ONE,
    'recognizer.learning_rate': POSITIVE,
    'recognizer.weight_decay': NON_NEGATIVE,
    'eval.num_seeds': AT_LEAST_ONE,
    'eval.num_samples': AT_LEAST_ONE,
    'eval.batch_size': AT_LEAST_ONE,
    'eval.diversity_pairs': AT_LEAST_ONE,
    'eval.multimodality_pairs': AT_LEAST_ONE,
    'eval.kid_subsets': AT_LEAST_ONE,
    'eval.kid_subset_size': AT_LEAST_ONE,
    'distill.guidance_scale': NON_NEGATIVE,
    'stream.batch_size': AT_LEAST_ONE,
    'stream.max_frames': AT_LEAST_ONE,
}

INTEGERS = {name for name, bounds in RANGES.items() if bounds is AT_LEAST_ONE} | {
    'seed', 'data.seed', 'train.warmup_steps', 'train.eval_every', 'sample.chunk_size',
    'sample.num_render'
}


def _get(config, name):
  node = config
  for part in name.split('.'):
    node = node[part]
  return node


def _describe(bounds):
  low, high, low_in, high_in = bounds
  if high is None:
    return f"{'>=' if low_in else '>'} {low}"
  return f"in {'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"


def _fail(name, value, allowed):
  raise errors.ConfigError(f'config.{name}={value!r}: must be {allowed}.')


def validate(config):
  """Raises errors.ConfigError for the first setting that is not allowed (see module docstring)."""
  for name, choices in CHOICES.items():
    value = _get(config, name)
    if value not in choices:
      _fail(name, value, 'one of ' + ', '.join(repr(c) for c in choices))
  for name, bounds in RANGES.items():
    value = _get(config, name)
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if name in INTEGERS and not (is_number and float(value).is_integer()):
      _fail(name, value, 'a whole number ' + _describe(bounds))
    if not is_number:
      _fail(name, value, 'a number ' + _describe(bounds))
    low, high, low_in, high_in = bounds
    if value < low or (value == low and not low_in) or (high is not None and
                                                        (value > high or
                                                         (value == high and not high_in))):
      _fail(name, value, _describe(bounds))
  _check_cross_field_rules(config)


def _check_cross_field_rules(config):
  m, d = config.model, config.data
  if m.latent_dim % m.num_heads:
    raise errors.ConfigError(f'config.model.num_heads={m.num_heads} must divide '
                             f'config.model.latent_dim={m.latent_dim}.')
  if m.cond_mask_prob > 0 and m.cond_mode != 'action':
    raise errors.ConfigError(
        f"config.model.cond_mask_prob={m.cond_mask_prob} drops action labels, but "
        f"config.model.cond_mode={m.cond_mode!r} has none; use cond_mode='action' or 0.")
  for name in ('sample.respacing', 'eval.respacing', 'diffusion.train_respacing',
               'distill.teacher_respacing'):
    try:
      diffusion.space_timesteps(config.diffusion.num_timesteps, _get(config, name))
    except errors.ConfigError as e:
      raise errors.ConfigError(f'config.{name}: {e}') from None
  if len(config.body.betas) and not config.body.smplx_model_path:
    raise errors.ConfigError('config.body.betas shape a body, which needs the SMPL-X model file: '
                             'set config.body.smplx_model_path (or drop the betas).')
  if d.name == 'synthetic' and d.synthetic_min_frames > d.synthetic_max_frames:
    raise errors.ConfigError(f'config.data.synthetic_min_frames={d.synthetic_min_frames} exceeds '
                             f'config.data.synthetic_max_frames={d.synthetic_max_frames}.')
  if d.name != 'synthetic' and not d.path and not d.dir:
    raise errors.ConfigError(
        f'config.data.dir is empty; data.name={d.name!r} is read from a data dir built by '
        f'python -m data_prep.build --dataset={d.name or "<name>"} --data_dir=<dir> (or set '
        'config.data.path to one dataset directory; see the README).')
  if config.train.model_parallel > 1 and m.latent_dim % config.train.model_parallel:
    raise errors.ConfigError(f'config.train.model_parallel={config.train.model_parallel} must '
                             f'divide config.model.latent_dim={m.latent_dim}.')


def validate_against_data(config, splits):
  """Rules that need the dataset: a window longer than every sequence would be mostly padding."""
  train_src = splits[0]
  info = getattr(train_src, 'info', None) or {}
  longest = info.get('train_max_frames') or max(
      _frames(train_src[i]) for i in range(len(train_src)))
  if config.data.num_frames > longest:
    raise errors.ConfigError(
        f'config.data.num_frames={config.data.num_frames} is longer than every training sequence '
        f'(the longest has {longest} frames); choose at most {longest}.')


def _frames(sample):
  return int(sample['actor'].shape[0])
