"""Safe file names for class folders, and writes confined to one directory.

Class names are user data: they may contain spaces, unicode, ``/``, ``\\``,
``..`` or control characters. :func:`safe_name` turns any non-empty string
into one path component that cannot escape its parent (``/``, ``\\``, ``%``,
``:*?"<>|``, control characters, a leading ``.`` and a trailing space or dot
are percent-encoded as UTF-8 bytes; everything else, including spaces and
unicode letters, is kept readable). For names up to 200 bytes the encoding is
reversible with :func:`unsafe_name`; longer names are shortened with a hash.
Code that reads a tree back must still map names through its own listing
(never trust a name found on disk); :func:`inside` guards every write/delete.

The folders the exports write in (the Dupes review loop and the curated
export) share :func:`resolve_dir` (the user's folder, checked),
:func:`prepare_dir` (a new folder, or the replacement of a previous export
that deletes only what that export wrote), :func:`class_folders` (one safe
folder per class) and :func:`check_ids` (sample ids read back from a folder
must be samples of the dataset). Data layer: no operator, no ``ctx``.
"""

import hashlib
import os
import shutil
import urllib.parse

from .errors import InputError

_UNSAFE = set('/\\%:*?"<>|')
MAX_BYTES = 200


def safe_name(name):
    """One safe path component for ``name`` (a non-empty string)."""
    if not isinstance(name, str) or not name:
        raise ValueError("cannot make a file name from %r" % (name,))
    chars = []
    last = len(name) - 1
    for i, ch in enumerate(name):
        if (
            ch in _UNSAFE
            or ord(ch) < 32
            or 127 <= ord(ch) < 160
            or (i == 0 and ch == ".")
            or (i == last and ch in " .")
        ):
            chars.append("".join("%%%02X" % b for b in ch.encode("utf-8")))
        else:
            chars.append(ch)
    safe = "".join(chars)
    if len(safe.encode("utf-8")) > MAX_BYTES:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]
        head = safe.encode("utf-8")[: MAX_BYTES - 13].decode("utf-8", "ignore")
        safe = head.rstrip(" .") + "~" + digest
    return safe


def unsafe_name(safe):
    """Inverse of :func:`safe_name` (for names it did not shorten)."""
    return urllib.parse.unquote(safe)


def safe_file_name(basename):
    """A safe name for a file, keeping its extension readable."""
    return safe_name(basename or "file")


def unique_name(name, used):
    """``name`` or ``name~2.ext``, ``name~3.ext``... not in ``used`` (added)."""
    stem, ext = os.path.splitext(name)
    candidate, k = name, 1
    while candidate in used:
        k += 1
        candidate = "%s~%d%s" % (stem, k, ext)
    used.add(candidate)
    return candidate


def inside(root, path):
    """True when ``path`` (symlinks resolved) is strictly inside ``root``."""
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path != root and path.startswith(root.rstrip(os.sep) + os.sep)


def join_inside(root, *parts):
    """``os.path.join(root, *parts)``, refusing anything that leaves ``root``."""
    path = os.path.join(root, *parts)
    if not inside(root, path):
        raise ValueError("refusing to use %r: it is outside %r" % (path, root))
    return path


def list_files(root, exclude=()):
    """Relative POSIX paths of the files under ``root`` (symlinks not followed).

    ``exclude``: file names at the top level of ``root`` to leave out.
    """
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(folder, name), root)
            if folder == root and name in exclude:
                continue
            found.append(rel.replace(os.sep, "/"))
    return found


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


# ------------------------------------------------------- export folders


def resolve_dir(path, param, purpose, refusal, refuse_home=False, missing=None,
                must_be_folder=False):
    """The real path of the folder a user named for an export (or a review).

    Args:
        path: the user's value (``~`` expanded, symlinks resolved)
        param, purpose: name the parameter when ``path`` is empty
            (``"<param> is required: <purpose>"``)
        refusal: the message when ``path`` is the filesystem root (or, with
            ``refuse_home``, the user's home folder); ``{root}`` in it is
            replaced by the resolved path
        refuse_home: also refuse the user's home folder
        missing: when given, the folder must already exist; the message
            otherwise (``{root}`` replaced)
        must_be_folder: refuse a path that exists and is not a folder

    Raises:
        InputError
    """
    if not path or not isinstance(path, str):
        raise InputError("%s is required: %s" % (param, purpose))
    root = os.path.realpath(os.path.expanduser(path))
    refused = {os.path.sep}
    if refuse_home:
        refused.add(os.path.realpath(os.path.expanduser("~")))
    if root in refused:
        raise InputError(refusal.format(root=root))
    if missing is not None and not os.path.isdir(root):
        raise InputError(missing.format(root=root))
    if must_be_folder and os.path.exists(root) and not os.path.isdir(root):
        raise InputError("'%s' exists and is not a folder" % root)
    return root


def prepare_dir(root, overwrite, owned=None, listed=None, what="export"):
    """Makes ``root`` ready for a new export; deletes only what a previous
    export of the same kind wrote there, and only with ``overwrite``.

    A missing ``root`` is created; a path that is not a folder is refused.
    Then one of two policies (pass ``owned`` or ``listed``):

    - ``owned``: the top-level names an export owns (its split folders and
      its manifest). ``root`` may hold anything else, left alone. When some
      owned name is present: refused without ``overwrite``; with it, each is
      deleted whole (a link: the link only, never its target; a folder: its
      tree, refused when it resolves outside ``root``; a file).
    - ``listed``: ``callable(root) -> (files, folders)``, the relative POSIX
      paths a previous export wrote (read from its manifest; called only
      when ``root`` is not empty and ``overwrite``). ``root`` must be empty,
      or (``overwrite``) hold only those: each listed regular file inside
      ``root`` is deleted (a link to outside is left), each listed folder
      once empty; anything left refuses.

    ``what``: the kind of export, named in the messages.

    Raises:
        InputError
    """
    if (owned is None) == (listed is None):
        raise ValueError("pass exactly one of owned, listed")
    if not os.path.exists(root):
        os.makedirs(root)
        return
    if not os.path.isdir(root):
        raise InputError("'%s' exists and is not a folder" % root)
    if owned is not None:
        _replace_owned(root, overwrite, owned, what)
        return
    if not os.listdir(root):
        return
    if not overwrite:
        raise InputError(
            "'%s' is not empty. Pick a new folder, or pass overwrite=True to "
            "replace a previous %s there" % (root, what)
        )
    files, folders = listed(root)
    for rel in files:
        path = os.path.join(root, *rel.split("/"))
        if os.path.lexists(path) and inside(root, path) and os.path.isfile(path):
            os.remove(path)
    for folder in folders:
        path = os.path.join(root, folder)
        if os.path.isdir(path) and inside(root, path) and not os.listdir(path):
            os.rmdir(path)
    if os.listdir(root):
        raise InputError(
            "'%s' still holds files that the previous export did not write (%s); "
            "move them away first" % (root, sorted(os.listdir(root))[:5])
        )


def _replace_owned(root, overwrite, owned, what):
    ours = [n for n in owned if os.path.lexists(os.path.join(root, n))]
    if not ours:
        return
    if not overwrite:
        raise InputError(
            "'%s' already holds %s from a previous %s: pick another "
            "folder or pass overwrite=True" % (root, ", ".join(ours), what)
        )
    for name in ours:
        path = os.path.join(root, name)
        if os.path.islink(path):
            os.unlink(path)  # removes the link only, never its target
        elif os.path.isdir(path):
            if not inside(root, path):
                raise InputError("refusing to delete '%s': outside '%s'" % (path, root))
            shutil.rmtree(path)
        else:
            os.remove(path)


def class_folders(labels, rename_clashes=True):
    """``{safe folder name: class}`` for the distinct non-empty class names.

    Two classes can only get the same :func:`safe_name` through its
    shortening of long names; ``rename_clashes`` gives the later one
    ``<name>~2``; without it the later class replaces the earlier one in
    the mapping (which then has no folder).
    """
    folders = {}
    for c in sorted({x for x in labels if isinstance(x, str) and x}):
        folder = safe_name(c)
        if folder in folders and rename_clashes:
            folder = unique_name(folder, set(folders))
        folders[folder] = c
    return folders


def check_ids(dataset, ids):
    """Refuses sample ids (read back from a review folder's manifest) that
    are not samples of ``dataset``.

    Raises:
        InputError
    """
    if not ids:
        return
    found = set(dataset.select(list(ids)).values("id"))
    missing = [i for i in ids if i not in found]
    if missing:
        raise InputError(
            "%d sample(s) of the review are not in dataset '%s' (e.g. %s): "
            "import the folder into the dataset it was exported from"
            % (len(missing), dataset.name, missing[0])
        )
