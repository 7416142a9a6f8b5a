"""The importable n8n workflow (docs/n8n/creativeflow-generation.json) against the real service.

Nothing here is hard-coded from the workflow: the path through the nodes follows its
``connections``; the Code nodes' JavaScript and the ``{{ }}`` expressions of the Switch, Crypto and
HTTP Request nodes run in Node.js with the same bindings n8n gives them (``$json``, ``$('Node')``,
``$execution``, ``$env``); the signature is computed the way n8n's Crypto node (v1) does it, from
that node's ``type``, ``value``, ``secret`` and ``encoding`` parameters; and the request is the one
the "Send callback" node describes (URL, headers, raw body). Only the AI provider, a placeholder in
the workflow, is replaced by its answer. The callback then goes through the running service's own
signature check: a change of the workflow that breaks the contract breaks these tests.

Jobs are submitted with ``[hold]`` in the prompt, so the n8n simulator consuming the queue stays
silent; the job is read from the tap queue, as n8n's RabbitMQ trigger would receive it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from creativeflow.webhook_signature import signed_headers
from tests.e2e.conftest import CALLBACK_SECRET, Stack, wait_for, wait_for_status
from tests.e2e.test_generation_flow import submit

WORKFLOW_PATH = Path(__file__).parents[2] / "docs/n8n/creativeflow-generation.json"
JOB_QUEUE = "creativeflow.n8n.jobs"  # RABBITMQ_N8N_JOB_QUEUE's default
CANCEL_QUEUE = "creativeflow.n8n.cancellations"  # RABBITMQ_N8N_CANCEL_QUEUE's default
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js runs the workflow's JavaScript")

# Evaluates what n8n evaluates: a Code node (runOnceForEachItem or runOnceForAllItems) or a
# parameter (an n8n expression is a string starting with "=" whose {{ }} parts are JavaScript), and
# the Crypto node's HMAC (createHmac(type, secret).update(value).digest(encoding), as n8n-nodes-base
# does). ``nowMs`` is the execution's clock: the harness moves it on by each Wait instead of
# sleeping.
HARNESS = r"""
const crypto = require('crypto');
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const BINDINGS = [
  '$json', '$input', '$', '$execution', '$env', '$runIndex', '$getWorkflowStaticData',
];

function bindings(ctx) {
  const items = [{ json: ctx.json }];
  return [
    ctx.json,
    { item: items[0], first: () => items[0], last: () => items[0], all: () => items },
    (name) => {
      if (!(name in ctx.nodes)) throw new Error(`no output of node ${name}`);
      const item = { json: ctx.nodes[name] };
      // one item per execution; the latest run of the node, as n8n's default runIndex
      return { item, first: () => item, last: () => item };
    },
    { id: ctx.executionId },
    ctx.env,
    ctx.runIndex || 0,
    // the workflow's static data: kept by the harness from one execution to the next
    (type) => {
      ctx.staticData = ctx.staticData || {};
      ctx.staticData[type] = ctx.staticData[type] || {};
      return ctx.staticData[type];
    },
  ];
}

async function expression(template, ctx) {
  if (typeof template !== 'string' || !template.startsWith('=')) return template;
  const text = template.slice(1);
  const parts = [...text.matchAll(/\{\{([\s\S]+?)\}\}/g)];
  const evaluate = (code) => new AsyncFunction(...BINDINGS, `return (${code});`)(...bindings(ctx));
  if (parts.length === 1 && parts[0][0] === text.trim()) return await evaluate(parts[0][1]);
  let out = '';
  let last = 0;
  for (const part of parts) {
    out += text.slice(last, part.index);
    const value = await evaluate(part[1]);
    out += typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
    last = part.index + part[0].length;
  }
  return out + text.slice(last);
}

function unwrap(out, mode) {
  if (mode === 'runOnceForAllItems') {
    if (!Array.isArray(out)) throw new Error('a Code node run once for all items returns an array');
    return out.map((item) => item.json);
  }
  return out && typeof out === 'object' && 'json' in out ? out.json : out;
}

async function main() {
  let raw = '';
  for await (const chunk of process.stdin) raw += chunk;
  const task = JSON.parse(raw);
  const ctx = task.context;
  if (ctx.nowMs) Date.now = () => ctx.nowMs;
  let result;
  if (task.kind === 'code') {
    const out = await new AsyncFunction(...BINDINGS, task.code)(...bindings(ctx));
    result = unwrap(out, task.mode || 'runOnceForEachItem');
  } else if (task.kind === 'expression') {
    result = await expression(task.template, ctx);
  } else if (task.kind === 'hmac') {
    const p = task.parameters;
    const value = await expression(p.value, ctx);
    const secret = await expression(p.secret, ctx);
    const signature = crypto.createHmac(p.type, secret).update(value).digest(p.encoding);
    result = { value, signature };
  }
  process.stdout.write(
    JSON.stringify({
      result: result === undefined ? null : result,
      staticData: ctx.staticData || {},
    }),
  );
}
main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error));
  process.exit(1);
});
"""


def workflow() -> dict[str, Any]:
    return json.loads(WORKFLOW_PATH.read_text())  # type: ignore[no-any-return]


@dataclass
class Context:
    nodes: dict[str, Any]
    execution_id: str
    env: dict[str, str]
    now_ms: int = 0
    run_index: int = 0
    static_data: dict[str, Any] = field(default_factory=dict)

    def for_item(self, item: Any) -> dict[str, Any]:
        return {
            "json": item,
            "nodes": self.nodes,
            "executionId": self.execution_id,
            "env": self.env,
            "nowMs": self.now_ms,
            "runIndex": self.run_index,
            "staticData": self.static_data,
        }


class ExecutionFailed(Exception):
    """A node threw: n8n marks the execution failed (and the RabbitMQ trigger rejects the job)."""

    def __init__(self, node: str, stderr: str) -> None:
        self.node = node
        self.message = stderr.strip().splitlines()[0] if stderr.strip() else ""
        super().__init__(f"{node}: {self.message}")


def node_process(task: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, "-e", HARNESS],
        input=json.dumps(task),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def run_js(task: dict[str, Any]) -> Any:
    done = node_process(task)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["result"]


def expression(template: Any, item: Any, context: Context) -> Any:
    return run_js({"kind": "expression", "template": template, "context": context.for_item(item)})


@dataclass
class CallbackRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: str
    signed_value: str


@dataclass
class QueuedResult:
    """What the "Publish result" step (n8n's RabbitMQ node, exchange mode) sends: the message
    body, its headers, where to; as amqplib's ``channel.publish`` gets them."""

    exchange: str
    exchange_type: str
    routing_key: str
    headers: dict[str, str]
    body: str
    signed_value: str


# Publishes what the RabbitMQ node describes: the real broker, or a stand-in.
Publisher = Callable[[QueuedResult], None]


@dataclass
class ProviderAnswer:
    """What the placeholder AI-provider step gives: its answer (output 0) or an error (output 1)."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


# What sends a callback: the real service, or a stand-in for the network between n8n and it.
Transport = Callable[[CallbackRequest], httpx.Response]


@dataclass
class Delivery:
    """One execution's callback, try by try: what was sent, what came back (None: no answer),
    and how long the workflow waited between tries."""

    tries: list[CallbackRequest] = field(default_factory=list)
    answers: list[int | None] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)


def n8n_error(request: CallbackRequest, answer: httpx.Response | Exception) -> dict[str, Any]:
    """The ``error`` n8n 1.x's HTTP Request node puts on its error output: the request helper's
    AxiosError as its toJSON gives it (message ``"<status> - <JSON body>"``, ``status``, a stack),
    or the transport's error (a ``code`` such as ECONNREFUSED, no status)."""
    stack = (
        "    at settle (/usr/local/lib/node_modules/n8n/node_modules/axios/lib/core/settle.js:19)"
    )
    if isinstance(answer, httpx.Response):
        try:
            shown = json.dumps(answer.json(), separators=(",", ":"))
        except ValueError:
            shown = json.dumps(answer.text)
        return {
            "message": f"{answer.status_code} - {shown}",
            "name": "AxiosError",
            "code": "ERR_BAD_RESPONSE" if answer.status_code >= 500 else "ERR_BAD_REQUEST",
            "status": answer.status_code,
            "stack": f"AxiosError: Request failed with status code {answer.status_code}\n{stack}",
        }
    timed_out = isinstance(answer, httpx.TimeoutException)
    code = "ECONNABORTED" if timed_out else "ECONNREFUSED"
    message = "timeout of 15000ms exceeded" if timed_out else f"connect {code} {request.url}"
    return {
        "message": message,
        "name": "AxiosError",
        "code": code,
        "stack": f"AxiosError: {message}",
    }


class WorkflowRun:
    """Follows the workflow's connections from its trigger for one job message."""

    def __init__(
        self,
        definition: dict[str, Any],
        env: dict[str, str],
        static_data: dict[str, Any] | None = None,
        now_ms: int | None = None,
    ) -> None:
        self.nodes = {node["name"]: node for node in definition["nodes"]}
        self.connections = definition["connections"]
        self.context = Context(
            nodes={},
            execution_id=f"e2e{uuid.uuid4().hex[:12]}",
            env=env,
            now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
            static_data=static_data if static_data is not None else {},
        )
        # runs while the provider works (another execution, say a cancellation, meanwhile)
        self.during_provider: Callable[[], None] | None = None
        self.visited: list[str] = []
        self.provider_called = False
        self.runs: dict[str, int] = {}
        self.delivery = Delivery()
        self.signed_value = ""
        # n8n 1.x lays an error output's `error` over the input item it failed on
        self.errors_keep_the_input = True
        # where the "Publish result" step's message goes (results by queue)
        self.publisher: Publisher | None = None

    def trigger(self, queue: str = JOB_QUEUE) -> dict[str, Any]:
        [trigger] = [
            n
            for n in self.nodes.values()
            if n["type"] == "n8n-nodes-base.rabbitmqTrigger" and n["parameters"]["queue"] == queue
        ]
        return trigger

    def cancel(self, cancellation: Any) -> None:
        """One execution of the cancellation trigger, for one message."""
        trigger = self.trigger(CANCEL_QUEUE)
        self.run_from(trigger["name"], self.message(cancellation), ProviderAnswer(), None)

    @staticmethod
    def message(job: Any) -> dict[str, Any]:
        """What the RabbitMQ trigger emits for one delivery, as n8n 1.x builds it."""
        content = job if isinstance(job, str) else json.dumps(job)
        message_id = job.get("job_id") if isinstance(job, dict) else None
        return {
            "content": content,
            "fields": {"redelivered": False},
            "properties": {"messageId": message_id},
        }

    def next_node(self, name: str, output: int) -> dict[str, Any] | None:
        outputs = self.connections.get(name, {}).get("main", [])
        if output >= len(outputs) or not outputs[output]:
            return None
        targets = outputs[output]
        assert len(targets) == 1, f"{name} output {output} fans out"
        return self.nodes[targets[0]["node"]]

    def run(self, job: dict[str, Any], provider: ProviderAnswer) -> CallbackRequest:
        """The execution up to the callback it would send (not sent)."""
        sent = self._from_trigger(job, provider, None)
        assert isinstance(sent, CallbackRequest)
        return sent

    def run_to_queue(self, job: dict[str, Any], provider: ProviderAnswer) -> QueuedResult:
        """The execution up to the result it would publish to the results queue (not sent)."""
        sent = self._from_trigger(job, provider, None)
        assert isinstance(sent, QueuedResult), "the workflow posted its result instead"
        return sent

    def deliver(
        self, job: dict[str, Any], provider: ProviderAnswer, transport: Transport
    ) -> Delivery:
        """The whole execution: the callback sent through ``transport``, tried again as the
        workflow says; raises :class:`ExecutionFailed` where n8n would fail the execution."""
        self._from_trigger(job, provider, transport)
        return self.delivery

    def _from_trigger(
        self, job: dict[str, Any], provider: ProviderAnswer, transport: Transport | None
    ) -> CallbackRequest | QueuedResult | Delivery:
        trigger = self.trigger()
        options = trigger["parameters"]["options"]
        # no jsonParseBody, no onlyContent: the item is the message, its body the raw text
        assert options.get("jsonParseBody") is False and options.get("onlyContent") is False
        return self.run_from(trigger["name"], self.message(job), provider, transport)

    def run_from(
        self,
        start: str,
        item: Any,
        provider: ProviderAnswer,
        transport: Transport | None = None,
    ) -> Any:
        """Follow the connections from the node ``start`` (whose output is ``item``): to the first
        callback request when there is no ``transport``, else to the end of the execution."""
        self.context.nodes[start] = item
        node = self.next_node(start, 0)
        while node is not None:
            name = node["name"]
            self.visited.append(name)
            self.runs[name] = self.runs.get(name, 0) + 1
            kind = node["type"]
            output = 0
            if kind == "n8n-nodes-base.code":
                item = self.code(node, item)
                if item is None:  # a Code node run once for all items returned no item
                    return self.delivery
            elif kind == "n8n-nodes-base.switch":
                output = self.route(node, item)
            elif kind == "n8n-nodes-base.httpRequest" and "placeholder" in name.lower():
                item, output = self.provider_step(node, provider)
            elif kind == "n8n-nodes-base.crypto":
                item = self.sign(node, item)
            elif kind == "n8n-nodes-base.respondToWebhook":
                self.responded = node["parameters"]["options"]["responseCode"]
            elif kind == "n8n-nodes-base.wait":
                self.wait(node, item)
            elif kind == "n8n-nodes-base.rabbitmq":
                message = self.queued(node, item)
                if transport is None:
                    return message
                assert self.publisher is not None, "results by queue need a publisher"
                self.publisher(message)
                item = {"success": True}
            elif kind == "n8n-nodes-base.httpRequest":
                request = self.request(node, item)
                if transport is None:
                    return request
                item, output = self.send(node, item, request, transport)
            else:
                raise AssertionError(f"no emulation for node type {kind}")
            self.context.nodes[name] = item
            node = self.next_node(name, output)
        if transport is None:
            raise AssertionError("the workflow ended without sending a callback")
        return self.delivery

    def code(self, node: dict[str, Any], item: Any) -> Any:
        mode = node["parameters"]["mode"]
        assert mode in ("runOnceForEachItem", "runOnceForAllItems")
        self.context.run_index = self.runs[node["name"]] - 1
        done = node_process(
            {
                "kind": "code",
                "mode": mode,
                "code": node["parameters"]["jsCode"],
                "context": self.context.for_item(item),
            }
        )
        if done.returncode != 0:
            raise ExecutionFailed(node["name"], done.stderr)
        out = json.loads(done.stdout)
        self.context.static_data.clear()  # in place: other runs may share it
        self.context.static_data.update(out["staticData"])
        result = out["result"]
        if mode == "runOnceForAllItems":
            assert len(result) <= 1, "one job, one item"
            return result[0] if result else None
        return result

    def route(self, node: dict[str, Any], item: Any) -> int:
        for index, rule in enumerate(node["parameters"]["rules"]["values"]):
            results = []
            for condition in rule["conditions"]["conditions"]:
                assert condition["operator"] == {"type": "string", "operation": "equals"}
                left = expression(condition["leftValue"], item, self.context)
                results.append(left == condition["rightValue"])
            combine = all if rule["conditions"]["combinator"] == "and" else any
            if combine(results):
                return index
        raise AssertionError(f"{node['name']} routes the item nowhere")

    def provider_step(self, node: dict[str, Any], answer: ProviderAnswer) -> tuple[Any, int]:
        self.provider_called = True
        if self.during_provider is not None:
            self.during_provider()
        if answer.error is not None:
            assert node.get("onError") == "continueErrorOutput"
            return {"error": answer.error}, 1
        return answer.result, 0

    def sign(self, node: dict[str, Any], item: Any) -> Any:
        parameters = node["parameters"]
        assert parameters["action"] == "hmac" and node["typeVersion"] == 1
        signed = run_js(
            {"kind": "hmac", "parameters": parameters, "context": self.context.for_item(item)}
        )
        self.signed_value = signed["value"]
        return {**item, parameters["dataPropertyName"]: signed["signature"]}

    def wait(self, node: dict[str, Any], item: Any) -> None:
        """n8n's Wait node (v1.1, After Time Interval): the clock moves on, nothing sleeps."""
        parameters = node["parameters"]
        assert (parameters["resume"], parameters["unit"]) == ("timeInterval", "seconds")
        seconds = float(expression(parameters["amount"], item, self.context))
        self.delivery.waits.append(seconds)
        self.context.now_ms += int(seconds * 1000)

    def request(self, node: dict[str, Any], item: Any) -> CallbackRequest:
        parameters = node["parameters"]
        assert parameters["sendBody"] is True and parameters["contentType"] == "raw"
        headers = {"content-type": parameters["rawContentType"]}
        for header in parameters["headerParameters"]["parameters"]:
            headers[header["name"].lower()] = str(expression(header["value"], item, self.context))
        body = expression(parameters["body"], item, self.context)
        assert isinstance(body, str)
        return CallbackRequest(
            method=parameters["method"],
            url=str(expression(parameters["url"], item, self.context)),
            headers=headers,
            body=body,
            signed_value=self.signed_value,
        )

    def queued(self, node: dict[str, Any], item: Any) -> QueuedResult:
        """n8n's RabbitMQ node (v1.1, Send a Message, exchange mode, Send Input Data off): the
        Message parameter as the body, each Headers option as an AMQP header."""
        parameters = node["parameters"]
        assert node["typeVersion"] == 1.1 and parameters["operation"] == "sendMessage"
        assert parameters["mode"] == "exchange" and parameters["sendInputData"] is False
        options = parameters["options"]
        headers = {
            header["key"]: str(expression(header["value"], item, self.context))
            for header in options["headers"]["header"]
        }
        body = expression(parameters["message"], item, self.context)
        assert isinstance(body, str)
        return QueuedResult(
            exchange=str(expression(parameters["exchange"], item, self.context)),
            exchange_type=parameters["exchangeType"],
            routing_key=str(expression(parameters["routingKey"], item, self.context)),
            headers=headers,
            body=body,
            signed_value=self.signed_value,
        )

    def send(
        self,
        node: dict[str, Any],
        item: Any,
        request: CallbackRequest,
        transport: Transport,
    ) -> tuple[Any, int]:
        """The HTTP Request node with *On Error: Continue (using error output)*: a 2xx goes out
        of output 0; anything else out of output 1, as n8n's engine builds it there: the input
        item with the node's ``error`` laid over it."""
        assert node.get("onError") == "continueErrorOutput"
        assert not node.get("retryOnFail"), "the workflow's own loop retries, not n8n's"
        self.delivery.tries.append(request)
        answer: httpx.Response | Exception
        try:
            answer = transport(request)
        except httpx.TransportError as error:
            answer = error
        status = answer.status_code if isinstance(answer, httpx.Response) else None
        self.delivery.answers.append(status)
        if status is not None and 200 <= status < 300:
            return answer.json() if isinstance(answer, httpx.Response) else {}, 0
        kept = item if self.errors_keep_the_input else {}
        return {**kept, "error": n8n_error(request, answer)}, 1


def env_for(definition: dict[str, Any]) -> dict[str, str]:
    """The environment the workflow reads: the callback secret (the one the stack accepts) and the
    provider URL (never called: the provider step is replaced)."""
    crypto = [n for n in definition["nodes"] if n["type"] == "n8n-nodes-base.crypto"]
    assert len(crypto) == 1
    secret_expression = crypto[0]["parameters"]["secret"]
    assert secret_expression.startswith("={{ $env.") and secret_expression.endswith(" }}")
    secret_name = secret_expression.removeprefix("={{ $env.").removesuffix(" }}")
    return {secret_name: CALLBACK_SECRET, "CREATIVEFLOW_AI_PROVIDER_URL": "http://provider.invalid"}


def send(request: CallbackRequest) -> httpx.Response:
    return httpx.request(
        request.method,
        request.url,
        content=request.body.encode("utf-8"),  # the exact text that was signed
        headers=request.headers,
        timeout=30,
    )


def run_workflow(job: dict[str, Any], provider: ProviderAnswer) -> CallbackRequest:
    definition = workflow()
    return WorkflowRun(definition, env_for(definition)).run(job, provider)


def published_job(stack: Stack, request_id: str, stage: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for job in stack.jobs_published():
            if job["request_id"] == request_id and job["stage"] == stage:
                return job
        return None

    return wait_for(found)  # type: ignore[no-any-return]


def images(job: dict[str, Any], count: int) -> dict[str, Any]:
    base = f"https://assets.creativeflow.local/{job['request_id']}/{job['job_id']}"
    return {
        "images": [
            {"url": f"{base}/image-{n}.png", "width": 1024, "height": 1024, "format": "png"}
            for n in range(1, count + 1)
        ],
        "blocked": False,
    }


def held_request(stack: Stack, balance: int = 100) -> tuple[str, str]:
    user = stack.new_user(balance=balance)
    created = submit(stack, user, prompt="[hold] a lighthouse at dawn, for the n8n workflow")
    return user, str(created["id"])


# --- the workflow's own shape ----------------------------------------------------------------


def test_the_workflow_signs_and_sends_what_the_orchestrator_checks() -> None:
    definition = workflow()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for node in definition["nodes"]:
        by_type.setdefault(node["type"], []).append(node)
    trigger = by_type["n8n-nodes-base.rabbitmqTrigger"][0]
    assert trigger["parameters"]["queue"] == "creativeflow.n8n.jobs"  # RABBITMQ_N8N_JOB_QUEUE
    assert trigger["parameters"]["options"]["assertQueue"] is False  # a quorum queue with a DLX
    crypto = by_type["n8n-nodes-base.crypto"][0]["parameters"]
    assert (crypto["type"], crypto["encoding"]) == ("SHA256", "base64")
    sender = next(n for n in by_type["n8n-nodes-base.httpRequest"] if n["name"] == "Send callback")
    names = {h["name"] for h in sender["parameters"]["headerParameters"]["parameters"]}
    assert names == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    placeholders = [n for n in by_type["n8n-nodes-base.httpRequest"] if "placeholder" in n["name"]]
    assert len(placeholders) == 2
    assert all(n["onError"] == "continueErrorOutput" for n in placeholders)


def test_the_queue_branch_publishes_what_the_results_consumer_checks() -> None:
    definition = workflow()
    [publisher] = [n for n in definition["nodes"] if n["type"] == "n8n-nodes-base.rabbitmq"]
    parameters = publisher["parameters"]
    assert publisher["credentials"]["rabbitmq"]["id"] == "cfRabbitMQ000001"  # the trigger's
    assert (parameters["exchangeType"], parameters["options"]["assertExchange"]) == (
        "direct",
        False,  # the orchestrator declares it; a declaration that differed would be refused
    )
    names = {h["key"] for h in parameters["options"]["headers"]["header"]}
    assert names == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    # the publish ends the execution: the job message is acked once the result is out
    assert publisher["name"] not in definition["connections"]


def queue_env(definition: dict[str, Any], flag: str = "true", **more: str) -> dict[str, str]:
    return {**env_for(definition), "CREATIVEFLOW_RESULTS_BY_QUEUE": flag, **more}


@pytest.mark.parametrize("flag", ["true", "TRUE", " true "])
def test_with_results_by_queue_the_signed_result_is_published_not_posted(
    stack: Stack, flag: str
) -> None:
    from creativeflow.settings import Settings
    from creativeflow.webhook_signature import verify

    _, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    run = WorkflowRun(definition, queue_env(definition, flag))
    message = run.run_to_queue(job, ProviderAnswer(result=images(job, 3)))
    assert "Send callback" not in run.visited
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert message.exchange == defaults.rabbitmq_exchange
    assert message.routing_key == defaults.rabbitmq_results_routing_key
    assert message.signed_value == (
        f"{message.headers['webhook-id']}.{message.headers['webhook-timestamp']}.{message.body}"
    )
    verified = verify(
        [CALLBACK_SECRET], message.headers, message.body.encode(), now=int(time.time())
    )
    assert verified.msg_id == message.headers["webhook-id"]
    assert json.loads(message.body)["event"] == "samples_ready"


@pytest.mark.parametrize("flag", ["", "false", "yes", "1"])
def test_without_results_by_queue_the_result_is_posted(stack: Stack, flag: str) -> None:
    _, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    run = WorkflowRun(definition, queue_env(definition, flag))
    request = run.run(job, ProviderAnswer(result=images(job, 3)))
    assert "Publish result" not in run.visited
    assert request.url == job["callback"]["samples_url"]


def test_the_queue_branch_names_another_exchange_and_routing_key_when_told() -> None:
    from tests.integration.rabbit_support import make_job

    definition = workflow()
    env = queue_env(
        definition,
        CREATIVEFLOW_RESULTS_EXCHANGE="acme.generation",
        CREATIVEFLOW_RESULTS_ROUTING_KEY="acme.result",
    )
    job = json.loads(make_job().encode())
    message = WorkflowRun(definition, env).run_to_queue(job, ProviderAnswer(result=images(job, 3)))
    assert (message.exchange, message.routing_key) == ("acme.generation", "acme.result")


# --- through the running service -------------------------------------------------------------


def test_samples_branch_applies_and_a_tampered_body_is_refused(stack: Stack) -> None:
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    request = run_workflow(job, ProviderAnswer(result=images(job, 3)))
    headers = request.headers
    assert request.url == job["callback"]["samples_url"]
    assert request.signed_value == (
        f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{request.body}"
    )
    assert headers["webhook-signature"].startswith("v1,")
    assert json.loads(request.body)["event"] == "samples_ready"

    forged_body = request.body.replace("image-1", "evil-1")
    tampered = CallbackRequest(**{**request.__dict__, "body": forged_body})
    assert tampered.body != request.body
    refused = send(tampered)
    assert refused.status_code == 401, refused.text
    with stack.client(user) as client:
        unchanged = client.get(f"/api/v1/generations/{request_id}").json()
    assert unchanged["status"] == "PROCESSING_SAMPLES"

    answered = send(request)
    assert answered.status_code == 200, answered.text
    assert answered.json()["outcome"] == "applied"
    with stack.client(user) as client:
        awaiting = wait_for_status(client, request_id, "AWAITING_SELECTION")
    assert [s["id"] for s in awaiting["samples"]] == ["s1", "s2", "s3"]
    assert awaiting["samples"][0]["url"].endswith("/image-1.png")


def test_final_branch_completes_the_request(stack: Stack) -> None:
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    assert send(run_workflow(job, ProviderAnswer(result=images(job, 2)))).status_code == 200
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")
        selected = client.post(
            f"/api/v1/generations/{request_id}/selection", json={"sample_id": "s2"}
        )
        assert selected.status_code == 202, selected.text
    final_job = published_job(stack, request_id, "final")
    run = WorkflowRun(workflow(), env_for(workflow()))
    request = run.run(final_job, ProviderAnswer(result=images(final_job, 1)))
    assert "AI provider: final asset (placeholder)" in run.visited
    assert request.url == final_job["callback"]["final_url"]
    answered = send(request)
    assert answered.status_code == 200, answered.text
    assert answered.json()["outcome"] == "applied"
    with stack.client(user) as client:
        done = wait_for_status(client, request_id, "COMPLETED")
    assert done["final_asset"]["id"] == "final"


def test_a_content_policy_error_rejects_without_refund(stack: Stack) -> None:
    user, request_id = held_request(stack, balance=50)
    job = published_job(stack, request_id, "samples")
    # the provider's explicit signal: HTTP 400 with a policy code in its JSON body
    error = {
        "message": "400 - Bad request - please check your parameters",
        "httpCode": "400",
        "description": '{"error": {"code": "content_policy_violation", "message": "refused"}}',
    }
    request = run_workflow(job, ProviderAnswer(error=error))
    assert request.url == job["callback"]["error_url"]
    payload = json.loads(request.body)
    assert payload["event"] == "failed" and payload["error"]["category"] == "content_policy"
    assert send(request).json()["outcome"] == "applied"
    with stack.client(user) as client:
        wait_for_status(client, request_id, "CONTENT_REJECTED")
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit"]


def test_a_provider_outage_fails_the_request_and_refunds(stack: Stack) -> None:
    user, request_id = held_request(stack, balance=50)
    job = published_job(stack, request_id, "samples")
    request = run_workflow(job, ProviderAnswer(error={"message": "connect ETIMEDOUT 10.0.0.9:443"}))
    payload = json.loads(request.body)
    assert payload["error"] == {
        "category": "platform",
        "code": "provider_timeout",
        "message": "The image provider took too long to answer.",
    }
    assert send(request).json()["outcome"] == "applied"
    with stack.client(user) as client:
        wait_for_status(client, request_id, "FAILED")
    wait_for(lambda: len(stack.ledger_for(request_id)) == 2)
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit", "refund"]


def test_a_blocked_answer_is_a_content_policy_failure(stack: Stack) -> None:
    user, request_id = held_request(stack, balance=50)
    job = published_job(stack, request_id, "samples")
    answer = ProviderAnswer(result={"images": [], "blocked": True, "block_reason": "unsafe"})
    request = run_workflow(job, answer)
    assert json.loads(request.body)["error"]["category"] == "content_policy"
    assert send(request).status_code == 200
    with stack.client(user) as client:
        wait_for_status(client, request_id, "CONTENT_REJECTED")


# --- what n8n 1.123 showed (issue: stack traces, outages charged as refusals, lost callbacks) ---

AXIOS_ERROR = {
    "message": "Request failed with status code 503",
    "name": "AxiosError",
    "code": "ERR_BAD_RESPONSE",
    "httpCode": "503",
    "description": "moderation service unavailable, please retry",
    "stack": "AxiosError: Request failed with status code 503\n    at settle "
    "(/usr/local/lib/node_modules/n8n/node_modules/axios/lib/core/settle.js:19:12)",
}


def test_an_outage_that_mentions_moderation_is_a_platform_failure_and_refunded(
    stack: Stack,
) -> None:
    user, request_id = held_request(stack, balance=50)
    job = published_job(stack, request_id, "samples")
    payload = json.loads(run_workflow(job, ProviderAnswer(error=AXIOS_ERROR)).body)
    assert (payload["error"]["category"], payload["error"]["code"]) == (
        "platform",
        "provider_unavailable",
    )
    request = run_workflow(job, ProviderAnswer(error=AXIOS_ERROR))
    assert send(request).json()["outcome"] == "applied"
    with stack.client(user) as client:
        failed = wait_for_status(client, request_id, "FAILED")
    assert failed["failure"]["message"] == "The image provider is unavailable right now."
    wait_for(lambda: len(stack.ledger_for(request_id)) == 2)


def test_a_stack_in_a_failed_callback_never_reaches_the_user(stack: Stack) -> None:
    """What the shipped workflow sent from n8n 1.123 (``$json.error`` serialised, stack and all),
    posted as it was: the service keeps the first line only, without frames or paths."""
    user, request_id = held_request(stack, balance=50)
    job = published_job(stack, request_id, "samples")
    message = f"{AXIOS_ERROR['stack']}\n    at Object.request (/home/node/.n8n/x.js:1:2)"
    payload = {
        "event": "failed",
        "job_id": job["job_id"],
        "request_id": request_id,
        "error": {"category": "platform", "code": "ERR_BAD_RESPONSE", "message": message},
    }
    body = json.dumps(payload).encode()
    headers = signed_headers(CALLBACK_SECRET, f"msg_{uuid.uuid4().hex}", int(time.time()), body)
    answered = httpx.post(job["callback"]["error_url"], content=body, headers=headers, timeout=30)
    assert answered.status_code == 200, answered.text
    with stack.client(user) as client:
        failed = wait_for_status(client, request_id, "FAILED")
    assert failed["failure"]["message"] == "AxiosError: Request failed with status code 503"


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (
            400,
            {"error": {"code": "content_policy_violation"}},
            ("content_policy", "content_policy_violation"),
        ),
        (
            422,
            {"code": "safety_violation", "message": "refused"},
            ("content_policy", "content_policy_violation"),
        ),
        (
            400,
            {"blocked": True, "block_reason": "unsafe"},
            ("content_policy", "content_policy_violation"),
        ),
        # an outage is an outage, whatever its text says about moderation or policy
        (
            503,
            {"message": "moderation service unavailable, please retry"},
            ("platform", "provider_unavailable"),
        ),
        (
            503,
            {"error": {"code": "content_policy_violation"}},
            ("platform", "provider_unavailable"),
        ),
        (500, "content policy engine crashed", ("platform", "provider_unavailable")),
        # a request the provider refuses for another reason is the platform's to refund
        (
            400,
            {"error": {"code": "invalid_size", "message": "policy: sizes up to 2048"}},
            ("platform", "provider_rejected_request"),
        ),
        (422, "the prompt was flagged by moderation", ("platform", "provider_rejected_request")),
    ],
)
def test_only_the_providers_explicit_signal_is_a_content_refusal(
    status: int, answer: Any, expected: tuple[str, str]
) -> None:
    """The provider's failure as n8n 1.x's HTTP Request node hands it to the error output (an
    AxiosError: ``"<status> - <JSON body>"``, ``status``, a stack), through *Build failed
    callback*."""
    definition = workflow()
    job = a_job()
    provider = httpx.Response(status, json=answer)
    placeholder = CallbackRequest("POST", "http://provider.invalid/v1/samples", {}, "", "")
    error = n8n_error(placeholder, provider)
    payload = json.loads(
        WorkflowRun(definition, env_for(definition)).run(job, ProviderAnswer(error=error)).body
    )
    assert (payload["error"]["category"], payload["error"]["code"]) == expected
    assert "AxiosError" not in payload["error"]["message"]


@pytest.mark.parametrize("detailed", [False, True])
def test_a_failed_callback_carries_no_stack_and_details_only_when_asked(detailed: bool) -> None:
    definition = workflow()
    env = env_for(definition)
    if detailed:
        env["CREATIVEFLOW_DETAILED_N8N_ERRORS"] = "true"
    job = {
        "schema": "creativeflow.generation-job.v1",
        "event": "AIGenerationJobRequested",
        "job_id": str(uuid.uuid4()),
        "request_id": str(uuid.uuid4()),
        "stage": "samples",
        "callback": {
            "samples_url": "http://o/s",
            "final_url": "http://o/f",
            "error_url": "http://o/e",
        },
        "parameters": {"width": 64, "height": 64, "format": "png"},
    }
    body = WorkflowRun(definition, env).run(job, ProviderAnswer(error=AXIOS_ERROR)).body
    assert "settle" not in body and "node_modules" not in body and "AxiosError" not in body
    error = json.loads(body)["error"]
    if detailed:
        assert error["details"] == {
            "status": 503,
            "provider_code": None,
            "text": "Request failed with status code 503",
        }
    else:
        assert "details" not in error


def _check_job(item: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    [check] = [n for n in workflow()["nodes"] if n["name"] == "Check job"]
    task = {
        "kind": "code",
        "code": check["parameters"]["jsCode"],
        "context": Context({}, "e", env if env is not None else env_for(workflow())).for_item(item),
    }
    assert NODE is not None
    return subprocess.run(
        [NODE, "-e", HARNESS], input=json.dumps(task), capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("content", ["not json at all", "[1, 2]", '{"schema": "other"}'])
def test_a_message_that_is_not_a_job_fails_its_execution_so_it_is_rejected(content: str) -> None:
    done = _check_job(WorkflowRun.message(content))
    assert done.returncode != 0
    assert "Error" in done.stderr


def test_a_missing_callback_secret_fails_the_first_job_loudly() -> None:
    job = {
        "schema": "creativeflow.generation-job.v1",
        "event": "AIGenerationJobRequested",
        "job_id": "j",
        "stage": "samples",
        "callback": {"samples_url": "a", "final_url": "b", "error_url": "c"},
    }
    done = _check_job(WorkflowRun.message(job), env={})
    assert done.returncode != 0 and "CREATIVEFLOW_CALLBACK_SECRET is not set" in done.stderr


def test_the_workflow_is_importable_as_n8n_stores_it() -> None:
    """What n8n checks on import and activation, and what it measured in 1.123: 16-character
    workflow and credential ids (a longer id broke n8n's insights at every save), unique node
    names and ids, connections only between nodes that exist, every node but the note reached
    from a trigger, and no wait n8n would park in its database (65 s or more: the execution
    would leave memory and the trigger would acknowledge the job before its callback)."""
    definition = workflow()
    assert len(definition["id"]) == 16 and definition["id"].isalnum()
    nodes = definition["nodes"]
    names = [n["name"] for n in nodes]
    assert len(set(names)) == len(names)
    assert len({n["id"] for n in nodes}) == len(nodes)
    for node in nodes:
        for credential in node.get("credentials", {}).values():
            assert len(credential["id"]) == 16 and credential["id"].isalnum()
    triggers = [n["name"] for n in nodes if n["type"] == "n8n-nodes-base.rabbitmqTrigger"]
    reached = set(triggers)
    frontier = list(triggers)
    for source, outputs in definition["connections"].items():
        assert source in names
        for targets in outputs["main"]:
            assert all(target["node"] in names and target["index"] == 0 for target in targets)
    while frontier:
        for targets in definition["connections"].get(frontier.pop(), {}).get("main", []):
            for target in targets:
                if target["node"] not in reached:
                    reached.add(target["node"])
                    frontier.append(target["node"])
    notes = {n["name"] for n in nodes if n["type"] == "n8n-nodes-base.stickyNote"}
    assert reached == set(names) - notes


def test_a_failed_execution_is_rejected_and_the_callback_retried_by_the_workflow() -> None:
    definition = workflow()
    by_name = {n["name"]: n for n in definition["nodes"]}
    # a failed execution is rejected, not acknowledged; the queue's delivery limit dead-letters it
    trigger = by_name["Job queue"]["parameters"]["options"]
    assert trigger["acknowledge"] == "executionFinishesSuccessfully"
    # n8n's own Retry On Fail waits at most 5 s between at most 5 tries: the workflow loops instead
    sender = by_name["Send callback"]
    assert sender["onError"] == "continueErrorOutput" and not sender.get("retryOnFail")
    loop = [
        "Send callback",
        "Retry or stop",
        "Wait before retrying",
        "Stamp callback",
        "Sign callback (HMAC-SHA256)",
    ]
    for here, there in itertools.pairwise(loop):
        output = 1 if here == "Send callback" else 0
        targets = definition["connections"][here]["main"][output]
        assert [t["node"] for t in targets] == [there], here
    assert definition["connections"]["Send callback"]["main"][0] == []  # a 2xx ends the execution
    assert by_name["Retry or stop"].get("onError", "stopWorkflow") == "stopWorkflow"


# --- delivering the callback: tried again with backoff, stopped on what retrying cannot fix -----


def nobody_listening(request: CallbackRequest) -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def down_for(tries: int, then: Transport = send) -> Transport:
    """The orchestrator down for the first ``tries`` tries, then ``then``."""
    calls = iter(range(tries))

    def transport(request: CallbackRequest) -> httpx.Response:
        if next(calls, None) is not None:
            return nobody_listening(request)
        return then(request)

    return transport


def answer_lost_once() -> Transport:
    """The first try reaches the service but its answer is lost on the way back."""
    tries = iter(range(1))

    def transport(request: CallbackRequest) -> httpx.Response:
        if next(tries, None) is not None:
            send(request)
            raise httpx.ReadTimeout("the answer was lost")
        return send(request)

    return transport


def a_job() -> dict[str, Any]:
    return {
        "schema": "creativeflow.generation-job.v1",
        "event": "AIGenerationJobRequested",
        "job_id": str(uuid.uuid4()),
        "request_id": str(uuid.uuid4()),
        "stage": "samples",
        "callback": {
            "samples_url": "http://127.0.0.1:1/s",
            "final_url": "http://127.0.0.1:1/f",
            "error_url": "http://127.0.0.1:1/e",
        },
        "parameters": {"width": 64, "height": 64, "format": "png"},
    }


def timestamps(delivery: Delivery) -> list[int]:
    return [int(r.headers["webhook-timestamp"]) for r in delivery.tries]


def test_an_orchestrator_that_never_answers_is_tried_for_minutes_then_the_execution_fails() -> None:
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))
    job = a_job()
    with pytest.raises(ExecutionFailed) as failed:
        run.deliver(job, ProviderAnswer(result=images(job, 2)), nobody_listening)
    assert failed.value.node == "Retry or stop"
    assert "not delivered in 8 tries" in failed.value.message
    delivery = run.delivery
    assert delivery.answers == [None] * 8
    assert delivery.waits == [5, 10, 20, 40, 60, 60, 60]  # backoff, each wait under 65 s
    assert sum(delivery.waits) >= 240  # minutes, not the ~20 s n8n's Retry On Fail allows
    # one webhook-id for every try; each stamped when it was sent (the clock moved by each wait)
    assert len({r.headers["webhook-id"] for r in delivery.tries}) == 1
    assert [b - a for a, b in itertools.pairwise(timestamps(delivery))] == delivery.waits
    assert all(
        r.signed_value.split(".")[1] == r.headers["webhook-timestamp"] for r in delivery.tries
    )


def test_an_orchestrator_outage_is_ridden_out_and_the_callback_applied(stack: Stack) -> None:
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))
    delivery = run.deliver(job, ProviderAnswer(result=images(job, 2)), down_for(3))
    assert delivery.answers == [None, None, None, 200]
    assert delivery.waits == [5, 10, 20]
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")


def test_the_retry_does_not_depend_on_n8n_keeping_the_input_on_its_error_output(
    stack: Stack,
) -> None:
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))
    run.errors_keep_the_input = False  # the error output carries `error` alone
    delivery = run.deliver(job, ProviderAnswer(result=images(job, 2)), down_for(1))
    assert delivery.answers == [None, 200]
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")


def test_a_try_whose_answer_was_lost_ends_as_delivered_on_409(stack: Stack) -> None:
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))
    delivery = run.deliver(job, ProviderAnswer(result=images(job, 2)), answer_lost_once())
    # the first try got through; the second is refused as a replay of its webhook-id: done
    assert delivery.answers == [None, 409]
    assert run.visited[-1] == "Retry or stop"
    with stack.client(user) as client:
        wait_for_status(client, request_id, "AWAITING_SELECTION")


def test_a_wrong_callback_secret_stops_the_first_job_at_its_first_try(stack: Stack) -> None:
    from tests.e2e.test_metrics_scrape import scrape, total

    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    env = {**env_for(definition), "CREATIVEFLOW_CALLBACK_SECRET": "not-the-orchestrators-secret"}
    rejected_before = total(scrape(stack), "creativeflow_callbacks_total", outcome="rejected")
    run = WorkflowRun(definition, env)
    with pytest.raises(ExecutionFailed) as failed:
        run.deliver(job, ProviderAnswer(result=images(job, 2)), send)
    assert run.delivery.answers == [401] and run.delivery.waits == []
    assert "(401)" in failed.value.message
    assert "CREATIVEFLOW_CALLBACK_SECRET" in failed.value.message
    assert "N8N_CALLBACK_SECRETS" in failed.value.message
    # the service shows it too: the refusal is counted (the CreativeFlowCallbacksRejected alert)
    rejected = total(scrape(stack), "creativeflow_callbacks_total", outcome="rejected")
    assert rejected == rejected_before + 1
    with stack.client(user) as client:
        unchanged = client.get(f"/api/v1/generations/{request_id}").json()
    assert unchanged["status"] == "PROCESSING_SAMPLES"


def test_a_callback_the_orchestrator_refuses_is_not_tried_again(stack: Stack) -> None:
    job = {
        **a_job(),
        "callback": published_job(stack, held_request(stack)[1], "samples")["callback"],
    }
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))
    with pytest.raises(ExecutionFailed) as failed:
        run.deliver(job, ProviderAnswer(result=images(job, 1)), send)  # a job it never published
    assert run.delivery.answers == [404] and run.delivery.waits == []
    assert "(404)" in failed.value.message


def test_the_provider_gets_the_job_id_as_its_idempotency_key() -> None:
    definition = workflow()
    providers = [n for n in definition["nodes"] if n["name"].startswith("AI provider")]
    assert len(providers) == 2
    job = {"job_id": "job-42"}
    context = Context({}, "e", env_for(definition))
    for node in providers:
        headers = {
            h["name"]: expression(h["value"], job, context)
            for h in node["parameters"]["headerParameters"]["parameters"]
        }
        assert headers == {"Idempotency-Key": "job-42"}


def test_the_provider_gets_the_creative_brief_and_nulls_from_a_v1_job(stack: Stack) -> None:
    user = stack.new_user()
    brief = {
        "template": "spring-sale.square",
        "tone": "playful",
        "cultural_adaptation": {"locale": "ja-JP", "notes": "avoid the number four"},
        "target_platform": "instagram_feed",
    }
    created = submit(stack, user, prompt="[hold] a kite festival", **brief)
    job = published_job(stack, str(created["id"]), "samples")
    assert job["schema"] == "creativeflow.generation-job.v2"
    definition = workflow()
    [provider] = [
        n for n in definition["nodes"] if n["name"] == "AI provider: samples (placeholder)"
    ]
    context = Context({}, "e", env_for(definition))
    sent = json.loads(expression(provider["parameters"]["jsonBody"], job, context))
    assert {key: sent[key] for key in brief} == brief
    assert (sent["prompt"], sent["count"]) == ("[hold] a kite festival", 3)

    v1 = {**job, "schema": "creativeflow.generation-job.v1"}
    for key in brief:
        del v1["parameters"][key]
    checked = run_js(
        {
            "kind": "code",
            "code": next(n for n in definition["nodes"] if n["name"] == "Check job")["parameters"][
                "jsCode"
            ],
            "context": Context({}, "e", env_for(definition)).for_item(WorkflowRun.message(v1)),
        }
    )
    sent_v1 = json.loads(expression(provider["parameters"]["jsonBody"], checked, context))
    assert {key: sent_v1[key] for key in brief} == dict.fromkeys(brief)


def test_both_provider_calls_get_the_model_odoo_granted(stack: Stack) -> None:
    """The job names the model the tier's debit granted (here the studio tier's default, the
    advanced model, for a request that asked for none); both workflows hand it to the provider,
    for the samples and for the final asset."""
    user = stack.new_user(tier="studio")
    created = submit(stack, user, prompt="[hold] a kite festival", samples=1)
    job = published_job(stack, str(created["id"]), "samples")
    assert job["model"] == "creativeflow-advanced-v1"
    final_job = {**job, "stage": "final", "parameters": {**job["parameters"], "samples": None}}
    final_job["parameters"]["selected_sample"] = {"id": "s1", "url": "https://assets/s1.png"}
    for path in (WORKFLOW_PATH, WORKFLOW_PATH.with_name("creativeflow-generation-webhook.json")):
        definition = json.loads(path.read_text())
        providers = [n for n in definition["nodes"] if n["name"].startswith("AI provider")]
        assert len(providers) == 2, path.name
        context = Context({}, "e", env_for(workflow()))
        for node, item in zip(providers, (job, final_job), strict=True):
            sent = json.loads(expression(node["parameters"]["jsonBody"], item, context))
            assert sent["model"] == "creativeflow-advanced-v1", (path.name, node["name"])


# --- cancellations -----------------------------------------------------------------------------


def never_sent(request: CallbackRequest) -> httpx.Response:
    raise AssertionError(f"a callback of a cancelled job was sent: {request.body}")


def cancelled_job(stack: Stack) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A held request cancelled through the service: its job and the cancellation the service
    published for it, both as n8n's triggers receive them."""
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    with stack.client(user) as client:
        assert client.post(f"/api/v1/generations/{request_id}/cancel").status_code == 200
    cancellation = wait_for(
        lambda: next(
            (c for c in stack.cancellations_published() if c["job_id"] == job["job_id"]), None
        )
    )
    return request_id, job, cancellation


def test_the_cancellation_trigger_consumes_the_orchestrators_cancellation_queue() -> None:
    definition = workflow()
    triggers = {
        n["parameters"]["queue"]: n
        for n in definition["nodes"]
        if n["type"] == "n8n-nodes-base.rabbitmqTrigger"
    }
    assert set(triggers) == {JOB_QUEUE, CANCEL_QUEUE}
    cancellations = triggers[CANCEL_QUEUE]
    assert cancellations["parameters"]["options"]["assertQueue"] is False  # declared with a TTL
    assert cancellations["credentials"] == triggers[JOB_QUEUE]["credentials"]


def test_a_job_cancelled_before_it_runs_never_reaches_the_provider(stack: Stack) -> None:
    request_id, job, cancellation = cancelled_job(stack)
    definition = workflow()
    static_data: dict[str, Any] = {}
    WorkflowRun(definition, env_for(definition), static_data).cancel(cancellation)
    run = WorkflowRun(definition, env_for(definition), static_data)
    remembered = run.context.static_data["global"]["cancelledJobs"]
    assert list(remembered) == [job["job_id"]]

    delivery = run.deliver(job, ProviderAnswer(result=images(job, 3)), never_sent)

    assert delivery.tries == []
    assert not run.provider_called
    assert run.visited == ["Check job", "Still wanted?"]
    assert [e["operation"] for e in stack.ledger_for(request_id)] == ["debit", "refund"]


def test_a_job_cancelled_while_the_provider_works_sends_no_result(stack: Stack) -> None:
    _, job, cancellation = cancelled_job(stack)
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))

    def cancellation_arrives() -> None:
        WorkflowRun(definition, env_for(definition), run.context.static_data).cancel(cancellation)

    run.during_provider = cancellation_arrives
    delivery = run.deliver(job, ProviderAnswer(result=images(job, 3)), never_sent)

    assert run.provider_called and delivery.tries == []
    assert run.visited[-1] == "Still wanted after the provider?"


def test_other_jobs_still_run_while_cancellations_are_remembered(stack: Stack) -> None:
    _, _, cancellation = cancelled_job(stack)
    user, request_id = held_request(stack)
    job = published_job(stack, request_id, "samples")
    definition = workflow()
    static_data: dict[str, Any] = {}
    WorkflowRun(definition, env_for(definition), static_data).cancel(cancellation)
    run = WorkflowRun(definition, env_for(definition), static_data)
    delivery = run.deliver(job, ProviderAnswer(result=images(job, 2)), send)
    assert delivery.answers == [200]
    assert "Still wanted after the provider?" in run.visited
    with stack.client(user) as client:
        assert client.get(f"/api/v1/generations/{request_id}").json()["status"] == (
            "AWAITING_SELECTION"
        )


@pytest.mark.parametrize("content", ["not json", "[]", '{"schema": "creativeflow.other.v1"}'])
def test_a_message_that_is_not_a_cancellation_is_dropped_without_failing(content: str) -> None:
    definition = workflow()
    run = WorkflowRun(definition, env_for(definition))
    run.cancel(content)
    assert run.context.static_data["global"]["cancelledJobs"] == {}


def test_remembered_cancellations_are_forgotten_after_a_day() -> None:
    definition = workflow()
    day_ms = 24 * 60 * 60 * 1000
    start = int(time.time() * 1000)
    first = {"schema": "creativeflow.generation-cancel.v1", "job_id": str(uuid.uuid4())}
    second = {**first, "job_id": str(uuid.uuid4())}
    earlier = WorkflowRun(definition, env_for(definition), now_ms=start)
    earlier.cancel(first)
    later = WorkflowRun(
        definition, env_for(definition), earlier.context.static_data, now_ms=start + day_ms + 1
    )
    later.cancel(second)
    assert list(later.context.static_data["global"]["cancelledJobs"]) == [second["job_id"]]
