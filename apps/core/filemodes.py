"""Files only the studio can read: the umask at start, and a check of STUDIO_HOME that names anything wider.

`studio up` calls `secure_start(home)` first thing: from then on every file the studio and its children
create (database, Redis' files, logs, instance state, uploads) is 0600 and every folder 0700. The check walks
STUDIO_HOME and names each file or folder that others can read, or that a group other than the tenants' can
read (apps/endpoints/tenant.py gives that group traverse-only folders and read-only environments), narrows it
to the studio's user, and logs a warning naming it. Files owned by a tenant (an instance's own code, model and
HOME) are its own and left as they are, as long as no other user can read them.
"""

from __future__ import annotations

import grp
import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

UMASK = 0o077
TENANT_GROUP = "studio-tenant"  # apps/endpoints/tenant.py creates it; named here too, core knows no app
MAX_NAMED = 20


def tenant_gid() -> int | None:
    try:
        return grp.getgrnam(TENANT_GROUP).gr_gid
    except KeyError:
        return None


def too_wide(path: Path, info: os.stat_result, group: int | None) -> bool:
    """Can someone other than the owner (and the tenants' group, where it is the file's group) read it?"""
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o007:
        return True
    return bool(mode & 0o070) and (group is None or info.st_gid != group)


def wider_than_allowed(root: Path) -> list[Path]:
    """Every file or folder under `root` (itself included) that is readable beyond what is allowed."""
    group = tenant_gid()
    found = []
    for folder, dirs, files in os.walk(root):
        for path in [Path(folder)] if Path(folder) == root else []:
            if too_wide(path, path.lstat(), group):
                found.append(path)
        for name in (*dirs, *files):
            path = Path(folder) / name
            info = path.lstat()
            if not stat.S_ISLNK(info.st_mode) and too_wide(path, info, group):
                found.append(path)
    return found


def narrow(path: Path) -> None:
    """Take away what others (and a group that is not the tenants') can do with `path`."""
    info = path.lstat()
    mode = stat.S_IMODE(info.st_mode)
    group = tenant_gid()
    keep = 0o750 if group is not None and info.st_gid == group else 0o700
    path.chmod(mode & keep)


def secure_start(home: Path) -> list[Path]:
    """Set the umask, make STUDIO_HOME the studio's, warn about (and narrow) anything in it others can read."""
    os.umask(UMASK)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    wide = wider_than_allowed(home)
    for path in wide:
        try:
            narrow(path)
        except OSError as exc:
            logger.warning("%s is readable by other users and could not be narrowed: %s", path, exc)
    if wide:
        named = ", ".join(str(path) for path in wide[:MAX_NAMED])
        more = f" and {len(wide) - MAX_NAMED} more" if len(wide) > MAX_NAMED else ""
        logger.warning("readable by other users, now narrowed to the studio's user: %s%s", named, more)
    return wide
