"""DualTalk (CVPR 2025), adapted and scaled down: four modules named as in the paper.

joint_encoder -> temporal_enhancer -> interaction -> synthesis, assembled in dualtalk.py.
Imports torch: only the torch backend, export and training use this package.
"""

from .dualtalk import DualTalk

__all__ = ["DualTalk"]
