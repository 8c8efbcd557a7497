"""Linked and library-overridden characters: keys go where saving keeps them.

A .blend file saves local data and, for a library override, what the override changes; edits of
linked data live only until the file is closed. Studio characters are usually an object override
whose mesh (and so its shape-key datablock) is still linked: keys on those shape keys would vanish
on reopen. So the writer makes that mesh a library override of its own first (its shape keys then
save with it, and the library's later edits of the geometry and keys still come through), and
checks, after writing, that every datablock it animated is one whose animation is saved.

Every change registers its undo in the writer's Transaction, so a refused or failed job leaves the
scene as it was.
"""

import bpy

from .validate import linked_from


def saved(idb):
    """True when animation set on `idb` is written with this file: local data, a library override,
    or shape keys owned by one of those (shape keys save with their mesh)."""
    if idb is None or idb.library is not None:
        return False
    if isinstance(idb, bpy.types.Key):
        return saved(idb.user)
    return True


def unsaved_problem(ids):
    """One line naming the first of `ids` whose animation would not be saved, or None."""
    for idb in ids:
        if not saved(idb):
            owner = idb.user if isinstance(idb, bpy.types.Key) and idb.user is not None else idb
            lib = linked_from(idb) or linked_from(owner) or "a library"
            return (f"keys on '{owner.name}' would not be saved (linked from {lib}): make a library "
                    "override (Object > Library Override > Make) and generate on it")
    return None


def ensure_saved_shape_keys(obj, tx, what="Character"):
    """Give a local or overridden `obj` whose mesh is linked a library override of that mesh, used by
    `obj` alone (another instance of the same character keeps its own face). Returns a note for the
    artist, or None when nothing had to change; ValueError when Blender cannot override the mesh."""
    mesh = obj.data
    if mesh.library is None:
        return None
    ov = mesh.override_create(remap_local_usages=False)
    if ov is None:
        raise ValueError(f"{what}: the mesh '{mesh.name}' of '{obj.name}' is linked from {linked_from(mesh)} "
                         "and cannot be overridden: in the Outliner, right-click it > Library Override > "
                         "Make > Selected & Content, then generate again")

    def undo():
        obj.data = mesh
        bpy.data.meshes.remove(ov)  # its shape keys go with it
    tx.on_undo(undo)
    obj.data = ov
    return f"{obj.name}: its mesh is now a library override, so the face animation is saved with this file"


def make_editable(idb, tx):
    """A system override (one Blender made to hold the hierarchy together) is read-only in the UI:
    the artist could not touch the keys written on it. Turn it into an editable one, as Blender's
    Library Override > Make Editable does. Shape keys are edited through their mesh's override."""
    owner = idb.user if isinstance(idb, bpy.types.Key) else idb
    ol = getattr(owner, "override_library", None)
    if ol is None or not ol.is_system_override:
        return
    ol.is_system_override = False
    tx.on_undo(lambda: setattr(ol, "is_system_override", True))
