"""`studio`: the command line, modelled on `az ml`. JSON on stdout; an error is one line on stderr and exit 1.

Only `studio up` (cli/up.py) imports Django; every other verb talks to the studio over its REST API.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from cli import autoscale, commands
from cli.errors import CliError
from cli.output import FORMATS, query, render


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one `ERROR:` line and exit code 1 like every other error."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{self.prog}: {message} (see {self.prog} --help)")


def _globals() -> Parser:
    common = Parser(add_help=False)
    group = common.add_argument_group("global arguments")
    group.add_argument("--studio-url", help="the studio's URL (else STUDIO_URL, else $STUDIO_HOME/cli.json)")
    group.add_argument("--token", help="an API token (else STUDIO_TOKEN, else $STUDIO_HOME/cli.json)")
    group.add_argument("--query", help="a JMESPath query applied to the result, as in az")
    group.add_argument("-o", "--output", choices=FORMATS, default="json", help="output format (default json)")
    group.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    return common


def _name(parser: argparse.ArgumentParser, *, required: bool = True, help: str = "the name") -> None:
    parser.add_argument("-n", "--name", required=required, help=help)


def _endpoint(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "-e", "--endpoint-name", "--endpoint", dest="endpoint_name", required=required, help="the online endpoint"
    )


def _file(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument("-f", "--file", required=required, help="an Azure ML v2 YAML file")


def _set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="set a (dotted) key, value read as YAML; repeatable"
    )


def _local(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--local",
        action="store_true",
        help="a local endpoint, as with az: no key, its one deployment takes every request",
    )


def _no_wait(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="return at once instead of waiting for the result")


def _yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _if_match(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--if-match",
        metavar="ETAG",
        help="change it only if its etag is still this one (from `show`); else refused, naming what changed",
    )


def _rollout(ep: Any, common: Parser) -> None:
    """`online-endpoint rollout start|show|pause|resume|promote|abort` (docs/rollouts.md)."""
    rollout = ep.add_parser("rollout", help="progressive rollouts of live traffic to a deployment").add_subparsers(
        dest="action", metavar="<action>", required=True, parser_class=Parser
    )
    start = rollout.add_parser("start", help="start moving traffic to a deployment step by step", parents=[common])
    start.set_defaults(func=commands.rollout_start)
    _name(start, help="the online endpoint")
    _file(start)
    _set(start)
    start.add_argument("-d", "--deployment", help="the target deployment")
    start.add_argument("--steps", help="the target's share at each step, e.g. 10,25,50,100")
    start.add_argument("--step-duration", help="at least this long at each step, e.g. 60s")
    start.add_argument("--min-requests", type=int, help="answers from the target before a step is judged")
    start.add_argument("--max-error-rate", help="% of the target's answers that may be 5xx or 424")
    start.add_argument("--max-p99-ratio", help="target p99 / baseline p99 at most")
    start.add_argument("--on-failure", choices=("rollback", "pause"), help="what a failed gate does")
    start.add_argument("--mirror-percent", type=int, help="mirror this share to the target first")
    start.add_argument("--mirror-duration", help="how long to mirror first, e.g. 60s")
    start.add_argument("--min-agreement", help="% of compared answers that must equal the live ones")
    for action, help in (
        ("show", "the rollout: state, step, gate values and thresholds"),
        ("pause", "stop moving traffic and judging (traffic stays where it is)"),
        ("resume", "carry on from the step it was paused at"),
        ("promote", "send all live traffic to the target now and finish"),
        ("abort", "stop and put the traffic back as it was before the rollout"),
    ):
        leaf = rollout.add_parser(action, help=help, description=help, parents=[common])
        leaf.set_defaults(func=commands.rollout_show if action == "show" else commands.rollout_action)
        _name(leaf, help="the online endpoint")


def build_parser() -> Parser:
    """The whole command tree."""
    parser = Parser(
        prog="studio",
        description="Studio: Azure ML-style online endpoints on your own machine. `studio up` starts it.",
    )
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True, parser_class=Parser)
    common = _globals()

    def verb(sub: Any, name: str, func: Callable[..., Any], help: str) -> argparse.ArgumentParser:
        leaf = sub.add_parser(name, help=help, description=help, parents=[common])
        leaf.set_defaults(func=func)
        return leaf

    up = groups.add_parser("up", help="run the whole studio in the foreground (web, gateway, worker)")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="the studio's port (default 8000)")
    up.add_argument("--gateway-port", type=int, default=8001, help="the scoring gateway's port (default 8001)")
    up.add_argument(
        "--https-port", type=int, help="the studio's HTTPS port (default 8443 beside 8000, else a free one)"
    )
    up.add_argument("--gateway-https-port", type=int, help="the gateway's HTTPS port (default 8444 beside 8001)")
    groups.add_parser("sdk-env", help="print what a notebook needs to use Azure's Python SDK (azure-ai-ml) here")

    down = groups.add_parser("down", help="stop what keeps serving after `studio up` stopped (the gateway)")
    down.add_argument("--instances", action="store_true", help="stop the deployment instances too")

    verb(groups, "status", commands.status, "each part of the studio and the age of its heartbeat")

    model = groups.add_parser("model", help="registered models").add_subparsers(
        dest="verb", metavar="<verb>", required=True, parser_class=Parser
    )
    leaf = verb(model, "create", commands.model_create, "register a model version (uploads its file or folder)")
    _file(leaf)
    _name(leaf, required=False)
    leaf.add_argument("-v", "--version")
    leaf.add_argument("-p", "--path", help="a local file or folder")
    leaf.add_argument("-t", "--type", help="custom_model, mlflow_model or triton_model")
    leaf.add_argument("-d", "--description")
    _set(leaf)
    leaf = verb(model, "list", commands.model_list, "list model versions")
    _name(leaf, required=False, help="only versions of this model")
    leaf = verb(model, "show", commands.model_show, "show a model version")
    _name(leaf)
    leaf.add_argument("-v", "--version")
    leaf.add_argument("-l", "--label", help="latest")

    env = groups.add_parser("environment", help="registered environments").add_subparsers(
        dest="verb", metavar="<verb>", required=True, parser_class=Parser
    )
    leaf = verb(env, "create", commands.environment_create, "register an environment version")
    _file(leaf)
    _name(leaf, required=False)
    leaf.add_argument("-v", "--version")
    leaf.add_argument("-i", "--image")
    leaf.add_argument("--conda-file", help="a local conda YAML file")
    leaf.add_argument("-d", "--description")
    _set(leaf)
    leaf = verb(env, "list", commands.environment_list, "list environment versions")
    _name(leaf, required=False, help="only versions of this environment")
    leaf = verb(env, "show", commands.environment_show, "show an environment version")
    _name(leaf)
    leaf.add_argument("-v", "--version")
    leaf.add_argument("-l", "--label", help="latest")

    ep = groups.add_parser("online-endpoint", help="online endpoints").add_subparsers(
        dest="verb", metavar="<verb>", required=True, parser_class=Parser
    )
    leaf = verb(ep, "create", commands.endpoint_create, "create an online endpoint")
    _file(leaf)
    _name(leaf, required=False, help="the endpoint's name (overrides the YAML's)")
    leaf.add_argument("--auth-mode", help="key or aml_token")
    _set(leaf)
    _local(leaf)
    _no_wait(leaf)
    leaf = verb(ep, "update", commands.endpoint_update, "update traffic, mirroring, description, tags")
    _file(leaf)
    _name(leaf, required=False)
    leaf.add_argument("--traffic", help='live traffic split, e.g. "blue=90 green=10"')
    leaf.add_argument("--mirror-traffic", help='mirrored share, e.g. "green=10" ("green=0" stops it)')
    _set(leaf)
    _local(leaf)
    _no_wait(leaf)
    _if_match(leaf)
    leaf.add_argument("--force", action="store_true", help="change traffic even while a rollout runs (aborts it)")
    leaf = verb(ep, "show", commands.endpoint_show, "show an online endpoint")
    _name(leaf)
    _local(leaf)
    leaf = verb(ep, "list", commands.endpoint_list, "list online endpoints")
    _local(leaf)
    leaf = verb(ep, "delete", commands.endpoint_delete, "delete an online endpoint and its deployments")
    _name(leaf)
    _yes(leaf)
    _no_wait(leaf)
    _local(leaf)
    leaf = verb(ep, "invoke", commands.endpoint_invoke, "score a request file through the gateway")
    _name(leaf)
    leaf.add_argument("-r", "--request-file", required=True, help="the request body (JSON)")
    leaf.add_argument(
        "-d", "--deployment-name", "--deployment", dest="deployment_name", help="send to this deployment only"
    )
    _local(leaf)
    leaf = verb(ep, "get-credentials", commands.endpoint_get_credentials, "show the endpoint's keys")
    _name(leaf)
    leaf = verb(ep, "regenerate-keys", commands.endpoint_regenerate_keys, "replace the primary or secondary key")
    _name(leaf)
    leaf.add_argument("--key-type", choices=("primary", "secondary"), type=str.lower, default="primary")
    leaf.add_argument("--key-value", help="the new key (default: a random one)")
    _no_wait(leaf)
    leaf = verb(ep, "get-token", commands.endpoint_get_token, "a token for an aml_token endpoint")
    _name(leaf)
    _rollout(ep, common)

    dep = groups.add_parser("online-deployment", help="deployments of online endpoints").add_subparsers(
        dest="verb", metavar="<verb>", required=True, parser_class=Parser
    )
    leaf = verb(dep, "create", commands.deployment_create, "create a deployment (uploads code, model, conda file)")
    _file(leaf, required=True)
    _name(leaf, required=False, help="the deployment's name (overrides the YAML's)")
    _endpoint(leaf, required=False)
    leaf.add_argument("--all-traffic", action="store_true", help="send all traffic to it once it has succeeded")
    _set(leaf)
    _local(leaf)
    _no_wait(leaf)
    leaf = verb(dep, "update", commands.deployment_update, "update a deployment")
    _file(leaf)
    _name(leaf, required=False)
    _endpoint(leaf, required=False)
    _set(leaf)
    _local(leaf)
    _no_wait(leaf)
    _if_match(leaf)
    leaf = verb(dep, "render", commands.deployment_render, "print the Kubernetes manifests of a deployment YAML")
    _file(leaf, required=True)
    _name(leaf, required=False, help="the deployment's name (overrides the YAML's)")
    _endpoint(leaf, required=False)
    _set(leaf)
    _local(leaf)
    leaf = verb(dep, "show", commands.deployment_show, "show a deployment")
    _name(leaf)
    _endpoint(leaf)
    _local(leaf)
    leaf = verb(dep, "list", commands.deployment_list, "list an endpoint's deployments")
    _endpoint(leaf)
    _local(leaf)
    leaf = verb(dep, "delete", commands.deployment_delete, "delete a deployment")
    _name(leaf)
    _endpoint(leaf)
    _yes(leaf)
    _no_wait(leaf)
    _local(leaf)
    leaf = verb(dep, "get-logs", commands.deployment_get_logs, "show a deployment's logs")
    _name(leaf)
    _endpoint(leaf)
    leaf.add_argument("-l", "--lines", type=int, help="how many of the last lines (default 100)")
    leaf.add_argument("--container", help="inference-server (default) or storage-initializer")
    leaf.add_argument("--instance", help="one instance (default: the first)")
    _local(leaf)

    costs = groups.add_parser("costs", help="what deployments cost, and the core quota").add_subparsers(
        dest="verb", metavar="<verb>", required=True, parser_class=Parser
    )
    for name, func, help in (
        ("show", commands.costs_show, "costs per endpoint, deployment and day; month to date and projected"),
        ("export", commands.costs_export, "the cost rows as CSV"),
    ):
        leaf = verb(costs, name, func, help)
        _endpoint(leaf, required=False)
        leaf.add_argument("--start", help="ISO 8601 time (default: 30 days before --end)")
        leaf.add_argument("--end", help="ISO 8601 time (default: now)")
    verb(costs, "quota", commands.costs_quota, "cores used, reserved (the 20 % upgrade reserve) and free")
    _autoscale_verbs(groups, verb)
    return parser


def _target(parser: argparse.ArgumentParser) -> None:
    _endpoint(parser)
    parser.add_argument(
        "-d", "--deployment-name", "--deployment", dest="deployment_name", required=True, help="the deployment"
    )


def _counts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-count", type=int, help="the fewest instances")
    parser.add_argument("--max-count", type=int, help="the most instances")
    parser.add_argument("--count", type=int, help="the default instance count (default: --min-count)")


def _autoscale_verbs(groups: Any, verb: Callable[..., argparse.ArgumentParser]) -> None:
    """`studio monitor autoscale ...`, shaped like `az monitor autoscale` (docs/costs.md)."""
    monitor = groups.add_parser("monitor", help="autoscale of deployments, as az monitor").add_subparsers(
        dest="subgroup", metavar="<group>", required=True, parser_class=Parser
    )
    scale = monitor.add_parser("autoscale", help="a deployment's autoscale setting").add_subparsers(
        dest="verb", metavar="<verb>", required=True, parser_class=Parser
    )
    for name, func, help in (
        ("create", autoscale.autoscale_create, "turn autoscale on with a default capacity"),
        ("update", autoscale.autoscale_update, "change the default capacity, or --enabled false"),
    ):
        leaf = verb(scale, name, func, help)
        _target(leaf)
        _counts(leaf)
        leaf.add_argument("--enabled", help="true or false")
    for name, func, help in (
        ("show", autoscale.autoscale_show, "show the setting"),
        ("delete", autoscale.autoscale_delete, "remove the setting (the instance count stays)"),
    ):
        _target(verb(scale, name, func, help))
    rule = scale.add_parser("rule", help="metric rules").add_subparsers(
        dest="leaf", metavar="<verb>", required=True, parser_class=Parser
    )
    leaf = verb(rule, "create", autoscale.rule_create, "add a rule")
    _target(leaf)
    leaf.add_argument(
        "--condition",
        required=True,
        help='e.g. "CpuUtilizationPercentage > 70 avg 5m" (also RequestsPerInstancePerMinute, RequestLatency_P95)',
    )
    leaf.add_argument("--scale", nargs="+", required=True, metavar="WORD", help="out N or in N")
    leaf.add_argument("--cooldown", type=int, help="minutes after an action before rules act again (default 5)")
    _target(verb(rule, "list", autoscale.rule_list, "list the rules with their index"))
    leaf = verb(rule, "delete", autoscale.rule_delete, "remove rules by index")
    _target(leaf)
    leaf.add_argument("--index", nargs="+", required=True, help="rule indexes (see rule list), or *")
    profile = scale.add_parser("profile", help="schedule profiles").add_subparsers(
        dest="leaf", metavar="<verb>", required=True, parser_class=Parser
    )
    leaf = verb(profile, "create", autoscale.profile_create, "add a recurring schedule profile")
    _target(leaf)
    _name(leaf, help="the profile's name")
    _counts(leaf)
    leaf.add_argument("--timezone", default="UTC", help="an IANA time zone, e.g. Europe/Paris (default UTC)")
    leaf.add_argument("--start", required=True, help="HH:MM")
    leaf.add_argument("--end", required=True, help="HH:MM")
    leaf.add_argument("--recurrence", nargs="+", required=True, metavar="WORD", help="week and days, e.g. week mon tue")
    _target(verb(profile, "list", autoscale.profile_list, "list the schedule profiles"))
    leaf = verb(profile, "delete", autoscale.profile_delete, "remove a schedule profile")
    _target(leaf)
    _name(leaf, help="the profile's name")


def emit(result: Any, args: argparse.Namespace) -> None:
    """Print a verb's result on stdout."""
    if isinstance(result, commands.Raw):
        sys.stdout.write(result if result.endswith("\n") or not result else result + "\n")
        return
    columns = None if args.query else commands.TABLE_COLUMNS.get(args.func)
    text = render(query(result, args.query), args.output, columns)
    if text:
        print(text)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `studio` console script."""
    from cli.client import Studio
    from cli.config import resolve

    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        if args.group == "up":
            from cli import up  # the only verb that needs Django

            return up.run(
                host=args.host,
                port=args.port,
                gateway_port=args.gateway_port,
                https_port=args.https_port,
                gateway_https_port=args.gateway_https_port,
            )
        if args.group == "down":
            from cli import up

            return up.down(instances=args.instances)
        if args.group == "sdk-env":
            from cli import sdk_env

            print(sdk_env.text())
            return 0
        studio = Studio(resolve(url=args.studio_url, token=args.token))
        try:
            result = args.func(args, studio)
        finally:
            studio.close()
        emit(result, args)
        return 0
    except CliError as exc:
        # One line, always: multi-line server bodies or parser messages are folded.
        print("ERROR: " + " ".join(line.strip() for line in exc.message.splitlines()), file=sys.stderr)
        if exc.hint:
            print(exc.hint, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: nothing left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not a user error: still one line unless asked for more
        if args is not None and getattr(args, "debug", False):
            traceback.print_exc()
        print(f"ERROR: unexpected {type(exc).__name__}: {exc} (run again with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
