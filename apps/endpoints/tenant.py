"""Deployed code is a tenant: the unprivileged OS identities instances and environment builds run as.

When the studio runs as root (or STUDIO_TENANT_ISOLATION=on), it creates a system user and group
`studio-tenant` (no home, no shell). Environment builds run as that user; each deployment's instances run
as a uid of their own (TENANT_UID_BASE + a number taken from the deployment's uid, no passwd entry needed)
with `studio-tenant` as their only group. So:

- STUDIO_HOME and the folders down to an instance's files are root-owned and traversable by the group only
  (mode 0710): no other user can list or read anything in them;
- an instance's laid-out code and model (`var/`) and its HOME/TMPDIR belong to the deployment's uid, mode
  0700: another deployment (another uid) cannot read them;
- a built environment is root-owned and readable by the group (0750), so instances can run it but not change
  it; the secret key, database, logs, state files and build logs stay 0600 root.

A studio that is not root cannot switch users: instances then run as the studio's own user, and everything
that user can read they can read (docs/security.md says how to run a non-root studio safely).
"""

from __future__ import annotations

import functools
import grp
import logging
import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

TENANT_NAME = "studio-tenant"
TENANT_UID_BASE = 300_000
TENANT_UID_SPAN = 100_000


class TenantError(RuntimeError):
    """The tenant identity cannot be set up (useradd missing, not allowed)."""


@dataclass(frozen=True)
class Tenant:
    """An OS identity deployed code runs as."""

    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        """Popen arguments that start a child as this identity, with no supplementary groups of ours."""
        return {"user": self.uid, "group": self.gid, "extra_groups": [], "umask": 0o077}


def enabled() -> bool:
    """Do instances and builds run as tenants? `auto`: when the studio runs as root and a tenant can reach
    STUDIO_HOME (every folder above it lets others in); `on` insists, and says what is unreachable."""
    mode = settings.STUDIO_TENANT_ISOLATION
    if mode == "off":
        return False
    if mode == "on":
        return True
    return os.geteuid() == 0 and _reachable(str(Path(settings.STUDIO_HOME).resolve()))


@functools.cache
def _reachable(home: str) -> bool:
    """Can a user of no group of ours enter every folder above `home`? If not, `auto` stays off, said once."""
    for folder in Path(home).parents:
        try:
            mode = folder.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            logger.warning(
                "deployed code runs as the studio's own user (root), not as an unprivileged one: STUDIO_HOME %s "
                "lies in %s, which other users cannot enter. Put STUDIO_HOME where they can (e.g. "
                "/var/lib/studio) to run deployed code as a tenant (docs/security.md)",
                home,
                folder,
            )
            return False
    return True


@functools.cache
def _group_and_user() -> tuple[int, int]:
    """(uid, gid) of the `studio-tenant` user, created (a system user with no home or shell) when missing."""
    try:
        user = pwd.getpwnam(TENANT_NAME)
        return user.pw_uid, user.pw_gid
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise TenantError(f"user {TENANT_NAME!r} does not exist and only root can create it")
    command = ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    done = subprocess.run([*command, TENANT_NAME], capture_output=True, text=True, check=False)
    if done.returncode not in (0, 9):  # 9: created meanwhile by another worker
        raise TenantError(f"could not create user {TENANT_NAME!r}: {done.stderr.strip()}")
    user = pwd.getpwnam(TENANT_NAME)
    logger.info("created the unprivileged user %s (uid %s) for deployed code", TENANT_NAME, user.pw_uid)
    return user.pw_uid, user.pw_gid


def group_id() -> int:
    """The group every tenant runs in; the folders leading to their files are traversable by it alone."""
    return _group_and_user()[1]


def builder() -> Tenant | None:
    """Who environment builds run as (None: as the studio itself)."""
    if not enabled():
        return None
    uid, gid = _group_and_user()
    return Tenant(uid=uid, gid=gid)


def for_deployment(deployment_uid: str) -> Tenant | None:
    """Who one deployment's instances run as: a uid of their own (None: as the studio itself)."""
    if not enabled():
        return None
    number = int(deployment_uid.replace("-", "")[:8], 16) % TENANT_UID_SPAN
    return Tenant(uid=TENANT_UID_BASE + number, gid=group_id())


def group_name() -> str:
    return grp.getgrgid(group_id()).gr_name


def _walk(root: Path) -> list[Path]:
    paths = [root]
    for folder, dirs, files in os.walk(root):
        paths.extend(Path(folder) / name for name in (*dirs, *files))
    return paths


def hand_over(root: Path, tenant: Tenant) -> None:
    """Give a tenant its own files: owned by it, readable by it alone (0700 folders, owner bits kept)."""
    for path in _walk(root):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            os.lchown(path, tenant.uid, tenant.gid)
            continue
        os.chown(path, tenant.uid, tenant.gid)
        path.chmod(stat.S_IMODE(info.st_mode) & 0o700 | (0o700 if path.is_dir() else 0))


def seal(root: Path) -> None:
    """A built environment: root's, readable and runnable by the tenants' group, writable by nobody else."""
    gid = group_id()
    for path in _walk(root):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            os.lchown(path, 0, gid)
            continue
        os.chown(path, 0, gid)
        owner = stat.S_IMODE(info.st_mode) & 0o700 | (0o700 if path.is_dir() else 0o600)
        path.chmod(owner | ((owner >> 3) & 0o050))


def open_path(target: Path, top: Path) -> None:
    """Let the tenants' group traverse (not list) every folder from `top` down to `target`'s parent."""
    gid = group_id()
    top = top.resolve()
    for folder in [target.resolve().parent, *target.resolve().parent.parents]:
        if folder != top and top not in folder.parents:
            break
        info = folder.stat()
        if info.st_gid != gid or stat.S_IMODE(info.st_mode) & 0o077 != 0o010:
            os.chown(folder, info.st_uid, gid)
            folder.chmod(stat.S_IMODE(info.st_mode) & 0o700 | 0o010)


def can_run(executable: str, tenant: Tenant) -> bool:
    """Can `tenant` start this interpreter (every folder on its path readable to it)?"""
    try:
        done = subprocess.run(
            [executable, "-c", "pass"], capture_output=True, timeout=30, check=False, cwd="/", **tenant.popen_kwargs()
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
