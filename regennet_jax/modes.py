"""What run.py's modes do once training (train.py) is done or a run directory exists: the report
after training, sampling, streaming, training the recognizer and the paper's evaluation.

Every mode loads the dataset once and takes the weights sampling uses (the EMA when training kept
one) from the newest intact checkpoint; files are written by the main process only.
"""

import functools
import json
import os

import jax
import numpy as np

from regennet_jax import allocator
from regennet_jax import export
from regennet_jax import factory
from regennet_jax import metrics_log
from regennet_jax import render
from regennet_jax import sample
from regennet_jax import sharding
from regennet_jax import streaming
from regennet_jax.body import mesh
from regennet_jax.evaluation import interaction
from regennet_jax.evaluation import monitor as monitor_lib
from regennet_jax.evaluation import protocol
from regennet_jax.evaluation import recognizer as recognizer_lib


def _is_main():
  return jax.process_index() == 0


def _sampling(config):
  """How the report's and run.py's reactions are sampled: 'ddim ddim5'."""
  return f'{config.sample.method} {config.sample.respacing}'


def after_training(config, workdir, state, summary, splits):
  """run.py's train mode, after train.train: the report on the trained weights (every host
  samples its share; the main one writes), unless training was interrupted or train.report is
  False."""
  result = {
      'workdir': os.path.abspath(workdir),
      'steps': summary['final_step'],
      'stopped_by': summary['stopped_by'],
      'last_metrics': summary.get('last_metrics'),
      'sampling': _sampling(config),
      'malloc': allocator.active(),  # steps_per_sec depends on it on CPU
  }
  if summary['stopped_by'] or not config.train.report:
    return result
  result.update(report(config, workdir, state.sampling_params(), splits))
  return result


def write_outputs(config, workdir, batch, generated, names, class_names, sheet_rows=4):
  """Everything made of generated reactions, in <workdir>/samples: test_reactions.npz (all of
  them, with the fps), smplx/ (one AMASS-convention SMPL-X file per reaction and person), GIF and
  MP4 animations of the first `sample.num_render` classes' first actors, and contact sheets (one
  PNG for all classes with sheet_rows=1, else one per class with up to sheet_rows actors).

  batch: test windows (actor, reactor, label, mask [N, ...]); generated [N, T, 56, 6] or
  [N, K, T, 56, 6]."""
  rest = factory.make_rest_joints(config)
  fps = config.data.fps
  out_dir = os.path.join(workdir, 'samples')
  os.makedirs(out_dir, exist_ok=True)
  npz = sample.save_npz(os.path.join(out_dir, 'test_reactions.npz'),
                        batch['actor'],
                        generated,
                        batch['label'],
                        class_names,
                        real_reactor=batch['reactor'],
                        names=names,
                        fps=fps,
                        lengths=batch['mask'].sum(1))
  betas = tuple(config.body.betas) or None
  smplx_files = export.export_reactions(os.path.join(out_dir, 'smplx'), batch['actor'], generated,
                                        batch['label'], class_names, fps, rest, names, betas)
  first_reaction = generated if generated.ndim == batch['actor'].ndim else generated[:, 0]
  lengths = batch['mask'].sum(1)
  # Memoized: the first actor of a class is drawn in its animation and again in the sheet.
  people = functools.cache(
      lambda i: {
          'actor': render.world_joints(batch['actor'][i], rest)[:lengths[i]],
          'reactor': render.world_joints(first_reaction[i], rest)[:lengths[i]],
          'real reactor': render.world_joints(batch['reactor'][i], rest)[:lengths[i]]
      })
  # With an SMPL-X model file the people are drawn as body meshes, else as skeletons.
  body = None
  if config.body.smplx_model_path:
    body = mesh.SmplxMesh.load(config.body.smplx_model_path, betas)
  meshes = functools.cache(lambda i: {} if body is None else {
      'actor': (body.pose(batch['actor'][i][:lengths[i]]), body.faces),
      'reactor': (body.pose(first_reaction[i][:lengths[i]]), body.faces)
  })
  by_class = {c: np.flatnonzero(batch['label'] == c) for c in range(len(class_names))}
  by_class = {c: rows for c, rows in by_class.items() if len(rows)}
  videos = []
  for c, rows in list(by_class.items())[:config.sample.num_render]:
    stem = os.path.join(out_dir, f'test_{rows[0]:03d}_{class_names[c]}')
    paths = [stem + '.gif'] + ([stem + '.mp4'] if render.mp4_encoder() else [])
    videos += render.animate(people(rows[0]),
                             paths,
                             title=class_names[c],
                             fps=fps,
                             meshes=meshes(rows[0]))
  if sheet_rows == 1:
    chosen = [(class_names[c], rows[0]) for c, rows in by_class.items()]
    sheets = [
        render.contact_sheet([(title, people(i)) for title, i in chosen],
                             os.path.join(out_dir, 'contact_sheet.png'),
                             num_frames=6,
                             meshes=[meshes(i) for _, i in chosen])
    ]
  else:
    sheets = [
        render.contact_sheet([(f'{class_names[c]} #{i}', people(i))
                              for i in rows[:sheet_rows]],
                             os.path.join(out_dir, f'contact_sheet_{class_names[c]}.png'),
                             num_frames=6,
                             meshes=[meshes(i)
                                     for i in rows[:sheet_rows]])
        for c, rows in by_class.items()
    ]
  return {
      'samples': npz,
      'smplx_files': len(smplx_files),
      'smplx_dir': os.path.join(out_dir, 'smplx'),
      'animations': [v for v in videos if v.endswith('.gif')],
      'videos': [v for v in videos if v.endswith('.mp4')],
      'contact_sheets': sheets,
      'contact_sheet': sheets[0],
      'drawn_as': 'skeletons' if body is None else 'SMPL-X meshes'
  }


def report(config, workdir, params, splits):
  """Samples every test actor, scores the reactions against the real ones per class, renders
  GIFs and a contact sheet, and writes samples/test_reactions.npz, report.md and report.json."""
  _, test_src, class_names = splits
  monitor = monitor_lib.QualityMonitor(config,
                                       workdir,
                                       test_src,
                                       class_names,
                                       count=max(config.eval.num_samples, config.sample.num_render),
                                       respacing=config.sample.respacing,
                                       method=config.sample.method)
  scalars, table, generated = monitor(params, seed=config.seed)
  if not _is_main():
    return {}
  outputs = write_outputs(config,
                          workdir,
                          monitor.batch,
                          generated,
                          monitor.names,
                          class_names,
                          sheet_rows=1)
  result = {**outputs, 'sampling': _sampling(config), 'quality': scalars, 'per_class': table}
  _write_report(workdir, config, result)
  result['report'] = os.path.join(os.path.abspath(workdir), 'report.md')
  return result


def _write_report(workdir, config, result):
  m = result.get('last_metrics') or metrics_log.last_training_metrics(workdir)
  q = result['quality']
  recognizer = ''
  if 'fid' in q:
    recognizer = (f"Against the real reactions of the same actors (ST-GCN recognizer in "
                  f"`recognizer/`): FID {q['fid']:.3f}, accuracy {q['accuracy']:.3f}.\n")
  lines = [
      f"# regennet_jax run: {os.path.basename(os.path.abspath(workdir))}", '',
      f"`{config.data.name}`, {config.model.arch} model {config.model.num_layers} layers x "
      f"{config.model.latent_dim}.", '', '## Interactions, per class', '',
      f"Every test actor ({result['per_class']['all']['real']['count']}, windows from frame 0) "
      f"gets a generated reaction ({result['sampling']}); the real reactor of the same actor is "
      'the reference. success: the class\'s physical event happens (hands meet, arms close '
      'around the other body, the pushed body moves back, the punched head leaves the fist\'s '
      'path, the wave is answered, the approached body backs away; the three displacements '
      'count from the actor\'s start); latency: how long after the '
      'actor starts moving the reactor does (> 0: it reacts, never anticipates); penetration: '
      'share of frames and mean volume where the bodies overlap by more than 1 cm; foot skate: '
      'share of frames where a planted foot slides; jitter: speed of the pelvis motion that a '
      '5-frame moving average removes (frame-to-frame shaking).', '',
      interaction.markdown_table(result['per_class']), recognizer, '## Generated vs real', '',
      'Blue actor, red generated reactor, grey real reactor; a gold dot marks hands touching.', '',
      f"![contact sheet](samples/{os.path.basename(result['contact_sheet'])})", '',
      *[f'![{os.path.basename(g)}](samples/{os.path.basename(g)})' for g in result['animations']],
      '',
      ('MP4: ' + ', '.join(f'[{os.path.basename(v)}](samples/{os.path.basename(v)})'
                           for v in result['videos'])) if result['videos'] else '', '',
      f"SMPL-X animation files (AMASS convention, for the SMPL-X Blender add-on or `smplx`): "
      f"`samples/smplx/`, {result['smplx_files']} files, one per reaction and person; all "
      'reactions with the fps in `samples/test_reactions.npz`.', '', '## Training', '',
      '| final training metric | value |', '|---|---|',
      *[f'| {k} | {v:.4g} |' for k, v in m.items()], '',
  ]
  with open(os.path.join(workdir, 'report.md'), 'w') as f:
    f.write('\n'.join(lines))
  with open(os.path.join(workdir, 'report.json'), 'w') as f:
    json.dump({k: v for k, v in result.items() if k != 'report'}, f, indent=2)


def _sampling_params(config, workdir, class_names):
  return factory.load_sampling_params(config,
                                      workdir,
                                      len(class_names),
                                      warn=lambda line: print(line, flush=True))


def sample_from_checkpoint(config, workdir, splits):
  """run.py --mode=sample: sample.num_repetitions reactions for each of the first
  sample.num_samples test actors, saved to samples/test_reactions.npz."""
  _, test_src, class_names = splits
  params, step = _sampling_params(config, workdir, class_names)
  batch, names = monitor_lib.test_windows(config, test_src, config.sample.num_samples)
  generated = sample.generate(factory.make_sampler(config, len(class_names)),
                              params,
                              batch['actor'],
                              batch['label'],
                              jax.random.PRNGKey(config.seed),
                              sharding.sampling_mesh(),
                              config.sample.batch_size,
                              config.sample.num_repetitions,
                              progress=True)
  if not _is_main():
    return {}
  outputs = write_outputs(config, workdir, batch, generated, names, class_names)
  return {
      'checkpoint_step': step,
      'shape': list(generated.shape),
      'matmul_dtype': config.sample.matmul_dtype,
      **outputs
  }


def stream_from_checkpoint(config, workdir, splits):
  """run.py --mode=stream: config.stream.batch_size test actors frame by frame, as simultaneous
  streams split over every host's devices; reports per-frame latency and agreement with the
  whole-sequence sampler on the same actors and key, and saves the streamed reactions to
  samples/stream_reactions.npz."""
  _, test_src, class_names = splits
  params, step = _sampling_params(config, workdir, class_names)
  batch, names = monitor_lib.test_windows(config, test_src, config.stream.batch_size)
  model = factory.make_model(config, len(class_names), for_sampling=True)
  schedule = factory.make_schedule(config, config.sample.respacing)
  key = jax.random.PRNGKey(config.seed)
  frames = batch['actor'].shape[1]
  mesh = sharding.sampling_mesh()
  # sample.generate draws batch b's noise from fold_in(key, b): the streams take batch 0's key.
  stream = streaming.ReactionStream(model,
                                    params,
                                    schedule,
                                    jax.random.fold_in(key, 0),
                                    batch_size=len(batch['actor']),
                                    max_frames=max(frames, config.stream.max_frames),
                                    method=config.sample.method,
                                    eta=config.sample.eta,
                                    guidance_scale=config.sample.guidance_scale,
                                    label=batch['label'],
                                    actor_frame=config.model.actor_frame,
                                    orthonormalize=config.sample.orthonormalize,
                                    mesh=mesh,
                                    kernels=config.stream.kernels)
  streamed = np.stack([stream.push(batch['actor'][:, f]) for f in range(frames)], axis=1)
  whole = sample.generate(factory.make_sampler(config, len(class_names)), params, batch['actor'],
                          batch['label'], key, mesh, stream.rows)
  if not _is_main():
    return {}
  result = {
      'checkpoint_step': step,
      'streams': len(batch['actor']),
      'processes': jax.process_count(),
      'devices': int(mesh.devices.size),
      'frames': frames,
      'denoising_steps': int(schedule.num_steps),
      'method': config.sample.method,
      'latency': stream.latency_report(),
      'max_abs_difference_to_whole_sequence_sampler': float(np.abs(streamed - whole).max())
  }
  os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  result['samples'] = sample.save_npz(os.path.join(workdir, 'samples', 'stream_reactions.npz'),
                                      batch['actor'],
                                      streamed,
                                      batch['label'],
                                      class_names,
                                      real_reactor=batch['reactor'],
                                      names=names,
                                      fps=config.data.fps,
                                      lengths=batch['mask'].sum(1))
  with open(os.path.join(workdir, 'stream_report.json'), 'w') as f:
    json.dump(result, f, indent=2)
  return result


def train_recognizer(config, workdir, splits):
  """run.py --mode=train_recognizer: the ST-GCN evaluator on real pairs, in <workdir>/recognizer."""
  if not _is_main():  # a small network: one host trains it
    return {}
  os.makedirs(workdir, exist_ok=True)
  return recognizer_lib.train_recognizer(config, workdir, splits)


def evaluate(config, workdir, splits):
  """run.py --mode=eval: the paper's protocol (evaluation/protocol.py), eval_report.md/json."""
  params, step = _sampling_params(config, workdir, splits[2])
  report = protocol.evaluate(config, workdir, params, splits)
  return {
      'checkpoint_step': step,
      'report': os.path.join(os.path.abspath(workdir), 'eval_report.md'),
      'results': {
          split: {
              kind: {
                  m: round(v['mean'], 4) for m, v in r.items()
              } for kind, r in kinds.items()
          } for split, kinds in report['results'].items()
      }
  }
