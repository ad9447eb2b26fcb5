"""CI detection: one simulated environment per provider, as each provider documents it."""

from __future__ import annotations

import pytest

from otel_tokens import names as n
from otel_tokens.attribution import ci, context

CI = n.TRIGGER_CI

CASES = [
    pytest.param(
        {
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKFLOW": "nightly-evals",
            "GITHUB_RUN_ID": "9876543210",
            "GITHUB_JOB": "evaluate",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/agent",
            "GITHUB_REF_NAME": "main",
            "GITHUB_HEAD_REF": "",
        },
        {
            n.CICD_PIPELINE_NAME: "nightly-evals",
            n.CICD_PIPELINE_RUN_ID: "9876543210",
            n.CICD_PIPELINE_TASK_NAME: "evaluate",
            n.VCS_REPOSITORY_URL_FULL: "https://github.com/acme/agent",
            n.VCS_REF_HEAD_NAME: "main",
        },
        id="github-push",
    ),
    pytest.param(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKFLOW": "pr",
            "GITHUB_RUN_ID": "1",
            "GITHUB_JOB": "test",
            "GITHUB_SERVER_URL": "https://ghe.example.com/",
            "GITHUB_REPOSITORY": "acme/agent",
            "GITHUB_REF_NAME": "42/merge",
            "GITHUB_HEAD_REF": "feature/cheaper-prompts",
        },
        {
            n.CICD_PIPELINE_NAME: "pr",
            n.CICD_PIPELINE_RUN_ID: "1",
            n.CICD_PIPELINE_TASK_NAME: "test",
            n.VCS_REPOSITORY_URL_FULL: "https://ghe.example.com/acme/agent",
            n.VCS_REF_HEAD_NAME: "feature/cheaper-prompts",
        },
        id="github-pull-request",
    ),
    pytest.param(
        {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PIPELINE_NAME": "",
            "CI_PROJECT_PATH": "acme/agent",
            "CI_PIPELINE_ID": "555",
            "CI_JOB_NAME": "eval:gpt",
            "CI_PROJECT_URL": "https://gitlab.example.com/acme/agent",
            "CI_REPOSITORY_URL": "https://gitlab-ci-token:glcbt-SECRET@gitlab.example.com/acme/agent.git",
            "CI_COMMIT_REF_NAME": "main",
        },
        {
            n.CICD_PIPELINE_NAME: "acme/agent",
            n.CICD_PIPELINE_RUN_ID: "555",
            n.CICD_PIPELINE_TASK_NAME: "eval:gpt",
            n.VCS_REPOSITORY_URL_FULL: "https://gitlab.example.com/acme/agent",
            n.VCS_REF_HEAD_NAME: "main",
        },
        id="gitlab",
    ),
    pytest.param(
        {
            "BUILDKITE": "true",
            "BUILDKITE_PIPELINE_SLUG": "agent-evals",
            "BUILDKITE_BUILD_ID": "0190-abcd",
            "BUILDKITE_STEP_KEY": "",
            "BUILDKITE_LABEL": ":robot: eval",
            "BUILDKITE_REPO": "git@github.com:acme/agent.git",
            "BUILDKITE_BRANCH": "release",
        },
        {
            n.CICD_PIPELINE_NAME: "agent-evals",
            n.CICD_PIPELINE_RUN_ID: "0190-abcd",
            n.CICD_PIPELINE_TASK_NAME: ":robot: eval",
            n.VCS_REPOSITORY_URL_FULL: "git@github.com:acme/agent.git",
            n.VCS_REF_HEAD_NAME: "release",
        },
        id="buildkite",
    ),
    pytest.param(
        {
            "CIRCLECI": "true",
            "CIRCLE_PROJECT_REPONAME": "agent",
            "CIRCLE_WORKFLOW_ID": "wf-123",
            "CIRCLE_BUILD_NUM": "77",
            "CIRCLE_JOB": "evals",
            "CIRCLE_REPOSITORY_URL": "https://github.com/acme/agent",
            "CIRCLE_BRANCH": "main",
        },
        {
            n.CICD_PIPELINE_NAME: "agent",
            n.CICD_PIPELINE_RUN_ID: "wf-123",
            n.CICD_PIPELINE_TASK_NAME: "evals",
            n.VCS_REPOSITORY_URL_FULL: "https://github.com/acme/agent",
            n.VCS_REF_HEAD_NAME: "main",
        },
        id="circleci",
    ),
    pytest.param(
        {
            "JENKINS_URL": "https://jenkins.example.com/",
            "JOB_NAME": "agent/main",
            "BUILD_TAG": "jenkins-agent-main-12",
            "BUILD_NUMBER": "12",
            "STAGE_NAME": "Evaluate",
            "GIT_URL": "https://ci-user:ghp_SECRET@github.com/acme/agent.git",
            "GIT_BRANCH": "origin/main",
        },
        {
            n.CICD_PIPELINE_NAME: "agent/main",
            n.CICD_PIPELINE_RUN_ID: "jenkins-agent-main-12",
            n.CICD_PIPELINE_TASK_NAME: "Evaluate",
            n.VCS_REPOSITORY_URL_FULL: "https://github.com/acme/agent.git",  # credentials dropped
            n.VCS_REF_HEAD_NAME: "origin/main",
        },
        id="jenkins",
    ),
    pytest.param(
        {
            "TF_BUILD": "True",
            "BUILD_DEFINITIONNAME": "agent-ci",
            "BUILD_BUILDID": "4242",
            "SYSTEM_JOBDISPLAYNAME": "Run evals",
            "BUILD_REPOSITORY_URI": "https://dev.azure.com/acme/agent/_git/agent",
            "BUILD_SOURCEBRANCHNAME": "main",
        },
        {
            n.CICD_PIPELINE_NAME: "agent-ci",
            n.CICD_PIPELINE_RUN_ID: "4242",
            n.CICD_PIPELINE_TASK_NAME: "Run evals",
            n.VCS_REPOSITORY_URL_FULL: "https://dev.azure.com/acme/agent/_git/agent",
            n.VCS_REF_HEAD_NAME: "main",
        },
        id="azure",
    ),
    pytest.param({"CI": "true"}, {}, id="generic-ci"),
    pytest.param({"CI": "1", "GITHUB_ACTIONS": "false"}, {}, id="generic-ci-marker-false"),
]


@pytest.mark.parametrize(("environ", "expected"), CASES)
def test_ci_providers(environ: dict[str, str], expected: dict[str, str]) -> None:
    assert ci.detect(environ) == {n.TRIGGER: CI, **expected}


@pytest.mark.parametrize("environ", [{}, {"CI": "false"}, {"CI": "0"}, {"CI": ""}, {"GITHUB_ACTIONS": ""}])
def test_local(environ: dict[str, str]) -> None:
    assert ci.detect(environ) == {n.TRIGGER: n.TRIGGER_LOCAL}


@pytest.mark.parametrize(("environ", "expected"), CASES)
def test_ci_attributes_reach_llm_spans_and_only_bounded_ones_reach_metrics(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    context.reset_for_tests(environ)
    try:
        scope = context.current_scope()
        assert dict(scope.span_attributes) == {n.TRIGGER: CI, **expected}
        allowed = {n.TRIGGER, n.CICD_PIPELINE_NAME, n.CICD_PIPELINE_TASK_NAME}
        assert dict(scope.metric_attributes) == {
            k: v for k, v in {n.TRIGGER: CI, **expected}.items() if k in allowed
        }
    finally:
        context.reset_for_tests()


def test_process_attributes_are_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ci.attributes.cache_clear()
    monkeypatch.setenv("BUILDKITE", "true")
    monkeypatch.setenv("BUILDKITE_PIPELINE_SLUG", "first")
    first = ci.attributes()
    monkeypatch.setenv("BUILDKITE_PIPELINE_SLUG", "second")
    assert ci.attributes() is first and first[n.CICD_PIPELINE_NAME] == "first"
    ci.attributes.cache_clear()
