"""Body representation: rotations and SMPL-X skeleton kinematics."""
