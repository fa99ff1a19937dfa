"""Official ReGenNet checkpoint (model*.pt) -> a regennet_jax run directory.

  python -m data_prep.import_checkpoint --checkpoint=model000147680.pt \\
      --config=configs/ntu120.py --workdir=runs/ntu120_official
  python run.py --config=configs/ntu120.py --workdir=runs/ntu120_official --mode=sample
  # the released ST-GCN evaluator, for --mode=eval:
  python -m data_prep.import_checkpoint --recognizer=ntu_smplx/checkpoint_0100.pth.tar \
      --config=configs/ntu120.py --workdir=runs/ntu120_official

The model settings (online/offline, layers, width, fusion, action labels) are read from the weights
and written into the run's config.json; the command prints any --config.model.* overrides that
run.py needs when they differ from the config file. Reading .pt files needs PyTorch
(pip install torch==2.13.0, the CPU build).
"""

import argparse
import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from data_prep import common
from regennet_jax import checkpoint_import
from regennet_jax import checkpoints
from regennet_jax import errors
from regennet_jax import factory
from regennet_jax import sharding


def load_config(path):
  spec = importlib.util.spec_from_file_location('imported_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def read_state_dict(path):
  try:
    import torch
  except ImportError:
    raise errors.DataError('reading a PyTorch checkpoint needs torch: '
                           'pip install torch==2.13.0') from None
  try:
    obj = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pickle / zip errors from truncated or foreign files
    raise errors.DataError(f'{path}: not a readable PyTorch checkpoint ({e}).') from None
  if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise errors.DataError(f'{path}: expected a state_dict, got {type(obj).__name__}.')
  return {k: v.numpy() for k, v in obj.items() if hasattr(v, 'numpy')}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawTextHelpFormatter)
  parser.add_argument('--checkpoint', help='ReGenNet model*.pt')
  parser.add_argument('--recognizer', help='ST-GCN evaluator checkpoint_*.pth.tar')
  parser.add_argument('--config', required=True, help='config file the model will be used with')
  parser.add_argument('--workdir', required=True)
  args = parser.parse_args(argv)
  if not (args.checkpoint or args.recognizer):
    parser.error('give --checkpoint and/or --recognizer')
  for path in (args.checkpoint, args.recognizer):
    if path and not os.path.exists(path):
      raise errors.MissingFileError(f'{path}: no such file.')
  config = load_config(args.config)
  summary = {'workdir': os.path.abspath(args.workdir)}
  if args.recognizer:
    summary['recognizer'] = import_recognizer(args.recognizer, config, args.workdir)
  if args.checkpoint:
    summary.update(import_model(args.checkpoint, config, args.workdir))
  return summary


def import_recognizer(path, config, workdir):
  import json
  import orbax.checkpoint as ocp
  try:
    variables, info = checkpoint_import.convert_stgcn_state_dict(read_state_dict(path))
  except errors.DataError as e:
    raise errors.DataError(f'{path}: {e}') from None
  directory = os.path.join(os.path.abspath(workdir), 'recognizer')
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.join(directory, 'variables'),
                    jax.tree_util.tree_map(jnp.asarray, variables),
                    force=True)
  checkpointer.wait_until_finished()
  info = {
      **info, 'num_frames': config.data.num_frames,
      'dataset': config.data.name,
      'source': os.path.abspath(path)
  }
  with open(os.path.join(directory, 'recognizer.json'), 'w') as f:
    json.dump(info, f, indent=2)
  return info


def _check_fit(checkpoint, expected, imported):
  """Names the first parameter whose presence or shape differs between the two trees."""
  want = {
      jax.tree_util.keystr(p): np.shape(v) for p, v in jax.tree_util.tree_leaves_with_path(expected)
  }
  got = {
      jax.tree_util.keystr(p): np.shape(v) for p, v in jax.tree_util.tree_leaves_with_path(imported)
  }
  for key in sorted(set(want) | set(got)):
    if key not in got:
      raise errors.DataError(f'{checkpoint}: the model built from the config has parameter {key} '
                             f'{want[key]}, which the checkpoint does not provide.')
    if key not in want:
      raise errors.DataError(f'{checkpoint}: parameter {key} {got[key]} has no place in the model '
                             'built from the config.')
    if want[key] != got[key]:
      raise errors.DataError(f'{checkpoint}: parameter {key} has shape {got[key]}, the model built '
                             f'from the config expects {want[key]}.')


def import_model(checkpoint, config, workdir):
  try:
    params, arch = checkpoint_import.convert_state_dict(read_state_dict(checkpoint))
  except errors.DataError as e:
    raise errors.DataError(f'{checkpoint}: {e}') from None
  overrides = {}
  # The released models see the world frame and the actor's rotations only, and output x0
  # itself, not about a mean (model.py).
  architecture = ('arch', 'num_layers', 'latent_dim', 'ff_size', 'num_heads', 'fusion', 'cond_mode')
  implied = {k: arch[k] for k in architecture}
  implied.update(actor_frame=False, actor_positions=False, prediction='x0', center='zero')
  for key, value in implied.items():
    if config.model[key] != value:
      overrides[f'--config.model.{key}'] = value
      config.model[key] = value
  match = re.search(r'(\d+)\.pt$', checkpoint)
  step = int(match.group(1)) if match else 0
  model = factory.make_model(config, arch['num_actions'])
  tx = factory.make_optimizer(config)
  mesh = sharding.make_mesh(1, jax.local_devices()[:1])
  state, _ = factory.make_train_state(config, model, tx, mesh, jax.random.PRNGKey(0))
  _check_fit(checkpoint, state.params, params)
  for path, value in jax.tree_util.tree_leaves_with_path(params):
    if not np.all(np.isfinite(value)):
      raise errors.DataError(f'{checkpoint}: parameter {jax.tree_util.keystr(path)} contains '
                             'NaN or Inf.')
  newest = checkpoints.newest_step(workdir)
  if newest is not None and newest >= step:
    raise errors.OutputExistsError(
        f'{workdir} already has checkpoint step {newest}, not older than the imported step '
        f'{step}; sampling would use step {newest}, not these weights. Import into a new '
        '--workdir.')
  state = state.replace(step=jnp.asarray(step, jnp.int32),
                        params=jax.tree_util.tree_map(jnp.asarray, params),
                        opt_state=tx.init(params),
                        ema_params=params if config.train.ema_decay else {})
  os.makedirs(workdir, exist_ok=True)
  checkpoints.save_run_config(workdir, config)
  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  checkpoints.save(manager, state, {})
  checkpoints.finish(manager)
  return {
      'step': step,
      'architecture': arch,
      'run_py_overrides': ' '.join(f'{k}={v}' for k, v in overrides.items())
  }


if __name__ == '__main__':
  common.main_wrapper(main)
