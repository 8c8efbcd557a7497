"""The panel's settings (Scene.duet) with its Cast list, the editable name mapping (Object.duet_map)
and job status (WindowManager: not saved with undo steps, so progress updates never touch the
artist's data)."""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..model_runtime.request import DEFAULT_ATTENTION, DEFAULT_LIVELINESS, DEFAULT_SEED
from .mapping import PRESETS
from .validate import has_shape_keys


def _is_character(self, obj):
    return has_shape_keys(obj)


def _is_head_target(self, obj):
    return obj.type == "ARMATURE" if self.head_target == "BONE" else True


class DuetMapItem(bpy.types.PropertyGroup):
    channel: StringProperty(name="ARKit channel")
    shape_key: StringProperty(name="Shape key", description="Shape key driven by this channel; empty: none")


HEAD_TARGETS = [
    ("NONE", "None", "Do not animate the head"),
    ("OBJECT", "Object", "Rotate an object (the character by default)"),
    ("BONE", "Bone", "Rotate a bone of an armature"),
]

# A character's facing in its own (local) space; Blender characters are modelled looking down -Y.
FORWARD_AXES = {"NEG_Y": (0.0, -1.0, 0.0), "POS_Y": (0.0, 1.0, 0.0), "POS_X": (1.0, 0.0, 0.0),
                "NEG_X": (-1.0, 0.0, 0.0)}
_AXIS_LABELS = {"NEG_Y": "-Y", "POS_Y": "+Y", "POS_X": "+X", "NEG_X": "-X"}

# Said in the tooltips of the settings a cast's rows take from the panel.
EVERY = " (every character of a cast too)"


class DuetCastMember(bpy.types.PropertyGroup):
    """One row of the Cast list: who speaks which voice, and what turns when they look around."""

    character: PointerProperty(name="Character", type=bpy.types.Object, poll=_is_character,
                               description="Mesh with ARKit-style shape keys that speaks this row's voice")
    voice: StringProperty(name="Voice", subtype="FILE_PATH", description="This character's own voice track")
    voice_strip: StringProperty(name="Voice strip",
                                description="Or: a sound strip in the Sequencer (used instead of the file)")
    head_target: EnumProperty(name="Head motion", items=HEAD_TARGETS, default="OBJECT",
                              description="What turns toward the speaker and nods")
    head_object: PointerProperty(name="Head object", type=bpy.types.Object, poll=_is_head_target,
                                 description="Object (empty: the character) or armature that carries the head")
    head_bone: StringProperty(name="Head bone")
    forward_axis: EnumProperty(name="Facing", default="NEG_Y", items=[
        (k, _AXIS_LABELS[k], f"The character looks down its local {_AXIS_LABELS[k]} axis"
         + (" (as Blender characters are modelled)" if k == "NEG_Y" else "")) for k in FORWARD_AXES],
        description="The axis the character faces in its own space: the others' directions are measured from it")
    mute: BoolProperty(name="Mute", default=False,
                       description="Heard and looked at by the others, but not animated")


def _intensity(name):
    return FloatProperty(name=name, default=1.0, min=0.0, soft_max=2.0, max=5.0,
                         description=f"Scale of the {name.lower()} motion{EVERY}")


class DuetSettings(bpy.types.PropertyGroup):
    character: PointerProperty(name="Character", type=bpy.types.Object, poll=_is_character,
                               description="Mesh with ARKit-style shape keys; empty: the active object")
    self_audio: StringProperty(name="Own voice", subtype="FILE_PATH",
                               description="This character's own voice track")
    self_strip: StringProperty(name="Own voice strip", description="Or: a sound strip in the Sequencer")
    partner_audio: StringProperty(name="Partner voice", subtype="FILE_PATH",
                                  description="The conversation partner's voice track (optional)")
    partner_strip: StringProperty(name="Partner voice strip",
                                  description="Or: a sound strip in the Sequencer")
    partner_mode: EnumProperty(name="Partner reference", items=[
        ("NONE", "None", "The partner's face is unknown"),
        ("CHARACTER", "Character", "Another character whose shape keys are already animated"),
        ("CSV", "Live Link Face CSV", "A capture of the partner's face"),
    ], default="NONE")
    partner_object: PointerProperty(name="Partner", type=bpy.types.Object, poll=_is_character)
    partner_csv: StringProperty(name="Partner CSV", subtype="FILE_PATH")
    start_frame: IntProperty(name="Start frame", default=1, description="Frame where the audio starts")

    intensity_mouth: _intensity("Mouth")
    intensity_brows: _intensity("Brows")
    intensity_eyes: _intensity("Eyes and blinks")
    intensity_head: _intensity("Head")
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, max=0.5, unit="TIME_ABSOLUTE",
                             description=f"Gaussian smoothing (seconds); 0: as predicted{EVERY}")
    liveliness: BoolProperty(name="Blinks and gaze", default=DEFAULT_LIVELINESS,
                             description="Add seeded blinks, gaze shifts and idle head sway on top of the "
                                         f"network (random by nature: a network cannot predict them){EVERY}")
    seed: IntProperty(name="Seed", default=DEFAULT_SEED, min=0, description="Another seed gives another take of "
                                                                 "head sway, blinks and gaze (never the mouth); "
                                                                 "the same seed, the same take "
                                                                 "(a cast's row k takes seed + k)")
    reduce_keys: BoolProperty(name="Reduce keys", default=False,
                              description="Keep only the keys needed to stay within the tolerance")
    reduce_tolerance: FloatProperty(name="Tolerance", default=0.01, min=0.0001, max=0.2, precision=4)
    head_target: EnumProperty(name="Head motion", items=HEAD_TARGETS, default="NONE",
                              description="The panel's character (a cast's rows each have their own)")
    head_object: PointerProperty(name="Head object", type=bpy.types.Object, poll=_is_head_target)
    head_bone: StringProperty(name="Head bone")
    output_mode: EnumProperty(name="Output", description="Where the keys go" + EVERY, items=[
        ("NLA", "NLA strip", "A new NLA track; the active action stays as it is"),
        ("ACTIVE", "Active action", "Make the result the active action; the previous one is stashed in NLA"),
    ], default="NLA")
    add_sound_strips: BoolProperty(name="Add sound strips", default=True,
                                   description="Put the voices in the Sequencer so playback is in sync")
    set_frame_range: BoolProperty(name="Set frame range", default=False)
    mapping_preset: EnumProperty(name="Naming", items=[(k, v[0], v[1]) for k, v in PRESETS.items()],
                                 default="AUTO", description="How shape keys are named" + EVERY)
    conversation: BoolProperty(name="Conversation", default=False,
                               description="Animate two characters, each the other's partner")
    character_b: PointerProperty(name="Second character", type=bpy.types.Object, poll=_is_character,
                                 description="Speaks the partner voice")
    cast: CollectionProperty(type=DuetCastMember, name="Cast",
                             description="Characters animated together by Generate cast, each from its own "
                                         "voice, turning toward whoever speaks; intensities, smoothing, naming, "
                                         "output, blinks and seed are the panel's, for every row")
    cast_index: IntProperty(name="Active cast row", default=0)
    cast_attention: BoolProperty(name="Look at the speaker", default=DEFAULT_ATTENTION,
                                 description="Heads and eyes of the cast turn toward whoever speaks")


classes = (DuetMapItem, DuetCastMember, DuetSettings)


def register_props():
    bpy.types.Scene.duet = PointerProperty(type=DuetSettings)
    bpy.types.Object.duet_map = CollectionProperty(type=DuetMapItem)
    bpy.types.Object.duet_map_index = IntProperty()
    wm = bpy.types.WindowManager
    wm.duet_running = BoolProperty(default=False)
    wm.duet_progress = FloatProperty(default=0.0, min=0.0, max=100.0, subtype="PERCENTAGE")
    wm.duet_status = StringProperty(default="")


def unregister_props():
    for owner, names in ((bpy.types.Scene, ("duet",)), (bpy.types.Object, ("duet_map", "duet_map_index")),
                         (bpy.types.WindowManager, ("duet_running", "duet_progress", "duet_status"))):
        for n in names:
            if hasattr(owner, n):
                delattr(owner, n)
