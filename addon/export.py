"""FBX and glTF export with the settings that keep shape-key animation (facts.md: the defaults
silently drop it). Mesh modifiers are not applied: applying any of them removes every shape key.
The re-import tests cover results placed as NLA strips, the add-on's default output."""

import bpy


def gltf_settings(path):
    fmt = "GLTF_SEPARATE" if path.lower().endswith(".gltf") else "GLB"
    return dict(export_format=fmt, use_selection=True, export_apply=False, export_morph=True,
                export_morph_animation=True, export_animations=True)


def fbx_settings():
    # Key-only animation is exported only with both NLA and all-actions baking off (facts.md).
    return dict(use_selection=True, use_mesh_modifiers=False, bake_anim=True,
                bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
                bake_anim_simplify_factor=0.0, add_leaf_bones=False)


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


def export_gltf(context, path, objects):
    if not path.lower().endswith((".glb", ".gltf")):
        path += ".glb"
    return _export_selected(objects, lambda: bpy.ops.export_scene.gltf(filepath=path, **gltf_settings(path)))


def export_fbx(context, path, objects):
    if not path.lower().endswith(".fbx"):
        path += ".fbx"
    return _export_selected(objects, lambda: bpy.ops.export_scene.fbx(filepath=path, **fbx_settings()))
