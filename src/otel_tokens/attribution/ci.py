"""Which CI run, if any, this process belongs to.

`detect(environ)` reads the variables each CI provider sets and returns the OpenTelemetry
CI/CD and VCS attributes plus ``otel_tokens.trigger`` (``ci`` or ``local``). Providers are
data: one table row per provider, each field a list of variables tried in order.
`attributes()` is the same for this process's environment, computed once.

``cicd.pipeline.run.id`` goes on spans only; `METRIC_KEYS` lists what may go on metrics.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from otel_tokens import names as n

AttrValue = str | int | float | bool


@dataclass(frozen=True)
class Provider:
    name: str
    marker: str  # the variable whose presence says "this is the provider"
    pipeline: tuple[str, ...]
    run_id: tuple[str, ...]
    job: tuple[str, ...]
    repo: tuple[str, ...]
    ref: tuple[str, ...]


PROVIDERS: tuple[Provider, ...] = (
    Provider(
        "github",
        "GITHUB_ACTIONS",
        pipeline=("GITHUB_WORKFLOW",),
        run_id=("GITHUB_RUN_ID",),
        job=("GITHUB_JOB",),
        repo=(),  # built from GITHUB_SERVER_URL + GITHUB_REPOSITORY below
        ref=("GITHUB_HEAD_REF", "GITHUB_REF_NAME"),
    ),
    Provider(
        "gitlab",
        "GITLAB_CI",
        pipeline=("CI_PIPELINE_NAME", "CI_PROJECT_PATH"),
        run_id=("CI_PIPELINE_ID",),
        job=("CI_JOB_NAME",),
        repo=("CI_PROJECT_URL",),
        ref=("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_REF_NAME"),
    ),
    Provider(
        "buildkite",
        "BUILDKITE",
        pipeline=("BUILDKITE_PIPELINE_SLUG", "BUILDKITE_PIPELINE_NAME"),
        run_id=("BUILDKITE_BUILD_ID",),
        job=("BUILDKITE_STEP_KEY", "BUILDKITE_LABEL"),
        repo=("BUILDKITE_REPO",),
        ref=("BUILDKITE_BRANCH",),
    ),
    Provider(
        "circleci",
        "CIRCLECI",
        pipeline=("CIRCLE_PROJECT_REPONAME",),
        run_id=("CIRCLE_WORKFLOW_ID", "CIRCLE_BUILD_NUM"),
        job=("CIRCLE_JOB",),
        repo=("CIRCLE_REPOSITORY_URL",),
        ref=("CIRCLE_BRANCH",),
    ),
    Provider(
        "jenkins",
        "JENKINS_URL",
        pipeline=("JOB_NAME",),
        run_id=("BUILD_TAG", "BUILD_NUMBER"),
        job=("STAGE_NAME",),
        repo=("GIT_URL",),
        ref=("CHANGE_BRANCH", "BRANCH_NAME", "GIT_BRANCH"),
    ),
    Provider(
        "azure",
        "TF_BUILD",
        pipeline=("BUILD_DEFINITIONNAME",),
        run_id=("BUILD_BUILDID",),
        job=("SYSTEM_JOBDISPLAYNAME", "AGENT_JOBNAME"),
        repo=("BUILD_REPOSITORY_URI",),
        ref=("SYSTEM_PULLREQUEST_SOURCEBRANCH", "BUILD_SOURCEBRANCHNAME"),
    ),
)

# Attributes that may go on metrics (bounded); the run id, repository and ref may not.
METRIC_KEYS: tuple[str, ...] = (n.CICD_PIPELINE_NAME, n.CICD_PIPELINE_TASK_NAME, n.TRIGGER)

_FALSE = ("", "0", "false", "no", "off")


def _first(environ: Mapping[str, str], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = environ.get(key, "").strip()
        if value:
            return value
    return None


def _without_credentials(url: str) -> str:
    """Drop ``user:token@`` from a URL (Jenkins and GitLab clone URLs can carry one)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def detect(environ: Mapping[str, str]) -> dict[str, AttrValue]:
    """CI/CD and VCS attributes for an environment; ``{trigger: local}`` outside CI."""
    for p in PROVIDERS:
        if environ.get(p.marker, "").strip().lower() in _FALSE:
            continue
        attrs: dict[str, AttrValue] = {n.TRIGGER: n.TRIGGER_CI}
        repo = _first(environ, p.repo)
        if p.name == "github" and environ.get("GITHUB_REPOSITORY"):
            server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
            repo = f"{server}/{environ['GITHUB_REPOSITORY']}"
        for key, value in (
            (n.CICD_PIPELINE_NAME, _first(environ, p.pipeline)),
            (n.CICD_PIPELINE_RUN_ID, _first(environ, p.run_id)),
            (n.CICD_PIPELINE_TASK_NAME, _first(environ, p.job)),
            (n.VCS_REPOSITORY_URL_FULL, _without_credentials(repo) if repo else None),
            (n.VCS_REF_HEAD_NAME, _first(environ, p.ref)),
        ):
            if value is not None:
                attrs[key] = value
        return attrs
    if environ.get("CI", "").strip().lower() not in _FALSE:
        return {n.TRIGGER: n.TRIGGER_CI}
    return {n.TRIGGER: n.TRIGGER_LOCAL}


@functools.cache
def attributes() -> Mapping[str, AttrValue]:
    """`detect` for this process's environment, computed once."""
    return MappingProxyType(detect(os.environ))
