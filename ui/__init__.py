"""Panels and lists (3D View sidebar, tab "Duet"). Layout only: every decision lives in addon/."""

import bpy

from ..addon import cast, runtime, scene
from ..addon.prefs import DuetPreferences


class DUET_UL_mapping(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=item.channel)
        key = data.data.shape_keys
        if key is not None:
            row.prop_search(item, "shape_key", key, "key_blocks", text="")
        else:
            row.prop(item, "shape_key", text="")


class DUET_UL_cast(bpy.types.UIList):
    """A cast row: character, voice (file name or strip), mute; an alert icon when it has a problem
    (the details below the list say which)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        problem = cast.row_problem(context.scene, item, index, data.output_mode)
        row.label(text=item.character.name if item.character else "(no character)",
                  icon="ERROR" if problem else "OUTLINER_OB_MESH")
        voice = item.voice_strip or bpy.path.basename(item.voice) or "(no voice)"
        sub = row.row()
        sub.active = not item.mute
        sub.label(text=voice, icon="SEQUENCE" if item.voice_strip else "SOUND")
        row.prop(item, "mute", text="", emboss=False, icon="MUTE_IPO_ON" if item.mute else "MUTE_IPO_OFF")


def _draw_head(col, owner):
    """The head settings of the panel (Scene.duet) or of a cast row: same property names on both."""
    col.prop(owner, "head_target")
    if owner.head_target != "NONE":
        col.prop(owner, "head_object")
        head = owner.head_object
        if owner.head_target == "BONE" and head is not None and head.type == "ARMATURE":
            col.prop_search(owner, "head_bone", head.pose, "bones")


def _draw_generate(col, wm, idname):
    """The progress bar and Cancel while a job runs, else the big generate button. Returns whether a
    job is running."""
    row = col.row(align=True)
    if wm.duet_running:
        row.prop(wm, "duet_progress", text=wm.duet_status, slider=True)
        row.operator("duet.cancel", text="", icon="CANCEL")
        return True
    row.scale_y = 1.4
    row.operator(idname, icon="PLAY")
    return False


class _Base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Duet"


class DUET_PT_main(_Base, bpy.types.Panel):
    bl_label = "Duet"

    def draw(self, context):
        s = context.scene.duet
        wm = context.window_manager
        col = self.layout.column()
        col.prop(s, "character")
        col.prop(s, "self_audio")
        col.prop(s, "partner_audio")
        col.prop(s, "start_frame")
        col.prop(s, "conversation")
        if s.conversation:
            col.prop(s, "character_b")
        else:
            col.prop(s, "partner_mode")
            if s.partner_mode == "CHARACTER":
                col.prop(s, "partner_object")
            elif s.partner_mode == "CSV":
                col.prop(s, "partner_csv")
        if not _draw_generate(col, wm, "duet.generate") and wm.duet_status:
            col.label(text=wm.duet_status)


class DUET_PT_cast(_Base, bpy.types.Panel):
    bl_label = "Cast"
    bl_parent_id = "DUET_PT_main"

    def draw(self, context):
        s = context.scene.duet
        wm = context.window_manager
        layout = self.layout
        row = layout.row()
        row.template_list("DUET_UL_cast", "", s, "cast", s, "cast_index", rows=3)
        col = row.column(align=True)
        col.operator("duet.cast_add", text="", icon="ADD")
        col.operator("duet.cast_remove", text="", icon="REMOVE")
        col.operator("duet.cast_move_up", text="", icon="TRIA_UP")
        col.operator("duet.cast_move_down", text="", icon="TRIA_DOWN")
        layout.operator("duet.cast_from_conversation", icon="IMPORT")
        if 0 <= s.cast_index < len(s.cast):
            item = s.cast[s.cast_index]
            box = layout.box().column()
            box.prop(item, "character")
            box.prop(item, "voice")
            se = context.scene.sequence_editor
            if se is not None:
                box.prop_search(item, "voice_strip", se, scene.strips_collection_name(se))
            _draw_head(box, item)
            box.prop(item, "forward_axis")
            box.prop(item, "mute")
            problem = cast.row_problem(context.scene, item, s.cast_index, s.output_mode)
            if problem:
                box.label(text=problem, icon="ERROR")
        layout.prop(s, "cast_attention")
        layout.label(text="Every row takes the panel's Controls", icon="INFO")
        if not _draw_generate(layout, wm, "duet.generate_cast") and (why := cast.generate_reason(context)):
            layout.label(text=why, icon="INFO")  # what greys the button out
        row = layout.row(align=True)
        row.operator("duet.export_cast_gltf", text="glTF", icon="EXPORT")
        row.operator("duet.export_cast_fbx", text="FBX", icon="EXPORT")


class DUET_PT_voices_strips(_Base, bpy.types.Panel):
    bl_label = "Voices from the Sequencer"
    bl_parent_id = "DUET_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.duet
        se = context.scene.sequence_editor
        col = self.layout.column()
        if se is None:
            col.label(text="No Sequencer strips in this scene")
            return
        coll = scene.strips_collection_name(se)
        col.prop_search(s, "self_strip", se, coll, text="Own voice")
        col.prop_search(s, "partner_strip", se, coll, text="Partner voice")


class DUET_PT_controls(_Base, bpy.types.Panel):
    bl_label = "Controls"
    bl_parent_id = "DUET_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.duet
        col = self.layout.column()
        for p in ("intensity_mouth", "intensity_brows", "intensity_eyes", "intensity_head", "smoothing"):
            col.prop(s, p)
        row = col.row(align=True)
        row.prop(s, "liveliness")
        sub = row.row()
        sub.active = s.liveliness
        sub.prop(s, "seed")
        row = col.row(align=True)
        row.prop(s, "reduce_keys")
        sub = row.row()
        sub.active = s.reduce_keys
        sub.prop(s, "reduce_tolerance")
        _draw_head(col, s)
        col.prop(s, "output_mode")
        col.prop(s, "add_sound_strips")
        col.prop(s, "set_frame_range")


class DUET_PT_mapping(_Base, bpy.types.Panel):
    bl_label = "Name mapping"
    bl_parent_id = "DUET_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.duet
        obj = s.character or context.active_object
        col = self.layout.column()
        col.prop(s, "mapping_preset")
        row = col.row(align=True)
        row.operator("duet.refresh_mapping", icon="FILE_REFRESH")
        row.operator("duet.clear_mapping", text="", icon="X")
        if obj is None or not hasattr(obj, "duet_map") or not len(obj.duet_map):
            col.label(text="Automatic (press Match to edit)")
            return
        col.template_list("DUET_UL_mapping", "", obj, "duet_map", obj, "duet_map_index", rows=6)
        missing = scene.unmapped_channels(obj)
        if missing:
            box = col.box()
            box.label(text=f"{len(missing)} ARKit channels have no shape key:", icon="ERROR")
            for ch in missing:
                box.label(text=ch)


class DUET_PT_io(_Base, bpy.types.Panel):
    bl_label = "Import / Export"
    bl_parent_id = "DUET_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        col = self.layout.column(align=True)
        col.operator("duet.import_csv", icon="IMPORT")
        col.operator("duet.export_csv", icon="EXPORT")
        col.operator("duet.export_gltf", icon="EXPORT")
        col.operator("duet.export_fbx", icon="EXPORT")


def draw_preferences(prefs, context, layout):
    col = layout.column()
    col.prop(prefs, "runtime_python")
    col.prop(prefs, "model_path")
    row = col.row()
    row.prop(prefs, "backend")
    row.prop(prefs, "device")
    col.prop(prefs, "wheels_dir")
    col.label(text=runtime.setup_summary(prefs.backend), icon="INFO")
    row = col.row()
    row.operator("duet.setup_runtime", icon="CONSOLE")
    row.operator("duet.check_runtime", icon="CHECKMARK")
    lines = runtime.info_lines(prefs.runtime_info)
    if lines:
        box = col.box()
        for line in lines:
            box.label(text=line)
    if not bpy.app.online_access:
        col.label(text="Online access is off: set-up installs from the wheels folder only", icon="INFO")


def _draw_preferences_method(self, context):
    draw_preferences(self, context, self.layout)


def draw_status(self, context):
    wm = context.window_manager
    if getattr(wm, "duet_running", False):
        self.layout.label(text=f"Duet: {wm.duet_status}", icon="SOUND")


classes = (DUET_UL_mapping, DUET_UL_cast, DUET_PT_main, DUET_PT_cast, DUET_PT_voices_strips, DUET_PT_controls,
           DUET_PT_mapping, DUET_PT_io)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status)
    DuetPreferences.draw = _draw_preferences_method  # see DuetPreferences: addon/ never imports ui/


def unregister():
    if "draw" in vars(DuetPreferences):
        del DuetPreferences.draw
    bpy.types.STATUSBAR_HT_header.remove(draw_status)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
