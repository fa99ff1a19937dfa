"""Everything built from a config, in one place: the model, the diffusion schedule, the sampler,
the loss weights, the optimizer and the whole training setup.

Run modes, evaluation, checkpoint import, tests and benchmarks all build through these functions,
so a setting means the same thing everywhere.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from regennet_jax import checkpoints
from regennet_jax import diffusion
from regennet_jax import distill
from regennet_jax import errors
from regennet_jax import losses
from regennet_jax import pair_frame
from regennet_jax import sample
from regennet_jax import sharding
from regennet_jax import train_step as train_step_lib
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.model import Denoiser

MATMUL_DTYPES = ('float32', 'bfloat16')
LR_SCHEDULES = ('constant', 'cosine')


def make_rest_joints(config):
  """[55, 3] rest skeleton: the SMPL-X model file of body.smplx_model_path, else the built-in."""
  betas = config.body.betas if len(config.body.betas) else None
  return skeleton.rest_joints_from_config(config.body.smplx_model_path, betas)


def make_model(config, num_actions, for_sampling=False):
  """The denoiser of config.model. Sampling, streaming and evaluation (for_sampling=True) use the
  same parameters with config.sample.matmul_dtype instead of config.model.matmul_dtype."""
  m = config.model
  field = 'sample.matmul_dtype' if for_sampling else 'model.matmul_dtype'
  matmul_dtype = config.sample.matmul_dtype if for_sampling else m.matmul_dtype
  if matmul_dtype not in MATMUL_DTYPES:
    raise errors.ConfigError(f'{field} must be one of {MATMUL_DTYPES}, got {matmul_dtype!r}')
  rest = tuple(map(tuple, make_rest_joints(config).tolist())) if m.actor_positions else None
  alphas_cumprod = None
  if m.prediction == 'preconditioned':  # abar at the original timesteps the network sees
    alphas_cumprod = tuple(np.asarray(make_schedule(config).alphas_cumprod).tolist())
  return Denoiser(arch=m.arch,
                  num_layers=m.num_layers,
                  latent_dim=m.latent_dim,
                  ff_size=m.ff_size,
                  num_heads=m.num_heads,
                  dropout=m.dropout,
                  fusion=m.fusion,
                  use_pos_emb=m.use_pos_emb,
                  cond_mode=m.cond_mode,
                  num_actions=max(1, num_actions),
                  cond_mask_prob=m.cond_mask_prob,
                  dtype=jnp.dtype(m.dtype),
                  matmul_dtype=None if matmul_dtype == 'float32' else matmul_dtype,
                  actor_positions_rest=rest,
                  prediction=m.prediction,
                  sigma_data=m.sigma_data,
                  reactor_mean=_reactor_mean_of(m),
                  alphas_cumprod=alphas_cumprod)


def _centred_on_data(m):
  return m.center == 'data'


def _reactor_mean_of(m):
  if not _centred_on_data(m):
    return ()
  if not m.reactor_mean:
    raise errors.ConfigError(
        "model.center='data' but model.reactor_mean is empty: training fills it from the training "
        'reactors (factory.fill_reactor_mean) and saves it in the run\'s config.json, which '
        'sampling, streaming and evaluation read; give --workdir of a trained run.')
  return tuple(float(v) for v in m.reactor_mean)


def for_parameter_shapes(config):
  """`config`, or for model.center='data' without model.reactor_mean a copy with a zero mean: the
  parameters (their shapes, their cost) do not depend on the mean, so restoring or timing a
  model needs no trained run's value. Never for sampling: its outputs do depend on it."""
  if not _centred_on_data(config.model) or config.model.reactor_mean:
    return config
  config = config.copy_and_resolve_references()
  config.model.reactor_mean = (0.0,) * (skeleton.MOTION_ROWS * skeleton.MOTION_CHANNELS)
  return config


def reactor_mean(config, train_src, count=1024):
  """The mean per feature of the training reactors as the denoiser sees them (in the actor's frame
  when model.actor_frame): flat [56 * 6] floats, over the first `count` training sequences'
  windows from frame 0. Deterministic, so every host computes the same."""
  windowing = pipeline.Windowing(config.data.num_frames, crop='start')
  batch = pipeline.stack_windows(train_src, range(min(count, len(train_src))), windowing,
                                 np.random.default_rng(0))
  actor, reactor = jnp.asarray(batch['actor']), jnp.asarray(batch['reactor'])
  if config.model.actor_frame:
    # One compiled program: op by op it was some 60 small compilations at every start.
    _, reactor, _ = jax.jit(pair_frame.to_actor_frame)(actor, reactor)
  valid = np.asarray(reactor)[np.asarray(batch['mask'], bool)]  # [frames, 56, 6]
  return tuple(float(v) for v in valid.mean(0).reshape(-1))


def fill_reactor_mean(config, workdir, train_src):
  """Sets model.reactor_mean for model.center='data' before training: the run's stored value
  when it resumes (config.json), else computed from `train_src`."""
  m = config.model
  if not _centred_on_data(m) or m.reactor_mean:
    return
  stored = (checkpoints.read_run_config(workdir) or {}).get('model', {}).get('reactor_mean')
  m.reactor_mean = tuple(stored) if stored else reactor_mean(config, train_src)


def make_schedule(config, respacing=''):
  """The diffusion chain of config.diffusion, respaced as `respacing` ('' keeps every step)."""
  return diffusion.make_schedule(config.diffusion.noise_schedule, config.diffusion.num_timesteps,
                                 respacing, config.diffusion.noise_correlation)


def make_sampler(config, num_actions, respacing=None, method=None):
  """sample(params, actor [B,T,56,6], label [B], key) -> reactor, as config.sample describes
  (respacing and method default to config.sample's; evaluation passes config.eval's)."""
  s = config.sample
  respacing = s.respacing if respacing is None else respacing
  method = s.method if method is None else method
  return sample.make_sampler(make_model(config, num_actions, for_sampling=True),
                             make_schedule(config, respacing),
                             method,
                             s.eta,
                             s.guidance_scale,
                             s.chunk_size,
                             actor_frame=config.model.actor_frame,
                             orthonormalize=s.orthonormalize)


def make_loss_weights(config):
  return losses.LossWeights(**config.losses.to_dict())


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
    return optax.warmup_cosine_decay_schedule(0.0,
                                              t.learning_rate,
                                              warmup_steps=t.warmup_steps,
                                              decay_steps=max(t.num_steps, 1),
                                              end_value=t.learning_rate * t.final_lr_fraction)
  raise errors.ConfigError(
      f'train.lr_schedule must be one of {LR_SCHEDULES}, got {t.lr_schedule!r}')


def make_optimizer(config):
  """AdamW (the paper's Adam when weight_decay is 0), optionally after global-norm clipping."""
  t = config.train
  tx = optax.adamw(learning_rate_schedule(config),
                   b1=0.9,
                   b2=0.999,
                   eps=1e-8,
                   weight_decay=t.weight_decay)
  if t.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(t.grad_clip), tx)
  return tx


def dummy_batch(config, batch_size):
  """A batch of zeros with the pipeline's structure (data/pipeline.py), for shapes."""
  n = config.data.num_frames
  motion = np.zeros((batch_size, n, skeleton.MOTION_ROWS, skeleton.MOTION_CHANNELS), np.float32)
  return {
      'actor': motion,
      'reactor': motion,
      'mask': np.ones((batch_size, n), bool),
      'label': np.zeros((batch_size,), np.int32)
  }


def make_train_state(config, model, tx, mesh, key, params=None):
  """(a TrainState laid out on `mesh`, its shardings): freshly initialised, or starting from
  `params` (a student starts from its teacher's weights)."""
  batch = dummy_batch(config, 1)

  def from_params(params):
    ema = params if config.train.ema_decay else {}
    return train_step_lib.TrainState(step=jnp.zeros((), jnp.int32),
                                     params=params,
                                     opt_state=tx.init(params),
                                     ema_params=ema)

  def init(key):
    return from_params(
        model.init(key, batch['reactor'], jnp.zeros((1,), jnp.int32), batch['actor'],
                   batch['label'])['params'])

  shardings = sharding.state_sharding(mesh, jax.eval_shape(init, key))
  if params is not None:
    return jax.jit(from_params, out_shardings=shardings)(params), shardings
  return jax.jit(init, out_shardings=shardings)(key), shardings


@dataclasses.dataclass
class Training:
  """A training setup: the model, optimizer and mesh, a fresh state and the jitted step
  (state, batch, key) -> (state, metrics), whose state argument is donated."""
  model: Denoiser
  optimizer: optax.GradientTransformation
  mesh: jax.sharding.Mesh
  state: train_step_lib.TrainState
  state_shardings: object
  step: object


def make_training(config, num_actions, devices=None, key=None):
  """Everything a training step needs, built from `config` on `devices` (default: all). With
  distill.teacher set, a one-step student of that run (distill.py) starting from its weights."""
  model = make_model(config, num_actions)
  tx = make_optimizer(config)
  mesh = sharding.make_mesh(config.train.model_parallel, devices)
  key = jax.random.split(jax.random.PRNGKey(config.seed))[0] if key is None else key
  replicated = sharding.replicated(mesh)
  teacher = None
  if distill.is_student(config):
    teacher_config = distill.teacher_config(config)
    teacher, _ = load_sampling_params(teacher_config, config.distill.teacher, num_actions)
  state, shardings = make_train_state(config, model, tx, mesh, key, teacher)
  args = (make_rest_joints(config), make_loss_weights(config), learning_rate_schedule(config))
  in_shardings = (shardings, sharding.batch_sharding(mesh), replicated)
  if teacher is None:
    step = train_step_lib.make_train_step(config, model, tx,
                                          make_schedule(config, config.diffusion.train_respacing),
                                          *args)
  else:
    d = config.distill
    chain = sample.make_sampler(make_model(teacher_config, num_actions, for_sampling=True),
                                make_schedule(config, d.teacher_respacing),
                                'ddim',
                                eta=0.0,
                                guidance_scale=d.guidance_scale,
                                chunk_size=config.sample.chunk_size)
    student_respacing = distill.STUDENT_SAMPLING['sample.respacing']
    student_t = int(make_schedule(config, student_respacing).timestep_map[-1])
    step = train_step_lib.make_distill_step(config, model, tx, chain, student_t, *args)
    in_shardings += (shardings.params,)
  step = jax.jit(step,
                 in_shardings=in_shardings,
                 out_shardings=(shardings, replicated),
                 donate_argnums=(0,))
  if teacher is not None:
    teacher = jax.jit(lambda p: p, out_shardings=shardings.params)(teacher)
    step = functools.partial(_with_teacher, step, teacher)
  return Training(model, tx, mesh, state, shardings, step)


def _with_teacher(distill_step, teacher_params, state, batch, key):
  return distill_step(state, batch, key, teacher_params)


def load_sampling_params(config, workdir, num_actions, warn=print):
  """(the weights sampling uses, the checkpoint step) from the newest intact checkpoint of the
  run in `workdir`, on this host's devices."""
  directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
  if not os.path.isdir(directory) or not os.listdir(directory):
    raise errors.MissingFileError(
        f'{directory} holds no checkpoint; train first (python run.py --workdir={workdir}).')
  manager = checkpoints.make_manager(workdir, read_only=True)
  try:
    config = for_parameter_shapes(config)
    model = make_model(config, num_actions)
    tx = make_optimizer(config)
    state, shardings = make_train_state(config, model, tx, sharding.sampling_mesh(),
                                        jax.random.PRNGKey(0))
    state, _, step = checkpoints.restore_latest(manager, state, shardings, warn)
  finally:
    manager.close()
  return state.sampling_params(), step
