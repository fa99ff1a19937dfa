"""What `run.py` modes do, end to end: train -> sample test reactions -> render -> report."""

import json
import os

import jax
from jax.experimental import multihost_utils
import numpy as np

from regennet_jax import render
from regennet_jax import sample
from regennet_jax import train as train_lib
from regennet_jax.body.skeleton import BodyModelError
from regennet_jax.data import pipeline
from regennet_jax.data import sources
from regennet_jax.data.records import DatasetFormatError
from regennet_jax.evaluation import protocol
from regennet_jax.evaluation import recognizer as recognizer_lib

# Errors caused by the user's config, data or files: reported as one clear line, no traceback
# (set REGENNET_DEBUG=1 to see it).
USER_ERRORS = () if os.environ.get('REGENNET_DEBUG') else (
    train_lib.TrainingError, DatasetFormatError, BodyModelError, ValueError, FileNotFoundError,
    FileExistsError)


def windows_from_test_split(config, test_src, count):
  """The first `count` test sequences as fixed windows (from frame 0), stacked."""
  indices = range(min(count, len(test_src)))
  batch = pipeline.stack_windows(test_src, indices,
                                 pipeline.Windowing(config.data.num_frames, crop='start'),
                                 np.random.default_rng(0))
  return batch, [str(test_src[i].get('name', i)) for i in indices]


def _sample_test_set(config, workdir, params, count, repetitions=1, progress=False):
  _, test_src, class_names = sources.load_splits(config.data)
  model = train_lib.build_model(config, len(class_names), for_sampling=True)
  schedule = train_lib.build_schedule(config, config.sample.respacing)
  sampler = sample.make_sampler(model, schedule, config.sample.method, config.sample.eta,
                                config.sample.guidance_scale, config.sample.chunk_size)
  batch, names = windows_from_test_split(config, test_src, count)
  mesh = train_lib.make_mesh(1, jax.local_devices())  # sampling is one host's job
  generated = sample.generate(sampler, params, batch['actor'], batch['label'],
                              jax.random.PRNGKey(config.seed), mesh, config.sample.batch_size,
                              repetitions, progress)
  out_dir = os.path.join(workdir, 'samples')
  os.makedirs(out_dir, exist_ok=True)
  npz = sample.save_npz(os.path.join(out_dir, 'test_reactions.npz'), batch['actor'], generated,
                        batch['label'], class_names, real_reactor=batch['reactor'], names=names)
  return batch, generated, class_names, npz


def _interaction_stats(config, batch, generated):
  """Simple, label-free sanity numbers: how far the reactor stands from the actor, how much it moves."""
  rest = train_lib.build_rest_joints(config)

  def stats(reactor):
    a = render.world_joints(batch['actor'], rest)
    r = render.world_joints(reactor, rest)
    mask = batch['mask']
    root_dist = np.linalg.norm(a[:, :, 0] - r[:, :, 0], axis=-1)
    speed = np.linalg.norm(np.diff(r, axis=1), axis=-1).mean(-1) * config.data.fps
    return {'actor_reactor_root_distance_m': float(root_dist[mask].mean()),
            'reactor_joint_speed_m_per_s': float(speed[mask[:, 1:]].mean())}

  return {'real': stats(batch['reactor']), 'generated': stats(generated)}


def train_and_report(config, workdir):
  state, summary = train_lib.train(config, workdir)
  # Every host joins the gather (a collective); then only host 0 samples and reports.
  params = multihost_utils.process_allgather(
      state.ema_params if config.train.ema_decay else state.params, tiled=True)
  result = {'workdir': os.path.abspath(workdir), 'steps': summary['final_step'],
            'stopped_by': summary['stopped_by'], 'last_metrics': summary.get('last_metrics')}
  if summary['stopped_by'] or jax.process_index() != 0:
    return result
  count = max(config.sample.num_render, min(config.sample.batch_size, 64))
  batch, generated, class_names, npz = _sample_test_set(config, workdir, params, count)
  gifs = []
  rest = train_lib.build_rest_joints(config)
  for i in range(min(config.sample.num_render, len(generated))):
    action = class_names[int(batch['label'][i])]
    path = os.path.join(workdir, 'samples', f'test_{i:02d}_{action}.gif')
    render.animate({'actor': render.world_joints(batch['actor'][i], rest),
                    'reactor': render.world_joints(generated[i], rest),
                    'real reactor': render.world_joints(batch['reactor'][i], rest)},
                   path, title=action, fps=config.data.fps)
    gifs.append(path)
  result.update(samples=npz, animations=gifs, interaction=_interaction_stats(config, batch, generated))
  _write_report(workdir, config, result)
  result['report'] = os.path.join(os.path.abspath(workdir), 'report.md')
  return result


def _write_report(workdir, config, result):
  m = result['last_metrics'] or {}
  lines = [
      f"# regennet_jax run: {os.path.basename(os.path.abspath(workdir))}", '',
      f"Trained {result['steps']} steps on `{config.data.name}` "
      f"({config.model.arch}, {config.model.num_layers} layers x {config.model.latent_dim}).", '',
      '| final training metric | value |', '|---|---|',
      *[f'| {k} | {v:.4g} |' for k, v in m.items()], '',
      f"Samples ({config.sample.method}, {config.sample.respacing}): `samples/test_reactions.npz`", '',
      '| reactor | actor-reactor root distance (m) | joint speed (m/s) |', '|---|---|---|',
      *[f"| {k} | {v['actor_reactor_root_distance_m']:.3f} | {v['reactor_joint_speed_m_per_s']:.3f} |"
        for k, v in result['interaction'].items()], '',
      'Animations (blue actor, red generated reactor, grey real reactor):', '',
      *[f'![{os.path.basename(g)}](samples/{os.path.basename(g)})' for g in result['animations']], '',
  ]
  with open(os.path.join(workdir, 'report.md'), 'w') as f:
    f.write('\n'.join(lines))
  with open(os.path.join(workdir, 'report.json'), 'w') as f:
    json.dump(result, f, indent=2)


def load_params(config, workdir):
  """(params, step, class names) of the latest checkpoint in workdir (EMA weights if trained)."""
  manager = train_lib.checkpoint_manager(workdir, config)
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'{os.path.abspath(workdir)}/checkpoints holds no checkpoint; train first '
                            f'(python run.py --workdir={workdir}).')
  _, _, class_names = sources.load_splits(config.data)
  model = train_lib.build_model(config, len(class_names))
  tx = train_lib.build_optimizer(config)
  mesh = train_lib.make_mesh(1, jax.local_devices())
  state, shardings = train_lib.init_state(config, model, tx, mesh, jax.random.PRNGKey(0))
  state, _ = train_lib.restore_checkpoint(manager, step, state, shardings)
  manager.close()
  return (state.ema_params if config.train.ema_decay else state.params), step, class_names


def sample_from_checkpoint(config, workdir):
  params, step, _ = load_params(config, workdir)
  _, generated, _, npz = _sample_test_set(config, workdir, params, config.sample.num_samples,
                                          config.sample.num_repetitions, progress=True)
  return {'checkpoint_step': step, 'samples': npz, 'shape': list(generated.shape),
          'matmul_dtype': config.sample.matmul_dtype}


def stream_from_checkpoint(config, workdir):
  """Streams test actors frame by frame; reports per-frame latency and agreement with the batch
  sampler on the same actors and key."""
  from regennet_jax import streaming
  params, step, class_names = load_params(config, workdir)
  _, test_src, _ = sources.load_splits(config.data)
  batch, _ = windows_from_test_split(config, test_src, config.stream.batch_size)
  model = train_lib.build_model(config, len(class_names), for_sampling=True)
  schedule = train_lib.build_schedule(config, config.sample.respacing)
  key = jax.random.PRNGKey(config.seed)
  frames = batch['actor'].shape[1]
  stream = streaming.ReactionStream(
      model, params, schedule, key, batch_size=len(batch['actor']),
      max_frames=max(frames, config.stream.max_frames), method=config.sample.method,
      eta=config.sample.eta, guidance_scale=config.sample.guidance_scale, label=batch['label'])
  streamed = np.stack([stream.push(batch['actor'][:, f]) for f in range(frames)], axis=1)
  sampler = sample.make_sampler(model, schedule, config.sample.method, config.sample.eta,
                                config.sample.guidance_scale, config.sample.chunk_size)
  whole = np.asarray(jax.jit(sampler)(params, batch['actor'], batch['label'], key))
  result = {'checkpoint_step': step, 'streams': len(batch['actor']), 'frames': frames,
            'denoising_steps': int(schedule.num_steps), 'method': config.sample.method,
            'latency': stream.latency_report(),
            'max_abs_difference_to_whole_sequence_sampler': float(np.abs(streamed - whole).max())}
  with open(os.path.join(workdir, 'stream_report.json'), 'w') as f:
    json.dump(result, f, indent=2)
  return result


def train_recognizer(config, workdir):
  os.makedirs(workdir, exist_ok=True)
  return recognizer_lib.train_recognizer(config, workdir)


def evaluate(config, workdir):
  params, step, _ = load_params(config, workdir)
  report = protocol.evaluate(config, workdir, params)
  return {'checkpoint_step': step, 'report': os.path.join(os.path.abspath(workdir), 'eval_report.md'),
          'results': {split: {kind: {m: round(v['mean'], 4) for m, v in r.items()}
                              for kind, r in kinds.items()}
                      for split, kinds in report['results'].items()}}
