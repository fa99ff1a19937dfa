"""The training loop: data -> jitted steps -> logs, periodic quality checks and checkpoints.

Resumes from the newest intact checkpoint of the run directory (with the input pipeline where it
was), logs to metrics.jsonl and TensorBoard, scores test reactions every train.eval_every steps,
saves every train.checkpoint_every steps and at the end, and on SIGTERM / Ctrl-C saves and stops
(preemption.py). A step whose loss is not finite stops the run with the last good checkpoint.
What a step does is train_step.py; how the pieces are built, factory.py.
"""

import os
import time

import jax
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from regennet_jax import checkpoints
from regennet_jax import errors
from regennet_jax import factory
from regennet_jax import metrics_log
from regennet_jax import preemption
from regennet_jax import sharding
from regennet_jax.data import pipeline
from regennet_jax.data import sources


def _evaluate(monitor, state, is_main):
  """The monitor's scalars for the weights sampling uses: every host samples its share of the
  test actors (a collective); the main one reports."""
  scalars, _, _ = monitor(state.sampling_params())
  return scalars if is_main else None


def train(config: ml_collections.ConfigDict,
          workdir: str,
          splits=None,
          devices=None,
          progress=True):
  """Trains (or resumes) in `workdir`; returns the final TrainState and a summary dict.

  splits: (train source, test source, class names) if already loaded (default: config.data).
  """
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0
  train_src, test_src, class_names = splits or sources.load_splits(config.data)
  factory.fill_reactor_mean(config, workdir, train_src)
  if is_main:
    checkpoints.save_run_config(workdir, config)
  setup = factory.make_training(config, len(class_names), devices)
  data_size, num_hosts = setup.mesh.shape['data'], jax.process_count()
  if config.train.batch_size % data_size or config.train.batch_size % num_hosts:
    raise errors.ConfigError(f'train.batch_size={config.train.batch_size} must divide evenly over '
                             f'{data_size} data-parallel devices and {num_hosts} hosts.')
  windowing = pipeline.Windowing(config.data.num_frames, config.data.crop, config.data.swap_prob,
                                 config.data.start_prob)
  data_iter = iter(
      pipeline.make_dataset(train_src,
                            config.train.batch_size // num_hosts,
                            windowing,
                            seed=config.seed,
                            shard_index=jax.process_index(),
                            shard_count=num_hosts,
                            num_threads=config.data.num_threads,
                            prefetch=config.data.prefetch))
  step_key = jax.random.split(jax.random.PRNGKey(config.seed))[1]

  manager = checkpoints.make_manager(workdir, config.train.keep_checkpoints)
  state = setup.state
  restored = checkpoints.restore_latest(manager,
                                        state,
                                        setup.state_shardings,
                                        warn=print if is_main else (lambda _: None))
  if restored is not None:
    state, data_state, start = restored
    if data_state:  # imported checkpoints have no input position: fine-tuning starts the data anew
      data_iter.set_state(data_state)
    if is_main:
      print(f'Resumed from {manager.directory}/{start}')

  log = metrics_log.MetricsLog(workdir, enabled=is_main, resume_step=int(state.step))
  num_steps = config.train.num_steps
  step = int(state.step)
  summary = {'start_step': step, 'stopped_by': None}
  monitor = None
  if config.train.eval_every:
    from regennet_jax.evaluation import monitor as monitor_lib  # pylint: disable=g-import-not-at-top
    monitor = monitor_lib.QualityMonitor(config, workdir, test_src, class_names)
  train_seconds = 0.0  # wall time in training steps (evaluation excluded), this process
  window, pending, t0 = [], [], time.time()
  bar = tqdm(total=num_steps,
             initial=step,
             disable=not (progress and is_main),
             unit='step',
             dynamic_ncols=True,
             desc='train')
  try:
    with preemption.StopFlag() as stop:
      while step < num_steps:
        batch = sharding.shard_batch(next(data_iter), setup.mesh)
        state, metrics = setup.step(state, batch, step_key)
        step += 1
        pending.append(metrics)  # left on the device: fetching every step would stall dispatch
        bar.update(1)
        stopping = stop.agreed()  # the same answer on every host, at this step
        log_now = step % config.train.log_every == 0 or step == num_steps or stopping
        save_now = step % config.train.checkpoint_every == 0 or step == num_steps or stopping
        eval_now = monitor is not None and (step % config.train.eval_every == 0 or
                                            step == num_steps)
        if log_now or save_now or eval_now:
          rows = jax.device_get(pending)
          first = step - len(rows) + 1
          pending = []
          for offset, row in enumerate(rows):
            if not np.isfinite(row['loss']):
              raise errors.RunError(
                  f'loss became {row["loss"]} at step {first + offset} (terms: ' +
                  ', '.join(f'{k}={float(v):.4g}' for k, v in row.items()) + '). Stopped '
                  f'without saving; the last good checkpoint is step {manager.latest_step()}. '
                  'Lower train.learning_rate or set train.grad_clip, then rerun to resume from it.')
          window += [{k: float(v) for k, v in row.items()} for row in rows]
          bar.set_postfix(loss=f"{window[-1]['loss']:.4f}")
        if log_now:
          scalars = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
          scalars['steps_per_sec'] = len(window) / (time.time() - t0)
          train_seconds += time.time() - t0
          scalars['train_seconds'] = train_seconds
          log.write(step, scalars)
          if is_main and progress:
            tqdm.write(f'step {step}: ' + ' '.join(f'{k}={v:.4g}' for k, v in scalars.items()))
          summary['last_metrics'] = scalars
          window, t0 = [], time.time()
        if eval_now:
          t_eval = time.time()
          evaluation = _evaluate(monitor, state, is_main)
          if evaluation is not None:
            evaluation['train_seconds'] = train_seconds + (t_eval - t0)
            log.write(step, {f'eval/{k}': v for k, v in evaluation.items()})
            if progress:
              tqdm.write(f'step {step} eval: ' +
                         ' '.join(f'{k}={v:.3g}' for k, v in evaluation.items() if '/' not in k))
            summary['last_eval'] = evaluation
          t0 += time.time() - t_eval  # evaluation is not training time
        if save_now:
          checkpoints.save(manager, state, data_iter.get_state())
        if stopping:
          summary['stopped_by'] = stopping
          if is_main:
            tqdm.write(f'{stopping}: saved checkpoint at step {step}; rerun the same command '
                       'to resume.')
          break
  except BaseException:
    bar.close()
    log.close()
    try:
      checkpoints.finish(manager)
    except errors.RunError:
      pass  # the error already on its way says more
    raise
  bar.close()
  log.close()
  checkpoints.finish(manager)
  summary['final_step'] = step
  return state, summary
