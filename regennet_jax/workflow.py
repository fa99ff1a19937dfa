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
from regennet_jax.data import sources
from regennet_jax.data.records import DatasetFormatError
from regennet_jax.evaluation import interaction
from regennet_jax.evaluation import monitor as monitor_lib
from regennet_jax.evaluation import protocol
from regennet_jax.evaluation import recognizer as recognizer_lib

# Errors caused by the user's config, data or files: reported as one clear line, no traceback
# (set REGENNET_DEBUG=1 to see it).
USER_ERRORS = () if os.environ.get('REGENNET_DEBUG') else (
    train_lib.TrainingError, DatasetFormatError, BodyModelError, ValueError, FileNotFoundError,
    FileExistsError)


def _sample_test_set(config, workdir, params, count, repetitions=1, progress=False):
  _, test_src, class_names = sources.load_splits(config.data)
  sampler = train_lib.build_sampler(config, len(class_names))
  batch, names = monitor_lib.test_windows(config, test_src, count)
  mesh = train_lib.make_mesh(1, jax.local_devices())  # sampling is one host's job
  generated = sample.generate(sampler, params, batch['actor'], batch['label'],
                              jax.random.PRNGKey(config.seed), mesh, config.sample.batch_size,
                              repetitions, progress)
  out_dir = os.path.join(workdir, 'samples')
  os.makedirs(out_dir, exist_ok=True)
  npz = sample.save_npz(os.path.join(out_dir, 'test_reactions.npz'), batch['actor'], generated,
                        batch['label'], class_names, real_reactor=batch['reactor'], names=names)
  return batch, generated, class_names, npz


def train_and_report(config, workdir):
  state, summary = train_lib.train(config, workdir)
  # Every host joins the gather (a collective); then only host 0 samples and reports.
  params = multihost_utils.process_allgather(
      state.ema_params if config.train.ema_decay else state.params, tiled=True)
  result = {'workdir': os.path.abspath(workdir), 'steps': summary['final_step'],
            'stopped_by': summary['stopped_by'], 'last_metrics': summary.get('last_metrics')}
  if summary['stopped_by'] or jax.process_index() != 0:
    return result
  result.update(report(config, workdir, params))
  return result


def report(config, workdir, params):
  """Samples every test actor, scores the reactions against the real ones per class, renders
  GIFs and a contact sheet, and writes samples/test_reactions.npz, report.md and report.json."""
  _, test_src, class_names = sources.load_splits(config.data)
  monitor = monitor_lib.QualityMonitor(config, workdir, test_src, class_names,
                                       count=max(config.eval.num_samples, config.sample.num_render),
                                       respacing=config.sample.respacing,
                                       method=config.sample.method)
  scalars, table, generated = monitor(params, seed=config.seed)
  batch, rest = monitor.batch, monitor.rest
  out_dir = os.path.join(workdir, 'samples')
  os.makedirs(out_dir, exist_ok=True)
  npz = sample.save_npz(os.path.join(out_dir, 'test_reactions.npz'), batch['actor'], generated,
                        batch['label'], class_names, real_reactor=batch['reactor'],
                        names=monitor.names)
  # One example per class, in class order: GIFs for the first num_render, a sheet for all.
  firsts = [int(np.flatnonzero(batch['label'] == c)[0]) for c in range(len(class_names))
            if (batch['label'] == c).any()]
  people = lambda i: {'actor': monitor.actor_joints[i, :monitor.lengths[i]],
                      'reactor': render.world_joints(generated[i], rest)[:monitor.lengths[i]],
                      'real reactor': monitor.real_joints[i, :monitor.lengths[i]]}
  gifs = []
  for i in firsts[:config.sample.num_render]:
    action = class_names[int(batch['label'][i])]
    path = os.path.join(out_dir, f'test_{i:03d}_{action}.gif')
    render.animate(people(i), path, title=action, fps=config.data.fps)
    gifs.append(path)
  sheet = render.contact_sheet([(class_names[int(batch['label'][i])], people(i)) for i in firsts],
                               os.path.join(out_dir, 'contact_sheet.png'), num_frames=6)
  result = {'samples': npz, 'animations': gifs, 'contact_sheet': sheet,
            'sampling': f'{config.sample.method} {config.sample.respacing}',
            'quality': scalars, 'per_class': table}
  _write_report(workdir, config, result)
  result['report'] = os.path.join(os.path.abspath(workdir), 'report.md')
  return result


def _write_report(workdir, config, result):
  m = result.get('last_metrics') or _last_training_metrics(workdir)
  q = result['quality']
  recognizer = ''
  if 'fid' in q:
    recognizer = (f"Against the real reactions of the same actors (ST-GCN recognizer in "
                  f"`recognizer/`): FID {q['fid']:.3f}, accuracy {q['accuracy']:.3f}.\n")
  lines = [
      f"# regennet_jax run: {os.path.basename(os.path.abspath(workdir))}", '',
      f"`{config.data.name}`, {config.model.arch} model {config.model.num_layers} layers x "
      f"{config.model.latent_dim}.", '',
      '## Interactions, per class', '',
      f"Every test actor ({result['per_class']['all']['real']['count']}, windows from frame 0) "
      f"gets a generated reaction ({result['sampling']}); the real reactor of the same actor is "
      'the reference. success: the class\'s physical event happens (hands meet, arms close '
      'around the other body, the pushed body moves back, the punched head leaves the fist\'s '
      'path, the wave is answered, the approached body backs away); latency: how long after the '
      'actor starts moving the reactor does (> 0: it reacts, never anticipates); penetration: '
      'share of frames and mean volume where the bodies overlap by more than 1 cm; foot skate: '
      'share of frames where a planted foot slides.', '',
      interaction.markdown_table(result['per_class']), recognizer,
      '## Generated vs real', '',
      'Blue actor, red generated reactor, grey real reactor; a gold dot marks hands touching.', '',
      f"![contact sheet](samples/{os.path.basename(result['contact_sheet'])})", '',
      *[f'![{os.path.basename(g)}](samples/{os.path.basename(g)})' for g in result['animations']],
      '', '## Training', '',
      '| final training metric | value |', '|---|---|',
      *[f'| {k} | {v:.4g} |' for k, v in m.items()], '',
  ]
  with open(os.path.join(workdir, 'report.md'), 'w') as f:
    f.write('\n'.join(lines))
  with open(os.path.join(workdir, 'report.json'), 'w') as f:
    json.dump({k: v for k, v in result.items() if k != 'report'}, f, indent=2)


def _last_training_metrics(workdir):
  """The last training record of metrics.jsonl ({} if there is none)."""
  path = os.path.join(workdir, 'metrics.jsonl')
  last = {}
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except ValueError:
          continue
        if 'loss' in record:
          last = {k: v for k, v in record.items() if k != 'step'}
  return last


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
  batch, _ = monitor_lib.test_windows(config, test_src, config.stream.batch_size)
  model = train_lib.build_model(config, len(class_names), for_sampling=True)
  schedule = train_lib.build_schedule(config, config.sample.respacing)
  key = jax.random.PRNGKey(config.seed)
  frames = batch['actor'].shape[1]
  stream = streaming.ReactionStream(
      model, params, schedule, key, batch_size=len(batch['actor']),
      max_frames=max(frames, config.stream.max_frames), method=config.sample.method,
      eta=config.sample.eta, guidance_scale=config.sample.guidance_scale, label=batch['label'],
      actor_frame=config.model.actor_frame)
  streamed = np.stack([stream.push(batch['actor'][:, f]) for f in range(frames)], axis=1)
  sampler = train_lib.build_sampler(config, len(class_names))
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
