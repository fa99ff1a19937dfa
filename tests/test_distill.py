"""One-step students (regennet_jax/distill.py): they start from the teacher's weights, learn to
give in one pass what the teacher's chain gives from the same noise, and every mode samples them
in one pass."""

import json
import os

import jax
import numpy as np
import pytest

from regennet_jax import distill
from regennet_jax import errors
from regennet_jax import factory
from regennet_jax import train as train_lib
from regennet_jax.data import sources
from tests.helpers import cli_overrides, last_json, run, tiny_config

TEACHER = {'train.num_steps': 40, 'train.checkpoint_every': 40, 'train.log_every': 10}

# Uncentred: a centred network's output is scaled by sigma_data, and a 40-step one's guidance
# moves its chain too little to tell a student that learnt it from one that did not.
GUIDED = {'model.cond_mode': 'action', 'model.cond_mask_prob': 0.2, 'model.center': 'zero'}


def _train_teacher(tmp_path_factory, name, **overrides):
  workdir = str(tmp_path_factory.mktemp(name))
  train_lib.train(tiny_config(**TEACHER, **overrides), workdir, progress=False)
  return workdir


@pytest.fixture(scope='module')
def teacher(tmp_path_factory):
  return _train_teacher(tmp_path_factory, 'teacher')


@pytest.fixture(scope='module')
def guided_teacher(tmp_path_factory):
  return _train_teacher(tmp_path_factory, 'guided_teacher', **GUIDED)


def _student_config(teacher, **overrides):
  config = tiny_config(**{'distill.teacher': teacher, **overrides})
  distill.adopt_teacher_model(config, teacher + '_student')
  return distill.student_sampling(config)


def _sample(config, params, batch, key, respacing=None, guidance_scale=None):
  config = config.copy_and_resolve_references()
  if guidance_scale is not None:
    config.sample.guidance_scale = guidance_scale
  sampler = jax.jit(factory.make_sampler(config, 8, respacing=respacing, method='ddim'))
  return np.asarray(sampler(params, batch['actor'], batch['label'], key))


rms = lambda a: float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.parametrize('guided', [False, True])
def test_student_starts_as_the_teacher_and_learns_its_chain_in_one_pass(
    teacher, guided_teacher, tmp_path, guided):
  teacher = guided_teacher if guided else teacher
  config = _student_config(
      teacher, **{
          'train.num_steps': 60,
          'train.learning_rate': 2e-3,
          'distill.guidance_scale': 3.0
      })
  assert (config.sample.respacing, config.sample.method) == ('trailing1', 'ddim')
  teacher_config = distill.teacher_config(config)
  assert teacher_config.distill.teacher == ''
  teacher_params, _ = factory.load_sampling_params(teacher_config, teacher, 8)
  setup = factory.make_training(config, 8)
  for a, b in zip(jax.tree_util.tree_leaves(setup.state.params),
                  jax.tree_util.tree_leaves(teacher_params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  _, test, _ = sources.load_splits(config.data)
  from regennet_jax.evaluation import monitor  # pylint: disable=g-import-not-at-top
  batch, _ = monitor.test_windows(config, test, 8)
  key = jax.random.PRNGKey(3)
  # The teacher's chain (DDIM on distill.teacher_respacing, guided at distill.guidance_scale when
  # the teacher can be) and the one-pass sampler start from the same x_T for the same key: the
  # student is scored on noise it never trained on.
  chain = lambda scale: _sample(teacher_config, teacher_params, batch, key, config.distill.
                                teacher_respacing, scale)
  target = chain(3.0)
  before = rms(_sample(config, teacher_params, batch, key) - target)
  state, _ = train_lib.train(config, str(tmp_path), progress=False)
  student = _sample(config, state.sampling_params(), batch, key)
  assert rms(student - target) < 0.5 * before, (before, rms(student - target))
  rows = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert rows[-1]['loss'] < 0.5 * rows[0]['loss']
  if guided:  # the guidance is in the student's one unguided pass
    unguided = chain(1.0)
    assert rms(unguided - target) > 0.2 * rms(target)
    assert rms(student - target) < 0.5 * rms(student - unguided)


def test_student_sampling_is_one_unguided_pass_and_overrides_of_it_are_refused(teacher):
  config = _student_config(teacher)
  assert config.sample.guidance_scale == 1.0 and config.eval.respacing == 'trailing1'
  assert factory.make_schedule(config, config.sample.respacing).num_steps == 1
  with pytest.raises(errors.ConfigError, match='--config.sample.respacing.*trailing1'):
    config = tiny_config(**{'distill.teacher': teacher, 'sample.respacing': 'ddim5'})
    distill.student_sampling(config, overridden=['sample.respacing'])


def test_a_student_through_run_py(teacher, tmp_path):
  # configs/distill.py takes the teacher's data and model from its config.json: no other flags;
  # the student's run directory is beside the teacher's.
  student = teacher + '_1step'
  proc = run([
      f'--config=configs/distill.py:{teacher}', '--config.train.num_steps=2',
      '--config.train.eval_every=0', '--config.train.report=False'
  ])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert last_json(proc.stdout)['sampling'] == 'ddim trailing1'
  saved = json.load(open(os.path.join(student, 'config.json')))
  assert saved['distill']['teacher'] == teacher and saved['model']['latent_dim'] == 32
  assert saved['losses']['world_vel'] == 10.0 and saved['data']['synthetic_train_size'] == 16
  # Later modes know from the run's config.json that it is a student.
  proc = run([f'--workdir={student}', '--mode=sample', '--config.sample.num_samples=2'] +
             cli_overrides())
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(os.path.join(student, 'samples', 'test_reactions.npz'))
  # A student streams with one pass per frame, as its whole-sequence sampler does.
  proc = run([f'--workdir={student}', '--mode=stream', '--config.stream.batch_size=2'] +
             cli_overrides())
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = last_json(proc.stdout)
  assert report['denoising_steps'] == 1 and report['method'] == 'ddim'
  assert report['max_abs_difference_to_whole_sequence_sampler'] < 1e-4
  proc = run([f'--workdir={student}', '--mode=sample', '--config.sample.respacing=ddim5'] +
             cli_overrides())
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'one-step student' in proc.stderr and 'trailing1' in proc.stderr
  proc = run([f'--workdir={tmp_path / "x"}', '--config=configs/distill.py'])
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert 'teacher run directory after a colon' in proc.stderr


@pytest.mark.parametrize('case', ['missing', 'itself', 'untrained', 'student_of_student'])
def test_bad_teachers_get_one_clear_line(teacher, tmp_path, case):
  given = {
      'missing': tmp_path / 'nowhere',
      'itself': teacher,
      'untrained': tmp_path / 'untrained',
      'student_of_student': tmp_path / 'student_of',
  }[case]
  workdir = teacher if case == 'itself' else tmp_path / 'student'
  if case == 'untrained':
    os.makedirs(given)
    with open(given / 'config.json', 'w') as f:
      json.dump(tiny_config().to_dict(), f)
  if case == 'student_of_student':
    os.makedirs(given)
    with open(given / 'config.json', 'w') as f:
      json.dump(tiny_config(**{'distill.teacher': teacher}).to_dict(), f)
  config = tiny_config(**{'distill.teacher': str(given)})
  expected = {
      'missing': 'not a trained run directory',
      'itself': 'is the --workdir itself',
      'untrained': 'has no checkpoint yet',
      'student_of_student': 'is itself a one-step student',
  }[case]
  with pytest.raises(errors.UserError, match=expected):
    distill.adopt_teacher_model(config, str(workdir))
