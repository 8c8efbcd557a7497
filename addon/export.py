"""FBX and glTF export with the settings that keep shape-key animation (each exporter's defaults
silently lose some of it: see the comments below). Mesh modifiers are not applied: applying any of
them removes every shape key. The re-import tests cover results placed as NLA strips, the add-on's
default output."""

import os

import bpy

from .validate import character


def output_path_problem(path):
    """Why `path` cannot be written, in one line, or None: asked before an exporter starts, so a bad
    path fails in one line instead of a traceback half-way through the export."""
    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        return f"{path} is a folder: give a file name"
    if not os.path.isdir(folder):
        return f"folder not found: {folder}"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return f"cannot write to {path} (permission denied)"
    return None


def gltf_path(path):
    return path if path.lower().endswith((".glb", ".gltf")) else path + ".glb"


def fbx_path(path):
    return path if path.lower().endswith(".fbx") else path + ".fbx"


def gltf_settings(path, one_clip=False):
    """one_clip: the whole scene's frame range as one animation (a cast: every face and head in one
    clip, which is what an engine plays; per-action clips would play one character at a time)."""
    fmt = "GLTF_SEPARATE" if path.lower().endswith(".gltf") else "GLB"
    # export_apply=True with any modifier on the mesh writes no morph targets at all.
    settings = dict(export_format=fmt, use_selection=True, export_apply=False, export_morph=True,
                    export_morph_animation=True, export_animations=True)
    if one_clip:  # both options exist from Blender 4.2 to 5.0
        settings.update(export_animation_mode="SCENE", export_anim_scene_split_object=False)
    return settings


def fbx_settings():
    # Animation that lives only on the shape keys (not the object) is exported only with both NLA
    # and all-actions baking off; use_mesh_modifiers=True drops every shape key; simplify 0 keeps
    # every key.
    return dict(use_selection=True, use_mesh_modifiers=False, bake_anim=True,
                bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
                bake_anim_simplify_factor=0.0, add_leaf_bones=False)


def export_objects(context):
    """What the panel's export buttons write: the character, the conversation's second character,
    and the object that carries the head motion (when it is another one)."""
    s = context.scene.duet
    objs = [character(context)]
    if s.conversation and s.character_b is not None:
        objs.append(s.character_b)
    if s.head_target != "NONE" and s.head_object is not None and s.head_object not in objs:
        objs.append(s.head_object)
    return objs


def _export_selected(objects, fn):
    """Run an exporter on exactly `objects`, then give the artist their selection back."""
    layer = bpy.context.view_layer
    selected = [ob for ob in layer.objects if ob.select_get()]
    active = layer.objects.active
    try:
        for ob in layer.objects:
            ob.select_set(ob in objects)
        layer.objects.active = objects[0]
        return fn()
    finally:
        for ob in layer.objects:
            ob.select_set(ob in selected)
        layer.objects.active = active


def export_gltf(context, path, objects, one_clip=False):
    path = gltf_path(path)
    return _export_selected(objects, lambda: bpy.ops.export_scene.gltf(filepath=path,
                                                                       **gltf_settings(path, one_clip)))


def export_fbx(context, path, objects):
    path = fbx_path(path)
    return _export_selected(objects, lambda: bpy.ops.export_scene.fbx(filepath=path, **fbx_settings()))
