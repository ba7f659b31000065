"""DynamoDB in processes of its own: the emulator on more than one core.

The emulator is one Python process, so it answers on one core whatever the machine has. In a
large month most of its work is DynamoDB (three requests in four, each dearer than an SQS or S3
one), which is also the part that divides cleanly: every DynamoDB request names its tables.

    emulator.py -H 127.0.0.1 -p PORT --dynamodb-process DeliveriesTable [--dynamodb-process P ...]

starts, next to the main process (the router, Lambda, Step Functions, SQS, S3 and the rest),
one process for DynamoDB's tables and one more per pattern given: a table whose name contains a
pattern lives in that pattern's process (the first pattern that matches), every other table in
the first one. Each is moto with the same faster paths (speed.py) and its own capacity meter
(capacity.py), on a loopback port of its own, and ends with the main process (the kernel sends
it SIGTERM when its parent dies).

The clients see one endpoint, as before. `Forward`, a WSGI middleware under the router, sends
each DynamoDB request (X-Amz-Target `DynamoDB_20120810.*`) as it came, headers and body, to the
process of its tables over a kept-alive connection per thread, and returns that process's answer
as it came. So the router's request counts and fault switches (throttling, lost answers,
unprocessed batch items) see and do exactly what they do in one process. Writes are applied one
at a time per process (`WritesOneAtATime`), as the router does in one process, so each process's
meter sizes an item before and after a write with nothing in between.

    ListTables                the union of every process's tables, sorted, then paged
                              (ExclusiveStartTableName, Limit) as DynamoDB pages
    a request naming tables   refused (ValidationException) when they live in different
      in two processes        processes: no transaction or batch spans two processes. Start the
                              emulator with patterns that keep such tables together (the month
                              writes across tables only within the Cycles table)
    GET  /_local/capacity     the processes' tables, merged (each table is in one process)
    POST /_local/capacity/reset, /_local/requests/reset, /moto-api/reset
                              forwarded to every process as well

Without `--dynamodb-process` nothing changes: DynamoDB is answered in the main process. Tables
that CloudFormation creates (a stack deployed with `sam deploy` against the emulator) are
created in the main process and are not reachable in this mode: it is for the month job, which
provisions through the APIs.
"""

import ctypes
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

DYNAMODB_PREFIX = "DynamoDB_20120810."
CAPACITY_PATH = "/_local/capacity"
RESET_PATH = "/moto-api/reset"
READY_TIMEOUT_S = 60
# Hop-by-hop headers (RFC 9110 section 7.6.1) and the length, which is set again.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "content-length"}
LIST_TABLES = DYNAMODB_PREFIX + "ListTables"
LIST_TABLES_LIMIT = 100  # the most Limit DynamoDB accepts


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Process:
    """One DynamoDB process: its port, its child, and a kept-alive connection per thread."""

    def __init__(self, name, port, child):
        self.name = name
        self.port = port
        self.child = child
        self.local = threading.local()

    def connection(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
            self.local.conn = conn
        return conn

    def ask(self, method, target, headers, body):
        """(status line, headers, body) of the process's answer. A kept-alive connection the
        process closed meanwhile is opened again once: nothing was sent on it."""
        for attempt in (0, 1):
            conn = self.connection()
            try:
                conn.request(method, target, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self.local.conn = None
                if attempt == 1:
                    raise
                continue
            status = f"{answer.status} {answer.reason}"
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
            if answer.will_close:
                conn.close()
                self.local.conn = None
            return status, kept, payload
        raise AssertionError("unreachable")


def start(patterns, script):
    """Starts one DynamoDB process for the tables no pattern matches and one per pattern; waits
    until each answers. Returns the processes, the first one the default."""
    processes = []
    names = ["default"] + list(patterns)
    try:
        for name in names:
            port = free_port()
            child = subprocess.Popen(
                [sys.executable, script, "-H", "127.0.0.1", "-p", str(port), "--dynamodb-only"],
                stdin=subprocess.DEVNULL,
            )
            processes.append(Process(name, port, child))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for p in processes:
            while True:
                if p.child.poll() is not None:
                    raise RuntimeError(f"the DynamoDB process for {p.name} exited while starting")
                try:
                    with socket.create_connection(("127.0.0.1", p.port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the DynamoDB process for {p.name} did not start in {READY_TIMEOUT_S} s")
                    time.sleep(0.1)
    except BaseException:
        stop(processes)
        raise
    return processes


def stop(processes):
    for p in processes:
        if p.child.poll() is None:
            p.child.terminate()
    for p in processes:
        try:
            p.child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.child.kill()


def die_with_parent():
    """The kernel sends this process SIGTERM when the process that started it ends."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent is already gone
        sys.exit(0)


class WritesOneAtATime:
    """WSGI middleware of a DynamoDB process: its writes are applied one at a time (so its
    capacity meter sizes each write's item with nothing in between), reads as they come."""

    def __init__(self, app, writes):
        self.app = app
        self.writes = writes
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET") in self.writes:
            with self.lock:
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)


def request_headers(environ):
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            if name.lower() not in HOP_BY_HOP:
                headers[name] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


def respond(start_response, status, headers, body):
    start_response(status, list(headers) + [("Content-Length", str(len(body)))])
    return [body]


def dynamodb_validation(start_response, message):
    body = json.dumps({"__type": "com.amazon.coral.validate#ValidationException", "message": message}).encode()
    return respond(start_response, "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")], body)


class Forward:
    """WSGI middleware: DynamoDB requests to the process of their tables, the rest to `app`."""

    def __init__(self, app, processes, patterns, tables_of, read_body):
        """`tables_of(doc)`: the tables a DynamoDB request names; `read_body(environ)`: the
        request's body (both the router's, emulator.py)."""
        self.app = app
        self.processes = processes
        self.by_pattern = list(zip(patterns, processes[1:]))
        self.tables_of = tables_of
        self.read_body = read_body

    def process_of(self, table):
        for pattern, process in self.by_pattern:
            if pattern in table:
                return process
        return self.processes[0]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        if target.startswith(DYNAMODB_PREFIX) and method == "POST":
            return self.dynamodb(target, environ, start_response)
        if path == CAPACITY_PATH or path.startswith(CAPACITY_PATH + "/"):
            return self.capacity(method, path, environ, start_response)
        if method == "POST" and path == RESET_PATH:
            body = self.read_body(environ)
            for p in self.processes:
                p.ask("POST", RESET_PATH, {}, b"")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)

    def reset_capacity(self):
        """Forgets every process's capacity counts (the router's `/_local/requests/reset`)."""
        for p in self.processes:
            p.ask("POST", CAPACITY_PATH + "/reset", {}, b"")

    def target_of(self, environ):
        query = environ.get("QUERY_STRING", "")
        return environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")

    def dynamodb(self, target, environ, start_response):
        body = self.read_body(environ)
        headers = request_headers(environ)
        if target == LIST_TABLES:
            return self.list_tables(headers, body, start_response)
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = None
        tables = self.tables_of(doc)
        if not tables and isinstance(doc, dict) and isinstance(doc.get("ResourceArn"), str):
            tables = [doc["ResourceArn"].partition(":table/")[2].partition("/")[0]]
        owners = {id(self.process_of(t)): self.process_of(t) for t in tables if t}
        if len(owners) > 1:
            return dynamodb_validation(
                start_response,
                "the local emulator keeps this request's tables in different processes "
                "(--dynamodb-process); start it with patterns that keep them together",
            )
        process = next(iter(owners.values())) if owners else self.processes[0]
        status, answer_headers, payload = process.ask("POST", self.target_of(environ), headers, body)
        return respond(start_response, status, answer_headers, payload)

    def list_tables(self, headers, body, start_response):
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return dynamodb_validation(start_response, "the request body is not a JSON object")
        limit = doc.get("Limit", LIST_TABLES_LIMIT)
        start_after = doc.get("ExclusiveStartTableName")
        if not isinstance(limit, int) or not 1 <= limit <= LIST_TABLES_LIMIT:
            return dynamodb_validation(start_response, "Limit must be between 1 and 100")
        names = set()
        answer_headers = [("Content-Type", "application/x-amz-json-1.0")]
        for p in self.processes:
            after = None
            for _ in range(10_000):  # bounded: a process's pages end
                ask = {"Limit": LIST_TABLES_LIMIT}
                if after:
                    ask["ExclusiveStartTableName"] = after
                status, _, payload = p.ask("POST", "/", headers, json.dumps(ask).encode())
                if not status.startswith("200"):
                    return respond(start_response, status, answer_headers, payload)
                page = json.loads(payload)
                names.update(page.get("TableNames", []))
                after = page.get("LastEvaluatedTableName")
                if not after:
                    break
        ordered = sorted(n for n in names if start_after is None or n > start_after)
        out = {"TableNames": ordered[:limit]}
        if len(ordered) > limit:
            out["LastEvaluatedTableName"] = ordered[limit - 1]
        return respond(start_response, "200 OK", answer_headers, json.dumps(out).encode())

    def capacity(self, method, path, environ, start_response):
        target = self.target_of(environ)
        if method == "POST":
            for p in self.processes:
                status, headers, payload = p.ask("POST", target, {}, b"")
                if not status.startswith("200"):
                    return respond(start_response, status, headers, payload)
            return respond(start_response, status, headers, payload)
        tables = {}
        for p in self.processes:
            status, headers, payload = p.ask("GET", target, {}, None)
            if not status.startswith("200"):
                return respond(start_response, status, headers, payload)
            tables.update(json.loads(payload).get("tables", {}))
        body = json.dumps({"tables": tables}).encode()
        return respond(start_response, "200 OK", [("Content-Type", "application/json")], body)

