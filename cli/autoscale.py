"""`studio monitor autoscale`: a deployment's autoscale, shaped like `az monitor autoscale`.

create | show | update | delete, `rule create | list | delete` and `profile create | list | delete`. Each
verb reads the setting over the REST API, changes it and puts it back whole; the server checks every
field (apps.costs.autoscale), so a mistake comes back as one line naming the field.
"""

from __future__ import annotations

import re
from argparse import Namespace
from typing import Any

from cli.client import Studio
from cli.errors import ApiError, CliError

SETTING_KEYS = ("enabled", "capacity", "rules", "profiles")
# `az monitor autoscale rule create --condition "Percentage CPU > 70 avg 5m"`: the operators az takes.
OPERATORS = {">": "GreaterThan", ">=": "GreaterThanOrEqual", "<": "LessThan", "<=": "LessThanOrEqual"}
_CONDITION = re.compile(
    r"^\s*(?P<metric>\S+)\s*(?P<op>>=|<=|>|<)\s*(?P<threshold>\d+(?:\.\d+)?)"
    r"(?:\s+(?:avg|average)\s+(?P<window>\d+)\s*m)?\s*$",
    re.IGNORECASE,
)
DAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def _path(args: Namespace) -> str:
    return f"online-endpoints/{args.endpoint_name}/deployments/{args.deployment_name}/autoscale"


def _current(studio: Studio, args: Namespace) -> dict[str, Any] | None:
    try:
        return dict(studio.get(_path(args)))
    except ApiError as exc:
        if exc.status == 404 and "no autoscale setting" in exc.message:
            return None
        raise


def _required(studio: Studio, args: Namespace) -> dict[str, Any]:
    setting = _current(studio, args)
    if setting is None:
        raise CliError(
            f"deployment {args.deployment_name!r} of online endpoint {args.endpoint_name!r} has no autoscale setting; "
            f"create one first: studio monitor autoscale create -e {args.endpoint_name} -d {args.deployment_name} "
            "--min-count 1 --max-count 3"
        )
    return setting


def _put(studio: Studio, args: Namespace, setting: dict[str, Any]) -> Any:
    return studio.put(_path(args), {key: setting[key] for key in SETTING_KEYS if key in setting})


def _capacity(args: Namespace, base: dict[str, Any] | None) -> dict[str, Any]:
    capacity = dict(base or {})
    for flag, key in (("min_count", "minimum"), ("max_count", "maximum"), ("count", "default")):
        value = getattr(args, flag, None)
        if value is not None:
            capacity[key] = value
    return capacity


def _enabled(raw: str | None) -> bool | None:
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered not in ("true", "false"):
        raise CliError(f"--enabled: expected true or false, got {raw!r}")
    return lowered == "true"


def autoscale_create(args: Namespace, studio: Studio) -> Any:
    """Turn autoscale on for a deployment with its default capacity (rules and profiles are added after)."""
    if _current(studio, args) is not None:
        raise CliError(
            f"deployment {args.deployment_name!r} of online endpoint {args.endpoint_name!r} already has an "
            "autoscale setting; use studio monitor autoscale update"
        )
    if args.min_count is None or args.max_count is None:
        raise CliError("create needs --min-count and --max-count")
    setting: dict[str, Any] = {"capacity": _capacity(args, None), "rules": [], "profiles": []}
    enabled = _enabled(args.enabled)
    if enabled is not None:
        setting["enabled"] = enabled
    return _put(studio, args, setting)


def autoscale_show(args: Namespace, studio: Studio) -> Any:
    """The setting: capacity, rules, schedule profiles, the active profile and the last action."""
    return _required(studio, args)


def autoscale_update(args: Namespace, studio: Studio) -> Any:
    """Change the default capacity or turn the setting on or off."""
    setting = _required(studio, args)
    setting["capacity"] = _capacity(args, setting["capacity"])
    enabled = _enabled(args.enabled)
    if enabled is not None:
        setting["enabled"] = enabled
    return _put(studio, args, setting)


def autoscale_delete(args: Namespace, studio: Studio) -> Any:
    """Remove the setting; the instance count stays where it is."""
    _required(studio, args)
    studio.delete(_path(args))
    return None


def parse_condition(text: str) -> dict[str, Any]:
    """`"CpuUtilizationPercentage > 70 avg 5m"` → metric, operator, threshold and window, as az writes it."""
    match = _CONDITION.match(text)
    if not match:
        raise CliError(
            f'--condition: expected "<metric> <operator> <threshold> [avg <minutes>m]", '
            f'e.g. "CpuUtilizationPercentage > 70 avg 5m", got {text!r}'
        )
    threshold = float(match["threshold"])
    rule: dict[str, Any] = {
        "metric": match["metric"],
        "operator": OPERATORS[match["op"]],
        "threshold": int(threshold) if threshold.is_integer() else threshold,
    }
    if match["window"]:
        rule["window_minutes"] = int(match["window"])
    return rule


def parse_scale(words: list[str]) -> tuple[str, int]:
    """`--scale out 1` / `--scale in 1` → direction and change."""
    if len(words) != 2 or words[0].lower() not in ("out", "in") or not words[1].isdigit():
        raise CliError(f"--scale: expected 'out N' or 'in N', got {' '.join(words)!r}")
    return ("Increase" if words[0].lower() == "out" else "Decrease"), int(words[1])


def rule_create(args: Namespace, studio: Studio) -> Any:
    """Add a metric rule: scale out or in by N when the condition holds."""
    setting = _required(studio, args)
    rule = parse_condition(args.condition)
    rule["direction"], rule["change"] = parse_scale(args.scale)
    if args.cooldown is not None:
        rule["cooldown_minutes"] = args.cooldown
    setting["rules"] = [*setting["rules"], rule]
    saved = _put(studio, args, setting)
    return {"index": len(saved["rules"]) - 1, **saved["rules"][-1]}


def rule_list(args: Namespace, studio: Studio) -> Any:
    """The rules with their index (what `rule delete --index` takes)."""
    return [{"index": index, **rule} for index, rule in enumerate(_required(studio, args)["rules"])]


def rule_delete(args: Namespace, studio: Studio) -> Any:
    """Remove rules by index (`--index 0 2`), or every rule (`--index *`)."""
    setting = _required(studio, args)
    rules = setting["rules"]
    if args.index == ["*"]:
        setting["rules"] = []
    else:
        try:
            indexes = {int(item) for item in args.index}
        except ValueError:
            raise CliError(
                f"--index: expected rule indexes (see rule list) or *, got {' '.join(args.index)!r}"
            ) from None
        missing = sorted(i for i in indexes if not 0 <= i < len(rules))
        if missing:
            raise CliError(f"--index: no rule {missing[0]} (there are {len(rules)}; see rule list)")
        setting["rules"] = [rule for index, rule in enumerate(rules) if index not in indexes]
    _put(studio, args, setting)
    return None


def profile_create(args: Namespace, studio: Studio) -> Any:
    """Add a recurring schedule profile: its own capacity on some week days between two times."""
    setting = _required(studio, args)
    words = [word.lower() for word in args.recurrence]
    if not words or words[0] != "week" or len(words) < 2:
        raise CliError(f"--recurrence: expected 'week' and days, e.g. week mon tue, got {' '.join(args.recurrence)!r}")
    unknown = [word for word in words[1:] if word[:3] not in DAYS]
    if unknown:
        raise CliError(f"--recurrence: unknown day {unknown[0]!r} (mon, tue, wed, thu, fri, sat, sun)")
    profile = {
        "name": args.name,
        "timezone": args.timezone,
        "days": [DAYS[word[:3]] for word in words[1:]],
        "start": args.start,
        "end": args.end,
        "capacity": _capacity(args, None),
    }
    setting["profiles"] = [*setting["profiles"], profile]
    saved = _put(studio, args, setting)
    return saved["profiles"][-1]


def profile_list(args: Namespace, studio: Studio) -> Any:
    """The schedule profiles (the first whose time covers now applies)."""
    return _required(studio, args)["profiles"]


def profile_delete(args: Namespace, studio: Studio) -> Any:
    """Remove a schedule profile by name."""
    setting = _required(studio, args)
    names = [profile["name"] for profile in setting["profiles"]]
    if args.name not in names:
        raise CliError(f"--name: no profile {args.name!r} (there are: {', '.join(names) or 'none'})")
    setting["profiles"] = [p for p in setting["profiles"] if p["name"] != args.name]
    _put(studio, args, setting)
    return None
