"""The panel's settings (Scene.duet), the editable name mapping (Object.duet_map) and job status
(WindowManager: not saved with undo steps, so progress updates never touch the artist's data)."""

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

from ..model_runtime.request import DEFAULT_LIVELINESS, DEFAULT_SEED
from .mapping import PRESETS
from .validate import has_shape_keys


def _is_character(self, obj):
    return has_shape_keys(obj)


def _is_head_target(self, obj):
    return obj.type == "ARMATURE" if self.head_target == "BONE" else True


class DuetMapItem(bpy.types.PropertyGroup):
    channel: StringProperty(name="ARKit channel")
    shape_key: StringProperty(name="Shape key", description="Shape key driven by this channel; empty: none")


def _intensity(name):
    return FloatProperty(name=name, default=1.0, min=0.0, soft_max=2.0, max=5.0,
                         description=f"Scale of the {name.lower()} motion")


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
                             description="Gaussian smoothing (seconds); 0: as predicted")
    liveliness: BoolProperty(name="Blinks and gaze", default=DEFAULT_LIVELINESS,
                             description="Add seeded blinks, gaze shifts and idle head sway on top of the "
                                         "network (random by nature: a network cannot predict them)")
    seed: IntProperty(name="Seed", default=DEFAULT_SEED, min=0, description="Another seed gives another take of "
                                                                 "blinks and gaze; the same seed, the same take")
    reduce_keys: BoolProperty(name="Reduce keys", default=False,
                              description="Keep only the keys needed to stay within the tolerance")
    reduce_tolerance: FloatProperty(name="Tolerance", default=0.01, min=0.0001, max=0.2, precision=4)
    head_target: EnumProperty(name="Head motion", items=[
        ("NONE", "None", "Do not animate the head"),
        ("OBJECT", "Object", "Rotate an object (the character by default)"),
        ("BONE", "Bone", "Rotate a bone of an armature"),
    ], default="NONE")
    head_object: PointerProperty(name="Head object", type=bpy.types.Object, poll=_is_head_target)
    head_bone: StringProperty(name="Head bone")
    output_mode: EnumProperty(name="Output", items=[
        ("NLA", "NLA strip", "A new NLA track; the active action stays as it is"),
        ("ACTIVE", "Active action", "Make the result the active action; the previous one is stashed in NLA"),
    ], default="NLA")
    add_sound_strips: BoolProperty(name="Add sound strips", default=True,
                                   description="Put the voices in the Sequencer so playback is in sync")
    set_frame_range: BoolProperty(name="Set frame range", default=False)
    mapping_preset: EnumProperty(name="Naming", items=[(k, v[0], v[1]) for k, v in PRESETS.items()],
                                 default="AUTO")
    conversation: BoolProperty(name="Conversation", default=False,
                               description="Animate two characters, each the other's partner")
    character_b: PointerProperty(name="Second character", type=bpy.types.Object, poll=_is_character,
                                 description="Speaks the partner voice")


classes = (DuetMapItem, DuetSettings)


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
