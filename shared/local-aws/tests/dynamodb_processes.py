"""DynamoDB in processes of its own (emulator.py --dynamodb-process, processes.py) answers as one.

    .venv/bin/python shared/local-aws/tests/dynamodb_processes.py

Starts the emulator with `--dynamodb-process DeliveriesTable` on a free loopback port and checks,
through boto3 and the router's own API, that: each table lives in the process its name picks
and both are reachable at the one endpoint; ListTables joins the processes' tables and pages
them; a transaction within one process is applied and one across two is refused with a message
that says why; the router's request counts, its fault switches (a throttle, a lost answer) and
the merged capacity counts work as in one process; `/_local/requests/reset` and
`/moto-api/reset` reach every process; and the DynamoDB processes end with the emulator. Prints
"dynamodb processes: ok" and exits 0, or raises.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(os.path.dirname(HERE), "emulator.py")
sys.path.insert(0, os.path.dirname(HERE))
from processes import free_port  # noqa: E402  (shared/local-aws/processes.py)
DELIVERIES = "t-DeliveriesTable"
BILLS = "t-BillsTable"
CYCLES = "t-CyclesTable"


def call(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def children_of(pid):
    out = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out.update(int(c) for c in f.read().split())
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def create(ddb, name):
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def refused(fn, code):
    try:
        fn()
    except ClientError as e:
        assert e.response["Error"]["Code"] == code, e.response
        return e.response["Error"].get("Message", "")
    raise AssertionError(f"expected {code}")


def main():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, SCRIPT, "-H", "127.0.0.1", "-p", str(port), "--dynamodb-process", "DeliveriesTable"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                call(url + "/_local/lambda")
                break
            except OSError:
                assert server.poll() is None, "the emulator exited while starting"
                assert time.monotonic() < deadline, "the emulator did not start in 60 s"
                time.sleep(0.2)
        children = children_of(server.pid)
        assert len(children) == 2, f"expected two DynamoDB processes, found {len(children)}"
        check(url)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(alive(c) for c in children):
        assert time.monotonic() < deadline, "a DynamoDB process outlived the emulator"
        time.sleep(0.1)
    print("dynamodb processes: ok")


def check(url):
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="ap-northeast-2",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
    )
    for name in (DELIVERIES, BILLS, CYCLES):
        create(ddb, name)

    # Both processes at the one endpoint: writes, reads, an update with a condition.
    ddb.put_item(TableName=DELIVERIES, Item={"pk": {"S": "d#1"}, "state": {"S": "READY"}})
    ddb.put_item(TableName=BILLS, Item={"pk": {"S": "b#1"}, "won": {"N": "1000"}})
    ddb.update_item(
        TableName=DELIVERIES,
        Key={"pk": {"S": "d#1"}},
        UpdateExpression="SET #s = :q",
        ConditionExpression="#s = :r",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":q": {"S": "QUEUED"}, ":r": {"S": "READY"}},
    )
    assert ddb.get_item(TableName=DELIVERIES, Key={"pk": {"S": "d#1"}})["Item"]["state"]["S"] == "QUEUED"
    assert ddb.get_item(TableName=BILLS, Key={"pk": {"S": "b#1"}})["Item"]["won"]["N"] == "1000"
    refused(
        lambda: ddb.put_item(TableName=DELIVERIES, Item={"pk": {"S": "d#1"}}, ConditionExpression="attribute_not_exists(pk)"),
        "ConditionalCheckFailedException",
    )
    refused(lambda: ddb.get_item(TableName="t-MissingTable", Key={"pk": {"S": "x"}}), "ResourceNotFoundException")

    # Each table in its own process: the deliveries table's process does not hold the bills.
    tables = call(url + "/_local/capacity")["tables"]
    assert set(tables) == {DELIVERIES, BILLS}, tables
    assert tables[DELIVERIES]["operations"]["UpdateItem"]["write_units"] == 1, tables

    # ListTables: every process's tables, sorted, paged.
    assert ddb.list_tables()["TableNames"] == sorted([BILLS, CYCLES, DELIVERIES])
    first = ddb.list_tables(Limit=2)
    assert first["TableNames"] == sorted([BILLS, CYCLES]) and first["LastEvaluatedTableName"] == CYCLES, first
    rest = ddb.list_tables(ExclusiveStartTableName=first["LastEvaluatedTableName"])
    assert rest["TableNames"] == [DELIVERIES] and "LastEvaluatedTableName" not in rest, rest

    # Transactions and batches: within one process applied, across two refused.
    ddb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": BILLS, "Item": {"pk": {"S": "b#2"}}}},
            {"Put": {"TableName": CYCLES, "Item": {"pk": {"S": "c#1"}}}},
        ]
    )
    assert "Item" in ddb.get_item(TableName=CYCLES, Key={"pk": {"S": "c#1"}})
    message = refused(
        lambda: ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": DELIVERIES, "Item": {"pk": {"S": "d#9"}}}},
                {"Put": {"TableName": BILLS, "Item": {"pk": {"S": "b#9"}}}},
            ]
        ),
        "ValidationException",
    )
    assert "different processes" in message, message
    assert "Item" not in ddb.get_item(TableName=DELIVERIES, Key={"pk": {"S": "d#9"}})
    got = ddb.batch_get_item(RequestItems={DELIVERIES: {"Keys": [{"pk": {"S": "d#1"}}]}})
    assert len(got["Responses"][DELIVERIES]) == 1, got

    # The router's switches still apply: a throttle answered without reaching the process, a
    # lost answer after the write was applied (the SDK's retry then fails its own condition).
    call(url + "/_local/faults/dynamodb/throttle", "POST", {"table": DELIVERIES, "calls": 5})
    refused(lambda: ddb.get_item(TableName=DELIVERIES, Key={"pk": {"S": "d#1"}}), "ProvisionedThroughputExceededException")
    call(url + "/_local/faults/clear", "POST", {})
    call(url + "/_local/faults/dynamodb/lose-answer", "POST", {"table": DELIVERIES, "operation": "PutItem", "calls": 1})
    refused(
        lambda: ddb.put_item(TableName=DELIVERIES, Item={"pk": {"S": "d#2"}}, ConditionExpression="attribute_not_exists(pk)"),
        "ConditionalCheckFailedException",
    )
    assert "Item" in ddb.get_item(TableName=DELIVERIES, Key={"pk": {"S": "d#2"}})

    # Request counts see every request; a reset forgets them and every process's capacity.
    counts = call(url + "/_local/requests?contains=DeliveriesTable")["requests"]
    assert counts.get("dynamodb:PutItem", 0) >= 4 and counts.get("dynamodb:UpdateItem") == 1, counts
    call(url + "/_local/requests/reset", "POST")
    assert call(url + "/_local/capacity")["tables"] == {}, "capacity kept after the reset"
    call(url + "/moto-api/reset", "POST")
    assert ddb.list_tables()["TableNames"] == [], "tables kept after /moto-api/reset"


if __name__ == "__main__":
    main()
