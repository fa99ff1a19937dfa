"""What a run directory keeps: its config (config.json) and its checkpoints (Orbax).

A checkpoint holds the TrainState and the input iterator's position, so resuming reproduces the run
that was never interrupted. Restoring falls back, with one line, from a damaged newest checkpoint
to the newest intact one. Sampling, streaming and evaluation restore only the weights they use.

config.json records the settings that shape the parameters and the diffusion (model.*,
diffusion.*, data.num_frames); a later run in the same directory must agree with them.
"""

import json
import os

import jax
import orbax.checkpoint as ocp

from regennet_jax import errors

CONFIG_FILE = 'config.json'
# Sections (and fields) of config.json a run directory is tied to.
RUN_DEFINING = {'model': None, 'diffusion': None, 'data': ('num_frames',)}
# Model fields that change how the network computes, not its parameters: a run may resume with
# other values (e.g. continue a float32 run with bfloat16 matmuls).
ARITHMETIC_ONLY_MODEL_KEYS = ('dtype', 'matmul_dtype')
# Training fields that decide what a checkpoint holds (an EMA copy, a clipping state): sampling,
# streaming and evaluation take them from the run, so its checkpoints restore whatever flags the
# command line had. Training may change them between resumes only where the structure allows.
STATE_SHAPING = {'train': ('ema_decay', 'grad_clip')}
# A one-step student (distill.py) samples differently from a diffusion run: every mode must know.
SAMPLING_DEFINING = {'distill': ('teacher',)}

# ----------------------------------------------------------------------------- config.json


def read_run_config(workdir):
  """The dict in <workdir>/config.json, or None if there is none."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except ValueError as e:
    raise errors.DataError(f'{path}: not readable JSON ({e}); restore it or use a new --workdir.')


def _run_defining_items(config_dict, sections=None):
  for section, keys in (sections or RUN_DEFINING).items():
    values = config_dict.get(section, {})
    for key in (keys or values.keys()):
      if section == 'model' and key in ARITHMETIC_ONLY_MODEL_KEYS:
        continue
      if key in values:
        yield section, key, values[key]


def save_run_config(workdir, config):
  """Writes config.json, after refusing a config whose run-defining settings differ from the
  run already in `workdir` (see RUN_DEFINING)."""
  current = json.loads(config.to_json_best_effort())
  previous = read_run_config(workdir)
  if previous is not None:
    for section, key, value in _run_defining_items(previous, {**RUN_DEFINING, **SAMPLING_DEFINING}):
      if current.get(section, {}).get(key, value) != value:
        raise errors.RunError(
            f'{workdir} holds a run with {section}.{key}={value!r}, but this config has '
            f'{current[section][key]!r}. Use a new --workdir to start over.')
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + '.tmp', 'w') as f:
    json.dump(current, f, indent=2)
  os.replace(path + '.tmp', path)


def adopt_run_config(workdir, config, overridden=(), sections=None):
  """Takes the run-defining settings of the run in `workdir` into `config` (sampling, streaming
  and evaluation use the model that was trained). `overridden` names fields ('model.latent_dim')
  the user set explicitly: if one contradicts the run, that is an error naming it. sections:
  {section: fields or None} to take (default: the run-defining, state- and sampling-defining ones)."""
  previous = read_run_config(workdir)
  if previous is None:
    return config
  sections = sections or {**RUN_DEFINING, **STATE_SHAPING, **SAMPLING_DEFINING}
  for section, key, value in _run_defining_items(previous, sections):
    if key not in config[section]:
      continue
    current = config[section][key]
    if isinstance(current, tuple):
      value = tuple(value)
    if current != value and f'{section}.{key}' in overridden:
      raise errors.ConfigError(
          f'--config.{section}.{key}={current!r} contradicts the run in {workdir}, trained with '
          f'{section}.{key}={value!r}; drop the override (the trained value is used).')
    config[section][key] = value
  return config


# ----------------------------------------------------------------------------- checkpoints


def newest_step(workdir):
  """The newest checkpoint step in <workdir>/checkpoints (None if there is none)."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  if not os.path.isdir(directory):
    return None
  steps = [int(name) for name in os.listdir(directory) if name.isdigit()]
  return max(steps) if steps else None


def check_writable(directory):
  """errors.RunError now, rather than after the long work, if files cannot be written there."""
  probe = os.path.join(directory, f'.write-test-{os.getpid()}')
  try:
    os.makedirs(directory, exist_ok=True)
    with open(probe, 'w') as f:
      f.write('x' * 4096)
    os.remove(probe)
  except OSError as e:
    raise errors.RunError(f'{directory}: cannot write there ({e.strerror}); choose another '
                          '--workdir or free the disk.') from None


def make_manager(workdir, keep=3, read_only=False):
  options = ocp.CheckpointManagerOptions(max_to_keep=max(1, keep),
                                         create=not read_only,
                                         enable_async_checkpointing=not read_only)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                               options=options)


def save(manager, state, data_state):
  """Starts an (asynchronous) save of the state and the input position at state.step; a save
  that failed before (disk full, directory gone) is reported here as errors.RunError."""
  step = int(state.step)
  try:
    manager.check_for_errors()
    manager.save(step,
                 args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                         data=ocp.args.JsonSave(data_state)))
  except Exception as e:  # orbax and the file system raise many types
    raise errors.RunError(f'saving checkpoint {step} in {manager.directory} failed ({_short(e)}); '
                          'training stopped. Free the disk or fix the directory, then rerun to '
                          'resume from the last saved checkpoint.') from e


def finish(manager):
  """Waits for pending saves and closes the manager; a failed save is an errors.RunError."""
  try:
    manager.wait_until_finished()
    manager.check_for_errors()
  except Exception as e:
    raise errors.RunError(f'saving a checkpoint in {manager.directory} failed ({_short(e)}). '
                          'Free the disk or fix the directory, then rerun to resume from the '
                          'last saved checkpoint.') from e
  finally:
    manager.close()


def _short(exception):
  """One line of an Orbax/TensorStore exception (they can run to hundreds of lines)."""
  text = str(exception).strip().splitlines()
  return f'{type(exception).__name__}: {text[0][:200] if text else ""}'


def restore(manager, step, abstract_state, shardings):
  """(state, data iterator state) of checkpoint `step`; errors.RunError if it cannot be read
  into this state's structure."""
  target = jax.tree_util.tree_map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                                  abstract_state, shardings)
  path = os.path.join(manager.directory, str(step))
  try:
    restored = manager.restore(step,
                               args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                       data=ocp.args.JsonRestore()))
  except Exception as e:  # orbax raises many types for truncated/mismatched trees
    raise errors.RunError(
        f'checkpoint {path} cannot be restored into this run ({_short(e)}). It is damaged or was '
        'written with a different model/optimizer config.') from e
  return restored.state, restored.data


def restore_latest(manager, abstract_state, shardings, warn=print):
  """(state, data state, step) of the newest checkpoint that restores, or None if there is none.

  A newer checkpoint that cannot be read (a truncated file, an interrupted copy) gets one line via
  `warn` and the next older one is tried; if none can be read that is an errors.RunError.
  """
  steps = sorted(manager.all_steps(), reverse=True)
  failures = []
  for step in steps:
    try:
      state, data = restore(manager, step, abstract_state, shardings)
    except errors.RunError as e:
      failures.append(str(e))
      if step != steps[-1]:
        warn(f'warning: {e} Falling back to the previous checkpoint.')
      continue
    return state, data, step
  if failures:
    raise errors.RunError(f'no checkpoint in {manager.directory} can be restored: '
                          f'{failures[0]} Use the config it was trained with, or a new --workdir.')
  return None
