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
"""

import hashlib
import os
import urllib.parse

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
