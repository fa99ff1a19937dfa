"""SMPL-X body meshes of motions, for rendering: the released model's linear blend skinning with
pose correctives, in numpy (rendering runs on the host; training never needs vertices).

    model = SmplxMesh.load('SMPLX_NEUTRAL.npz')
    vertices = model.pose(motion)            # [T, 56, 6] -> [T, V, 3] world vertices
    model.faces                              # [F, 3]

This is what `smplx.create(path, model_type='smplx', use_pca=False, flat_hand_mean=True)` computes
with zero expression and the same betas (tests/test_mesh.py checks it against the package).
"""

import dataclasses
import os

import numpy as np

from regennet_jax import errors
from regennet_jax.body import kinematics
from regennet_jax.body import rotations
from regennet_jax.body import skeleton


@dataclasses.dataclass
class SmplxMesh:
  v_shaped: np.ndarray  # [V, 3] rest vertices of this body shape
  rest_joints: np.ndarray  # [55, 3]
  weights: np.ndarray  # [V, 55] skinning weights
  posedirs: np.ndarray  # [V * 3, 486] pose-corrective blend shapes
  faces: np.ndarray  # [F, 3] int

  @classmethod
  def load(cls, path, betas=None):
    """Reads a released SMPL-X model npz; errors.DataError names the file and field if it is not
    one."""
    path = os.fspath(path)
    with skeleton.open_smplx_model(path) as data:
      v, rest = skeleton.smplx_shape(data, path, betas)  # checks template, regressor, tree, betas
      num_verts = len(v)
      fields = {}
      for name, shape in (('weights', (num_verts, skeleton.NUM_JOINTS)),
                          ('posedirs', (num_verts, 3, (skeleton.NUM_JOINTS - 1) * 9)), ('f', None)):
        arr = skeleton.smplx_field(data, path, name)
        if shape is not None and arr.shape != shape:
          raise errors.DataError(f'{path}: field {name!r} has shape {arr.shape}, expected {shape} '
                                 f'for an SMPL-X model with {num_verts} vertices.')
        fields[name] = arr
      faces = fields['f'].astype(np.int64)
      if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= num_verts:
        raise errors.DataError(f"{path}: field 'f' must be [F, 3] vertex indices below "
                               f'{num_verts}, got shape {faces.shape}.')
    return cls(v_shaped=v,
               rest_joints=rest,
               weights=fields['weights'].astype(np.float64),
               posedirs=fields['posedirs'].reshape(num_verts * 3, -1).astype(np.float64),
               faces=faces)

  def pose(self, motion):
    """World vertices [T, V, 3] of a motion [T, 56, 6] (55 rot6d joints + the pelvis position)."""
    motion = np.asarray(motion, np.float64)
    local = rotations.rot6d_to_matrix(motion[:, :skeleton.NUM_JOINTS])  # [T, 55, 3, 3]
    global_rot, joints = kinematics.forward_kinematics(local, self.rest_joints)
    pose_feature = (local[:, 1:] - np.eye(3)).reshape(len(motion), -1)  # [T, 486]
    v_posed = self.v_shaped + (pose_feature @ self.posedirs.T).reshape(len(motion), -1, 3)
    # Joint k moves a rest point x to R_k (x - J_k) + j_k; blend those affine maps per vertex.
    translation = joints - np.einsum('tkij,kj->tki', global_rot, self.rest_joints)  # [T, 55, 3]
    blend_rot = np.einsum('vk,tkij->tvij', self.weights, global_rot)
    blend_trans = np.einsum('vk,tki->tvi', self.weights, translation)
    vertices = np.einsum('tvij,tvj->tvi', blend_rot, v_posed) + blend_trans
    # The root stays at its rest position above; the motion says where the pelvis is.
    shift = motion[:, skeleton.TRANSLATION_ROW, :3] - self.rest_joints[0]
    return (vertices + shift[:, None]).astype(np.float32)
