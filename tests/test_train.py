import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from regennet_jax import checkpoints
from regennet_jax import errors
from regennet_jax import factory
from regennet_jax import pair_frame
from regennet_jax import train as train_lib
from regennet_jax import train_step
from regennet_jax.data import pipeline
from regennet_jax.data import sources
from tests.helpers import ROOT, forced_devices_env, tiny_config


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_train_writes_checkpoints_metrics_and_config(tmp_path):
  state, summary = train_lib.train(tiny_config(), str(tmp_path), progress=False)
  assert summary['final_step'] == 6 and int(state.step) == 6
  rows = _metrics(tmp_path)
  assert [r['step'] for r in rows] == list(range(1, 7))
  assert all(np.isfinite(r['loss']) and r['grad_norm'] > 0 for r in rows)
  assert {'rot_mse', 'orient', 'body', 'transl', 'steps_per_sec'} <= set(rows[0])
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '6']
  assert json.load(open(tmp_path / 'config.json'))['model']['latent_dim'] == 32
  assert os.listdir(tmp_path / 'tensorboard')


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
  straight, _ = train_lib.train(tiny_config(), str(tmp_path / 'a'), progress=False)
  first, _ = train_lib.train(tiny_config(**{'train.num_steps': 3}),
                             str(tmp_path / 'b'),
                             progress=False)
  assert int(first.step) == 3
  # A hard kill after logging steps 4-5 but before their checkpoint, mid-way through a line.
  with open(tmp_path / 'b' / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 4, "loss": 9.0}\n{"step": 5, "loss": 9.0}\n{"step": 6, "lo')
  resumed, summary = train_lib.train(tiny_config(), str(tmp_path / 'b'), progress=False)
  assert summary['start_step'] == 3
  assert [r['step'] for r in _metrics(tmp_path / 'b')] == list(range(1, 7))  # each step once
  loss_a = [r['loss'] for r in _metrics(tmp_path / 'a')]
  loss_b = [r['loss'] for r in _metrics(tmp_path / 'b')]
  np.testing.assert_allclose(loss_b, loss_a, rtol=1e-6)
  for a, b in zip(jax.tree_util.tree_leaves(straight.params),
                  jax.tree_util.tree_leaves(resumed.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_resume_refuses_a_different_model(tmp_path):
  train_lib.train(tiny_config(**{'train.num_steps': 3}), str(tmp_path), progress=False)
  with pytest.raises(errors.RunError, match='model.latent_dim=32.*64'):
    train_lib.train(tiny_config(**{'model.latent_dim': 64}), str(tmp_path), progress=False)
  # Matmul precision changes the arithmetic, not the parameters: the run continues with it.
  state, summary = train_lib.train(tiny_config(**{
      'train.num_steps': 5,
      'model.matmul_dtype': 'bfloat16'
  }),
                                   str(tmp_path),
                                   progress=False)
  assert int(state.step) == 5 and summary["start_step"] == 3


def test_centring_on_the_data_stores_the_reactor_mean_with_the_run(tmp_path):
  centred = {'model.center': 'data', 'train.num_steps': 3}
  config = tiny_config(**centred)
  train_src, _, _ = sources.load_splits(config.data)
  train_lib.train(config, str(tmp_path), progress=False)
  stored = json.load(open(tmp_path / 'config.json'))['model']['reactor_mean']
  # The mean of the training reactors in the actor's frame: the reactor faces the actor, so its
  # root's first rot6d column points backwards (about -1 where the actor's is +1).
  windows = pipeline.stack_windows(train_src, range(len(train_src)),
                                   pipeline.Windowing(config.data.num_frames, crop='start'),
                                   np.random.default_rng(0))
  _, reactor, _ = pair_frame.to_actor_frame(windows['actor'], windows['reactor'])
  want = np.asarray(reactor)[np.asarray(windows['mask'], bool)].mean(0)
  np.testing.assert_allclose(np.reshape(stored, (56, 6)), want, atol=1e-5)
  assert stored[0] < -0.5
  # A resumed run keeps the stored value (its network was trained around it).
  marked = json.load(open(tmp_path / 'config.json'))
  marked['model']['reactor_mean'] = [0.25] * 336
  json.dump(marked, open(tmp_path / 'config.json', 'w'))
  state, summary = train_lib.train(tiny_config(**{
      **centred, 'train.num_steps': 4
  }),
                                   str(tmp_path),
                                   progress=False)
  assert summary['start_step'] == 3 and int(state.step) == 4
  assert json.load(open(tmp_path / 'config.json'))['model']['reactor_mean'] == [0.25] * 336
  # Sampling builds the model from the run's config; without it the mean is missing.
  with pytest.raises(errors.ConfigError, match='reactor_mean is empty'):
    factory.make_model(tiny_config(**centred), 8, for_sampling=True)
  sampling = checkpoints.adopt_run_config(str(tmp_path), tiny_config(**centred))
  assert factory.make_model(sampling, 8, for_sampling=True).reactor_mean == (0.25,) * 336


def test_corrupt_checkpoint_gets_a_clear_error(tmp_path):
  train_lib.train(tiny_config(**{'train.num_steps': 3}), str(tmp_path), progress=False)
  state_dir = tmp_path / 'checkpoints' / '3' / 'state'
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'\x00garbage')
  with pytest.raises(errors.RunError, match=r'checkpoints/3 cannot be restored'):
    train_lib.train(tiny_config(), str(tmp_path), progress=False)


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  train_lib.train(tiny_config(**{'train.num_steps': 3}), str(tmp_path), progress=False)
  config = tiny_config(**{'train.num_steps': 6, 'train.learning_rate': 1e30})
  with pytest.raises(errors.RunError, match=r'loss became (nan|inf) at step [4-6]'):
    train_lib.train(config, str(tmp_path), progress=False)
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3']


def test_a_step_with_a_non_finite_loss_leaves_every_part_of_the_state_as_it_was():
  config = tiny_config(**{'train.ema_decay': 0.9})
  tx = optax.adam(0.1)
  params = {'w': jnp.arange(4.0), 'b': jnp.ones(2)}
  state = train_step.TrainState(step=jnp.int32(3),
                                params=params,
                                opt_state=tx.init(params),
                                ema_params=jax.tree_util.tree_map(lambda p: p + 1, params))
  parts = lambda s: jax.tree_util.tree_leaves((s.params, s.opt_state, s.ema_params))
  terms = {'loss': jnp.ones(2)}
  for loss in (jnp.nan, jnp.inf, 1.0):
    fill = 1.0 if np.isfinite(loss) else loss  # a diverged step's gradients are not finite either
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, fill), params)
    new, _ = train_step._apply_gradients(config, tx, state, jnp.float32(loss), terms, grads, None)
    assert int(new.step) == 4
    unchanged = [np.array_equal(a, b) for a, b in zip(parts(new), parts(state))]
    if np.isfinite(loss):  # params, Adam's count and moments, the EMA: all moved
      assert not any(unchanged)
      updates, _ = tx.update(grads, state.opt_state, params)
      np.testing.assert_allclose(new.params['w'], optax.apply_updates(params, updates)['w'])
    else:
      assert all(unchanged), loss


_DEVICES_SCRIPT = textwrap.dedent('''
    import json
    import jax
    from regennet_jax import train as train_lib
    from tests.helpers import tiny_config
    out = {{}}
    for n in (1, 4):
      config = tiny_config(**{{'train.num_steps': 4, 'model.dropout': 0.0}})
      _, summary = train_lib.train(config, {tmp!r} + f'/d{{n}}', devices=jax.devices()[:n],
                                   progress=False)
      out[n] = [json.loads(l)['loss'] for l in open({tmp!r} + f'/d{{n}}/metrics.jsonl')]
    # 2 data x 2 model: wide kernels split over the model axis.
    config = tiny_config(**{{'train.num_steps': 4, 'model.dropout': 0.0, 'train.model_parallel': 2}})
    train_lib.train(config, {tmp!r} + '/mp', progress=False)
    out['mp'] = [json.loads(l)['loss'] for l in open({tmp!r} + '/mp/metrics.jsonl')]
    # Sampling split over 4 devices gives the same reactions as on one (also when each device's
    # rows are denoised in sequential chunks).
    import numpy as np
    from regennet_jax import factory, sample, sharding
    model = factory.make_model(config, 8)
    actors = np.random.default_rng(0).normal(size=(8, 12, 56, 6)).astype(np.float32)
    labels = np.zeros((8,), np.int32)
    params = model.init(jax.random.PRNGKey(0), actors[:1], labels[:1], actors[:1])['params']
    sampler = sample.make_sampler(model, factory.make_schedule(config, 'ddim5'), chunk_size=2)
    runs = [sample.generate(sampler, params, actors, labels, jax.random.PRNGKey(2),
                            sharding.make_mesh(1, jax.devices()[:n]), 4) for n in (1, 4)]
    out['sample_diff'] = float(np.abs(runs[0] - runs[1]).max())
    print(json.dumps(out))
''')


def test_four_devices_match_one_device(tmp_path):
  env = forced_devices_env(4)
  # Run from the repository root, which `python -c` puts on sys.path.
  proc = subprocess.run(
      [sys.executable, '-c', _DEVICES_SCRIPT.format(tmp=str(tmp_path))],
      env=env,
      capture_output=True,
      text=True,
      timeout=600,
      cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  losses = json.loads(proc.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(losses['4'], losses['1'], rtol=1e-4)
  np.testing.assert_allclose(losses['mp'], losses['1'], rtol=1e-4)
  assert losses['sample_diff'] < 1e-4


def _two_steps(config):
  """Output-kernel values of (params before, after step 1, after step 2, EMA after step 2)."""
  config.model.center = 'zero'  # no training data read, so no reactors' mean to centre on
  setup = factory.make_training(config, 8, key=jax.random.PRNGKey(0))
  batch = factory.dummy_batch(config, 4)
  batch['reactor'] = batch['reactor'] + 0.1
  leaf = lambda tree: np.asarray(tree['output_process']['kernel'])
  state = setup.state
  p0 = leaf(state.params)
  state, _ = setup.step(state, batch, jax.random.PRNGKey(1))
  p1 = leaf(state.params)
  state, _ = setup.step(state, batch, jax.random.PRNGKey(1))
  return p0, p1, leaf(state.params), leaf(state.ema_params)


def test_ema_tracks_parameters():
  config = tiny_config(**{'train.ema_decay': 0.5, 'train.ema_warmup': False, 'model.dropout': 0.0})
  p0, p1, p2, ema = _two_steps(config)
  assert not np.allclose(p1, p0)
  np.testing.assert_allclose(ema, 0.5 * (0.5 * p0 + 0.5 * p1) + 0.5 * p2, rtol=1e-5, atol=1e-7)


def test_ema_warm_up_forgets_the_initialisation_quickly():
  # decay at step s is min(ema_decay, (1 + s) / (10 + s)): 1/10, then 2/11.
  config = tiny_config(**{'train.ema_decay': 0.999, 'model.dropout': 0.0})
  p0, p1, p2, ema = _two_steps(config)
  after_one = 0.1 * p0 + 0.9 * p1
  np.testing.assert_allclose(ema, 2 / 11 * after_one + 9 / 11 * p2, rtol=1e-5, atol=1e-7)


def test_learning_rate_schedules():
  rates = lambda **kw: [
      float(factory.learning_rate_schedule(tiny_config(**kw))(s)) for s in (0, 5, 10, 55, 100)
  ]
  assert rates(**{'train.learning_rate': 1e-3}) == [1e-3] * 5  # the paper's: constant from step 0
  warm = rates(**{'train.learning_rate': 1e-3, 'train.warmup_steps': 10})
  np.testing.assert_allclose(warm, [0, 5e-4, 1e-3, 1e-3, 1e-3], atol=1e-9)
  cos = rates(
      **{
          'train.learning_rate': 1e-3,
          'train.warmup_steps': 10,
          'train.num_steps': 100,
          'train.lr_schedule': 'cosine',
          'train.final_lr_fraction': 0.1
      })
  # Half way through the decay the rate is half way between peak and end; it ends at the end.
  np.testing.assert_allclose(cos, [0, 5e-4, 1e-3, 5.5e-4, 1e-4], atol=1e-9)
  with pytest.raises(errors.ConfigError, match="train.lr_schedule must be one of"):
    factory.learning_rate_schedule(tiny_config(**{'train.lr_schedule': 'step'}))
