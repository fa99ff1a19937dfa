"""SMPL-X animation files (AMASS convention): the smplx package poses them as our kinematics do."""

import numpy as np
import pytest

from regennet_jax import export
from regennet_jax.body import kinematics
from regennet_jax.body import skeleton
from regennet_jax.data import pipeline
from regennet_jax.data import synthetic
from tests import fake_files


def test_an_exported_reaction_poses_the_smplx_model_like_our_kinematics(smplx_npz, tmp_path):
  torch = pytest.importorskip('torch')
  smplx = pytest.importorskip('smplx')
  sample = synthetic.generate_sample(0, synthetic.ACTIONS.index('handshake'), 20, 20)
  motion = pipeline.to_model_motion(sample['reactor'], sample['actor'][0, 55])
  rest = skeleton.load_smplx_rest_joints(smplx_npz)
  path = export.write_amass(tmp_path / 'r.npz', motion, 30, rest, 'reactor', 0, 'handshake')
  data = np.load(path)
  assert data['poses'].shape == (20, 165) and data['trans'].shape == (20, 3)
  assert float(data['mocap_frame_rate']) == 30 and str(data['gender']) == 'neutral'
  assert str(data['role']) == 'reactor' and str(data['action']) == 'handshake'

  model = smplx.create(str(smplx_npz),
                       model_type='smplx',
                       gender='neutral',
                       ext='npz',
                       use_pca=False,
                       flat_hand_mean=True,
                       num_betas=10,
                       batch_size=20)
  poses = torch.from_numpy(data['poses'])
  with torch.no_grad():
    out = model(global_orient=poses[:, :3],
                body_pose=poses[:, 3:66],
                jaw_pose=poses[:, 66:69],
                leye_pose=poses[:, 69:72],
                reye_pose=poses[:, 72:75],
                left_hand_pose=poses[:, 75:120],
                right_hand_pose=poses[:, 120:165],
                transl=torch.from_numpy(data['trans']),
                betas=torch.from_numpy(data['betas'])[None].repeat(20, 1))
  ours = kinematics.motion_to_joints(motion, rest, with_translation=True)
  np.testing.assert_allclose(out.joints[:, :55].numpy(), ours, atol=2e-5)


def test_export_writes_one_file_per_person_and_repetition(tmp_path):
  rng = np.random.default_rng(0)
  motion = np.zeros((2, 6, 56, 6), np.float32)
  motion[..., :55, 0] = 1.0
  motion[..., :55, 4] = 1.0  # identity rotations
  motion[..., 55, :3] = rng.normal(size=(2, 6, 3))
  reactions = np.stack([motion, motion], axis=1)  # [N=2, K=2, T, 56, 6]
  paths = export.export_reactions(tmp_path, motion, reactions, np.array([0, 3]), synthetic.ACTIONS,
                                  30, skeleton.builtin_rest_joints())
  names = sorted(p.name for p in tmp_path.iterdir())
  assert names == [
      '0000_handshake_actor.npz', '0000_handshake_reactor_0.npz', '0000_handshake_reactor_1.npz',
      '0001_punch_actor.npz', '0001_punch_reactor_0.npz', '0001_punch_reactor_1.npz'
  ]
  assert len(paths) == 6
  data = np.load(tmp_path / '0001_punch_actor.npz')
  np.testing.assert_allclose(data['poses'], 0.0, atol=1e-6)
  np.testing.assert_allclose(data['trans'], motion[1, :, 55, :3], atol=1e-6)
  assert int(data['label']) == 3


def test_mesh_vertices_equal_the_smplx_package(smplx_npz):
  torch = pytest.importorskip('torch')
  smplx = pytest.importorskip('smplx')
  from regennet_jax.body import mesh
  sample = synthetic.generate_sample(1, synthetic.ACTIONS.index('hug'), 8, 8)
  motion = pipeline.to_model_motion(sample['reactor'], sample['actor'][0, 55])
  betas = np.array([0.5, -1.0, 0.3])
  model = mesh.SmplxMesh.load(smplx_npz, betas)
  vertices = model.pose(motion)
  rest = skeleton.load_smplx_rest_joints(smplx_npz, betas)
  poses, trans, full_betas = export.amass_arrays(motion, rest, betas)
  ref = smplx.create(str(smplx_npz),
                     model_type='smplx',
                     gender='neutral',
                     ext='npz',
                     use_pca=False,
                     flat_hand_mean=True,
                     num_betas=10,
                     batch_size=8)
  poses = torch.from_numpy(poses)
  with torch.no_grad():
    out = ref(global_orient=poses[:, :3],
              body_pose=poses[:, 3:66],
              jaw_pose=poses[:, 66:69],
              leye_pose=poses[:, 69:72],
              reye_pose=poses[:, 72:75],
              left_hand_pose=poses[:, 75:120],
              right_hand_pose=poses[:, 120:165],
              transl=torch.from_numpy(trans),
              betas=torch.from_numpy(full_betas)[None].repeat(8, 1))
  assert vertices.shape == (8, fake_files.SMPLX_NUM_VERTS, 3)
  np.testing.assert_allclose(vertices, out.vertices.numpy(), atol=1e-4)
  assert model.faces.shape == (fake_files.SMPLX_NUM_FACES, 3)


def test_a_wrong_model_file_for_meshes_is_named(tmp_path, smplx_npz):
  from regennet_jax import errors
  from regennet_jax.body import mesh
  data = dict(np.load(smplx_npz))
  data['weights'] = data['weights'][:, :22]
  np.savez(tmp_path / 'cut.npz', **data)
  with pytest.raises(errors.DataError, match=r"cut.npz: field 'weights' has shape \(10475, 22\)"):
    mesh.SmplxMesh.load(tmp_path / 'cut.npz')
  del data['f']
  data['weights'] = np.load(smplx_npz)['weights']
  np.savez(tmp_path / 'nofaces.npz', **data)
  with pytest.raises(errors.DataError, match="nofaces.npz: field 'f' is missing"):
    mesh.SmplxMesh.load(tmp_path / 'nofaces.npz')
  with pytest.raises(errors.DataError, match='not found'):
    mesh.SmplxMesh.load(tmp_path / 'absent.npz')
