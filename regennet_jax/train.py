"""Training: train state, the jitted sharded step, the loop, checkpoints and logging.

One `jax.jit` step over a Mesh with axes ('data', 'model'): the batch is split over 'data'; parameters
are replicated, or for model_parallel > 1 wide kernels are split over 'model'. Checkpoints (Orbax)
hold the train state and the input iterator position, so a resumed run reproduces the run that was
never interrupted. SIGTERM / Ctrl-C save a checkpoint before exiting.
"""

import json
import os
import signal
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm.auto import tqdm

from regennet_jax import diffusion
from regennet_jax import losses
from regennet_jax import pair_frame
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.data import sources
from regennet_jax.model import Denoiser


class TrainingError(RuntimeError):
  """Training cannot continue (diverged, or a checkpoint does not fit this run)."""


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any  # {} when EMA is off


# ----------------------------------------------------------------------------- building blocks

def build_model(config, num_actions, for_sampling=False):
  """The denoiser of config.model. Sampling, streaming and evaluation (for_sampling=True) use the
  same parameters with config.sample.matmul_dtype instead of config.model.matmul_dtype."""
  m = config.model
  field = 'sample.matmul_dtype' if for_sampling else 'model.matmul_dtype'
  matmul_dtype = config.sample.matmul_dtype if for_sampling else m.matmul_dtype
  if matmul_dtype not in ('float32', 'bfloat16'):
    raise ValueError(f"{field} must be 'float32' or 'bfloat16', got {matmul_dtype!r}")
  return Denoiser(arch=m.arch, num_layers=m.num_layers, latent_dim=m.latent_dim, ff_size=m.ff_size,
                  num_heads=m.num_heads, dropout=m.dropout, fusion=m.fusion, cond_mode=m.cond_mode,
                  num_actions=max(1, num_actions), cond_mask_prob=m.cond_mask_prob,
                  dtype=jnp.dtype(m.dtype),
                  matmul_dtype=None if matmul_dtype == 'float32' else matmul_dtype,
                  actor_positions_rest=(tuple(map(tuple, build_rest_joints(config).tolist()))
                                        if m.actor_positions else None))


def build_sampler(config, num_actions, respacing=None, method=None):
  """sample(params, actor [B,T,56,6], label [B], key) -> reactor, as config.sample describes
  (respacing and method default to config.sample's; evaluation passes config.eval's)."""
  from regennet_jax import sample  # pylint: disable=g-import-not-at-top
  s = config.sample
  respacing = s.respacing if respacing is None else respacing
  method = s.method if method is None else method
  return sample.make_sampler(build_model(config, num_actions, for_sampling=True),
                             build_schedule(config, respacing), method, s.eta, s.guidance_scale,
                             s.chunk_size, actor_frame=config.model.actor_frame,
                             orthonormalize=s.orthonormalize)


def build_schedule(config, respacing=''):
  return diffusion.make_schedule(config.diffusion.noise_schedule, config.diffusion.num_timesteps,
                                 respacing)


def build_loss_weights(config):
  return losses.LossWeights(**config.losses.to_dict())


def build_rest_joints(config):
  betas = config.body.betas if len(config.body.betas) else None
  return skeleton.rest_joints_from_config(config.body.smplx_model_path, betas)


LR_SCHEDULES = ('constant', 'cosine')


def learning_rate_schedule(config):
  """step -> learning rate. Both warm up linearly over train.warmup_steps (0: the paper's constant
  rate from the first step); 'cosine' then decays along a half cosine to train.final_lr_fraction x
  the peak at train.num_steps."""
  t = config.train
  if t.lr_schedule == 'constant':
    if not t.warmup_steps:
      return optax.constant_schedule(t.learning_rate)
    return optax.linear_schedule(0.0, t.learning_rate, t.warmup_steps)
  if t.lr_schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        0.0, t.learning_rate, warmup_steps=t.warmup_steps, decay_steps=max(t.num_steps, 1),
        end_value=t.learning_rate * t.final_lr_fraction)
  raise ValueError(f'train.lr_schedule must be one of {LR_SCHEDULES}, got {t.lr_schedule!r}')


def ema_decay_at(config, step):
  """EMA decay at `step`: train.ema_decay, warmed up as min(decay, (1 + step) / (10 + step)) when
  train.ema_warmup, so that the average forgets the random initialisation within a few hundred
  steps instead of ~1 / (1 - decay)."""
  decay = config.train.ema_decay
  if not config.train.ema_warmup:
    return decay
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def build_optimizer(config):
  t = config.train
  tx = optax.adamw(learning_rate_schedule(config), b1=0.9, b2=0.999, eps=1e-8,
                   weight_decay=t.weight_decay)
  if t.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(t.grad_clip), tx)
  return tx


def make_mesh(model_parallel=1, devices=None):
  devices = np.array(jax.devices() if devices is None else devices)
  if devices.size % model_parallel:
    raise ValueError(f'train.model_parallel={model_parallel} does not divide {devices.size} devices')
  return Mesh(devices.reshape(-1, model_parallel), ('data', 'model'))


def param_sharding(mesh, params):
  """Replicated, except 2-D+ kernels whose last dim splits evenly over a 'model' axis > 1."""
  size = mesh.shape['model']

  def spec(x):
    if size > 1 and x.ndim >= 2 and x.shape[-1] % size == 0:
      return NamedSharding(mesh, P(*([None] * (x.ndim - 1)), 'model'))
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map(spec, params)


def example_batch(config, batch_size):
  n = config.data.num_frames
  motion = np.zeros((batch_size, n, 56, 6), np.float32)
  return {'actor': motion, 'reactor': motion, 'mask': np.ones((batch_size, n), bool),
          'label': np.zeros((batch_size,), np.int32)}


def init_state(config, model, tx, mesh, key):
  """A freshly initialised TrainState, laid out on `mesh`."""
  batch = example_batch(config, 1)

  def init(key):
    params = model.init(key, batch['reactor'], jnp.zeros((1,), jnp.int32), batch['actor'],
                        batch['label'])['params']
    ema = params if config.train.ema_decay else {}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      ema_params=ema)

  abstract = jax.eval_shape(init, key)
  shardings = state_sharding(mesh, abstract)
  return jax.jit(init, out_shardings=shardings)(key), shardings


def state_sharding(mesh, abstract_state):
  """Optimizer moments and EMA follow their parameter's layout; scalars are replicated."""
  by_shape = {}
  for leaf, sh in zip(jax.tree_util.tree_leaves(abstract_state.params),
                      jax.tree_util.tree_leaves(param_sharding(mesh, abstract_state.params))):
    by_shape.setdefault((leaf.shape, leaf.dtype), sh)
  return jax.tree_util.tree_map(
      lambda x: by_shape.get((x.shape, x.dtype), NamedSharding(mesh, P())), abstract_state)


def make_train_step(config, model, tx, schedule, rest_joints, weights):
  """(state, batch, key) -> (state, metrics). Non-finite losses leave the state unchanged."""
  use_ema = bool(config.train.ema_decay)
  schedule_fn = learning_rate_schedule(config)
  in_actor_frame = config.model.actor_frame

  def train_step(state, batch, key):
    key = jax.random.fold_in(key, state.step)
    loss_key, dropout_key = jax.random.split(key)
    if in_actor_frame:
      actor, reactor, _ = pair_frame.to_actor_frame(batch['actor'], batch['reactor'])
      batch = dict(batch, actor=actor, reactor=reactor)

    def loss_fn(params):
      fn = lambda x_t, t: model.apply({'params': params}, x_t, t, batch['actor'], batch['label'],
                                      train=True, rngs={'dropout': dropout_key})
      return losses.diffusion_loss(fn, schedule, batch, loss_key, rest_joints, weights)

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if use_ema:
      decay = ema_decay_at(config, state.step)
      ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
    finite = jnp.isfinite(loss)
    keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)
    new_state = TrainState(step=state.step + 1, params=keep(params, state.params),
                           opt_state=keep(opt_state, state.opt_state), ema_params=keep(ema, state.ema_params))
    metrics = {name: jnp.mean(v) for name, v in terms.items() if name != 't'}
    metrics['grad_norm'] = optax.tree.norm(grads)
    metrics['param_norm'] = optax.tree.norm(state.params)
    metrics['learning_rate'] = schedule_fn(state.step)
    return new_state, metrics

  return train_step


def shard_batch(batch, mesh):
  """Host-local numpy batch -> global jax.Array split over the 'data' axis."""
  sharding = NamedSharding(mesh, P('data'))
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_manager(workdir, config):
  options = ocp.CheckpointManagerOptions(max_to_keep=config.train.keep_checkpoints, create=True,
                                         enable_async_checkpointing=True)
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), 'checkpoints'), options=options)


def save_checkpoint(manager, state, data_state):
  manager.save(int(state.step), args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)))


def restore_checkpoint(manager, step, abstract_state, shardings):
  """Restores (state, data iterator state); a clear TrainingError if it does not fit."""
  target = jax.tree_util.tree_map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, shardings)
  path = os.path.join(manager.directory, str(step))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
  except Exception as e:  # orbax raises many types for truncated/mismatched trees
    raise TrainingError(
        f'checkpoint {path} cannot be restored into this run ({type(e).__name__}: {e}). It is '
        'corrupt or was written with a different model/optimizer config; use a new --workdir or '
        'the config it was trained with.') from e
  return restored.state, restored.data


# ----------------------------------------------------------------------------- the loop

class _StopFlag:
  """Turns SIGTERM and the first Ctrl-C into a request to checkpoint and stop."""

  def __init__(self):
    self.requested = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not in the main thread
        pass
    return self

  def _handle(self, signum, frame):
    if self.requested is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # second Ctrl-C: stop right now
    self.requested = signal.Signals(signum).name

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False


# Model fields that change how the network computes, not its parameters: a run may resume with
# other values (e.g. continue a float32 run with bfloat16 matmuls).
ARITHMETIC_ONLY_MODEL_KEYS = ('dtype', 'matmul_dtype')


def write_config(workdir, config):
  """Writes config.json; on resume refuses a config whose model/diffusion differ."""
  path = os.path.join(workdir, 'config.json')
  current = json.loads(config.to_json_best_effort())
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    for section in ('model', 'diffusion', 'data'):
      keys = ('num_frames',) if section == 'data' else current[section].keys()
      for key in keys:
        if section == 'model' and key in ARITHMETIC_ONLY_MODEL_KEYS:
          continue
        if key not in previous.get(section, {}):  # written by an older version without the field
          continue
        if previous.get(section, {}).get(key) != current[section][key]:
          raise TrainingError(
              f'{workdir} holds a run with {section}.{key}={previous.get(section, {}).get(key)!r}, '
              f'but this config has {current[section][key]!r}. Use a new --workdir to start over.')
  with open(path + '.tmp', 'w') as f:
    json.dump(current, f, indent=2)
  os.replace(path + '.tmp', path)


class MetricsLog:
  """Scalars to metrics.jsonl and (process 0) TensorBoard event files.

  `resume_step` is the checkpoint training continues from: records of later steps (logged before a
  hard kill, and about to be redone) are dropped, so each step appears once in either log.
  """

  def __init__(self, workdir, enabled=True, resume_step=0):
    self.enabled = enabled
    self.tb = None
    if enabled:
      from tensorboardX import SummaryWriter
      self.tb = SummaryWriter(os.path.join(workdir, 'tensorboard'), purge_step=resume_step + 1)
      path = os.path.join(workdir, 'metrics.jsonl')
      _drop_records_after(path, resume_step)
      self.file = open(path, 'a')

  def write(self, step, scalars):
    """Scalars named 'eval/...' go under that TensorBoard tag; the others under 'train/'."""
    if not self.enabled:
      return
    for k, v in scalars.items():
      self.tb.add_scalar(k if k.startswith('eval/') else f'train/{k}', v, step)
    self.file.write(json.dumps({'step': step, **scalars}) + '\n')
    self.file.flush()

  def close(self):
    if self.enabled:
      self.tb.close()
      self.file.close()


def _drop_records_after(path, step):
  """Rewrites the jsonl file at `path` without records whose 'step' is beyond `step`."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)['step'] <= step:
        kept.append(line if line.endswith('\n') else line + '\n')
    except (ValueError, KeyError, TypeError):
      pass  # a line cut short by the kill
  if len(kept) != len(lines):
    with open(path + '.tmp', 'w') as f:
      f.writelines(kept)
    os.replace(path + '.tmp', path)


def _evaluate(monitor, state, config, is_main):
  """The monitor's scalars for the weights sampling uses (EMA when on), on the main process."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  params = state.ema_params if config.train.ema_decay else state.params
  if jax.process_count() > 1:  # every host joins the gather; the main one samples
    params = multihost_utils.process_allgather(params, tiled=True)
  if not is_main:
    return None
  scalars, _, _ = monitor(params)
  return scalars


def train(config: ml_collections.ConfigDict, workdir: str, devices=None, progress=True):
  """Trains (or resumes) in `workdir`; returns the final TrainState and a summary dict."""
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0
  if is_main:
    write_config(workdir, config)
  train_src, _, class_names = sources.load_splits(config.data)
  mesh = make_mesh(config.train.model_parallel, devices)
  data_size = mesh.shape['data']
  num_hosts = jax.process_count()
  if config.train.batch_size % (data_size) or config.train.batch_size % num_hosts:
    raise ValueError(f'train.batch_size={config.train.batch_size} must divide evenly over '
                     f'{data_size} data-parallel devices and {num_hosts} hosts.')
  windowing = pipeline.Windowing(config.data.num_frames, config.data.crop, config.data.swap_prob)
  dataset = pipeline.make_dataset(
      train_src, config.train.batch_size // num_hosts, windowing, seed=config.seed,
      shard_index=jax.process_index(), shard_count=num_hosts,
      num_threads=config.data.num_threads, prefetch=config.data.prefetch)
  data_iter = iter(dataset)

  model = build_model(config, len(class_names))
  tx = build_optimizer(config)
  schedule = build_schedule(config)
  rest = build_rest_joints(config)
  weights = build_loss_weights(config)
  root_key = jax.random.PRNGKey(config.seed)
  init_key, step_key = jax.random.split(root_key)
  state, shardings = init_state(config, model, tx, mesh, init_key)

  manager = checkpoint_manager(workdir, config)
  start = manager.latest_step()
  if start is not None:
    state, data_state = restore_checkpoint(manager, start, state, shardings)
    if data_state:  # imported checkpoints have no input position: fine-tuning starts the data anew
      data_iter.set_state(data_state)
    if is_main:
      print(f'Resumed from {manager.directory}/{start}')

  batch_sharding = NamedSharding(mesh, P('data'))
  step_fn = jax.jit(make_train_step(config, model, tx, schedule, rest, weights),
                    in_shardings=(shardings, batch_sharding, NamedSharding(mesh, P())),
                    out_shardings=(shardings, NamedSharding(mesh, P())), donate_argnums=(0,))
  log = MetricsLog(workdir, enabled=is_main, resume_step=int(state.step))
  num_steps = config.train.num_steps
  step = int(state.step)
  summary = {'start_step': step, 'stopped_by': None}
  monitor = None
  if config.train.eval_every:
    from regennet_jax.evaluation import monitor as monitor_lib  # pylint: disable=g-import-not-at-top
    _, test_src, class_names = sources.load_splits(config.data)
    monitor = monitor_lib.QualityMonitor(config, workdir, test_src, class_names)
  train_seconds = 0.0  # wall time in training steps (evaluation excluded), this process
  window, t0 = [], time.time()
  bar = tqdm(total=num_steps, initial=step, disable=not (progress and is_main), unit='step',
             dynamic_ncols=True, desc='train')
  try:
    with _StopFlag() as stop:
      while step < num_steps:
        batch = shard_batch(next(data_iter), mesh)
        state, metrics = step_fn(state, batch, step_key)
        metrics = jax.device_get(metrics)
        if not np.isfinite(metrics['loss']):
          raise TrainingError(
              f'loss became {metrics["loss"]} at step {step + 1} (terms: '
              + ', '.join(f'{k}={float(v):.4g}' for k, v in metrics.items()) + '). Stopped '
              f'without saving; the last good checkpoint is step {manager.latest_step()}. Lower '
              'train.learning_rate or set train.grad_clip, then rerun to resume from it.')
        step += 1
        window.append({k: float(v) for k, v in metrics.items()})
        bar.update(1)
        bar.set_postfix(loss=f"{window[-1]['loss']:.4f}")
        if step % config.train.log_every == 0 or step == num_steps:
          scalars = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
          scalars['steps_per_sec'] = len(window) / (time.time() - t0)
          train_seconds += time.time() - t0
          scalars['train_seconds'] = train_seconds
          log.write(step, scalars)
          if is_main and progress:
            tqdm.write(f'step {step}: ' + ' '.join(f'{k}={v:.4g}' for k, v in scalars.items()))
          summary['last_metrics'] = scalars
          window, t0 = [], time.time()
        if monitor is not None and (step % config.train.eval_every == 0 or step == num_steps):
          t_eval = time.time()
          evaluation = _evaluate(monitor, state, config, is_main)
          if evaluation is not None:
            evaluation['train_seconds'] = train_seconds + (t_eval - t0)
            log.write(step, {f'eval/{k}': v for k, v in evaluation.items()})
            if progress:
              tqdm.write(f'step {step} eval: ' + ' '.join(
                  f'{k}={v:.3g}' for k, v in evaluation.items() if '/' not in k))
            summary['last_eval'] = evaluation
          t0 += time.time() - t_eval  # evaluation is not training time
        if step % config.train.checkpoint_every == 0 or step == num_steps or stop.requested:
          save_checkpoint(manager, state, data_iter.get_state())
        if stop.requested:
          summary['stopped_by'] = stop.requested
          if is_main:
            tqdm.write(f'{stop.requested}: saved checkpoint at step {step}; rerun the same command '
                       'to resume.')
          break
  finally:
    bar.close()
    manager.wait_until_finished()
    manager.close()
    log.close()
  summary['final_step'] = step
  return state, summary
