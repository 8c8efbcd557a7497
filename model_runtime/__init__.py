"""Duet's model runtime: audio in, ARKit blendshape + head curves out.

Never imports bpy. Runs under its own interpreter as ``python -m model_runtime``; the
light modules (channels, motion_io) are numpy-only so the Blender add-on can reuse them.
"""

__version__ = "0.1.0"
