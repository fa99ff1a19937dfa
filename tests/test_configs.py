import jax
import jax.numpy as jnp
import pytest

from regennet_jax import factory
from regennet_jax.model import count_params
from tests.helpers import run as _run

from configs import chi3d, interhuman, ntu120, synthetic


@pytest.mark.parametrize('module, frames, batch', [(ntu120, 60, 64), (chi3d, 150, 16),
                                                   (interhuman, 150, 64)])
def test_paper_configs(module, frames, batch):
  config = module.get_config()
  assert config.data.num_frames == frames and config.train.batch_size == batch
  assert config.train.learning_rate == 1e-4 and config.diffusion.noise_schedule == 'cosine'
  model = factory.make_model(config, 8)
  x = jnp.zeros((1, frames, 56, 6))
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, jnp.zeros((1,), jnp.int32), x)
  assert count_params(shapes['params']) == 26_803_024  # the original


def test_default_config_is_small():
  config = synthetic.get_config()
  assert config.data.name == 'synthetic' and config.model.latent_dim <= 128


def test_dataset_config_without_data_says_what_to_do(tmp_path):
  proc = _run([f'--workdir={tmp_path}', '--config=configs/chi3d.py'])
  assert proc.returncode == 1
  assert 'config.data.path is empty' in proc.stderr and 'data_prep' in proc.stderr
