import jax
import jax.numpy as jnp
import pytest

from configs import base
from configs import chi3d
from configs import interhuman
from configs import ntu120
from configs import recipes
from configs import synthetic
from regennet_jax import factory
from regennet_jax.model import count_params
from tests.helpers import run as _run


def _param_count(config, frames):
  model = factory.make_model(config, 8)
  x = jnp.zeros((1, frames, 56, 6))
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, jnp.zeros((1,), jnp.int32), x)
  return count_params(shapes['params'])


@pytest.mark.parametrize('module, frames, batch', [(ntu120, 60, 64), (chi3d, 150, 16),
                                                   (interhuman, 150, 64)])
def test_paper_configs_and_the_original_recipe_switch(module, frames, batch):
  original = module.get_config('original')
  assert original.data.num_frames == frames and original.train.batch_size == batch
  assert original.train.learning_rate == 1e-4 and original.diffusion.noise_schedule == 'cosine'
  assert _param_count(original, frames) == 26_803_024  # the original network
  # ':original' is the paper's recipe exactly: every field the recipe touches is base.py's.
  paper = base.get_config()
  for section in ('model', 'losses', 'train', 'sample', 'diffusion'):
    for key, value in paper[section].items():
      if key not in ('batch_size',) and not (section == 'losses' and key == 'fc_threshold'):
        assert original[section][key] == value, f'{section}.{key}'
  assert original.train.ema_decay == 0 and original.train.lr_schedule == 'constant'
  # The default is the fast recipe: the actor's joint positions add one input projection.
  fast = module.get_config()
  assert fast.model.actor_frame and fast.losses.world_joints > 0 and fast.sample.orthonormalize
  assert _param_count(fast, frames) == 26_803_024 + 55 * 3 * 512 + 512
  with pytest.raises(ValueError, match="unknown recipe 'slow'"):
    recipes.apply(base.get_config(), 'slow')


def test_default_config_is_small_and_fast():
  config = synthetic.get_config()
  assert config.data.name == 'synthetic' and config.model.latent_dim <= 128
  assert config.model.actor_frame and config.sample.orthonormalize


def test_dataset_config_without_data_says_what_to_do(tmp_path):
  proc = _run([f'--workdir={tmp_path}', '--config=configs/chi3d.py'])
  assert proc.returncode == 1
  assert 'config.data.dir is empty' in proc.stderr
  assert 'python -m data_prep.build --dataset=chi3d_as' in proc.stderr
  proc = _run([f'--workdir={tmp_path}', '--config=configs/chi3d.py:slow'])
  assert proc.returncode == 1 and "unknown recipe 'slow'" in proc.stderr
  assert 'Traceback' not in proc.stderr
