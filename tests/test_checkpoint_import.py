import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip('torch')

from regennet_jax import checkpoint_import  # noqa: E402
from regennet_jax import errors
from regennet_jax.model import Denoiser  # noqa: E402
from tests import torch_reference  # noqa: E402


def _state_dict(module):
  return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.mark.parametrize('arch, concat, actions', [('online', True, 0), ('online', False, 5),
                                                   ('offline', True, 0)])
def test_imported_weights_reproduce_the_pytorch_forward(arch, concat, actions):
  torch.manual_seed(0)
  ref = torch_reference.CMDM(arch=arch,
                             layers=2,
                             d=64,
                             ff=128,
                             heads=4,
                             concat=concat,
                             actions=actions).eval()
  sd = _state_dict(ref)
  sd['rot2xyz.smpl_model.J_regressor'] = np.zeros((3, 3))  # body-model buffers are ignored
  params, info = checkpoint_import.convert_state_dict(sd)
  assert info == {
      'arch': arch,
      'num_layers': 2,
      'latent_dim': 64,
      'ff_size': 128,
      'num_heads': 4,
      'fusion': 'concat' if concat else 'add',
      'cond_mode': 'action' if actions else 'no_cond',
      'num_actions': max(actions, 1)
  }
  model = Denoiser(arch=arch,
                   num_layers=2,
                   latent_dim=64,
                   ff_size=128,
                   num_heads=4,
                   fusion=info['fusion'],
                   cond_mode=info['cond_mode'],
                   num_actions=info['num_actions'])
  rng = np.random.default_rng(1)
  x = rng.normal(size=(3, 10, 56, 6)).astype(np.float32)
  actor = rng.normal(size=(3, 10, 56, 6)).astype(np.float32)
  t = np.array([0, 250, 999])
  action = np.array([0, 3, 4]) if actions else None
  with torch.no_grad():
    want = ref(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(actor),
               None if action is None else torch.from_numpy(action)).numpy()
  got = model.apply({'params': params}, jnp.asarray(x), jnp.asarray(t), jnp.asarray(actor),
                    None if action is None else jnp.asarray(action))
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-4, rtol=1e-4)


def test_import_errors_are_specific():
  ref = torch_reference.CMDM(layers=1, d=32, ff=64)
  sd = _state_dict(ref)
  with pytest.raises(errors.DataError, match='not a ReGenNet'):
    checkpoint_import.convert_state_dict({'encoder.weight': np.zeros((2, 2))})
  broken = dict(sd)
  del broken['seqTransDecoder.layers.0.norm3.weight']
  with pytest.raises(errors.DataError, match="missing key.*norm3.weight"):
    checkpoint_import.convert_state_dict(broken)
  with pytest.raises(errors.DataError, match='does not map.*gru'):
    checkpoint_import.convert_state_dict({**sd, 'gru.weight_ih_l0': np.zeros((3, 3))})


def test_import_command_makes_a_runnable_workdir(tmp_path):
  from data_prep import import_checkpoint
  from regennet_jax import factory
  from tests.helpers import ROOT, tiny_config
  torch.manual_seed(1)
  ref = torch_reference.CMDM(layers=1, d=32, ff=64).eval()
  path = tmp_path / 'model000001234.pt'
  torch.save(ref.state_dict(), path)
  summary = import_checkpoint.main([
      f'--checkpoint={path}', f'--workdir={tmp_path}/run', f'--config={ROOT}/configs/synthetic.py'
  ])
  assert summary['step'] == 1234
  assert '--config.model.num_layers=1' in summary['run_py_overrides']
  # The overrides the command prints are all run.py needs to use the imported weights.
  overrides = dict(flag.split('=') for flag in summary['run_py_overrides'].split())
  assert overrides['--config.model.actor_frame'] == 'False'  # the released models' input
  assert overrides['--config.model.center'] == 'zero'  # and output: x0 itself
  config = tiny_config()
  for flag, value in overrides.items():
    section, name = flag[len('--config.'):].split('.')
    config[section][name] = type(
        config[section][name])(value == 'True' if value in ('True', 'False') else value)
  params, step = factory.load_sampling_params(config, str(tmp_path / 'run'), 8)
  assert step == 1234
  np.testing.assert_allclose(np.asarray(params['output_process']['kernel']),
                             ref.output_process.poseFinal.weight.detach().numpy().T)
  (tmp_path / 'junk.pt').write_bytes(b'not a checkpoint')
  with pytest.raises(Exception, match='junk.pt: not a readable PyTorch checkpoint'):
    import_checkpoint.main([
        f'--checkpoint={tmp_path}/junk.pt', f'--workdir={tmp_path}/r2',
        f'--config={ROOT}/configs/synthetic.py'
    ])


def test_stgcn_checkpoint_reproduces_the_pytorch_recognizer():
  from regennet_jax.evaluation import stgcn
  torch.manual_seed(0)
  ref = torch_reference.STGCN(stgcn.spatial_adjacency(), num_classes=5, width=0.25)
  with torch.no_grad():  # non-trivial BN statistics and edge importances
    for m in ref.modules():
      if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
    for p in ref.edge_importance:
      p.uniform_(0.5, 1.5)
  ref.eval()
  variables, info = checkpoint_import.convert_stgcn_state_dict(_state_dict(ref))
  assert info == {'num_classes': 5, 'width': 0.25}
  x = np.random.default_rng(0).normal(size=(3, 16, 56, 12)).astype(np.float32)
  torch_in = torch.from_numpy(x).reshape(3, 16, 56, 2, 6).permute(0, 4, 1, 2, 3)  # N,C,T,V,M
  with torch.no_grad():
    want_logits, want_feats = (t.numpy() for t in ref(torch_in))
  logits, feats = stgcn.STGCN(5, 0.25).apply(variables, jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(feats), want_feats, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(logits), want_logits, atol=1e-4, rtol=1e-4)
  sd = _state_dict(ref)
  sd['A'] = sd['A'] * 0.5
  with pytest.raises(errors.DataError, match='graph'):
    checkpoint_import.convert_stgcn_state_dict(sd)


def test_import_command_installs_a_recognizer_for_eval(tmp_path):
  from data_prep import import_checkpoint
  from regennet_jax.evaluation import recognizer as recognizer_lib
  from regennet_jax.evaluation import stgcn
  from tests.helpers import ROOT, tiny_config
  ref = torch_reference.STGCN(stgcn.spatial_adjacency(), num_classes=8, width=0.125).eval()
  path = tmp_path / 'checkpoint_0100.pth.tar'
  torch.save(ref.state_dict(), path)
  summary = import_checkpoint.main([
      f'--recognizer={path}', f'--workdir={tmp_path}/run', f'--config={ROOT}/configs/synthetic.py'
  ])
  assert summary['recognizer']['num_classes'] == 8
  config = tiny_config(**{'data.num_frames': 40})
  recog, info = recognizer_lib.load_recognizer(config, str(tmp_path / 'run'), 8)
  x = np.random.default_rng(0).normal(size=(2, 40, 56, 12)).astype(np.float32)
  with torch.no_grad():
    want, _ = ref(torch.from_numpy(x).reshape(2, 40, 56, 2, 6).permute(0, 4, 1, 2, 3))
  np.testing.assert_allclose(recog(x)[0], want.numpy(), atol=1e-4, rtol=1e-4)
