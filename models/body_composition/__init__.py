"""Body composition: 7-class 3D U-Net (skin, bone, muscle, AVF, SF, IO, CNS) on axial CT (MONAI bundle here)."""
