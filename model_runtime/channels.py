"""The channel set every part of Duet agrees on: files are matched by name, never by position.

Pure Python: imported by the runtime and by the Blender add-on alike.
"""

# Apple's ARFaceAnchor.BlendShapeLocation names, grouped by region (eyes, jaw, mouth, brows, cheeks, nose, tongue).
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)
HEAD_NAMES = ("headYaw", "headPitch", "headRoll")  # radians
CHANNELS = ARKIT_NAMES + HEAD_NAMES  # the 55 channels, in this order
NUM_ARKIT = len(ARKIT_NAMES)
NUM_CHANNELS = len(CHANNELS)
assert NUM_ARKIT == 52 and NUM_CHANNELS == 55

# Channel groups used by the loss and the metrics (DualTalk groups expression / jaw / pose).
MOUTH_JAW = tuple(n for n in ARKIT_NAMES if n.startswith(("jaw", "mouth", "cheek", "tongue", "nose")))
EYES_BROWS = tuple(n for n in ARKIT_NAMES if n.startswith(("eye", "brow")))
HEAD = HEAD_NAMES


def index_of(names):
    """Indices of `names` in CHANNELS (raises KeyError naming the unknown channel)."""
    pos = {n: i for i, n in enumerate(CHANNELS)}
    return [pos[n] for n in names]


def canonical_name(name):
    """Map any capitalisation of a channel name (e.g. Live Link's 'JawOpen') to Duet's name, or None."""
    return _BY_LOWER.get(name.strip().lower())


_BY_LOWER = {n.lower(): n for n in CHANNELS}

# Live Link Face CSV column order (as the real iPhone app exports it): note JawRight before
# JawLeft and MouthRight before MouthLeft; eye angles are not part of Duet's channel set.
LLF_BLENDSHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut", "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
LLF_HEADER = ("Timecode", "BlendShapeCount") + LLF_BLENDSHAPES
assert len(LLF_BLENDSHAPES) == 61
