"""Operators: thin. poll() asks addon.validate why not; execute() calls addon/ and reports one line."""

import functools
import json

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..addon import cast, export, generate, llf, runtime, scene, validate
from ..addon.job import JobState
from ..addon.prefs import get_prefs


def _poll(cls, reason):
    if reason is not None:
        cls.poll_message_set(reason)
        return False
    return True


class _GenerateBase:
    """A generation: starts the job, then (from the UI) stays modal only to catch Esc and report.
    The finished job pushes its own undo step (it ends in a timer), so bl_options has no UNDO."""

    bl_options = {"REGISTER"}
    build = None  # callable(context) -> Plan; None: the panel's character or conversation

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE"},
                       description="Run to completion before returning (scripts)")
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0, options={"SKIP_SAVE"},
                           description="With Wait: cancel after this many seconds (0: no limit)")

    def execute(self, context):
        try:
            job = generate.start(context, wait=self.wait, timeout=self.timeout or None, build=type(self).build)
        except generate.UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if self.wait:
            self.report({"INFO"} if job.state is JobState.DONE else {"ERROR"}, job.message)
            return {"FINISHED"} if job.state is JobState.DONE else {"CANCELLED"}
        return {"FINISHED"}

    def invoke(self, context, event):
        result = self.execute(context)
        if self.wait or "FINISHED" not in result:
            return result
        # Stay around only to catch Esc and report the outcome; the timer does the work.
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = generate.current_job()
        if job is None:
            return {"CANCELLED"}
        if job.running:
            if event.type == "ESC" and event.value == "PRESS":
                generate.cancel()
            return {"PASS_THROUGH"}
        self.report({"INFO"} if job.state is JobState.DONE else {"WARNING"}, job.message)
        return {"FINISHED"} if job.state is JobState.DONE else {"CANCELLED"}


class DUET_OT_generate(_GenerateBase, bpy.types.Operator):
    """Animate the character's face from the two voices (runs in the background; Esc cancels)"""

    bl_idname = "duet.generate"
    bl_label = "Generate"

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.generate_reason(context, generate.current_job()))


class DUET_OT_generate_cast(_GenerateBase, bpy.types.Operator):
    """Animate every character of the Cast list in one job, each from its own voice, turning toward
    whoever speaks (runs in the background; Esc cancels; one undo step)"""

    bl_idname = "duet.generate_cast"
    bl_label = "Generate cast"
    build = staticmethod(cast.build_plan)

    @classmethod
    def poll(cls, context):
        return _poll(cls, cast.generate_reason(context, generate.current_job()))


class DUET_OT_cast_add(bpy.types.Operator):
    """Add a row to the Cast list (its character: the active object, when it has shape keys)"""

    bl_idname = "duet.cast_add"
    bl_label = "Add cast row"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        cast.add_row(context)
        return {"FINISHED"}


class _CastRow:
    """An edit of the selected Cast row."""

    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, cast.row_reason(context))


class DUET_OT_cast_remove(_CastRow, bpy.types.Operator):
    """Remove the selected row from the Cast list (the character and its keys stay)"""

    bl_idname = "duet.cast_remove"
    bl_label = "Remove cast row"

    def execute(self, context):
        cast.remove_row(context)
        return {"FINISHED"}


class _CastMove(_CastRow):
    delta = 0

    def execute(self, context):
        cast.move_row(context, self.delta)
        return {"FINISHED"}


class DUET_OT_cast_move_up(_CastMove, bpy.types.Operator):
    """Move the selected row up (row order is the order of the members' seeds: row k takes seed + k)"""

    bl_idname = "duet.cast_move_up"
    bl_label = "Move cast row up"
    delta = -1


class DUET_OT_cast_move_down(_CastMove, bpy.types.Operator):
    """Move the selected row down (row order is the order of the members' seeds: row k takes seed + k)"""

    bl_idname = "duet.cast_move_down"
    bl_label = "Move cast row down"
    delta = 1


class DUET_OT_cast_from_conversation(bpy.types.Operator):
    """Replace the Cast list with the panel's character and own voice, and in conversation mode the
    second character and the partner voice (conversation mode itself stays as it is)"""

    bl_idname = "duet.cast_from_conversation"
    bl_label = "Cast from conversation"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.character_reason(context))

    def execute(self, context):
        n = cast.from_conversation(context)
        self.report({"INFO"}, f"Cast: {n} row{'s' if n != 1 else ''} from the panel's settings")
        return {"FINISHED"}


class DUET_OT_cancel(bpy.types.Operator):
    """Stop the running generation; nothing is written"""

    bl_idname = "duet.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.cancel_reason(generate.current_job()))

    def execute(self, context):
        generate.cancel()
        return {"FINISHED"}


class DUET_OT_check_runtime(bpy.types.Operator):
    """Run the runtime once and show its version, backend, execution provider and GPU"""

    bl_idname = "duet.check_runtime"
    bl_label = "Check runtime"

    def execute(self, context):
        prefs = get_prefs(context)
        try:
            config = generate.runtime_config(context)  # the runtime a generation would use
        except generate.UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        info, why = runtime.check_runtime(config.python, config.model, config.backend, config.device)
        if info is None:
            self.report({"ERROR"}, why)
            return {"CANCELLED"}
        if hasattr(prefs, "bl_rna"):  # not the defaults stand-in
            prefs.runtime_info = json.dumps(info)
        self.report({"INFO"}, f"{runtime.describe_info(info)} ({config.python})")
        return {"FINISHED"}


class DUET_OT_setup_runtime(bpy.types.Operator):
    """Create the runtime's own Python environment under the extension's user folder and install its
    packages (from the internet when online access is allowed, or from a folder of wheels); ONNX
    Runtime's GPU build where an NVIDIA driver is found"""

    bl_idname = "duet.setup_runtime"
    bl_label = "Set up runtime"

    def execute(self, context):
        import os
        import sys

        if (job := generate.current_job()) is not None and job.running:
            self.report({"ERROR"}, "Duet is generating: set up the runtime once it has finished")
            return {"CANCELLED"}
        prefs = get_prefs(context)
        env_dir = runtime.managed_env_dir()
        try:
            cmds = runtime.setup_commands(sys.executable, env_dir, prefs.backend,
                                          bpy.path.abspath(prefs.wheels_dir) if prefs.wheels_dir else "",
                                          online=bpy.app.online_access)
            runtime.start_setup(cmds, os.path.join(runtime.user_dir(), "setup.log"))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not bpy.app.timers.is_registered(setup_timer):
            bpy.app.timers.register(setup_timer, first_interval=0.1)
        self.report({"INFO"}, f"Setting up the runtime in {env_dir} ({runtime.setup_summary(prefs.backend)}); "
                              "see the status in the Duet panel")
        return {"FINISHED"}


def setup_timer():
    """The set-up's bpy.app.timers callback (the operator's context is gone by then: bpy.context).
    Public because the PyPI bpy module never fires timers: tests call it as Blender would."""
    task = runtime.current_setup()
    if task is None:
        return None
    if task.tick():
        return 0.5
    print(f"Duet: {task.message}")
    bpy.context.window_manager.duet_status = task.message
    return None


class DUET_OT_refresh_mapping(bpy.types.Operator):
    """Match the character's shape keys to ARKit names again (overwrites the edited table)"""

    bl_idname = "duet.refresh_mapping"
    bl_label = "Match shape keys"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.character_reason(context))

    def execute(self, context):
        obj = validate.character(context)
        res = scene.fill_mapping_table(obj, context.scene.duet.mapping_preset)
        self.report({"INFO"}, f"{obj.name}: {res.summary()}")
        return {"FINISHED"}


class DUET_OT_clear_mapping(bpy.types.Operator):
    """Forget the edited table: match automatically at every generation"""

    bl_idname = "duet.clear_mapping"
    bl_label = "Automatic mapping"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.character_reason(context))

    def execute(self, context):
        validate.character(context).duet_map.clear()
        return {"FINISHED"}


class DUET_OT_import_csv(bpy.types.Operator, ImportHelper):
    """Import a Live Link Face CSV capture onto the character's shape keys as a new action"""

    bl_idname = "duet.import_csv"
    bl_label = "Import Live Link Face CSV"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})
    start_frame: IntProperty(name="Start frame", default=1)

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.character_reason(context))

    def execute(self, context):
        s = context.scene.duet
        if (why := validate.output_problem(validate.character(context), s.output_mode)) is not None:
            self.report({"ERROR"}, f"Import failed: {why}")
            return {"CANCELLED"}
        try:
            rep = llf.import_csv(context.scene, validate.character(context), self.filepath, self.start_frame,
                                 s.output_mode, s.mapping_preset)
        except Exception as exc:  # BadInput from motion_io, ValueError from the writer
            self.report({"ERROR"}, f"Import failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {rep.frames} frames, {len(rep.channels)} channels into "
                              f"'{rep.action.name}'")
        return {"FINISHED"}


class DUET_OT_export_csv(bpy.types.Operator, ExportHelper):
    """Export the character's shape-key animation over the scene's frame range as a Live Link Face CSV"""

    bl_idname = "duet.export_csv"
    bl_label = "Export Live Link Face CSV"

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.character_reason(context))

    def execute(self, context):
        if (why := export.output_path_problem(self.filepath)) is not None:
            self.report({"ERROR"}, f"Export failed: {why}")
            return {"CANCELLED"}
        try:
            n = llf.export_csv(context.scene, validate.character(context), self.filepath,
                               preset=context.scene.duet.mapping_preset)
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"Export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {n} frames to {self.filepath}")
        return {"FINISHED"}


class _ExportBase(ExportHelper):
    one_clip = False  # glTF: per-action clips (a cast: the scene as one clip)

    @classmethod
    def poll(cls, context):
        return _poll(cls, validate.character_reason(context))

    objects = staticmethod(export.export_objects)  # what the export writes

    def export(self, context, fn, path):
        """Run an exporter; a bad path or an exporter's failure ends in one line, not a traceback."""
        if (why := export.output_path_problem(path)) is not None:
            self.report({"ERROR"}, f"Export failed: {why}")
            return {"CANCELLED"}
        try:
            fn(context, path, self.objects(context))
        except (OSError, RuntimeError) as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            self.report({"ERROR"}, f"Export failed: {lines[-1] if lines else type(exc).__name__}")
            return {"CANCELLED"}
        return {"FINISHED"}


class _Gltf:
    filename_ext = ".glb"
    filter_glob: StringProperty(default="*.glb;*.gltf", options={"HIDDEN"})

    def execute(self, context):
        return self.export(context, functools.partial(export.export_gltf, one_clip=self.one_clip),
                           export.gltf_path(self.filepath))


class _Fbx:
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})

    def execute(self, context):
        return self.export(context, export.export_fbx, export.fbx_path(self.filepath))


class DUET_OT_export_gltf(bpy.types.Operator, _Gltf, _ExportBase):
    """Export the character(s) as glTF binary with shape-key animation"""

    bl_idname = "duet.export_gltf"
    bl_label = "Export glTF (.glb)"


class DUET_OT_export_fbx(bpy.types.Operator, _Fbx, _ExportBase):
    """Export the character(s) as FBX with shape-key animation"""

    bl_idname = "duet.export_fbx"
    bl_label = "Export FBX"


class _CastExport(_ExportBase):
    """The Cast panel's exports: every row's character and head object (glTF: one clip for all)."""

    one_clip = True

    @classmethod
    def poll(cls, context):
        return _poll(cls, cast.export_reason(context))

    objects = staticmethod(cast.export_objects)


class DUET_OT_export_cast_gltf(bpy.types.Operator, _Gltf, _CastExport):
    """Export every character of the cast as glTF binary with shape-key animation"""

    bl_idname = "duet.export_cast_gltf"
    bl_label = "Export cast glTF (.glb)"


class DUET_OT_export_cast_fbx(bpy.types.Operator, _Fbx, _CastExport):
    """Export every character of the cast as FBX with shape-key animation"""

    bl_idname = "duet.export_cast_fbx"
    bl_label = "Export cast FBX"


classes = (DUET_OT_generate, DUET_OT_generate_cast, DUET_OT_cast_add, DUET_OT_cast_remove, DUET_OT_cast_move_up,
           DUET_OT_cast_move_down, DUET_OT_cast_from_conversation, DUET_OT_cancel, DUET_OT_check_runtime,
           DUET_OT_setup_runtime, DUET_OT_refresh_mapping, DUET_OT_clear_mapping, DUET_OT_import_csv,
           DUET_OT_export_csv, DUET_OT_export_gltf, DUET_OT_export_fbx, DUET_OT_export_cast_gltf,
           DUET_OT_export_cast_fbx)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    # Disabling the extension leaves nothing running: no set-up process, no timer into unloaded code.
    runtime.cancel_setup()
    if bpy.app.timers.is_registered(setup_timer):
        bpy.app.timers.unregister(setup_timer)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
