"""The project's AWS emulator: moto server plus a small Lambda router, in one process.

    .venv/bin/python shared/local-aws/emulator.py -H 127.0.0.1 -p PORT

moto's Step Functions engine calls Lambda through boto3 at http://localhost:$MOTO_PORT, that
is back into this process. moto cannot run our Rust functions, so a WSGI middleware in
front of moto sends `Invoke` for *registered* function names to an HTTP endpoint of our
own (normally a `local_aws::lambda::LambdaHost` inside a test or tool process) and passes
every other request to moto unchanged.

Router API (JSON):

    POST /_local/lambda/register    {"function_name": "f", "url": "http://127.0.0.1:N/invoke/f"}
                                    registers or replaces the route of one function name
    POST /_local/lambda/unregister  {"function_name": "f"}
    GET  /_local/lambda             {"routes": {"f": "http://..."}}

Invoke (`POST /2015-03-31/functions/{FunctionName}/invocations`, where FunctionName is a
name, a full or partial ARN, optionally with a `:qualifier`) of a registered function:
the request body is POSTed to the route's URL and the handler's status, body and
`X-Amz-Function-Error` header are returned as Lambda's answer. With
`X-Amz-Invocation-Type: Event` the call is dispatched in a thread and 202 is returned at
once. A handler that cannot be reached becomes a function error of type
`Local.HandlerUnavailable` (so a state machine sees an error name, not a crash). Invoke of
an unregistered name goes to moto, which answers ResourceNotFoundException.

Fault injection, for behaviour AWS shows and moto never does:

    POST /_local/faults/dynamodb/unprocessed   {"table": "t", "calls": N}
        the next N `BatchWriteItem` calls that write to table t store only the first half of
        that table's requests and answer the rest as `UnprocessedItems`, as DynamoDB does
        under throttling; the caller must re-drive them.
    POST /_local/faults/sqs/send-batch         {"queue": "q", "calls": N, "sender_fault": false}
        the next N `SendMessageBatch` calls to the queue named q (the last path segment of the
        call's QueueUrl) send only the first half of their entries, rounded up, to moto, and
        answer the others as `Failed` entries, as SQS does when it accepts part of a batch:
        `Code` "InternalError" with `SenderFault` false, or "InvalidParameterValue" with
        `SenderFault` true when sender_fault is true. Every call to q counts, whatever its size;
        a call of a single entry has that entry fail, so with N at least the number of attempts
        nothing gets through until the calls are used up (10 entries: 5 are sent, then 3 of the
        other 5, then 1 of 2, then none of 1). The sent entries are answered as moto answers
        them; when no entry is sent, moto is not asked. A call that SQS refuses as a whole (no
        entries, more than 10, repeated ids, a body that is not JSON) goes to moto unchanged
        and does not count. SQS's JSON protocol only (`X-Amz-Target:
        AmazonSQS.SendMessageBatch`), which is what the AWS SDKs speak.
    POST /_local/faults/dynamodb/lose-answer   {"table": "t", "operation": "UpdateItem", "calls": N,
                                                "mode": "error"}
        the next N calls of operation (PutItem, UpdateItem, DeleteItem, BatchWriteItem or
        TransactWriteItems) that name table t (for a transaction or a batch: any of its tables)
        are applied by moto as usual and then answered as if the answer had been lost: mode
        "error" (the default) answers HTTP 500 `InternalServerError` in DynamoDB's JSON, mode
        "drop" closes the connection without an answer (the SDK sees an incomplete message, a
        transient I/O error). Both are retried by the SDKs' standard retry, which sends the same
        request again: a conditional write then fails its own condition. Every call counts,
        whatever moto answered it (a write that failed its condition is not applied, and its
        answer is lost all the same).
    POST /_local/faults/dynamodb/throttle      {"table": "t", "calls": N, "seconds": S,
                                                "requests": "all", "operation": "Query"}
        calls that name table t are answered HTTP 400 `ProvisionedThroughputExceededException`
        without reaching moto (nothing is applied), for the next N such calls, or for S seconds
        (at most 3600), or while both last when both are given. "requests" narrows the calls to
        "reads" (GetItem, BatchGetItem, Query, Scan, TransactGetItems) or "writes" (PutItem,
        UpdateItem, DeleteItem, BatchWriteItem, TransactWriteItems); "operation" to one
        operation. One throttle per table: setting it again replaces it.
    POST /_local/faults/s3/slow-get            {"bucket": "b", "prefix": "p/", "calls": N,
                                                "delay_ms": D}
        the next N `GetObject` calls on bucket b whose key starts with the prefix (all keys when
        it is empty) wait D milliseconds (at most 120,000) before moto answers them: a slow
        read, or a hanging one for a caller whose timeout is shorter. Only the delayed request
        waits: the server serves each connection on its own thread. Path-style requests (as the
        project's S3 clients make them). One delay per bucket: setting it again replaces it.
    GET  /_local/faults                        {"fired": {"dynamodb/lose-answer": {"t": 1}, ...},
                                                "pending": {...}}
        how many calls each switch has faulted since the start or the last clear, by switch
        (dynamodb/unprocessed, sqs/send-batch, dynamodb/lose-answer, dynamodb/throttle,
        s3/slow-get) and resource (table, queue or bucket), and the switches still set.
    POST /_local/faults/clear                  {"resource": "t"}
        removes every switch set on the table, queue or bucket named resource, and its counts;
        without a resource, every switch and every count. `POST /moto-api/reset` does the same
        (the resources are gone) before moto resets. Setting N to 0 removes one switch.

Message move tasks (DLQ redrive), which moto lacks: `StartMessageMoveTask`,
`ListMessageMoveTasks` and `CancelMessageMoveTask` (SQS's JSON protocol) are answered by the
emulator, in AWS's shapes. When moto moves a message to a dead-letter queue during a
ReceiveMessage, the emulator notes on the message the queue it came from. A task counts the
source's visible messages when it starts (ApproximateNumberOfMessagesToMove) and moves them in a
thread, oldest first, at most MaxNumberOfMessagesPerSecond a second (500 when not given),
passing over in-flight and delayed ones: each becomes a new message on its destination (same
body, message attributes and, on a FIFO destination, group and deduplication ids; a new id and
a receive count of 0) and leaves the source. The destination is DestinationArn or, without it,
the queue each message was dead-lettered from. A message with no destination, or whose
destination no longer exists, fails the task (FAILED with a FailureReason; for a deleted queue
"AWS.SimpleQueueService.NonExistentQueue", as SQS gives) and stays on the source with the
messages after it. A task is COMPLETED once it has moved its count or the source shows no
visible message, CANCELLED once cancelled (a message being sent at that moment still arrives).
Errors are SQS's, as AWS answers them: an ARN that names no queue is ResourceNotFoundException
(HTTP 404); a source that is no queue's dead-letter queue, a rate outside 1..500, MaxResults
outside 1..10, a second task while one runs for the source, and a TaskHandle that is not one are
InvalidParameterValue; cancelling a task that is unknown or no longer running is
ResourceNotFoundException. Tasks live in the emulator, not in moto's state: a listing shows the
tasks of the queue the ARN names now (a queue deleted and created again, or a moto reset, starts
with none).

Request counts, for the cost figures (what AWS would be asked, by service and operation):

    GET  /_local/requests?contains=S   {"requests": {"dynamodb:PutItem": n, "s3:PutObject": n, ...}}
        every AWS request since the start or the last reset whose resource (table, bucket,
        queue, state machine or function) contains S (case-insensitive; all without S)
    POST /_local/requests/reset
        (also forgets the DynamoDB capacity units `GET /_local/capacity` counts: capacity.py)

Atomic conditional writes, as DynamoDB has them: moto evaluates a condition and applies the
write in separate steps on concurrent threads, so DynamoDB writes are applied one at a time.

Queries that read only what they ask for: for every Query, moto sorts the whole table and then
keeps the items of the asked partition, so a query costs O(table) however few items it returns.
The emulator hands moto's query only the items whose partition key (of the table or of the
index) matches and whose sort key meets the query's condition on strings; the answers are the
same items (moto applies both again). The items of a partition come from a map of the
table's items by that attribute's string value (speed.py keeps it), the others from one pass
over the keys. One difference at
the edge: a page that ends exactly at `Limit` with nothing after it in range comes without
`LastEvaluatedKey`, where moto pointed at an empty next page (DynamoDB may do either; callers
read on while a key is returned).

Projections of top-level attributes: moto projects an item by turning the whole item into
plain JSON, finding each projected path in it and turning the result back into DynamoDB's
types, about half of a projected Query's time. When every path of a ProjectionExpression is one
top-level attribute name (the funnel's, the shard summaries'), the emulator keeps those
attributes of the item as they are: the same answer without the round trip. Nested paths
(`a.b`, `a[0]`) go moto's way.

Sending to a long queue: moto's SendMessage builds the queue's whole attribute map (message
counts included, each a pass over every message) only to read ContentBasedDeduplication, so
sending grew with the queue's length. While it sends, the emulator answers that one attribute
directly; GetQueueAttributes still counts. Receiving from a long queue: moto checked each
message's retention period by building that same attribute map, once per message; the emulator
reads the queue's retention period directly, and it lists the available messages (every
receive, and every second of a long poll, scans the whole queue) with one clock reading where
moto took two per message. Deleting: moto looked for the receipt handle in
two passes over the queue and rebuilt the list; the emulator stops at the message and removes
it (a receipt handle names one message).

Per-request overhead: moto server lists its own package directory and inspects the handler
class's methods on every request; both answers never change while it runs, so the emulator
computes them once. DynamoDB's and SQS's JSON requests go from the middleware straight to
moto's handlers, without the Flask application in between (speed.py, `JsonRoutes`).

More of moto's slow paths are replaced in speed.py, beside this file (its doc lists them); the
answers are the same bytes.

DynamoDB on more cores: with `--dynamodb-process PATTERN` (repeatable) DynamoDB's tables are
answered in processes of their own, one per pattern (the tables whose name contains it) and one
for the rest, behind this process's router and at its one endpoint (processes.py). The large
month uses it (`scripts/month.sh --fast`). Tables CloudFormation creates are not reachable in
that mode.

Deploying: the SAM CLI's `sam deploy --resolve-s3` of the project's template reaches
CREATE_COMPLETE and updates, with named patches to moto's CloudFormation (the SAM transform,
change-set outputs, TemplateURL on loopback, resource types moto lacks, state machines on the
executing backend, event source mappings recorded but not polled, ...), and S3 "Object
Created" events go to the default bus and on to the targets of matching rules (state machines,
functions through the router, queues) in a background thread. Each patch is a function below
`deployable_by_cloudformation`; docs/local-development.md ("Deploying to the emulator") lists
them.

Only loopback addresses are accepted, for the server and for handler URLs.
"""

import argparse
import atexit
import base64
import binascii
import contextlib
import io
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import capacity  # DynamoDB capacity units per table and index (shared/local-aws/capacity.py)
import processes  # DynamoDB in processes of its own (shared/local-aws/processes.py)

LOG = logging.getLogger("emulator.lambda")
MOVES_LOG = logging.getLogger("emulator.sqs")

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
ROUTES_PATH = "/_local/lambda"
UNPROCESSED_PATH = "/_local/faults/dynamodb/unprocessed"
SEND_BATCH_FAULT_PATH = "/_local/faults/sqs/send-batch"
FAULTS_PATH = "/_local/faults"
LOSE_ANSWER_PATH = "/_local/faults/dynamodb/lose-answer"
THROTTLE_PATH = "/_local/faults/dynamodb/throttle"
SLOW_GET_PATH = "/_local/faults/s3/slow-get"
CLEAR_FAULTS_PATH = "/_local/faults/clear"
RESET_PATH = "/moto-api/reset"
DYNAMODB_PREFIX = "DynamoDB_20120810."
DYNAMODB_WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")
DYNAMODB_READ_OPERATIONS = ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
DYNAMODB_JSON = "application/x-amz-json-1.0"
THROTTLE_SECONDS_LIMIT = 3600
DELAY_MS_LIMIT = 120_000  # nothing waits longer than two minutes
# GET subresources of an object that are not GetObject.
S3_SUBRESOURCES = {"acl", "tagging", "attributes", "legal-hold", "retention", "torrent", "uploadId"}
REQUESTS_PATH = "/_local/requests"
# DynamoDB evaluates a write's condition and applies the write atomically; moto, serving requests
# on threads, does not (two conditional updates of one item can both pass). Writes are therefore
# applied one at a time here.
DYNAMODB_WRITES = {DYNAMODB_PREFIX + op for op in DYNAMODB_WRITE_OPERATIONS}
JSON_SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "AWSStepFunctions": "states"}
BATCH_WRITE_TARGET = "DynamoDB_20120810.BatchWriteItem"
SEND_BATCH_TARGET = "AmazonSQS.SendMessageBatch"
SEND_BATCH_LIMIT = 10  # entries SQS takes in one SendMessageBatch
HANDLER_TIMEOUT_S = 900  # Lambda's maximum timeout
MOVE_TASK_TARGETS = {
    "AmazonSQS." + op
    for op in ("StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask")
}
MOVE_RATE_LIMIT = 500  # the most MaxNumberOfMessagesPerSecond SQS accepts
# Without MaxNumberOfMessagesPerSecond SQS picks the rate itself; the emulator moves as fast as
# a task may.
MOVE_RATE_DEFAULT = MOVE_RATE_LIMIT
MOVE_LIST_LIMIT = 10  # the most MaxResults ListMessageMoveTasks accepts
QUEUE_ARN = re.compile(r"^arn:[\w-]+:sqs:(?P<region>[\w-]+):(?P<account>\d{12}):(?P<name>[\w.-]+)$")
SQS_JSON = "application/x-amz-json-1.0"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def function_name(identifier):
    """The bare function name of an Invoke `FunctionName`.

    Accepts `name`, `name:qualifier`, `123456789012:function:name[:qualifier]` and
    `arn:aws:lambda:region:account:function:name[:qualifier]`.
    """
    parts = urllib.parse.unquote(identifier).split(":")
    if len(parts) >= 7 and parts[0] == "arn":
        return parts[6]
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]
    return parts[0]


def lambda_error(error_type, message):
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class LambdaRouter:
    """WSGI middleware: the router API and Invoke of registered functions; the rest to `app`."""

    def __init__(self, app):
        self.app = app
        self.routes = {}
        self.unprocessed = {}  # table -> BatchWriteItem calls still to answer partly
        self.send_batch_faults = {}  # queue -> (SendMessageBatch calls to answer partly, sender fault)
        self.lost_answers = {}  # (table, operation) -> {"calls": n, "mode": "error" | "drop"}
        self.throttles = {}  # table -> {"calls": n | None, "until": monotonic | None, "operations": set}
        self.slow_gets = {}  # bucket -> {"prefix": p, "calls": n, "delay_ms": d}
        self.fired = {}  # (switch, resource) -> calls faulted
        self.lock = threading.Lock()
        self.requests = {}  # (service, operation, resource) -> count
        # Writes are applied one at a time (the capacity meter sizes items before and after);
        # with DynamoDB in processes of its own, each process does that for its tables.
        self.dynamodb_writes = threading.Lock()
        self.resets = [capacity.reset]  # what `/_local/requests/reset` also forgets
        self.moves = MessageMoves()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == REQUESTS_PATH or path.startswith(REQUESTS_PATH + "/"):
            return self.request_counts(method, path, environ, start_response)
        if not path.startswith(("/_local", "/moto-api")):
            self.count(method, path, environ)
        if path == ROUTES_PATH or path.startswith(ROUTES_PATH + "/"):
            return self.admin(method, path, environ, start_response)
        if path == UNPROCESSED_PATH and method == "POST":
            return self.set_unprocessed(environ, start_response)
        if path == SEND_BATCH_FAULT_PATH and method == "POST":
            return self.set_send_batch_fault(environ, start_response)
        if path == FAULTS_PATH or path.startswith(FAULTS_PATH + "/"):
            return self.faults(method, path, environ, start_response)
        if path == RESET_PATH and method == "POST":
            self.clear_faults(None)
        target = environ.get("HTTP_X_AMZ_TARGET")
        if method == "POST" and target == SEND_BATCH_TARGET and self.send_batch_faults:
            return self.send_batch(environ, start_response)
        if method == "POST" and target in MOVE_TASK_TARGETS:
            return self.moves.answer(target, environ, start_response)
        if method == "POST" and self.throttles and target and target.startswith(DYNAMODB_PREFIX):
            table = self.throttled(target[len(DYNAMODB_PREFIX):], environ)
            if table is not None:
                return throttling_error(start_response, table)
        if method == "POST" and target in DYNAMODB_WRITES:
            mode = self.lose_answer(target[len(DYNAMODB_PREFIX):], environ) if self.lost_answers else None
            if mode is not None:
                return self.write_and_lose_answer(target, mode, environ, start_response)
            with self.dynamodb_writes:
                if target == BATCH_WRITE_TARGET and self.unprocessed:
                    return self.batch_write(environ, start_response)
                return [b"".join(self.app(environ, start_response))]
        if method == "GET" and self.slow_gets:
            self.slow_get(path, environ)
        match = INVOKE_PATH.match(path) if method == "POST" else None
        if match:
            name = function_name(match.group("name"))
            with self.lock:
                url = self.routes.get(name)
            body = read_body(environ)
            if url is not None:
                return self.invoke(name, url, body, environ, start_response)
            # Let moto answer (ResourceNotFoundException, or a function created in moto).
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)

    # --- router API ------------------------------------------------------------------------

    def admin(self, method, path, environ, start_response):
        try:
            if method == "GET" and path in (ROUTES_PATH, ROUTES_PATH + "/"):
                with self.lock:
                    routes = dict(self.routes)
                return respond(start_response, 200, {"routes": routes})
            if method == "POST" and path == ROUTES_PATH + "/register":
                request = json.loads(read_body(environ) or b"{}")
                name, url = request.get("function_name"), request.get("url")
                if not isinstance(name, str) or not name or not isinstance(url, str):
                    return respond(start_response, 400, {"error": "function_name and url are required"})
                parsed = urllib.parse.urlsplit(url)
                if parsed.scheme != "http" or parsed.hostname not in LOOPBACK_HOSTS:
                    return respond(start_response, 400, {"error": f"not a loopback http URL: {url}"})
                with self.lock:
                    replaced = self.routes.get(name)
                    self.routes[name] = url
                LOG.info("route %s -> %s%s", name, url, " (replaced)" if replaced else "")
                return respond(start_response, 200, {"registered": name, "url": url, "replaced": replaced})
            if method == "POST" and path == ROUTES_PATH + "/unregister":
                request = json.loads(read_body(environ) or b"{}")
                name = request.get("function_name")
                with self.lock:
                    removed = self.routes.pop(name, None)
                LOG.info("route %s removed", name)
                return respond(start_response, 200, {"unregistered": name, "url": removed})
            return respond(start_response, 404, {"error": f"no such router call: {method} {path}"})
        except (ValueError, AttributeError) as e:
            return respond(start_response, 400, {"error": f"bad request: {e}"})

    # --- request counts --------------------------------------------------------------------

    def count(self, method, path, environ):
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target and "." in target:
            prefix, operation = target.split(".", 1)
            service = JSON_SERVICES.get(prefix, prefix.lower())
            body = read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                doc = {}
            resource = ""
            if isinstance(doc, dict):
                resource = (
                    doc.get("TableName")
                    or doc.get("QueueUrl")
                    or doc.get("SourceArn")
                    or doc.get("stateMachineArn")
                    or doc.get("executionArn")
                    or ",".join(sorted((doc.get("RequestItems") or {}).keys()))
                )
        else:
            match = INVOKE_PATH.match(path) if method == "POST" else None
            if match:
                service, operation, resource = "lambda", "Invoke", function_name(match.group("name"))
            else:
                # S3, path-style: /bucket[/key]
                bucket, _, key = path.lstrip("/").partition("/")
                query = environ.get("QUERY_STRING", "")
                service, resource = "s3", bucket
                if key:
                    operation = {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
                                 "DELETE": "DeleteObject", "POST": "PostObject"}.get(method, method)
                    if method == "PUT" and "partNumber=" in query:
                        operation = "UploadPart"
                else:
                    operation = {"GET": "ListObjects", "PUT": "PutBucket", "HEAD": "HeadBucket",
                                 "DELETE": "DeleteBucket", "POST": "DeleteObjects"}.get(method, method)
        with self.lock:
            k = (service, operation, str(resource))
            self.requests[k] = self.requests.get(k, 0) + 1

    def request_counts(self, method, path, environ, start_response):
        if method == "POST" and path == REQUESTS_PATH + "/reset":
            with self.lock:
                self.requests.clear()
            for reset in self.resets:
                reset()
            return respond(start_response, 200, {"reset": True})
        if method != "GET":
            return respond(start_response, 404, {"error": f"no such call: {method} {path}"})
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        contains = (query.get("contains") or [""])[0].lower()
        totals = {}
        with self.lock:
            for (service, operation, resource), n in self.requests.items():
                if contains in resource.lower():
                    k = f"{service}:{operation}"
                    totals[k] = totals.get(k, 0) + n
        return respond(start_response, 200, {"requests": totals})

    # --- DynamoDB faults -------------------------------------------------------------------

    def set_unprocessed(self, environ, start_response):
        try:
            request = json.loads(read_body(environ) or b"{}")
            table, calls = request.get("table"), int(request.get("calls", 0))
        except (ValueError, TypeError, AttributeError) as e:
            return respond(start_response, 400, {"error": f"bad request: {e}"})
        if not isinstance(table, str) or not table or calls < 0:
            return respond(start_response, 400, {"error": "table and calls >= 0 are required"})
        with self.lock:
            self.unprocessed[table] = calls
        LOG.info("fault: next %d BatchWriteItem calls to %s leave half unprocessed", calls, table)
        return respond(start_response, 200, {"table": table, "calls": calls})

    def batch_write(self, environ, start_response):
        body = read_body(environ)
        try:
            request = json.loads(body)
            items = request["RequestItems"]
        except (ValueError, KeyError, TypeError):
            return self.pass_through(body, environ, start_response)
        held = {}
        with self.lock:
            for table, writes in items.items():
                if self.unprocessed.get(table, 0) > 0 and len(writes) > 1:
                    self.unprocessed[table] -= 1
                    self.fire("dynamodb/unprocessed", table)
                    keep = (len(writes) + 1) // 2
                    held[table], items[table] = writes[keep:], writes[:keep]
        if not held:
            return self.pass_through(body, environ, start_response)
        captured, answer = self.call_moto(environ, request)
        if not captured.get("status", "").startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [answer]
        document = json.loads(answer)
        unprocessed = document.setdefault("UnprocessedItems", {})
        for table, writes in held.items():
            unprocessed.setdefault(table, []).extend(writes)
        payload = json.dumps(document).encode()
        headers = [
            (k, v)
            for k, v in captured["headers"]
            if k.lower() not in ("content-length", "x-amz-crc32")
        ]
        headers += [
            ("Content-Length", str(len(payload))),
            ("X-Amz-Crc32", str(binascii.crc32(payload) & 0xFFFFFFFF)),
        ]
        start_response(captured["status"], headers)
        return [payload]

    def call_moto(self, environ, request):
        """Sends the JSON `request` to moto in place of the original body; returns
        ({"status", "headers"}, body)."""
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        new_body = json.dumps(request).encode()
        environ["wsgi.input"] = io.BytesIO(new_body)
        environ["CONTENT_LENGTH"] = str(len(new_body))
        return captured, b"".join(self.app(environ, capture))

    def pass_through(self, body, environ, start_response):
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)

    # --- injected errors and delays (lost answers, throttling, slow reads) -----------------

    def faults(self, method, path, environ, start_response):
        try:
            if method == "GET" and path in (FAULTS_PATH, FAULTS_PATH + "/"):
                return respond(start_response, 200, self.fault_report())
            if method != "POST":
                return respond(start_response, 404, {"error": f"no such fault call: {method} {path}"})
            request = json.loads(read_body(environ) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("the body must be a JSON object")
            if path == LOSE_ANSWER_PATH:
                return self.set_lose_answer(request, start_response)
            if path == THROTTLE_PATH:
                return self.set_throttle(request, start_response)
            if path == SLOW_GET_PATH:
                return self.set_slow_get(request, start_response)
            if path == CLEAR_FAULTS_PATH:
                resource = request.get("resource")
                if resource is not None and (not isinstance(resource, str) or not resource):
                    raise ValueError("resource must be a non-empty name")
                self.clear_faults(resource)
                return respond(start_response, 200, {"cleared": resource or "all"})
            return respond(start_response, 404, {"error": f"no such fault call: {method} {path}"})
        except (ValueError, TypeError, AttributeError) as e:
            return respond(start_response, 400, {"error": f"bad request: {e}"})

    def fire(self, switch, resource):
        """Counts one faulted call (the caller holds the lock)."""
        k = (switch, resource)
        self.fired[k] = self.fired.get(k, 0) + 1

    def fault_report(self):
        now = time.monotonic()
        with self.lock:
            fired = {}
            for (switch, resource), n in self.fired.items():
                fired.setdefault(switch, {})[resource] = n
            pending = {
                "dynamodb/unprocessed": {t: n for t, n in self.unprocessed.items() if n > 0},
                "sqs/send-batch": {q: n for q, (n, _) in self.send_batch_faults.items() if n > 0},
                "dynamodb/lose-answer": {
                    f"{t}:{op}": dict(f) for (t, op), f in self.lost_answers.items()
                },
                "dynamodb/throttle": {
                    t: {
                        "calls": f["calls"],
                        "seconds_left": None if f["until"] is None else max(0.0, f["until"] - now),
                        "operations": sorted(f["operations"]),
                    }
                    for t, f in self.throttles.items()
                },
                "s3/slow-get": {b: dict(f) for b, f in self.slow_gets.items()},
            }
        return {"fired": fired, "pending": pending}

    def clear_faults(self, resource):
        """Removes the switches set on `resource` and its counts; all of them for None."""
        with self.lock:
            if resource is None:
                for faults in (self.unprocessed, self.send_batch_faults, self.lost_answers,
                               self.throttles, self.slow_gets, self.fired):
                    faults.clear()
                return
            for faults in (self.unprocessed, self.send_batch_faults, self.throttles, self.slow_gets):
                faults.pop(resource, None)
            for faults in (self.lost_answers, self.fired):
                for k in [k for k in faults if resource in k]:
                    del faults[k]
        LOG.info("fault: switches of %s cleared", resource)

    def set_lose_answer(self, request, start_response):
        table, operation = request.get("table"), request.get("operation")
        calls, mode = int(request.get("calls", 0)), request.get("mode", "error")
        if not isinstance(table, str) or not table or calls < 0:
            raise ValueError("table and calls >= 0 are required")
        if operation not in DYNAMODB_WRITE_OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(DYNAMODB_WRITE_OPERATIONS)}")
        if mode not in ("error", "drop"):
            raise ValueError('mode must be "error" or "drop"')
        with self.lock:
            if calls == 0:
                self.lost_answers.pop((table, operation), None)
            else:
                self.lost_answers[(table, operation)] = {"calls": calls, "mode": mode}
        LOG.info("fault: next %d %s calls on %s applied, answer lost (%s)", calls, operation, table, mode)
        return respond(start_response, 200, {"table": table, "operation": operation, "calls": calls, "mode": mode})

    def lose_answer(self, operation, environ):
        """The mode of the lost-answer switch this write uses up, or None."""
        tables = request_tables(peek_json(environ))
        with self.lock:
            for table in tables:
                fault = self.lost_answers.get((table, operation))
                if fault is None:
                    continue
                fault["calls"] -= 1
                if fault["calls"] <= 0:
                    del self.lost_answers[(table, operation)]
                self.fire("dynamodb/lose-answer", table)
                return fault["mode"]
        return None

    def write_and_lose_answer(self, target, mode, environ, start_response):
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        with self.dynamodb_writes:
            if target == BATCH_WRITE_TARGET and self.unprocessed:
                b"".join(self.batch_write(environ, capture))
            else:
                b"".join(self.app(environ, capture))
        operation = target[len(DYNAMODB_PREFIX):]
        LOG.info("fault: %s answered %s by moto, answer lost (%s)", operation, captured.get("status"), mode)
        if mode == "drop":
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                # werkzeug takes a ConnectionError for a connection the client dropped: it
                # writes nothing more and closes it.
                raise ConnectionAbortedError("injected fault: answer dropped")
        message = f"Internal server error (injected: {operation} was applied and its answer lost)"
        return dynamodb_error(start_response, 500, "InternalServerError", message)

    def set_throttle(self, request, start_response):
        table = request.get("table")
        calls, seconds = request.get("calls"), request.get("seconds")
        requests, operation = request.get("requests", "all"), request.get("operation")
        if not isinstance(table, str) or not table:
            raise ValueError("table is required")
        if calls is None and seconds is None:
            raise ValueError("calls or seconds (or both) are required")
        calls = None if calls is None else int(calls)
        seconds = None if seconds is None else float(seconds)
        if calls is not None and calls < 0:
            raise ValueError("calls must be >= 0")
        if seconds is not None and not 0 <= seconds <= THROTTLE_SECONDS_LIMIT:
            raise ValueError(f"seconds must be within 0..{THROTTLE_SECONDS_LIMIT}")
        operations = {
            "all": set(DYNAMODB_READ_OPERATIONS + DYNAMODB_WRITE_OPERATIONS),
            "reads": set(DYNAMODB_READ_OPERATIONS),
            "writes": set(DYNAMODB_WRITE_OPERATIONS),
        }.get(requests)
        if operations is None:
            raise ValueError('requests must be "all", "reads" or "writes"')
        if operation is not None:
            if operation not in operations:
                raise ValueError(f"operation {operation!r} is not one of the {requests} operations")
            operations = {operation}
        with self.lock:
            if calls == 0 or seconds == 0:
                self.throttles.pop(table, None)
            else:
                until = None if seconds is None else time.monotonic() + seconds
                self.throttles[table] = {"calls": calls, "until": until, "operations": operations}
        LOG.info("fault: %s throttled (calls %s, seconds %s, %s)", table, calls, seconds,
                 operation or requests)
        answer = {"table": table, "calls": calls, "seconds": seconds, "operations": sorted(operations)}
        return respond(start_response, 200, answer)

    def throttled(self, operation, environ):
        """The throttled table this call names (and uses up a call of), or None."""
        tables = request_tables(peek_json(environ))
        now = time.monotonic()
        with self.lock:
            for table in tables:
                fault = self.throttles.get(table)
                if fault is None:
                    continue
                if fault["until"] is not None and now >= fault["until"]:
                    del self.throttles[table]
                    continue
                if operation not in fault["operations"]:
                    continue
                if fault["calls"] is not None:
                    fault["calls"] -= 1
                    if fault["calls"] <= 0:
                        del self.throttles[table]
                self.fire("dynamodb/throttle", table)
                return table
        return None

    def set_slow_get(self, request, start_response):
        bucket, prefix = request.get("bucket"), request.get("prefix", "")
        calls, delay_ms = int(request.get("calls", 0)), int(request.get("delay_ms", 0))
        if not isinstance(bucket, str) or not bucket or not isinstance(prefix, str) or calls < 0:
            raise ValueError("bucket, a string prefix and calls >= 0 are required")
        if not 0 <= delay_ms <= DELAY_MS_LIMIT:
            raise ValueError(f"delay_ms must be within 0..{DELAY_MS_LIMIT}")
        with self.lock:
            if calls == 0:
                self.slow_gets.pop(bucket, None)
            else:
                self.slow_gets[bucket] = {"prefix": prefix, "calls": calls, "delay_ms": delay_ms}
        LOG.info("fault: next %d GetObject calls on %s/%s* wait %d ms", calls, bucket, prefix, delay_ms)
        answer = {"bucket": bucket, "prefix": prefix, "calls": calls, "delay_ms": delay_ms}
        return respond(start_response, 200, answer)

    def slow_get(self, path, environ):
        """Waits before a GetObject that a slow-get switch matches (not holding any lock)."""
        bucket, _, key = path.lstrip("/").partition("/")
        if not key:
            return
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        if S3_SUBRESOURCES & query.keys():
            return
        key = urllib.parse.unquote(key)
        with self.lock:
            fault = self.slow_gets.get(bucket)
            if fault is None or not key.startswith(fault["prefix"]):
                return
            fault["calls"] -= 1
            if fault["calls"] <= 0:
                del self.slow_gets[bucket]
            self.fire("s3/slow-get", bucket)
            delay_ms = fault["delay_ms"]
        time.sleep(delay_ms / 1000)

    # --- SQS faults ------------------------------------------------------------------------

    def set_send_batch_fault(self, environ, start_response):
        try:
            request = json.loads(read_body(environ) or b"{}")
            queue, calls = request.get("queue"), int(request.get("calls", 0))
            sender_fault = request.get("sender_fault", False)
        except (ValueError, TypeError, AttributeError) as e:
            return respond(start_response, 400, {"error": f"bad request: {e}"})
        if not isinstance(queue, str) or not queue or calls < 0 or not isinstance(sender_fault, bool):
            error = "queue, calls >= 0 and a boolean sender_fault are required"
            return respond(start_response, 400, {"error": error})
        with self.lock:
            self.send_batch_faults[queue] = (calls, sender_fault)
        LOG.info("fault: next %d SendMessageBatch calls to %s fail half (sender fault: %s)",
                 calls, queue, sender_fault)
        answer = {"queue": queue, "calls": calls, "sender_fault": sender_fault}
        return respond(start_response, 200, answer)

    def send_batch(self, environ, start_response):
        body = read_body(environ)
        try:
            request = json.loads(body)
            queue = request["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
            entries = request["Entries"]
            ids = [entry["Id"] for entry in entries]
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.pass_through(body, environ, start_response)
        if not entries or len(entries) > SEND_BATCH_LIMIT or len(set(ids)) != len(ids):
            return self.pass_through(body, environ, start_response)
        with self.lock:
            calls, sender_fault = self.send_batch_faults.get(queue, (0, False))
            if calls <= 0:
                held = None
            else:
                self.send_batch_faults[queue] = (calls - 1, sender_fault)
                self.fire("sqs/send-batch", queue)
                keep = (len(entries) + 1) // 2 if len(entries) > 1 else 0
                held, request["Entries"] = entries[keep:], entries[:keep]
        if held is None:
            return self.pass_through(body, environ, start_response)
        code = "InvalidParameterValue" if sender_fault else "InternalError"
        failed = [
            {
                "Id": entry["Id"],
                "SenderFault": sender_fault,
                "Code": code,
                "Message": f"injected fault ({SEND_BATCH_FAULT_PATH}): entry not sent",
            }
            for entry in held
        ]
        if not request["Entries"]:
            payload = json.dumps({"Successful": [], "Failed": failed}).encode()
            return respond_raw(start_response, 200, payload, [], "application/x-amz-json-1.0")
        captured, answer = self.call_moto(environ, request)
        try:
            document = json.loads(answer) if captured.get("status", "").startswith("200") else None
        except ValueError:
            document = None
        if not isinstance(document, dict):  # an error, or not an SQS answer: as moto gave it
            start_response(captured["status"], captured["headers"])
            return [answer]
        document.setdefault("Successful", [])
        document["Failed"] = (document.get("Failed") or []) + failed
        payload = json.dumps(document).encode()
        headers = [
            (k, v)
            for k, v in captured["headers"]
            if k.lower() not in ("content-length", "x-amz-crc32")
        ]
        headers.append(("Content-Length", str(len(payload))))
        start_response(captured["status"], headers)
        return [payload]

    # --- Invoke ----------------------------------------------------------------------------

    def invoke(self, name, url, body, environ, start_response):
        if environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse") == "Event":
            threading.Thread(target=forward, args=(name, url, body), daemon=True).start()
            return respond_raw(start_response, 202, b"", [("X-Amz-Executed-Version", "$LATEST")])
        if environ.get("HTTP_X_AMZ_INVOCATION_TYPE") == "DryRun":
            return respond_raw(start_response, 204, b"", [])
        status, payload, function_error = forward(name, url, body)
        headers = [("X-Amz-Executed-Version", "$LATEST")]
        if function_error:
            headers.append(("X-Amz-Function-Error", function_error))
        return respond_raw(start_response, status, payload, headers)


# --- SQS message move tasks ----------------------------------------------------------------------

# SQS's FailureReason for a queue that is gone.
NONEXISTENT_QUEUE = "AWS.SimpleQueueService.NonExistentQueue"


class SqsError(Exception):
    """An error answer of SQS: its code, message and HTTP status."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def invalid(parameter, reason=None):
    message = f"Value for parameter {parameter} is invalid."
    return SqsError("InvalidParameterValue", f"{message} Reason: {reason}" if reason else message)


def not_found(message):
    # SQS answers these with 404, not 400.
    return SqsError("ResourceNotFoundException", message, 404)


def no_queue(parameter):
    return not_found(f"The resource that you specified for the {parameter} parameter doesn't exist.")


def sqs_error(start_response, error):
    """The error as moto and SQS put it on the JSON protocol. SQS is query-compatible: the SDKs
    take the code from x-amzn-query-error, and the rest from `__type`."""
    shape = f"com.amazonaws.sqs#{error.code}"
    body = json.dumps({"__type": shape, "message": error.message}).encode()
    headers = [("X-Amzn-Errortype", shape), ("x-amzn-query-error", f"{error.code};Sender")]
    return respond_raw(start_response, error.status, body, headers, SQS_JSON)


def is_count(value, limit):
    return type(value) is int and 1 <= value <= limit  # not bool, which is an int too


def sqs_backend_of(account, region):
    from moto.sqs.models import sqs_backends

    return sqs_backends[account][region]


def queue_of(arn):
    """The moto queue an ARN names, or None."""
    match = QUEUE_ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        return None
    try:
        queue = sqs_backend_of(match["account"], match["region"]).queues.get(match["name"])
    except KeyError:  # a region moto does not have
        return None
    return queue if queue is not None and queue.queue_arn == arn else None


def exists(queue):
    """Whether the queue is still in moto (not deleted, nor reset away)."""
    return sqs_backend_of(queue.account_id, queue.region).queues.get(queue.name) is queue


class MoveTask:
    """One message move task. Its status and counts change under MessageMoves.lock."""

    def __init__(self, source, destination, rate, to_move):
        self.id = str(uuid.uuid4())
        self.source, self.destination, self.rate = source, destination, rate
        self.source_arn = source.queue_arn
        # SQS's handles are base64 of this document; ours are too, so they decode the same.
        document = {"taskId": self.id, "sourceArn": self.source_arn}
        self.handle = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()
        self.to_move, self.moved = to_move, 0
        self.status, self.failure = "RUNNING", None
        self.started = int(time.time() * 1000)

    def entry(self):
        """The task as ListMessageMoveTasks shows it."""
        entry = {"TaskHandle": self.handle} if self.status == "RUNNING" else {}
        entry.update(Status=self.status, SourceArn=self.source_arn)
        if self.destination is not None:
            entry["DestinationArn"] = self.destination.queue_arn
        if self.rate is not None:
            entry["MaxNumberOfMessagesPerSecond"] = self.rate
        entry.update(
            ApproximateNumberOfMessagesMoved=self.moved,
            ApproximateNumberOfMessagesToMove=self.to_move,
            StartedTimestamp=self.started,
        )
        if self.failure is not None:
            entry["FailureReason"] = self.failure
        return entry


class MessageMoves:
    """StartMessageMoveTask, ListMessageMoveTasks and CancelMessageMoveTask over moto's queues
    (see the module doc)."""

    def __init__(self):
        # Guards the tasks, and a task's taking of a message off its source. Held over steps in
        # memory only, never while moto sends: a send runs the queue's Lambda event source
        # mappings, whose handlers may call back into this server.
        self.lock = threading.Lock()
        self.tasks = {}  # task id -> task
        self.by_source = {}  # source queue ARN -> its tasks, oldest first

    def answer(self, target, environ, start_response):
        operations = {
            "StartMessageMoveTask": self.start_task,
            "ListMessageMoveTasks": self.list_tasks,
            "CancelMessageMoveTask": self.cancel_task,
        }
        try:
            try:
                request = json.loads(read_body(environ) or b"{}")
            except ValueError:
                request = None
            if not isinstance(request, dict):
                raise SqsError("InvalidParameterValue", "The request body is not a JSON object.")
            document = operations[target.split(".", 1)[1]](request)
        except SqsError as e:
            return sqs_error(start_response, e)
        headers = [("x-amzn-RequestId", str(uuid.uuid4()))]
        return respond_raw(start_response, 200, json.dumps(document).encode(), headers, SQS_JSON)

    def start_task(self, request):
        rate = request.get("MaxNumberOfMessagesPerSecond")
        if rate is not None and not is_count(rate, MOVE_RATE_LIMIT):
            reason = f"You must enter a number that's between 1 and {MOVE_RATE_LIMIT}."
            raise invalid("MaxNumberOfMessagesPerSecond", reason)
        source = queue_of(request.get("SourceArn"))
        if source is None:
            raise no_queue("SourceArn")
        destination = None
        if request.get("DestinationArn") is not None:
            destination = queue_of(request["DestinationArn"])
            if destination is None:
                raise no_queue("DestinationArn")
        # A copy of the queues: other threads may create or delete queues meanwhile.
        queues = list(sqs_backend_of(source.account_id, source.region).queues.values())
        if not any(queue.dead_letter_queue is source for queue in queues):
            message = "Source queue must be configured as a Dead Letter Queue."
            raise SqsError("InvalidParameterValue", message)
        with self.lock:
            tasks = self.by_source.setdefault(source.queue_arn, [])
            if any(task.status == "RUNNING" and task.source is source for task in tasks):
                message = (
                    "There is already a task running. "
                    "Only one active task is allowed for a source queue arn at a given time."
                )
                raise SqsError("InvalidParameterValue", message)
            task = MoveTask(source, destination, rate, len(source.messages))
            tasks.append(task)
            self.tasks[task.id] = task
        MOVES_LOG.info("move task %s: %d messages from %s to %s, %s a second", task.id, task.to_move,
                       task.source_arn, destination.queue_arn if destination else "their sources",
                       rate or MOVE_RATE_DEFAULT)
        threading.Thread(target=self.run, args=(task,), name=f"move-{task.id}", daemon=True).start()
        return {"TaskHandle": task.handle}

    def list_tasks(self, request):
        limit = request.get("MaxResults")
        limit = 1 if limit is None else limit
        if not is_count(limit, MOVE_LIST_LIMIT):
            reason = f"You must enter a number that's between 1 and {MOVE_LIST_LIMIT}."
            raise invalid("MaxResults", reason)
        source = queue_of(request.get("SourceArn"))
        if source is None:
            raise no_queue("SourceArn")
        with self.lock:
            # Only the tasks of this queue: not those of a deleted queue of the same name.
            tasks = [task for task in self.by_source.get(source.queue_arn, []) if task.source is source]
            return {"Results": [task.entry() for task in tasks[::-1][:limit]]}

    def cancel_task(self, request):
        try:
            document = json.loads(base64.b64decode(request.get("TaskHandle"), validate=True))
            task_id, source_arn = document["taskId"], document["sourceArn"]
        except (TypeError, ValueError, KeyError):  # binascii.Error is a ValueError
            raise invalid("TaskHandle")
        if not isinstance(task_id, str) or not isinstance(source_arn, str):
            raise invalid("TaskHandle")
        if queue_of(source_arn) is None:
            raise no_queue("SourceArn")
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.source_arn != source_arn or task.status != "RUNNING":
                raise not_found("Task does not exist.")
            self.end(task, "CANCELLED")
            return {"ApproximateNumberOfMessagesMoved": task.moved}

    # --- the task's thread ---------------------------------------------------------------------

    def run(self, task):
        """Moves the task's messages, at most `rate` a second, until the task ends."""
        rate = task.rate or MOVE_RATE_DEFAULT
        try:
            # Each pass moves `rate` messages or ends the task, which ends once it has moved
            # to_move: there are at most to_move // rate + 1 passes.
            for _ in range(task.to_move // rate + 1):
                second = time.monotonic() + 1
                for _ in range(rate):
                    taken = self.take(task)
                    if taken is None:
                        return
                    self.deliver(task, *taken)
                if task.status != "RUNNING":
                    return
                time.sleep(max(0.0, second - time.monotonic()))
            with self.lock:
                self.end(task, "COMPLETED")
        except Exception as e:  # a surprise must not leave the task RUNNING, refusing new tasks
            MOVES_LOG.exception("move task %s", task.id)
            with self.lock:
                self.end(task, "FAILED", f"{type(e).__name__}: {e}")

    def take(self, task):
        """(message, destination queue): the task's next message, taken off its source; None
        when the task has ended (its status says how), which this may do."""
        from moto.core.utils import unix_time_millis

        with self.lock:
            if task.status != "RUNNING":
                return None
            if task.moved >= task.to_move:
                return self.end(task, "COMPLETED")
            if not exists(task.source):
                return self.end(task, "FAILED", NONEXISTENT_QUEUE)
            # The first visible message, oldest first; in-flight and delayed ones stay. moto's
            # threads change the list meanwhile (they do not take this lock): iterating a list
            # that changes does not fail, and remove() below tells whether the message was still
            # there.
            now = unix_time_millis()
            for message in task.source._messages:
                if not (now > message.visible_at and not now < message.delayed_until):
                    continue
                destination = task.destination
                if destination is None:
                    arn = getattr(message, "dead_letter_source_arn", None)
                    if arn is None:
                        reason = (
                            f"message {message.id} did not come from a queue's redrive policy, so it "
                            "has no source queue to return to; give DestinationArn"
                        )
                        return self.end(task, "FAILED", reason)
                    destination = queue_of(arn)
                if destination is None or not exists(destination):
                    return self.end(task, "FAILED", NONEXISTENT_QUEUE)
                # Hidden first: a ReceiveMessage that has already listed it looks at its
                # visibility once more before delivering it.
                message.visible_at = float("inf")
                try:
                    task.source._messages.remove(message)
                except ValueError:  # deleted meanwhile
                    continue
                return message, destination
            return self.end(task, "COMPLETED")  # no visible message left

    def deliver(self, task, message, destination):
        """Sends a message taken off the source to its destination as a new message. When moto
        refuses it (the queue deleted meanwhile, a FIFO queue's rules), the message goes back to
        the front of the source and the task fails."""
        fifo = destination.fifo_queue
        try:
            sqs_backend_of(destination.account_id, destination.region).send_message(
                destination.name,
                message.body,
                message_attributes=dict(message.message_attributes) or None,
                group_id=message.group_id if fifo else None,
                deduplication_id=message.deduplication_id if fifo else None,
                system_attributes=dict(message.system_attributes) or None,
            )
        except Exception as e:
            with self.lock:
                message.visible_at = 0.0  # visible again, as it was when taken
                task.source._messages.insert(0, message)
                self.end(task, "FAILED", getattr(e, "code", None) or f"{type(e).__name__}: {e}")
            return
        with self.lock:
            # Gone from the source as if deleted: its old receipt handles delete nothing, quietly.
            task.source.pending_messages.discard(message)
            task.source.deleted_messages.update(message.all_receipt_handles)
            task.moved += 1
            if task.moved >= task.to_move:
                self.end(task, "COMPLETED")

    def end(self, task, status, reason=None):
        """Ends a RUNNING task (the caller holds the lock); None, for take's answer."""
        if task.status != "RUNNING":
            return None
        task.status, task.failure = status, reason
        MOVES_LOG.info("move task %s %s after %d of %d messages%s", task.id, status.lower(),
                       task.moved, task.to_move, f": {reason}" if reason else "")
        return None


def forward(name, url, body):
    """POST the payload to the handler; (status, body, function error or None)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=HANDLER_TIMEOUT_S) as r:
            return r.status, r.read(), r.headers.get("X-Amz-Function-Error")
    except urllib.error.HTTPError as e:
        # The handler answered, with an error status: pass it through.
        return e.code, e.read(), e.headers.get("X-Amz-Function-Error") or "Unhandled"
    except Exception as e:  # refused, reset, timed out, ...
        LOG.warning("handler of %s at %s unavailable: %s", name, url, e)
        message = f"the local handler of {name} at {url} is unavailable: {e}"
        return 200, lambda_error("Local.HandlerUnavailable", message), "Unhandled"


def read_body(environ):
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream for us
        return stream.read()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return stream.read(length) if length > 0 else b""


def peek_json(environ):
    """The request's JSON body (None when it is not JSON), leaving the body to be read again."""
    body = read_body(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    try:
        return json.loads(body or b"{}")
    except ValueError:
        return None


def request_tables(doc):
    """The tables a DynamoDB request names: TableName, a batch's RequestItems, a transaction's
    items."""
    if not isinstance(doc, dict):
        return []
    tables = []
    if isinstance(doc.get("TableName"), str):
        tables.append(doc["TableName"])
    if isinstance(doc.get("RequestItems"), dict):
        tables.extend(doc["RequestItems"].keys())
    for item in doc.get("TransactItems") or []:
        if isinstance(item, dict):
            for action in item.values():
                if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                    if action["TableName"] not in tables:
                        tables.append(action["TableName"])
    return tables


def dynamodb_error(start_response, status, error_type, message):
    """An error answer in DynamoDB's JSON protocol."""
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", "message": message}).encode()
    headers = [
        ("X-Amzn-RequestId", str(uuid.uuid4())),
        ("X-Amz-Crc32", str(binascii.crc32(body) & 0xFFFFFFFF)),
    ]
    return respond_raw(start_response, status, body, headers, DYNAMODB_JSON)


def throttling_error(start_response, table):
    message = (
        "The level of configured provisioned throughput for the table was exceeded. Consider "
        f"increasing your provisioning level with the UpdateTable API. (injected, table {table})"
    )
    return dynamodb_error(start_response, 400, "ProvisionedThroughputExceededException", message)


def respond(start_response, status, document):
    return respond_raw(start_response, status, json.dumps(document).encode(), [])


REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    500: "Internal Server Error",
}


def respond_raw(start_response, status, body, headers, content_type="application/json"):
    start_response(
        f"{status} {REASONS.get(status, 'Status')}",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))] + headers,
    )
    return [body]


def cache_request_routing():
    """Answer moto's per-request routing lookups from a cache (see the module doc)."""
    import functools

    import moto.backends
    import moto.core.responses

    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules
    moto.core.responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        moto.core.responses.method_names_from_class
    )


def cheap_attributes_while_sending():
    """SendMessage reads one queue attribute without counting the queue (see the module doc)."""
    from moto.sqs.models import Queue, SQSBackend

    hint = threading.local()
    original_attributes = Queue.attributes
    original_send = SQSBackend.send_message

    def attributes(self):
        if not getattr(hint, "sending", False):
            return original_attributes.fget(self)
        if not self.fifo_queue:
            return {}
        return {"ContentBasedDeduplication": "true" if self.content_based_deduplication else "false"}

    def send_message(self, *args, **kwargs):
        hint.sending = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            hint.sending = False

    Queue.attributes = property(attributes)
    SQSBackend.send_message = send_message


def cheap_receive_and_delete():
    """ReceiveMessage checks retention without counting the queue per message and lists the
    available messages with one clock reading, and DeleteMessage finds its message in one pass
    (same answers; see the module doc)."""
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time()

    def delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return
        for i, message in enumerate(self._messages):
            if message.had_receipt_handle(receipt_handle):
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                del self._messages[i]
                return
        raise ReceiptHandleIsInvalid()

    def messages(self):
        # moto's version asks the clock twice per message (visible, delayed); one reading per
        # scan gives the same list: visible means now > visible_at, delayed now < delayed_until.
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    Queue.delete_message = delete_message
    Queue.messages = property(messages)


def track_dead_letter_sources():
    """Note on each message moto moves to a dead-letter queue the ARN of the queue it came from,
    where StartMessageMoveTask without DestinationArn returns it (see the module doc)."""
    from moto.sqs.models import Queue, SQSBackend

    # moto moves the message inside ReceiveMessage (Queue.add_message on the dead-letter queue);
    # the hint says, on the receiving thread, which queue is being received from.
    hint = threading.local()
    original_receive = SQSBackend.receive_message
    original_add_message = Queue.add_message

    def receive_message(self, *args, **kwargs):
        queue_name = args[0] if args else kwargs.get("queue_name")
        outer = getattr(hint, "queue", None)  # add_message may receive (event source mappings)
        hint.queue = self.queues.get(queue_name)
        try:
            return original_receive(self, *args, **kwargs)
        finally:
            hint.queue = outer

    def add_message(self, message):
        source = getattr(hint, "queue", None)
        if source is not None and source.dead_letter_queue is self:
            message.dead_letter_source_arn = source.queue_arn
        return original_add_message(self, message)

    SQSBackend.receive_message = receive_message
    Queue.add_message = add_message


def cheap_top_level_projection():
    """Project top-level attribute names without moto's JSON round trip (same answers; see the
    module doc)."""
    from moto.dynamodb.models.dynamo_type import Item

    original_project = Item.project

    def project(self, projection_expressions):
        if not all(len(path) == 1 for path in projection_expressions):
            return original_project(self, projection_expressions)
        names = {path[0] for path in projection_expressions}
        # Query and Scan deep-copy the items before projecting, so the values can be shared.
        projected = Item(hash_key=self.hash_key, range_key=self.range_key, attrs={})
        for name, value in self.attrs.items():
            if name in names:
                projected.attrs[name] = value
        return projected

    Item.project = project


def prefilter_queries():
    """Make moto's Query look only at the asked partition (same answers; see the module doc)."""
    from moto.dynamodb.models.table import Table

    import speed  # the partition maps (shared/local-aws/speed.py)

    hint = threading.local()
    original_query = Table.query
    original_all_items = Table.all_items

    def matches(item, wanted):
        for name, expected in wanted:
            value = item.attrs.get(name)
            if value is None or value.type != expected.type:
                return False
            if value.type in ("S", "B"):
                if value.value != expected.value:
                    return False
            elif value != expected:
                return False
        return True

    def ranges_of(conditions):
        """The sort-key conditions on strings, as (attribute, test) pairs."""
        out = []
        for name, comparison, values in conditions or []:
            if not values or any(v.type != "S" for v in values):
                continue
            a = values[0].value
            b = values[1].value if len(values) > 1 else None
            test = {
                "EQ": lambda x, a=a: x == a,
                "=": lambda x, a=a: x == a,
                "LE": lambda x, a=a: x <= a,
                "<=": lambda x, a=a: x <= a,
                "LT": lambda x, a=a: x < a,
                "<": lambda x, a=a: x < a,
                "GE": lambda x, a=a: x >= a,
                ">=": lambda x, a=a: x >= a,
                "GT": lambda x, a=a: x > a,
                ">": lambda x, a=a: x > a,
                "BETWEEN": lambda x, a=a, b=b: b is not None and a <= x <= b,
                "BEGINS_WITH": lambda x, a=a: x.startswith(a),
            }.get(comparison.upper())
            if test is not None:
                out.append((name, test))
        return out

    def query(self, *args, **kwargs):
        index_name = args[7] if len(args) > 7 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        if index_name:
            wanted = list(conditions or [])
        else:
            hash_key = args[0] if args else kwargs.get("hash_key")
            wanted = [(self.hash_key_attr, hash_key)] if hash_key is not None else []
        hint.table, hint.wanted = self, wanted
        hint.ranges = ranges_of(kwargs.get("range_key_conditions"))
        try:
            return original_query(self, *args, **kwargs)
        finally:
            hint.table, hint.wanted, hint.ranges = None, None, None

    def all_items(self):
        wanted = getattr(hint, "wanted", None)
        if not wanted or getattr(hint, "table", None) is not self:
            return original_all_items(self)
        (name, expected), rest = wanted[0], wanted[1:]
        kind, value = expected.type, expected.value
        items = speed.items_with(self, name, value) if kind == "S" and isinstance(value, str) else None
        if items is not None:
            pass
        elif kind in ("S", "B"):
            items = [
                item
                for hash_set in (self.items.values() if self.range_key_attr else [self.items])
                for item in hash_set.values()
                if (v := item.attrs.get(name)) is not None and v.type == kind and v.value == value
            ]
        else:
            items = [
                item
                for hash_set in (self.items.values() if self.range_key_attr else [self.items])
                for item in hash_set.values()
                if matches(item, [(name, expected)])
            ]
        items = [item for item in items if matches(item, rest)]
        for name, test in getattr(hint, "ranges", None) or []:
            items = [
                item
                for item in items
                if (v := item.attrs.get(name)) is not None and v.type == "S" and test(v.value)
            ]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    Table.query = query
    Table.all_items = all_items

# --- Deploying with CloudFormation and the SAM CLI ------------------------------------------
# Each function below patches one point where moto parts from AWS on the path of
# `sam deploy --resolve-s3` of the project's template (docs/local-development.md, "Deploying
# to the emulator", says what moto does, what AWS does and what the patch does). main()
# applies them all before the server starts.

DEPLOY_LOG = logging.getLogger("emulator.deploy")
SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


def stack_status_after_change_set():
    """Reason: moto builds a change-set stack's Outputs from the empty template it was created
    with and never rebuilds them, a failed change set leaves the stack IN_PROGRESS, and a
    resource not made (its Condition is false) is listed as an empty one."""
    from moto.cloudformation.models import CloudFormationBackend, Stack

    original = CloudFormationBackend.execute_change_set

    # moto lists a resource whose Condition is false as an empty summary; AWS does not list it.
    Stack.stack_resources = property(lambda self: [r for r in self.resource_map.values() if r is not None])

    def execute_change_set(self, change_set_name, stack_name=None):
        change_set = self.describe_change_set(change_set_name)
        stack = self.stacks[change_set.stack_id]
        kind = change_set.change_set_type
        try:
            original(self, change_set_name, stack_name)
        except Exception as e:  # AWS rolls back and tells why in the stack's events
            DEPLOY_LOG.warning("change set %s of %s failed: %s", change_set.change_set_name, stack.name, e,
                               exc_info=True)
            reason = f"{type(e).__name__}: {e}"[:1000]
            stack._add_stack_event(f"{kind}_FAILED", resource_status_reason=reason)
            stack.status = "ROLLBACK_COMPLETE" if kind == "CREATE" else "UPDATE_ROLLBACK_COMPLETE"
            stack._add_stack_event(stack.status)
            change_set.execution_status = "EXECUTE_FAILED"
            change_set.status_reason = reason
            return
        stack.parameters = change_set.parameters
        stack._parse_template()
        stack.description = stack.template_dict.get("Description")
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            self.exports[export.name] = export

    CloudFormationBackend.execute_change_set = execute_change_set


def template_url_on_loopback():
    """Reason: moto reads a TemplateURL path-style only when its host is `localhost`; the SAM
    CLI uploads a template over 51,200 bytes and passes http://127.0.0.1:PORT/bucket/key."""
    import moto.cloudformation.models as models
    import moto.cloudformation.responses as responses
    import moto.cloudformation.utils as utils
    from moto.s3.models import s3_backends

    original = utils.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url, account_id, partition):
        parts = urllib.parse.urlsplit(template_url)
        if parts.hostname in LOOPBACK_HOSTS:
            bucket, _, key = parts.path.lstrip("/").partition("/")
            obj = s3_backends[account_id][partition].get_object(bucket, urllib.parse.unquote(key))
            return obj.value.decode("utf-8")
        return original(template_url, account_id, partition)

    for module in (utils, responses, models):
        module.get_stack_from_s3_url = get_stack_from_s3_url


def sam_transform():
    """Reason: moto never applies the `AWS::Serverless-2016-10-31` transform, so it skips every
    AWS::Serverless::* resource (and fails on the first GetAtt of one); CloudFormation runs
    aws-sam-translator, the library this applies."""
    import boto3
    from moto.cloudformation.models import ChangeSet, Stack
    from moto.iam.aws_managed_policies import aws_managed_policies_data
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    lock = threading.Lock()  # the translator keeps the region in a class attribute

    def managed_policies():
        policies = json.loads(aws_managed_policies_data)
        return {name: f"arn:aws:iam::aws:policy{p.get('Path', '/')}{name}" for name, p in policies.items()}

    def transformed(template_dict, parameters, region):
        if not isinstance(template_dict, dict):
            return template_dict
        transforms = template_dict.get("Transform")
        transforms = transforms if isinstance(transforms, list) else [transforms]
        if SAM_TRANSFORM not in transforms:
            return template_dict
        session = boto3.Session(region_name=region, aws_access_key_id="local", aws_secret_access_key="local")
        values = {k: v for k, v in (parameters or {}).items() if isinstance(v, str)}
        with lock:
            translator = Translator(None, Parser(), boto_session=session)
            return translator.translate(
                json.loads(json.dumps(template_dict)),
                parameter_values=values,
                get_managed_policy_map=managed_policies,
            )

    original_stack_parse = Stack._parse_template
    original_change_set_parse = ChangeSet._parse_template
    original_init = Stack.__init__

    def stack_init(self, stack_id, name, template, parameters, account_id, region_name, *args, **kwargs):
        # The transform needs the parameters and the region, which moto sets after parsing.
        self.parameters, self.region_name = parameters, region_name
        original_init(self, stack_id, name, template, parameters, account_id, region_name, *args, **kwargs)

    def stack_parse(self):
        original_stack_parse(self)
        self.template_dict = transformed(self.template_dict, self.parameters, self.region_name)

    def change_set_parse(self):
        original_change_set_parse(self)
        self.template_dict = transformed(self.template_dict, self.parameters, self.stack.region_name)

    def has_template(self, other_template):
        # Compares the templates as submitted, before the transform.
        return self.parse_template(self.template) == self.parse_template(other_template)

    Stack.__init__ = stack_init
    Stack._parse_template = stack_parse
    Stack.has_template = has_template
    ChangeSet._parse_template = change_set_parse


def no_value_leaves_lists():
    """Reason: moto turns `!If [c, x, !Ref AWS::NoValue]` inside a list into a null element
    (HTTP 500 further on); CloudFormation removes the element."""
    import moto.cloudformation.parsing as parsing

    original = parsing.clean_json

    def clean_json(resource_json, resources_map):
        if isinstance(resource_json, list):
            out = []
            for value in resource_json:
                cleaned = clean_json(value, resources_map)
                if cleaned is None and isinstance(value, dict):
                    continue  # an intrinsic that came to AWS::NoValue
                out.append(cleaned)
            return out
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json  # moto's recursion looks the name up here


def lambda_environment_as_strings():
    """Reason: moto stores a Number parameter's value as a JSON number in a function's
    environment; Lambda's variables are strings (clients that read them as such fail)."""
    from moto.awslambda.models import LambdaFunction

    def stringify(properties):
        variables = (properties.get("Environment") or {}).get("Variables")
        if isinstance(variables, dict):
            for k, v in variables.items():
                if isinstance(v, bool):
                    variables[k] = "true" if v else "false"
                elif not isinstance(v, str):
                    variables[k] = str(v)

    original_create = LambdaFunction.create_from_cloudformation_json.__func__
    original_update = LambdaFunction.update_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        stringify(cloudformation_json.get("Properties", {}))
        return original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        stringify(cloudformation_json.get("Properties", {}))
        return original_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)

    LambdaFunction.create_from_cloudformation_json = classmethod(create)
    LambdaFunction.update_from_cloudformation_json = classmethod(update)


def state_machines_from_cloudformation():
    """Reason: moto's AWS::StepFunctions::StateMachine reads only DefinitionString (not
    Definition, DefinitionS3Location, DefinitionSubstitutions) and stores the machine where
    StartExecution with execution enabled does not look."""
    from moto.s3.models import s3_backends
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.responses import get_backend
    from moto.utilities.tagging_service import TaggingService

    def definition_of(properties, account_id, region_name):
        if "DefinitionString" in properties:
            text = properties["DefinitionString"]
        elif "Definition" in properties:
            text = json.dumps(properties["Definition"])
        elif "DefinitionS3Location" in properties:
            location = properties["DefinitionS3Location"]
            backend = s3_backends[account_id]["aws"]
            text = backend.get_object(location["Bucket"], location["Key"]).value.decode("utf-8")
        else:
            text = ""
        # CloudFormation replaces each ${name} with its substitution's value, as text.
        for name, value in (properties.get("DefinitionSubstitutions") or {}).items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            text = text.replace("${" + name + "}", str(value))
        return text

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        name = properties.get("StateMachineName", resource_name)
        tags = [{"key": t["Key"], "value": t["Value"]} for t in properties.get("Tags") or []]
        return get_backend(account_id, region_name).create_state_machine(
            name,
            definition_of(properties, account_id, region_name),
            properties.get("RoleArn", ""),
            tags=tags,
            loggingConfiguration=properties.get("LoggingConfiguration"),
            tracingConfiguration=properties.get("TracingConfiguration"),
            sm_type=properties.get("StateMachineType") or "STANDARD",
        )

    def delete(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = get_backend(account_id, region_name)
        arn = resource_name
        if not arn.startswith("arn:"):
            arn = f"arn:aws:states:{region_name}:{account_id}:stateMachine:{resource_name}"
        backend.delete_state_machine(arn)

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        properties = cloudformation_json.get("Properties", {})
        name = properties.get("StateMachineName", original_resource.name)
        if name != original_resource.name:  # replacement
            new = create(cls, name, cloudformation_json, account_id, region_name)
            delete(cls, original_resource.arn, cloudformation_json, account_id, region_name)
            return new
        backend = get_backend(account_id, region_name)
        machine = backend.update_state_machine(
            original_resource.arn,
            definition=definition_of(properties, account_id, region_name),
            role_arn=properties.get("RoleArn"),
            logging_configuration=properties.get("LoggingConfiguration"),
            tracing_configuration=properties.get("TracingConfiguration"),
        )
        tags = TaggingService().flatten_tag_list(properties.get("Tags") or [])
        if tags:
            backend.tag_resource(machine.arn, [{"key": k, "value": v} for k, v in tags.items()])
        return machine

    StateMachine.create_from_cloudformation_json = classmethod(create)
    StateMachine.update_from_cloudformation_json = classmethod(update)
    StateMachine.delete_from_cloudformation_json = classmethod(delete)
    StateMachine.has_cfn_attr = classmethod(lambda cls, attr: attr in ("Arn", "Name", "StateMachineRevisionId"))
    original_attribute = StateMachine.get_cfn_attribute

    def get_cfn_attribute(self, attribute_name):
        if attribute_name == "Arn":
            return self.arn
        if attribute_name == "StateMachineRevisionId":
            return getattr(self, "revision_id", None) or self.arn
        return original_attribute(self, attribute_name)

    StateMachine.get_cfn_attribute = get_cfn_attribute


def dashboard_ref_is_its_name():
    """Reason: moto's AWS::CloudWatch::Dashboard has no physical id, so `!Ref` of one gives an
    empty string; CloudFormation's Ref of a dashboard is its name."""
    from moto.cloudwatch.models import Dashboard

    Dashboard.physical_resource_id = property(lambda self: self.name)


def resources_moto_cannot_update_are_kept():
    """Reason: for a type whose model has no update (AWS::DynamoDB::Table among them) moto's
    stack update replaces the resource with nothing, and the next Ref or GetAtt of it fails;
    CloudFormation updates it in place. The emulator keeps the resource as it is. moto also
    updates a resource whose Condition is false (it crashes on the missing resource); such a
    resource is deleted, as CloudFormation does."""
    import moto.cloudformation.parsing as parsing

    original = parsing.parse_and_update_resource

    def parse_and_update_resource(logical_id, resource_json, resources_map, account_id, region_name):
        condition = resource_json.get("Condition")
        if condition and not resources_map.lazy_condition_map[condition]:
            existing = resources_map._parsed_resources.pop(logical_id, None)
            if existing is not None:
                resources_map._delete_resource(existing, resource_json)
            return None
        updated = original(logical_id, resource_json, resources_map, account_id, region_name)
        if updated is None:
            kept = resources_map._parsed_resources.get(logical_id)
            if kept is not None:
                DEPLOY_LOG.info("%s (%s): moto cannot update this type; kept as it was", logical_id,
                                resource_json.get("Type"))
                return kept
        return updated

    parsing.parse_and_update_resource = parse_and_update_resource


def mappings_not_polled_by_moto():
    """Reason: moto attaches an SQS event source mapping to its queue and receives from it on
    every send (receive counts climb, messages vanish); the local runner polls the mappings
    the way Lambda does, so mappings made by CloudFormation are only recorded."""
    from moto.awslambda.models import EventSourceMapping
    from moto.sqs.models import sqs_backends

    original_create = EventSourceMapping.create_from_cloudformation_json.__func__
    original_update = EventSourceMapping.update_from_cloudformation_json.__func__

    def detach(esm):
        for queue in sqs_backends[esm.account_id][esm.region].queues.values():
            for arn, attached in list(queue.lambda_event_source_mappings.items()):
                if attached is esm:
                    del queue.lambda_event_source_mappings[arn]
        return esm

    def create(cls, *args, **kwargs):
        return detach(original_create(cls, *args, **kwargs))

    def update(cls, *args, **kwargs):
        return detach(original_update(cls, *args, **kwargs))

    EventSourceMapping.create_from_cloudformation_json = classmethod(create)
    EventSourceMapping.update_from_cloudformation_json = classmethod(update)


def bucket_properties_from_cloudformation():
    """Reason: moto's AWS::S3::Bucket update reads Properties.BucketName, which a bucket named
    by CloudFormation lacks (KeyError: a second deploy fails), and it ignores
    NotificationConfiguration and VersioningConfiguration."""
    from moto.s3.models import FakeBucket, s3_backends
    from moto.utilities.utils import get_partition

    original_create = FakeBucket.create_from_cloudformation_json.__func__
    original_update = FakeBucket.update_from_cloudformation_json.__func__

    def apply(bucket, properties, account_id, region_name):
        backend = s3_backends[account_id][get_partition(region_name)]
        notification = properties.get("NotificationConfiguration") or {}
        config = {}
        if str((notification.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled")).lower() == "true":
            config["EventBridgeConfiguration"] = {}
        # Other destinations keep moto's API shape (Topic/Queue/CloudFunction lists).
        for cfn, api, arn in (
            ("TopicConfigurations", "TopicConfiguration", "Topic"),
            ("QueueConfigurations", "QueueConfiguration", "Queue"),
            ("LambdaConfigurations", "CloudFunctionConfiguration", "Function"),
        ):
            entries = notification.get(cfn) or []
            if entries:
                config[api] = [
                    {arn if arn != "Function" else "CloudFunction": e.get(arn), "Event": [e.get("Event")]}
                    for e in entries
                ]
        bucket.set_notification_configuration(config or None)
        versioning = (properties.get("VersioningConfiguration") or {}).get("Status")
        if versioning:
            backend.put_bucket_versioning(bucket.name, versioning)
        return bucket

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        bucket = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        return apply(bucket, cloudformation_json.get("Properties", {}), account_id, region_name)

    def update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        properties = cloudformation_json.get("Properties", {})
        if "BucketName" in properties and properties["BucketName"] != original_resource.name:
            return original_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        # No interruption: the same bucket, its settings replaced.
        named = dict(cloudformation_json, Properties=dict(properties, BucketName=original_resource.name))
        bucket = original_update(cls, original_resource, new_resource_name, named, account_id, region_name)
        return apply(bucket, properties, account_id, region_name)

    FakeBucket.create_from_cloudformation_json = classmethod(create)
    FakeBucket.update_from_cloudformation_json = classmethod(update)


def conditional_bucket_policy_statements_not_enforced():
    """Reason: moto enforces a bucket policy's Principal "*" statements without their
    conditions, so `Deny s3:* unless aws:SecureTransport` denies every request (moto cannot
    evaluate conditions; the emulator speaks plain HTTP on loopback)."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self, action, resource):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        document = json.loads(self.policy)
        statements = document.get("Statement") or []
        statements = statements if isinstance(statements, list) else [statements]
        kept = [s for s in statements if not s.get("Condition")]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps(dict(document, Statement=kept))).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def resource_types_moto_lacks():
    """Reason: moto has no CloudFormation model for AWS::Lambda::Url, AWS::Scheduler::Schedule,
    AWS::CloudWatch::Alarm, AWS::S3::BucketPolicy, AWS::SNS::Subscription,
    AWS::SQS::QueuePolicy, AWS::Lambda::EventInvokeConfig or AWS::SecretsManager::Secret: it skips them and fails on the first Ref or GetAtt. Each is made
    here with the service's own API in moto (so it can be read back) and AWS's physical id
    and attributes."""
    import moto.cloudformation.parsing as parsing
    from moto.core.common_models import CloudFormationModel

    class Made:
        """A resource made through moto's service backend (a mixin: moto finds models among
        the direct subclasses of CloudFormationModel)."""

        TYPE = ""
        NAME = ""
        ATTRIBUTES = ()

        def __init__(self, physical_id, attributes, undo):
            self.physical_id = physical_id
            self.attributes = attributes
            self.undo = undo

        @property
        def physical_resource_id(self):
            return self.physical_id

        @classmethod
        def cloudformation_type(cls):
            return cls.TYPE

        @classmethod
        def cloudformation_name_type(cls):
            return cls.NAME

        @classmethod
        def has_cfn_attr(cls, attr):
            return attr in cls.ATTRIBUTES

        def get_cfn_attribute(self, attribute_name):
            from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

            if attribute_name not in self.attributes:
                raise UnformattedGetAttTemplateException()
            return self.attributes[attribute_name]

        def is_created(self):
            return True

        @classmethod
        def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            return cls.make(resource_name, cloudformation_json.get("Properties") or {}, account_id, region_name)

        @classmethod
        def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
            original_resource.delete(account_id, region_name)
            return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

        @classmethod
        def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
            pass  # reached only for a resource never made; made ones undo themselves

        def delete(self, account_id, region_name):
            try:
                self.undo()
            except Exception as e:  # already gone
                DEPLOY_LOG.info("deleting %s %s: %s", self.TYPE, self.physical_id, e)

    # AWS's function URLs end with a slash; moto's do not.
    from moto.awslambda.models import FunctionUrlConfig

    original_url_init = FunctionUrlConfig.__init__

    def url_init(self, function, config):
        original_url_init(self, function, config)
        self.url = self.url.rstrip("/") + "/"

    FunctionUrlConfig.__init__ = url_init

    class FunctionUrl(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::Lambda::Url", "", ("FunctionArn", "FunctionUrl")

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.awslambda.utils import get_backend

            backend = get_backend(account_id, region_name)
            target = p["TargetFunctionArn"]
            config = {k: p[k] for k in ("AuthType", "Cors", "InvokeMode") if k in p}
            url = backend.create_function_url_config(target, config)
            arn = url.function.function_arn
            attributes = {"FunctionArn": arn, "FunctionUrl": url.url}
            return cls(arn, attributes, lambda: backend.delete_function_url_config(target))

    class Schedule(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::Scheduler::Schedule", "Name", ("Arn",)

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.scheduler.models import scheduler_backends

            backend = scheduler_backends[account_id][region_name]
            group = p.get("GroupName") or "default"
            schedule = backend.create_schedule(
                description=p.get("Description"),
                end_date=p.get("EndDate"),
                flexible_time_window=p.get("FlexibleTimeWindow") or {"Mode": "OFF"},
                group_name=group,
                kms_key_arn=p.get("KmsKeyArn"),
                name=name,
                schedule_expression=p.get("ScheduleExpression"),
                schedule_expression_timezone=p.get("ScheduleExpressionTimezone"),
                start_date=p.get("StartDate"),
                state=p.get("State") or "ENABLED",
                target=p.get("Target") or {},
                action_after_completion=None,
            )
            return cls(name, {"Arn": schedule.arn}, lambda: backend.delete_schedule(group, name))

    class Alarm(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::CloudWatch::Alarm", "AlarmName", ("Arn",)

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends

            backend = cloudwatch_backends[account_id][region_name]
            queries = None
            if p.get("Metrics"):
                queries = []
                for m in p["Metrics"]:
                    stat, metric_stat = m.get("MetricStat") or {}, None
                    if stat.get("Metric"):
                        metric = stat["Metric"]
                        dimensions = [Dimension(name=d["Name"], value=d["Value"]) for d in metric.get("Dimensions") or []]
                        metric_stat = MetricStat(
                            metric=Metric(metric_name=metric.get("MetricName"), namespace=metric.get("Namespace"),
                                          dimensions=dimensions),
                            period=stat.get("Period"),
                            stat=stat.get("Stat"),
                            unit=stat.get("Unit"),
                        )
                    queries.append(MetricDataQuery(
                        query_id=m.get("Id"),
                        label=m.get("Label"),
                        period=m.get("Period"),
                        return_data=m.get("ReturnData"),
                        expression=m.get("Expression"),
                        metric_stat=metric_stat,
                    ))
            threshold = p.get("Threshold")
            alarm = backend.put_metric_alarm(
                name=name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                comparison_operator=p.get("ComparisonOperator"),
                evaluation_periods=int(p.get("EvaluationPeriods") or 1),
                period=int(p["Period"]) if p.get("Period") is not None else None,
                threshold=float(threshold) if threshold is not None else None,
                statistic=p.get("Statistic"),
                description=p.get("AlarmDescription"),
                dimensions=[{"Name": d["Name"], "Value": d["Value"]} for d in p.get("Dimensions") or []],
                alarm_actions=p.get("AlarmActions") or [],
                metric_data_queries=queries,
                datapoints_to_alarm=p.get("DatapointsToAlarm"),
                extended_statistic=p.get("ExtendedStatistic"),
                ok_actions=p.get("OKActions") or [],
                insufficient_data_actions=p.get("InsufficientDataActions") or [],
                unit=p.get("Unit"),
                actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true",
                treat_missing_data=p.get("TreatMissingData"),
                threshold_metric_id=p.get("ThresholdMetricId"),
            )
            return cls(name, {"Arn": alarm.alarm_arn}, lambda: backend.delete_alarms([name]))

    class BucketPolicy(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::S3::BucketPolicy", "", ()

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.s3.models import s3_backends
            from moto.utilities.utils import get_partition

            backend = s3_backends[account_id][get_partition(region_name)]
            bucket = p["Bucket"]
            document = p["PolicyDocument"]
            text = document if isinstance(document, str) else json.dumps(document)
            backend.put_bucket_policy(bucket, text.encode("utf-8"))
            return cls(name, {}, lambda: backend.delete_bucket_policy(bucket))

    class Subscription(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::SNS::Subscription", "", ("Arn",)

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.sns.models import sns_backends

            backend = sns_backends[account_id][region_name]
            subscription = backend.subscribe(p["TopicArn"], p.get("Endpoint"), p["Protocol"])
            arn = subscription.arn
            return cls(arn, {"Arn": arn}, lambda: backend.unsubscribe(arn))

    class QueuePolicy(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::SQS::QueuePolicy", "", ("Id",)

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.sqs.models import sqs_backends

            backend = sqs_backends[account_id][region_name]
            document = p["PolicyDocument"]
            text = document if isinstance(document, str) else json.dumps(document)
            queues = [url.rstrip("/").rsplit("/", 1)[-1] for url in p.get("Queues") or []]
            for queue in queues:
                backend.set_queue_attributes(queue, {"Policy": text})

            def undo():
                for queue in queues:
                    backend.set_queue_attributes(queue, {"Policy": ""})

            return cls(name, {"Id": name}, undo)

    class EventInvokeConfig(Made, CloudFormationModel):
        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::Lambda::EventInvokeConfig", "", ()

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.awslambda.utils import get_backend

            backend = get_backend(account_id, region_name)
            function = p["FunctionName"]
            config = {k: p[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig") if k in p}
            backend.put_function_event_invoke_config(function, config)
            physical_id = f"{function}:{p.get('Qualifier') or '$LATEST'}"
            return cls(physical_id, {}, lambda: backend.delete_function_event_invoke_config(function))

    class Secret(Made, CloudFormationModel):
        """A secret with its SecretString, or a value made as GenerateSecretString asks (Secrets
        Manager's own random password, the same length and exclusions). Ref is its ARN."""

        __module__ = "moto.cloudformation.emulator"  # moto files models by service
        TYPE, NAME, ATTRIBUTES = "AWS::SecretsManager::Secret", "Name", ("Id",)

        @classmethod
        def make(cls, name, p, account_id, region_name):
            from moto.secretsmanager.models import secretsmanager_backends

            backend = secretsmanager_backends[account_id][region_name]
            value = p.get("SecretString")
            if value is None:
                g = p.get("GenerateSecretString") or {}
                flag = lambda key: str(g.get(key, False)).lower() == "true"  # noqa: E731
                value = json.loads(backend.get_random_password(
                    password_length=int(g.get("PasswordLength", 32)),
                    exclude_characters=g.get("ExcludeCharacters", ""),
                    exclude_numbers=flag("ExcludeNumbers"),
                    exclude_punctuation=flag("ExcludePunctuation"),
                    exclude_uppercase=flag("ExcludeUppercase"),
                    exclude_lowercase=flag("ExcludeLowercase"),
                    include_space=flag("IncludeSpace"),
                    require_each_included_type=str(g.get("RequireEachIncludedType", True)).lower() == "true",
                ))["RandomPassword"]
            made = json.loads(backend.create_secret(
                name=name, secret_string=value, secret_binary=None, description=p.get("Description"),
                tags=p.get("Tags"), kms_key_id=p.get("KmsKeyId"), client_request_token=None,
                replica_regions=[], force_overwrite=False,
            ))
            arn = made["ARN"]
            return cls(arn, {"Id": arn}, lambda: backend.delete_secret(arn, None, True))

    for cache in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cache.cache_clear()
    known = parsing.get_model_map()
    for kind in (FunctionUrl, Schedule, Alarm, BucketPolicy, Subscription, QueuePolicy, EventInvokeConfig, Secret):
        if known.get(kind.TYPE) is not kind:
            DEPLOY_LOG.warning("moto already models %s; the emulator's model is not used", kind.TYPE)


# --- S3 → EventBridge → rule → target --------------------------------------------------------

S3_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}
EVENTS_LOG = logging.getLogger("emulator.events")
SEEN_OBJECTS_LIMIT = 100_000  # object versions remembered against a second event


class S3EventBridge:
    """Puts S3's "Object Created" events on the default bus and delivers them to the targets
    of the rules that match, in a background thread (see s3_events_to_eventbridge)."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.pending = []
        self.wake = threading.Condition(self.lock)
        self.seen = {}  # id(key) -> key, kept so that an id is not reused while remembered
        self.sequence = 0
        self.worker = None

    def object_created(self, account_id, bucket, event_name, key):
        reason = S3_REASONS.get(str(getattr(event_name, "value", event_name)))
        if reason is None:  # only "Object Created" is emulated
            return
        with self.lock:
            if id(key) in self.seen:  # once per object version
                return
            self.seen[id(key)] = key
            while len(self.seen) > SEEN_OBJECTS_LIMIT:
                self.seen.pop(next(iter(self.seen)))
            self.sequence += 1
            sequencer = f"{time.time_ns() // 1000:014X}{self.sequence % 256:02X}"
        detail_object = {"key": key.name, "size": key.size, "etag": key.etag.strip('"'), "sequencer": sequencer}
        if getattr(bucket, "is_versioned", False) and key.version_id:
            detail_object["version-id"] = key.version_id
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": account_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": bucket.region_name,
            "resources": [f"arn:aws:s3:::{bucket.name}"],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket.name},
                "object": detail_object,
                "request-id": uuid.uuid4().hex[:16].upper(),
                "requester": account_id,
                "source-ip-address": "127.0.0.1",
                "reason": reason,
            },
        }
        with self.lock:
            self.pending.append((account_id, bucket.region_name, event))
            if self.worker is None:
                self.worker = threading.Thread(target=self.run, name="s3-eventbridge", daemon=True)
                self.worker.start()
            self.wake.notify()

    def run(self):
        while True:
            with self.lock:
                while not self.pending:
                    self.wake.wait()
                account_id, region, event = self.pending.pop(0)
            try:
                self.deliver(account_id, region, event)
            except Exception:  # one bad target must not stop the deliveries after it
                EVENTS_LOG.exception("delivering the event of s3://%s/%s", event["detail"]["bucket"]["name"],
                                     event["detail"]["object"]["key"])

    def deliver(self, account_id, region, event):
        from moto.events.models import events_backends

        bus = events_backends[account_id][region].event_buses.get("default")
        for rule in list(bus.rules.values()) if bus else []:
            if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
                continue
            for target in list(rule.targets):
                payload = target_input(target, event)
                arn = target["Arn"]
                service = arn.split(":")[2] if arn.count(":") >= 5 else ""
                if service == "states":
                    self.start_execution(account_id, region, arn, payload)
                elif service == "lambda":
                    self.invoke(arn, payload)
                elif service == "sqs":
                    group = (target.get("SqsParameters") or {}).get("MessageGroupId")
                    rule._send_to_sqs_queue(arn.split(":")[-1], json.loads(payload), group)
                else:
                    EVENTS_LOG.warning("rule %s: target %s is not emulated; not delivered", rule.name, arn)
                    continue
                EVENTS_LOG.info("s3://%s/%s -> rule %s -> %s", event["detail"]["bucket"]["name"],
                                event["detail"]["object"]["key"], rule.name, arn)

    @staticmethod
    def start_execution(account_id, region, arn, payload):
        from moto.stepfunctions.responses import get_backend

        get_backend(account_id, region).start_execution(arn, name=str(uuid.uuid4()), execution_input=payload)

    def invoke(self, arn, payload):
        # Through this server, so the Lambda router serves a registered function.
        url = f"http://127.0.0.1:{self.port}/2015-03-31/functions/{urllib.parse.quote(arn, safe='')}/invocations"
        request = urllib.request.Request(
            url, data=payload.encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            r.read()


def target_input(target, event):
    """What a target receives: Input (constant), InputPath, InputTransformer or the event."""
    if target.get("Input") is not None:
        return target["Input"]
    if target.get("InputPath"):
        value = event
        for part in target["InputPath"].lstrip("$").strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return json.dumps(value)
    if target.get("InputTransformer"):
        from moto.events.utils import EventTemplateParser

        transformer = target["InputTransformer"]
        parsed = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        return parsed if isinstance(parsed, str) else json.dumps(parsed)
    return json.dumps(event)


def bucket_notification_shows_eventbridge():
    """Reason: moto's GetBucketNotificationConfiguration leaves out EventBridgeConfiguration even
    when it is enabled; S3 answers it (an empty element)."""
    from moto.s3.responses import S3Response

    original = S3Response.get_bucket_notification

    def get_bucket_notification(self):
        answer = original(self)
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None:
            return answer
        status, headers, body = answer
        text = body.decode() if isinstance(body, bytes) else body
        if "<EventBridgeConfiguration" in text:
            return answer
        element = "<EventBridgeConfiguration/>"
        root = re.search(r"<(/?)(\w+)[^<>]*?(/?)>\s*$", text)  # the answer's last tag ends its root
        if root is None:
            return answer
        if root.group(1):  # </Root>: the element goes before it
            text = text[: root.start()] + element + text[root.start():]
        elif root.group(3):  # a root without children: <Root .../>
            tag = root.group(0).rstrip()
            text = text[: root.start()] + tag[:-2].rstrip() + ">" + element + f"</{root.group(2)}>"
        else:
            return answer
        headers = {k: v for k, v in dict(headers).items() if k.lower() != "content-length"}
        return status, headers, text.encode()

    S3Response.get_bucket_notification = get_bucket_notification


def s3_events_to_eventbridge(port):
    """Reason: moto sends S3's EventBridge events synchronously inside the PutObject call, in
    a shape of its own (numeric time, `eTag`, a constant sequencer), to every rule of every bus
    and to no Step Functions or Lambda target; S3 puts the documented "Object Created" event on
    the default bus and EventBridge delivers it to the matching rules' targets, asynchronously."""
    import moto.s3.notifications as notifications
    from moto.s3.models import S3Backend

    bridge = S3EventBridge(port)
    # moto completes a multipart upload with a PutObject of its own (which sends a Put event)
    # before it sends CompleteMultipartUpload; S3 sends only the latter.
    completing = threading.local()
    original_complete = S3Backend.complete_multipart_upload

    def complete_multipart_upload(self, *args, **kwargs):
        completing.active = True
        try:
            return original_complete(self, *args, **kwargs)
        finally:
            completing.active = False

    def send_event_bridge_message(account_id, bucket, event_name, key):
        put = str(getattr(event_name, "value", event_name)) == "s3:ObjectCreated:Put"
        if put and getattr(completing, "active", False):
            return
        bridge.object_created(account_id, bucket, event_name, key)

    S3Backend.complete_multipart_upload = complete_multipart_upload
    notifications._send_event_bridge_message = send_event_bridge_message
    return bridge


def lambda_permissions_have_ids():
    """Reason: moto's AWS::Lambda::Permission has no physical id, so every permission of every
    stack reads back as "" (AWS names it, and the policy statement, `{stack}-{LogicalId}-{RANDOM}`
    unless the template gives a StatementId), and deleting the stack leaves its statement in the
    function's policy. The statement gets that id, the resource reads back with it, and deleting
    it removes the statement."""
    from moto.awslambda import models

    original = models.Permission.create_from_cloudformation_json.__func__

    def create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = dict(cloudformation_json.get("Properties") or {})
        sid = properties.setdefault("StatementId", resource_name)
        made = original(cls, resource_name, {**cloudformation_json, "Properties": properties},
                        account_id, region_name, **kwargs)
        made.physical_resource_id = sid
        made.function_name = properties.get("FunctionName")
        made.account_id = account_id
        return made

    def delete(self, account_id, region_name):
        try:
            backend = models.lambda_backends[account_id][region_name]
            backend.get_function(self.function_name).policy.del_statement(self.physical_resource_id)
        except Exception as e:  # the function is already gone
            DEPLOY_LOG.info("deleting permission %s: %s", getattr(self, "physical_resource_id", ""), e)

    models.Permission.create_from_cloudformation_json = classmethod(create)
    models.Permission.delete = delete


def deployable_by_cloudformation(port):
    """Every deployment patch above, in the order they depend on each other."""
    resource_types_moto_lacks()
    lambda_permissions_have_ids()
    stack_status_after_change_set()
    template_url_on_loopback()
    sam_transform()
    no_value_leaves_lists()
    lambda_environment_as_strings()
    state_machines_from_cloudformation()
    dashboard_ref_is_its_name()
    resources_moto_cannot_update_are_kept()
    mappings_not_polled_by_moto()
    bucket_properties_from_cloudformation()
    conditional_bucket_policy_statements_not_enforced()
    bucket_notification_shows_eventbridge()
    s3_events_to_eventbridge(port)


def main(argv=None):
    parser = argparse.ArgumentParser(description="moto server with a Lambda router")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument(
        "--dynamodb-process",
        action="append",
        default=[],
        metavar="PATTERN",
        help="answer DynamoDB in processes of its own: one for the tables whose name contains "
        "PATTERN (repeatable), one for the other tables (see processes.py)",
    )
    parser.add_argument("--dynamodb-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host not in LOOPBACK_HOSTS:
        parser.error("only loopback addresses are allowed")
    if args.dynamodb_only:
        processes.die_with_parent()

    # Before moto is imported: its Step Functions engine calls back to this port.
    os.environ["MOTO_PORT"] = str(args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from werkzeug.serving import run_simple

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    prefilter_queries()
    cheap_top_level_projection()
    cache_request_routing()
    cheap_attributes_while_sending()
    cheap_receive_and_delete()
    track_dead_letter_sources()
    import speed  # moto's slow paths, the same answers (shared/local-aws/speed.py)

    speed.install()
    if not args.dynamodb_only:
        deployable_by_cloudformation(args.port)

    class RequestHandler(speed.keep_alive(MotoRequestHandler)):
        # Answers go out at once: with Nagle's algorithm a response written in two parts waits
        # for the client's delayed ACK (tens of milliseconds per request).
        disable_nagle_algorithm = True
        # Keep-alive (speed.keep_alive): the SDKs reuse their connections instead of opening one
        # (and the server starting a thread) per request.
        protocol_version = "HTTP/1.1"

        def log_request(self, *args, **kwargs):
            pass

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True
    moto = capacity.Meter(speed.JsonRoutes(app))
    if args.dynamodb_only:
        served = processes.WritesOneAtATime(moto, DYNAMODB_WRITES)
    elif args.dynamodb_process:
        children = processes.start(args.dynamodb_process, os.path.abspath(__file__))
        atexit.register(processes.stop, children)
        forward = processes.Forward(moto, children, args.dynamodb_process, request_tables, read_body)
        served = LambdaRouter(forward)
        served.dynamodb_writes = contextlib.nullcontext()
        served.resets.append(forward.reset_capacity)
        logging.getLogger("emulator").info(
            "DynamoDB in %d processes of its own: %s",
            len(children),
            ", ".join(f"{p.name} on port {p.port}" for p in children),
        )
    else:
        served = LambdaRouter(moto)
    run_simple(args.host, args.port, served, threaded=True, request_handler=RequestHandler)


if __name__ == "__main__":
    main()
