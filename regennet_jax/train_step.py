"""One optimisation step: the train state, the jitted update and the EMA of the weights.

(state, batch, key) -> (state, metrics): noise the reactor at a random diffusion step, predict it
back with the denoiser, weigh the loss terms (losses.py), update with the optimizer, average the
weights. A step whose loss is not finite leaves the state unchanged, so the loop can stop with the
last good state. make_distill_step is the same update for a one-step student (distill.py): its loss
compares one pass from noise with the teacher's chain from that noise.
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from regennet_jax import losses
from regennet_jax import pair_frame


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  ema_params: Any  # {} when EMA is off

  def sampling_params(self):
    """The weights sampling and evaluation use: the EMA when training keeps one."""
    return self.ema_params if self.ema_params else self.params


def ema_decay_at(config, step):
  """EMA decay at `step`: train.ema_decay, warmed up as min(decay, (1 + step) / (10 + step)) when
  train.ema_warmup, so that the average forgets the random initialisation within a few hundred
  steps instead of ~1 / (1 - decay)."""
  decay = config.train.ema_decay
  if not config.train.ema_warmup:
    return decay
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def make_train_step(config, model, tx, schedule, rest_joints, weights, learning_rate=None):
  """(state, batch, key) -> (state, metrics); batch as data/pipeline.py makes it.

  learning_rate: step -> rate, only to log it.
  """
  in_actor_frame = config.model.actor_frame

  def train_step(state, batch, key):
    key = jax.random.fold_in(key, state.step)
    loss_key, dropout_key = jax.random.split(key)
    batch = _maybe_in_actor_frame(batch, in_actor_frame)

    def loss_fn(params):
      fn = lambda x_t, t: model.apply({'params': params},
                                      x_t,
                                      t,
                                      batch['actor'],
                                      batch['label'],
                                      train=True,
                                      rngs={'dropout': dropout_key})
      return losses.diffusion_loss(fn, schedule, batch, loss_key, rest_joints, weights)

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return _apply_gradients(config, tx, state, loss, terms, grads, learning_rate)

  return train_step


def make_distill_step(config,
                      model,
                      tx,
                      teacher_chain,
                      student_timestep,
                      rest_joints,
                      weights,
                      learning_rate=None):
  """(state, batch, key, teacher_params) -> (state, metrics): one step of a one-step student
  (distill.py, losses.distillation_loss).

  teacher_chain: (teacher_params, actor, label, key, x_init) -> reaction, the teacher's
    deterministic chain (sample.make_sampler without the actor frame: the batch is already in it).
  student_timestep: the timestep the student's single pass is told (the last of the chain, T - 1).
  The student runs without dropout and always sees the label: it learns the teacher's (guided)
  reaction for every input.
  """
  in_actor_frame = config.model.actor_frame

  def distill_step(state, batch, key, teacher_params):
    key = jax.random.fold_in(key, state.step)
    noise_key, chain_key = jax.random.split(key)
    batch = _maybe_in_actor_frame(batch, in_actor_frame)
    actor, label = batch['actor'], batch['label']
    t = jnp.full((actor.shape[0],), student_timestep, jnp.int32)
    teacher = lambda x_T: teacher_chain(teacher_params, actor, label, chain_key, x_init=x_T)

    def loss_fn(params):
      student = lambda x_T: model.apply({'params': params}, x_T, t, actor, label)
      return losses.distillation_loss(student, teacher, batch, noise_key, rest_joints, weights,
                                      config.diffusion.noise_correlation)

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return _apply_gradients(config, tx, state, loss, terms, grads, learning_rate)

  return distill_step


def _maybe_in_actor_frame(batch, in_actor_frame):
  if not in_actor_frame:
    return batch
  actor, reactor, _ = pair_frame.to_actor_frame(batch['actor'], batch['reactor'])
  return dict(batch, actor=actor, reactor=reactor)


def _apply_gradients(config, tx, state, loss, terms, grads, learning_rate):
  """The optimizer update and the EMA; a step whose loss is not finite keeps the old state.
  Returns (state, metrics: the mean of each [B] term, grad and param norms, learning rate)."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if config.train.ema_decay:
    decay = ema_decay_at(config, state.step)
    ema = jax.tree_util.tree_map(lambda e, p: decay * e + (1 - decay) * p, ema, params)
  finite = jnp.isfinite(loss)
  keep = lambda new, old: jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)
  new_state = TrainState(step=state.step + 1,
                         params=keep(params, state.params),
                         opt_state=keep(opt_state, state.opt_state),
                         ema_params=keep(ema, state.ema_params))
  metrics = {name: jnp.mean(v) for name, v in terms.items() if name != 't'}
  metrics['grad_norm'] = optax.tree.norm(grads)
  metrics['param_norm'] = optax.tree.norm(state.params)
  if learning_rate is not None:
    metrics['learning_rate'] = learning_rate(state.step)
  return new_state, metrics
