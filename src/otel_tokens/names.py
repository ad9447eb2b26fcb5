"""Every attribute, metric and span name otel-tokens emits, in one place.

`gen_ai.*`, `server.*`, `error.*`, `user.*`, `cicd.*` and `vcs.*` names follow the
OpenTelemetry semantic conventions (GenAI names from the current
`open-telemetry/semantic-conventions-genai` registry, e.g. cache *write*, not the older
cache *creation*). Names the conventions do not define live under `otel_tokens.*`.
No other module spells a telemetry name as a string literal.
"""

from __future__ import annotations

from typing import Final

# --- instrumentation scope -------------------------------------------------------------
SCOPE: Final = "otel_tokens"
SCOPE_GEN_AI: Final = "gen_ai"  # the family of the GenAI convention metrics, for series bounds

# --- GenAI semantic conventions: span attributes ---------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"
USER_ID: Final = "user.id"

# --- values ---------------------------------------------------------------------------
OP_CHAT: Final = "chat"
OP_EMBEDDINGS: Final = "embeddings"
OP_TEXT_COMPLETION: Final = "text_completion"  # the legacy completions API
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_INVOKE_AGENT: Final = "invoke_agent"
PROVIDER_OPENAI: Final = "openai"
PROVIDER_ANTHROPIC: Final = "anthropic"
PROVIDER_GCP_GEMINI: Final = "gcp.gemini"
PROVIDER_GCP_VERTEX_AI: Final = "gcp.vertex_ai"
PROVIDER_AWS_BEDROCK: Final = "aws.bedrock"
PROVIDER_AZURE_OPENAI: Final = "azure.ai.openai"
TOKEN_TYPE_INPUT: Final = "input"
TOKEN_TYPE_OUTPUT: Final = "output"
MODALITY_UNKNOWN: Final = "unknown"
MODALITY_TEXT: Final = "text"

# --- CI/CD and VCS semantic conventions --------------------------------------------------
CICD_PIPELINE_NAME: Final = "cicd.pipeline.name"
CICD_PIPELINE_RUN_ID: Final = "cicd.pipeline.run.id"
CICD_PIPELINE_TASK_NAME: Final = "cicd.pipeline.task.name"
VCS_REPOSITORY_URL_FULL: Final = "vcs.repository.url.full"
VCS_REF_HEAD_NAME: Final = "vcs.ref.head.name"

# --- otel-tokens span attributes ---------------------------------------------------------
COST_STATUS: Final = "otel_tokens.cost.status"  # "priced" | "unpriced" | "unknown_usage"
CACHE_SAVINGS: Final = "otel_tokens.cost.cache_savings"  # float USD
# float USD: the cost the SDK itself reported (litellm's response_cost), set where it differs from ours
COST_REPORTED: Final = "otel_tokens.cost.reported"
SERVICE_TIER: Final = "otel_tokens.service_tier"  # the tier the call was billed at ("flex", ...)
SPEED: Final = "otel_tokens.speed"  # Anthropic fast mode ("fast")
USAGE_CACHE_WRITE_1H: Final = "otel_tokens.usage.cache_write_1h.input_tokens"  # of cache_write
USAGE_INPUT_AUDIO: Final = "otel_tokens.usage.audio.input_tokens"
USAGE_OUTPUT_AUDIO: Final = "otel_tokens.usage.audio.output_tokens"
USAGE_INPUT_IMAGE: Final = "otel_tokens.usage.image.input_tokens"
USAGE_OUTPUT_IMAGE: Final = "otel_tokens.usage.image.output_tokens"
USAGE_WEB_SEARCHES: Final = "otel_tokens.usage.web_searches"  # server-side web-search requests
USAGE_STATUS: Final = "otel_tokens.usage.status"  # "reported" | "missing"
OUTCOME: Final = "otel_tokens.outcome"  # "success" | "error" | "partial" | "cancelled"
CALL_SUCCESS: Final = "success"  # otel_tokens.outcome values of one LLM call
CALL_ERROR: Final = "error"  # failed before any output
CALL_PARTIAL: Final = "partial"  # output had started, then the call failed or the stream was cut
CALL_CANCELLED: Final = "cancelled"  # the user closed or abandoned the stream before its end
COST_PRICED: Final = "priced"  # otel_tokens.cost.status values
COST_UNPRICED: Final = "unpriced"
COST_UNKNOWN_USAGE: Final = "unknown_usage"  # a completed call that reported no usage
COST_NO_USAGE: Final = "no_usage"  # a failed or cut call that reported none (nothing billed, or unknowable)
USAGE_IMPLAUSIBLE: Final = "otel_tokens.usage.implausible"  # a count was out of range, counted as 0
TASK_NAME: Final = "otel_tokens.task.name"
TASK_ID: Final = "otel_tokens.task.id"
TASK_SIZE: Final = "otel_tokens.task.size"
TASK_OUTCOME: Final = "otel_tokens.task.outcome"
TASK_COST: Final = "otel_tokens.task.cost"
TASK_LLM_CALLS: Final = "otel_tokens.task.llm_calls"
TASK_RETRIES: Final = "otel_tokens.task.retries"
TASK_INPUT_TOKENS: Final = "otel_tokens.task.input_tokens"
TASK_OUTPUT_TOKENS: Final = "otel_tokens.task.output_tokens"
TASK_CACHE_READ_TOKENS: Final = "otel_tokens.task.cache_read_tokens"
TASK_CACHE_WRITE_TOKENS: Final = "otel_tokens.task.cache_write_tokens"
TASK_REASONING_TOKENS: Final = "otel_tokens.task.reasoning_tokens"
TASK_UNPRICED_CALLS: Final = "otel_tokens.task.unpriced_calls"
TEAM: Final = "otel_tokens.team"
AGENT_ITERATION: Final = "otel_tokens.agent.iteration"
RETRY_COUNT: Final = "otel_tokens.retry.count"
RETRY_REASON: Final = "otel_tokens.retry.reason"
LOOP_REPEAT: Final = "otel_tokens.loop.repeat"
TRIGGER: Final = "otel_tokens.trigger"  # "ci" | "local"
TOKEN_TYPE: Final = "otel_tokens.token.type"  # input|output|cache_read|cache_write|reasoning
BUDGET_NAME: Final = "otel_tokens.budget.name"
# budgets (issue 12): on blocked spans, threshold events and budget metrics
BUDGET_SCOPE: Final = "otel_tokens.budget.scope"  # spans and logs only: may name a user or task id
BUDGET_THRESHOLD: Final = "otel_tokens.budget.threshold"  # the fraction of the limit, e.g. 0.75
BUDGET_SPENT: Final = "otel_tokens.budget.spent_usd"
BUDGET_LIMIT: Final = "otel_tokens.budget.limit_usd"
BUDGET_ESTIMATE: Final = "otel_tokens.budget.estimate_usd"
BUDGET_RESETS_AT: Final = "otel_tokens.budget.resets_at"
OUTCOME_BLOCKED: Final = "blocked"  # otel_tokens.outcome of a call a hard budget refused
COST_STATUS_NOT_SENT: Final = "not_sent"  # otel_tokens.cost.status of a blocked call

# span events
EVENT_RETRY: Final = "otel_tokens.retry"
EVENT_ATTEMPT_STATUS: Final = "http.response.status_code"
EVENT_RETRY_WAIT: Final = "otel_tokens.retry.wait_s"
EVENT_BUDGET_THRESHOLD: Final = "otel_tokens.budget.threshold"  # a soft threshold crossed by this call

# --- metrics: GenAI semantic conventions -------------------------------------------------
M_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
M_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
M_USAGE_INPUT: Final = "gen_ai.client.inference.usage.input_tokens"
M_USAGE_OUTPUT: Final = "gen_ai.client.inference.usage.output_tokens"
M_USAGE_CACHE_READ: Final = "gen_ai.client.inference.usage.cache_read.input_tokens"
M_USAGE_CACHE_WRITE: Final = "gen_ai.client.inference.usage.cache_write.input_tokens"
M_USAGE_REASONING: Final = "gen_ai.client.inference.usage.reasoning.output_tokens"

# --- metrics: otel-tokens ----------------------------------------------------------------
M_COST: Final = "otel_tokens.cost"  # counter, USD
M_TOKENS: Final = "otel_tokens.tokens"  # counter, {token}, by otel_tokens.token.type
M_CALLS: Final = "otel_tokens.calls"  # counter, {call}, by outcome and cost status
M_RETRIES: Final = "otel_tokens.retries"  # counter, {retry}, by reason
M_LOOP_REPEATS: Final = "otel_tokens.loop.repeats"  # counter, {call}
M_TASK_COST: Final = "otel_tokens.task.cost"  # histogram, USD, per finished task
M_TASK_LLM_CALLS: Final = "otel_tokens.task.llm_calls"  # histogram, {call}, per finished task
M_TASKS: Final = "otel_tokens.tasks"  # counter, {task}, finished tasks by outcome
M_CACHE_SAVINGS: Final = "otel_tokens.cache.savings"  # counter, USD saved by cache reads
M_BUDGET_CROSSINGS: Final = "otel_tokens.budget.crossings"  # counter, by budget name and threshold
M_BUDGET_UTILIZATION: Final = "otel_tokens.budget.utilization"  # gauge, spent / limit, by budget name
M_BUDGET_LEDGER_ERRORS: Final = "otel_tokens.budget.ledger_errors"  # counter, by budget name

UNIT_USD: Final = "USD"
UNIT_TOKEN: Final = "{token}"
UNIT_CALL: Final = "{call}"
UNIT_SECONDS: Final = "s"

# Bucket boundaries from the GenAI metric conventions.
# fmt: off
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
TASK_COST_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0,
)
TASK_CALLS_BUCKETS: Final = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233)
# fmt: on

# --- environment variables ---------------------------------------------------------------
ENV_ENABLED: Final = "OTEL_TOKENS_ENABLED"
ENV_PRICES: Final = "OTEL_TOKENS_PRICES"
ENV_PROVIDERS: Final = "OTEL_TOKENS_PROVIDERS"  # JSON {"host[:port]": "provider id"}
ENV_USER: Final = "OTEL_TOKENS_USER"
ENV_TEAM: Final = "OTEL_TOKENS_TEAM"
ENV_TASK: Final = "OTEL_TOKENS_TASK"
ENV_TASK_ID: Final = "OTEL_TOKENS_TASK_ID"
ENV_TASK_SIZE: Final = "OTEL_TOKENS_TASK_SIZE"
ENV_HASH_USER_IDS: Final = "OTEL_TOKENS_HASH_USER_IDS"
ENV_BUDGET_FILE: Final = "OTEL_TOKENS_BUDGET_FILE"  # budget file read by `otel-tokens stack generate`
ENV_STORE: Final = "OTEL_TOKENS_STORE"
ENV_BUDGETS: Final = "OTEL_TOKENS_BUDGETS"  # the budget file every instrumented process enforces
ENV_LEDGER: Final = "OTEL_TOKENS_LEDGER"  # redis://... (default: the local SQLite ledger)
ENV_RESERVATION_TTL: Final = "OTEL_TOKENS_RESERVATION_TTL_S"  # seconds a reservation may be held
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# --- local store (issue 4) -------------------------------------------------------------
PROCESS_PID: Final = "process.pid"  # on stored task/agent/other spans, to show subprocesses

# --- attribution (issue 3) ---------------------------------------------------------------
TASK_LOOP_REPEATS: Final = "otel_tokens.task.loop_repeats"  # repeated requests in the task
PROCESS_EXIT_CODE: Final = "process.exit.code"  # on the `otel-tokens run` task span
OUTCOME_SUCCESS: Final = "success"  # task outcome values (set_outcome() may use others)
OUTCOME_FAILURE: Final = "failure"
TRIGGER_CI: Final = "ci"
TRIGGER_LOCAL: Final = "local"
RETRY_RATE_LIMIT: Final = "rate_limit"  # otel_tokens.retry.reason values
RETRY_SERVER_ERROR: Final = "server_error"
RETRY_TIMEOUT: Final = "timeout"
RETRY_CONNECTION: Final = "connection"
RETRY_OTHER: Final = "other"
METRIC_OVERFLOW: Final = "otel.metric.overflow"  # the one series past OTEL_TOKENS_MAX_SERIES
OVERFLOW_VALUE: Final = "_other"  # a bounded metric attribute past its cap of distinct values
ENV_TRACEPARENT: Final = "TRACEPARENT"  # environment carriers for subprocesses
ENV_TRACESTATE: Final = "TRACESTATE"
ENV_PARENT: Final = "OTEL_TOKENS_PARENT"  # the task a parent process passed down (JSON), ours only
ENV_REPORT_DIR: Final = "OTEL_TOKENS_REPORT_DIR"  # where a child process reports its totals
ENV_USER_HASH_KEY: Final = "OTEL_TOKENS_USER_HASH_KEY"
ENV_MAX_ATTR_VALUES: Final = "OTEL_TOKENS_MAX_ATTR_VALUES"

# --- coding agents (issue 14) -------------------------------------------------------------
SOURCE: Final = "otel_tokens.source"  # who made the call: sdk or a coding-agent CLI
SOURCE_SDK: Final = "sdk"
SOURCE_CLAUDE_CODE: Final = "claude_code"
SOURCE_CODEX: Final = "codex"
SOURCE_GEMINI_CLI: Final = "gemini_cli"
AGENT_COST_USD: Final = "otel_tokens.agent.cost_usd"  # the agent's own cost figure, kept apart
ENV_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
ENV_MAX_SERIES: Final = "OTEL_TOKENS_MAX_SERIES"  # distinct attribute sets per metric table
# re-raise telemetry errors instead of swallowing them (our own test suite sets it)
ENV_RAISE_INTERNAL_ERRORS: Final = "OTEL_TOKENS_RAISE_INTERNAL_ERRORS"
