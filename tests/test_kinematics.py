import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from regennet_jax import errors
from regennet_jax.body import kinematics
from regennet_jax.body import rotations
from regennet_jax.body import skeleton


def _random_motion(rng, shape, angle_scale=0.6, translation_scale=1.0):
  aa = rng.normal(0, angle_scale, shape + (55, 3)).astype(np.float32)
  d6 = np.asarray(rotations.axis_angle_to_rot6d(jnp.asarray(aa)))
  trans = np.zeros(shape + (1, 6), np.float32)
  trans[..., 0, :3] = rng.normal(0, translation_scale, shape + (3,))
  return np.concatenate([d6, trans], axis=-2), aa


def test_parity_with_smplx_package(smplx_npz):
  torch = pytest.importorskip('torch')
  smplx = pytest.importorskip('smplx')
  rng = np.random.default_rng(0)
  batch = 6
  motion, aa = _random_motion(rng, (batch,))
  betas = rng.normal(0, 1.0, (10,)).astype(np.float32)

  layer = smplx.SMPLXLayer(model_path=str(smplx_npz),
                           ext='npz',
                           num_betas=10,
                           num_expression_coeffs=10,
                           use_pca=False)
  mats = torch.from_numpy(
      Rotation.from_rotvec(aa.reshape(-1,
                                      3)).as_matrix().astype(np.float32).reshape(batch, 55, 3, 3))
  with torch.no_grad():
    out = layer(betas=torch.from_numpy(np.tile(betas, (batch, 1))),
                global_orient=mats[:, 0:1],
                body_pose=mats[:, 1:22],
                jaw_pose=mats[:, 22:23],
                leye_pose=mats[:, 23:24],
                reye_pose=mats[:, 24:25],
                left_hand_pose=mats[:, 25:40],
                right_hand_pose=mats[:, 40:55],
                expression=torch.zeros(batch, 10))
  ref = out.joints[:, :55].numpy()
  ref = ref - ref[:, :1]  # the original makes joints root-relative

  rest = skeleton.load_smplx_rest_joints(smplx_npz, betas=betas)
  ours = np.asarray(kinematics.motion_to_joints(jnp.asarray(motion), rest))
  np.testing.assert_allclose(ours, ref, atol=1e-5)
  # The translation row is added only on request, to every joint.
  world = np.asarray(kinematics.motion_to_joints(jnp.asarray(motion), rest, with_translation=True))
  np.testing.assert_allclose(world, ref + motion[:, None, 55, :3], atol=1e-5)


def test_rest_joints_without_betas_match_regressor(smplx_npz):
  data = np.load(smplx_npz)
  expected = data['J_regressor'].astype(np.float64) @ data['v_template'].astype(np.float64)
  np.testing.assert_allclose(skeleton.load_smplx_rest_joints(smplx_npz), expected, atol=1e-6)


def test_builtin_skeleton_is_human_sized_and_symmetric():
  rest = skeleton.builtin_rest_joints()
  assert rest.shape == (55, 3) and rest.dtype == np.float32
  height = rest[:, 1].max() - rest[:, 1].min()  # feet to eyes
  assert 1.4 < height < 1.8
  arm_span = rest[:, 0].max() - rest[:, 0].min()
  assert 1.3 < arm_span < 1.9
  left = [i for i, n in enumerate(skeleton.JOINT_NAMES) if n.startswith('left_')]
  for i in left:
    j = skeleton.JOINT_NAMES.index('right_' + skeleton.JOINT_NAMES[i][len('left_'):])
    np.testing.assert_allclose(rest[i] * [-1, 1, 1], rest[j], atol=0.01)
  bones = np.linalg.norm(rest[1:] - rest[np.array(skeleton.PARENTS[1:])], axis=1)
  assert np.all(bones > 0.005) and np.all(bones < 0.6)
  np.testing.assert_allclose(skeleton.builtin_rest_joints(1.1), rest * 1.1, rtol=1e-6)


def test_identity_pose_gives_rest_skeleton():
  rest = skeleton.builtin_rest_joints()
  identity = np.zeros((56, 6), np.float32)
  identity[:55] = [1, 0, 0, 0, 1, 0]
  joints = np.asarray(kinematics.motion_to_joints(jnp.asarray(identity), rest))
  np.testing.assert_allclose(joints, rest - rest[0], atol=1e-6)


def test_fk_rigid_properties():
  rng = np.random.default_rng(1)
  rest = skeleton.builtin_rest_joints()
  motion, aa = _random_motion(rng, (4, 3))
  joints = np.asarray(kinematics.motion_to_joints(jnp.asarray(motion), rest))
  parents = np.array(skeleton.PARENTS[1:])
  # Bone lengths are preserved by any pose.
  np.testing.assert_allclose(np.linalg.norm(joints[..., 1:, :] - joints[..., parents, :], axis=-1),
                             np.broadcast_to(np.linalg.norm(rest[1:] - rest[parents], axis=-1),
                                             joints.shape[:-2] + (54,)),
                             atol=1e-5)
  # Turning the root turns the whole (root-relative) body with it.
  turn = Rotation.from_rotvec([0.0, 1.2, 0.0])
  turned = motion.copy()
  root = Rotation.from_rotvec(aa[..., 0, :].reshape(-1, 3))
  turned[..., 0, :] = (turn * root).as_matrix()[:, :2, :].reshape(4, 3, 6)
  joints_turned = np.asarray(kinematics.motion_to_joints(jnp.asarray(turned), rest))
  np.testing.assert_allclose(joints_turned,
                             joints @ turn.as_matrix().T.astype(np.float32),
                             atol=1e-5)


def test_fk_gradients_flow_and_are_finite():
  rng = np.random.default_rng(2)
  rest = skeleton.builtin_rest_joints()
  motion, _ = _random_motion(rng, (2, 5))
  grad = jax.jit(jax.grad(lambda m: jnp.sum(kinematics.motion_to_joints(m, rest)[..., 20, :]**2)))(
      jnp.asarray(motion))
  grad = np.asarray(grad)
  assert np.all(np.isfinite(grad))
  # The left wrist depends on the pelvis..left-elbow chain and on nothing in the right leg.
  assert np.abs(grad[..., 18, :]).sum() > 0 and np.abs(grad[..., 0, :]).sum() > 0
  assert np.abs(grad[..., 5, :]).sum() == 0


def _write_npz(path, **fields):
  np.savez(path, **fields)
  return path


def test_loader_errors_name_file_and_field(tmp_path, smplx_npz):
  good = dict(np.load(smplx_npz))
  with pytest.raises(errors.DataError, match='not found'):
    skeleton.load_smplx_rest_joints(tmp_path / 'missing.npz')
  bad = {k: v for k, v in good.items() if k != 'J_regressor'}
  path = _write_npz(tmp_path / 'no_regressor.npz', **bad)
  with pytest.raises(errors.DataError, match=r"no_regressor.npz.*'J_regressor' is missing"):
    skeleton.load_smplx_rest_joints(path)
  path = _write_npz(tmp_path / 'wrong_shape.npz', **{
      **good, 'J_regressor': good['J_regressor'][:24]
  })
  with pytest.raises(errors.DataError, match=r'wrong_shape.npz.*J_regressor has shape \(24,'):
    skeleton.load_smplx_rest_joints(path)
  smpl_tree = good['kintree_table'].copy()
  smpl_tree[0, 30] = 3
  path = _write_npz(tmp_path / 'tree.npz', **{**good, 'kintree_table': smpl_tree})
  with pytest.raises(errors.DataError, match='kintree_table'):
    skeleton.load_smplx_rest_joints(path)
  nan = good['v_template'].copy()
  nan[5] = np.nan
  path = _write_npz(tmp_path / 'nan.npz', **{**good, 'v_template': nan})
  with pytest.raises(errors.DataError, match='not finite'):
    skeleton.load_smplx_rest_joints(path)
  truncated = tmp_path / 'truncated.npz'
  truncated.write_bytes(open(smplx_npz, 'rb').read()[:1000])
  with pytest.raises(errors.DataError, match='truncated.npz.*not a readable npz'):
    skeleton.load_smplx_rest_joints(truncated)
  with pytest.raises(errors.DataError, match='betas'):
    skeleton.load_smplx_rest_joints(smplx_npz, betas=np.zeros(500))
  with pytest.raises(errors.DataError, match='.npz release'):
    skeleton.load_smplx_rest_joints(_touch(tmp_path / 'SMPLX_NEUTRAL.pkl'))


def _touch(path):
  path.write_bytes(b'')
  return path
