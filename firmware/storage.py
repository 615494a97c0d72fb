# Small files (settings, roster, device key, log state) replaced atomically:
# write a temporary file, then rename over the old one (littlefs renames are atomic).
import json
import os

# one set of littlefs parameters for the board and the virtual device (littlefs keeps
# no cache sizes in its superblock, so every mount must pass them): a 512-byte
# cache lets the log's journal stay inline (one program, no erase, per append)
LFS_OPTS = {"readsize": 128, "progsize": 128, "lookahead": 32}


def makedirs(path):
    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/" if not cur else cur
            continue
        cur = cur + part if cur.endswith("/") or not cur else cur + "/" + part
        try:
            os.stat(cur)
        except OSError:
            os.mkdir(cur)


def replace(path, data):
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def replace_all(files):
    """Replace several files so that a failure leaves every old one: each new one
    is written first, the renames come last. files: (path, data) pairs; data None
    keeps that file."""
    staged = []
    try:
        for path, data in files:
            if data is not None:
                staged.append(path)
                with open(path + ".new", "wb") as f:
                    f.write(data)
    except Exception:
        for path in staged:
            remove(path + ".new")
        raise
    for path in staged:
        os.rename(path + ".new", path)


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def read(path):
    """The file's bytes, or None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def keep_copy(path, copy):
    """Make copy hold what path holds (a file just found good), writing only
    when they differ: the last good copy of a small file."""
    data = read(path)
    if data is not None and read(copy) != data:
        replace(copy, data)


def save_json(path, obj):
    replace(path, json.dumps(obj).encode())


def load_json(path, default=None):
    """The object in path; default if the file is missing; ValueError if it is corrupt."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return default
    try:
        return json.loads(data)
    except Exception:
        raise ValueError("corrupt file: " + path)
