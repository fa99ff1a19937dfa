"""Every setting is checked before anything is written: one line naming field, value, what is allowed."""

import pytest

from configs import chi3d
from configs import interhuman
from configs import ntu120
from configs import synthetic
from regennet_jax import config_check
from regennet_jax import errors
from regennet_jax.data import sources
from tests.helpers import tiny_config


def _with(**overrides):
  config = synthetic.get_config()
  for key, value in overrides.items():
    section, name = key.split('.')
    config[section][name] = value
  return config


def test_the_shipped_configs_pass():
  config_check.validate(synthetic.get_config())
  for module in (ntu120, chi3d, interhuman):
    config = module.get_config()
    config.data.path = '/data/somewhere'
    config_check.validate(config)


@pytest.mark.parametrize('field', sorted(config_check.CHOICES))
def test_unknown_names_are_refused_with_the_choices(field):
  section, name = field.split('.')
  with pytest.raises(errors.ConfigError, match=rf"config\.{field}='nope': must be one of "):
    config_check.validate(_with(**{field: 'nope'}))


@pytest.mark.parametrize('field, value, allowed',
                         [('train.learning_rate', -0.005, '> 0'),
                          ('train.keep_checkpoints', 0, '>= 1'), ('train.num_steps', 0, '>= 1'),
                          ('train.ema_decay', 1.0, r'in \[0, 1\)'),
                          ('model.dropout', 1.0, r'in \[0, 1\)'),
                          ('diffusion.noise_correlation', 1.0, r'in \[0, 1\)'),
                          ('data.swap_prob', 1.5, r'in \[0, 1\]'),
                          ('sample.chunk_size', -1, '>= 0'), ('stream.max_frames', -1, '>= 1'),
                          ('stream.batch_size', 0, '>= 1')])
def test_out_of_range_values_are_refused(field, value, allowed):
  with pytest.raises(errors.ConfigError, match=rf'config\.{field}={value!r}: must be {allowed}'):
    config_check.validate(_with(**{field: value}))


def test_settings_that_contradict_each_other_are_refused():
  with pytest.raises(errors.ConfigError, match='num_heads=5 must divide .*latent_dim=128'):
    config_check.validate(_with(**{'model.num_heads': 5}))
  for bad in ('ddim0', 'abc', 'ddim3000'):
    with pytest.raises(errors.ConfigError, match=r'config\.sample\.respacing: .*respacing'):
      config_check.validate(_with(**{'sample.respacing': bad}))
  with pytest.raises(errors.ConfigError, match=r'config\.eval\.respacing'):
    config_check.validate(_with(**{'eval.respacing': 'fast'}))
  with pytest.raises(errors.ConfigError, match='betas .* needs the SMPL-X model file'):
    config_check.validate(_with(**{'body.betas': (0.5,)}))
  with pytest.raises(errors.ConfigError, match="cond_mask_prob=0.1 drops action labels"):
    config_check.validate(_with(**{'model.cond_mask_prob': 0.1}))
  with pytest.raises(errors.ConfigError,
                     match='data.dir is empty.*data_prep.build --dataset=chi3d_as'):
    config_check.validate(chi3d.get_config())


def test_windows_longer_than_every_sequence_are_refused():
  config = tiny_config(**{'data.num_frames': 500})
  splits = sources.load_splits(config.data)
  with pytest.raises(errors.ConfigError,
                     match='num_frames=500 is longer than every training '
                     r'sequence \(the longest has 20 frames\)'):
    config_check.validate_against_data(config, splits)
  config_check.validate_against_data(tiny_config(), splits)


def test_values_of_the_wrong_type_are_explained_on_the_command_line(tmp_path):
  from tests.helpers import cli_overrides, run
  for flag, message in (('--config.train.batch_size=2.5', 'train.batch_size=2.5: expected int'),
                        ('--config.train.log_every=often', 'train.log_every=often: expected int'),
                        ('--config.model.actor_frame=maybe', 'expected bool'),
                        ('--config.train.bogus=1', "train has no field 'bogus' (it has: "),
                        ('--config=configs/nope.py', 'configs/nope.py: no such config file')):
    proc = run([f'--workdir={tmp_path}/x', flag] + cli_overrides())
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert message in proc.stderr
  assert not (tmp_path / 'x').exists()
