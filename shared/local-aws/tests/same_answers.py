"""The emulator's fast paths give moto's answers, byte for byte.

    .venv/bin/python shared/local-aws/tests/same_answers.py          compare (exit 1 on a difference)
    .venv/bin/python shared/local-aws/tests/same_answers.py moto     moto's answers, one JSON line each
    .venv/bin/python shared/local-aws/tests/same_answers.py emulator the emulator's answers
    .venv/bin/python shared/local-aws/tests/same_answers.py bench N  time N rounds of the requests
    .venv/bin/python shared/local-aws/tests/same_answers.py scan N   time a paged scan of N items,
                                                                     moto's way and the emulator's

Each mode runs in a process of its own (the fast paths patch moto in place): `moto` drives moto's
WSGI application as moto server builds it, `emulator` the same application behind the emulator's
patches (emulator.py and speed.py) and its middleware, as `emulator.py` serves it. Both get the
same DynamoDB and SQS requests (JSON protocol), among them requests that fail (bad expressions, reserved words,
missing values, failed conditions), and write each answer's status, headers (without the request
id and the date) and body. The comparison runs both and reports the first difference.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOCAL_AWS = os.path.dirname(HERE)
REGION = "ap-northeast-2"
AUTH = (
    "AWS4-HMAC-SHA256 Credential=test/20261201/ap-northeast-2/{service}/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0"
)
IGNORED_HEADERS = {"x-amzn-requestid", "x-amz-request-id", "date", "server", "connection"}


def s(v):
    return {"S": v}


def n(v):
    return {"N": str(v)}


def table_requests(table):
    """DynamoDB requests: (operation, body, whether the answer is compared)."""
    key = {"pk": s("c#1"), "sk": s("bill#2026-11")}
    out = [
        (
            "CreateTable",
            {
                "TableName": table,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "due", "AttributeType": "S"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "due",
                        "KeySchema": [{"AttributeName": "due", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
                "BillingMode": "PAY_PER_REQUEST",
            },
            False,
        ),
        ("PutItem", {"TableName": table, "Item": {**key, "status": s("READY"), "n": n(1), "due": s("12-15#08")},
                     "ConditionExpression": "attribute_not_exists(pk)"}, True),
        ("PutItem", {"TableName": table, "Item": {**key, "status": s("READY")},
                     "ConditionExpression": "attribute_not_exists(pk)"}, True),
    ]
    updates = [
        # (UpdateExpression, ConditionExpression, names, values, ReturnValues)
        ("SET #s = :s, n = n + :one", "#s = :ready", {"#s": "status"}, {":s": s("QUEUED"), ":one": n(1), ":ready": s("READY")}, "ALL_NEW"),
        ("SET #s = :s, n = n + :one", "#s = :ready", {"#s": "status"}, {":s": s("SENT"), ":one": n(1), ":ready": s("READY")}, "NONE"),
        ("SET #s = :s, n = n + :one", "#s = :ready AND n = :two", {"#s": "status"}, {":s": s("SENT"), ":one": n(1), ":ready": s("QUEUED"), ":two": n(2)}, "UPDATED_OLD"),
        ("SET tries = if_not_exists(tries, :zero) + :one, history = list_append(if_not_exists(history, :empty), :entry)", None, None,
         {":zero": n(0), ":one": n(1), ":empty": {"L": []}, ":entry": {"L": [s("first")]}}, "UPDATED_NEW"),
        ("SET tries = if_not_exists(tries, :zero) + :one, history = list_append(if_not_exists(history, :empty), :entry)", None, None,
         {":zero": n(0), ":one": n(1), ":empty": {"L": []}, ":entry": {"L": [s("second")]}}, "ALL_OLD"),
        ("SET m = :m", "attribute_exists(pk) AND size(#s) > :three", {"#s": "status"}, {":m": {"M": {"a": s("x"), "b": {"L": [n(1), n(2)]}}}, ":three": n(3)}, "ALL_NEW"),
        ("SET m.a = :y, m.b[1] = :nine ADD hits :one, tags :tag", None, None, {":y": s("y"), ":nine": n(9), ":one": n(1), ":tag": {"SS": ["t1"]}}, "ALL_NEW"),
        ("REMOVE m.b[0], history[0] DELETE tags :tag", None, None, {":tag": {"SS": ["t1"]}}, "ALL_NEW"),
        ("SET #d = :due", "begins_with(#s, :pre) OR #s IN (:a, :b)", {"#s": "status", "#d": "due"}, {":due": s("12-25#08"), ":pre": s("SE"), ":a": s("X"), ":b": s("Y")}, "UPDATED_NEW"),
        ("SET n = :v", "n BETWEEN :lo AND :hi AND NOT attribute_type(n, :t)", None, {":v": n(7), ":lo": n(0), ":hi": n(10), ":t": s("S")}, "ALL_NEW"),
        # Failures: syntax, reserved word, missing value, unused name, key attribute, failed condition.
        ("SET n = = :v", None, None, {":v": n(1)}, "NONE"),
        ("SET status = :v", None, None, {":v": s("x")}, "NONE"),
        ("SET n = :missing", None, None, {":v": n(1)}, "NONE"),
        ("SET n = :v", None, {"#unused": "x"}, {":v": n(1)}, "NONE"),
        ("SET pk = :v", None, None, {":v": s("c#2")}, "NONE"),
        ("SET n = :v", "#s = :nope", {"#s": "status"}, {":v": n(1), ":nope": s("NOPE")}, "NONE"),
        ("SET n = :v", "#s = :nope", {"#s": "status"}, {":v": n(1), ":nope": s("NOPE")}, "NONE"),
        ("SET n = :v, n = :w", None, None, {":v": n(1), ":w": n(2)}, "NONE"),
        ("SET n = n + :v", None, None, {":v": s("not a number")}, "NONE"),
        ("  SET   n = :v  ", None, None, {":v": n(3)}, "ALL_NEW"),
    ]
    for i, (update, condition, names, values, returns) in enumerate(updates):
        body = {"TableName": table, "Key": key, "UpdateExpression": update, "ReturnValues": returns}
        if condition:
            body["ConditionExpression"] = condition
        if names:
            body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = values
        out.append(("UpdateItem", body, True))
    # A new item made by an update, and one refused before it is made.
    other = {"pk": s("c#2"), "sk": s("bill#2026-11")}
    out.append(("UpdateItem", {"TableName": table, "Key": other, "UpdateExpression": "SET #s = :s, due = :d",
                               "ExpressionAttributeNames": {"#s": "status"},
                               "ExpressionAttributeValues": {":s": s("READY"), ":d": s("12-15#08")},
                               "ReturnValues": "ALL_NEW"}, True))
    out.append(("UpdateItem", {"TableName": table, "Key": {"pk": s("c#3"), "sk": s("x")},
                               "UpdateExpression": "SET a = b + :one", "ExpressionAttributeValues": {":one": n(1)}}, True))
    out.append(("DeleteItem", {"TableName": table, "Key": other, "ConditionExpression": "#s <> :s",
                               "ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": {":s": s("READY")}}, True))
    out.append(("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}, True))
    out.append(("Query", {"TableName": table, "IndexName": "due", "KeyConditionExpression": "due = :d",
                          "ExpressionAttributeValues": {":d": s("12-15#08")}}, True))
    out.append(("Query", {"TableName": table, "KeyConditionExpression": "pk = :p AND begins_with(sk, :b)",
                          "FilterExpression": "attribute_exists(m) AND n > :z",
                          "ExpressionAttributeValues": {":p": s("c#1"), ":b": s("bill#"), ":z": n(0)}}, True))
    out.append(("TransactWriteItems", {"TransactItems": [
        {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET n = n + :one",
                    "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeValues": {":one": n(1)}}},
        {"Put": {"TableName": table, "Item": {"pk": s("c#4"), "sk": s("x")}, "ConditionExpression": "attribute_not_exists(pk)"}},
    ]}, True))
    out.append(("GetItem", {"TableName": table, "Key": key, "ProjectionExpression": "n, #s, m.a", "ExpressionAttributeNames": {"#s": "status"}}, True))
    return out


def scan_requests(table):
    """Scans that page by ExclusiveStartKey: (operation, body, whether the answer is compared)."""
    out = []
    for name, keys in ((table, ("pk", "sk")), (table + "-hash", ("pk",))):
        schema = [{"AttributeName": "pk", "KeyType": "HASH"}] + (
            [{"AttributeName": "sk", "KeyType": "RANGE"}] if len(keys) == 2 else []
        )
        definitions = [{"AttributeName": k, "AttributeType": "S"} for k in keys]
        out.append(("CreateTable", {"TableName": name, "KeySchema": schema, "AttributeDefinitions": definitions,
                                    "BillingMode": "PAY_PER_REQUEST"}, False))
        for i in range(23):
            item = {"pk": s(f"c#{(i * 7) % 23:02d}"), "state": s("SENT" if i % 3 else "READY"), "n": n(i)}
            if len(keys) == 2:
                item["sk"] = s(f"d#{i % 4}")
            out.append(("PutItem", {"TableName": name, "Item": item}, False))
        first = {"pk": s("c#05")}
        if len(keys) == 2:
            first["sk"] = s("d#3")
        between = {"pk": s("c#05x")}  # not an item's key: the page starts after it
        if len(keys) == 2:
            between["sk"] = s("a")
        past = {"pk": s("z")}
        if len(keys) == 2:
            past["sk"] = s("z")
        scans = [
            {"Limit": 5},
            {"Limit": 5, "ExclusiveStartKey": first},
            {"Limit": 4, "ExclusiveStartKey": between, "ConsistentRead": True},
            {"ExclusiveStartKey": first, "FilterExpression": "#st = :r", "ExpressionAttributeNames": {"#st": "state"},
             "ExpressionAttributeValues": {":r": s("READY")}, "ProjectionExpression": "pk, n"},
            {"ExclusiveStartKey": first, "Segment": 1, "TotalSegments": 3, "Limit": 3},
            {"ExclusiveStartKey": past},
            {"Select": "COUNT", "ExclusiveStartKey": first},
        ]
        for extra in scans:
            out.append(("Scan", {"TableName": name, **extra}, True))
    return out


def queue_requests(queue):
    """SQS requests (JSON protocol): (operation, body, whether the answer is compared)."""
    url = f"https://sqs.{REGION}.amazonaws.com/123456789012/{queue}"
    return [
        ("CreateQueue", {"QueueName": queue, "Attributes": {"VisibilityTimeout": "30"}}, True),
        ("GetQueueUrl", {"QueueName": queue}, True),
        ("GetQueueUrl", {"QueueName": queue + "-missing"}, True),
        ("SendMessage", {"QueueUrl": url, "MessageBody": "one"}, False),
        ("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": "a", "MessageBody": "two"}, {"Id": "a", "MessageBody": "x"}]}, True),
        ("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages", "VisibilityTimeout"]}, True),
        ("ReceiveMessage", {"QueueUrl": url + "-missing", "MaxNumberOfMessages": 10}, True),
        ("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": "not-a-handle"}, True),
        ("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": "nope", "VisibilityTimeout": 5}, True),
        ("ListQueues", {"QueueNamePrefix": queue}, True),
    ]


def requests(round_no=0):
    """(service, target, body, whether the answer is compared, extra headers)."""
    table = f"answers-{round_no}"
    for op, body, compared in table_requests(table) + scan_requests(f"scans-{round_no}"):
        yield "dynamodb", "DynamoDB_20120810." + op, body, compared, {}
    for op, body, compared in queue_requests(f"answers-{round_no}"):
        yield "sqs", "AmazonSQS." + op, body, compared, {}
    # A browser's request (CORS headers in the answer).
    origin = {"Origin": "http://localhost:3000"}
    yield "dynamodb", "DynamoDB_20120810.GetItem", {"TableName": table, "Key": {"pk": s("c#1"), "sk": s("x")}}, True, origin
    yield "sqs", "AmazonSQS.GetQueueUrl", {"QueueName": f"answers-{round_no}"}, True, origin


def app_of(mode):
    """moto's WSGI application, with the emulator's patches and middleware in `emulator` mode."""
    os.environ.setdefault("MOTO_PORT", "5999")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    if mode == "moto":
        return DomainDispatcherApplication(create_backend_app)
    sys.path.insert(0, LOCAL_AWS)
    import capacity
    import emulator
    import speed

    emulator.prefilter_queries()
    emulator.cheap_top_level_projection()
    emulator.cache_request_routing()
    emulator.cheap_attributes_while_sending()
    emulator.cheap_receive_and_delete()
    emulator.track_dead_letter_sources()
    speed.install()
    app = DomainDispatcherApplication(create_backend_app)
    return emulator.LambdaRouter(capacity.Meter(speed.JsonRoutes(app)))


def answers(mode, rounds=1):
    from werkzeug.test import Client

    client = Client(app_of(mode))
    for r in range(rounds):
        for service, target, body, compared, extra in requests(r):
            answer = client.post(
                "/",
                data=json.dumps(body),
                headers={
                    "X-Amz-Target": target,
                    "Content-Type": "application/x-amz-json-1.0",
                    "Authorization": AUTH.format(service=service),
                    "Host": f"{service}.{REGION}.amazonaws.com",
                    **extra,
                },
            )
            data = answer.get_data()
            if compared:
                headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in IGNORED_HEADERS]
                yield {"target": target, "status": answer.status, "headers": headers, "body": data.decode("utf-8", "replace")}


def compare():
    import subprocess

    def run(mode):
        done = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"{mode} answers failed:\n{done.stderr}")
        return [json.loads(line) for line in done.stdout.splitlines()]

    expected, got = run("moto"), run("emulator")
    if len(expected) != len(got):
        sys.exit(f"{len(got)} answers from the emulator, {len(expected)} from moto")
    for i, (a, b) in enumerate(zip(expected, got)):
        if a != b:
            sys.exit(f"answer {i} ({a['target']}) differs:\n  moto:     {a}\n  emulator: {b}")
    failures = sum(1 for a in expected if not a["status"].startswith("200"))
    print(f"{len(expected)} answers the same ({failures} of them errors)")


def scan_bench(items, which):
    """Processor seconds of a consistent scan of a table of `items` deliveries-like items, page
    by page (1 MB each) with the start key each page gives, through moto's models."""
    from moto.dynamodb.models import dynamodb_backends

    if which == "emulator":
        sys.path.insert(0, LOCAL_AWS)
        import speed

        speed.install()
    backend = dynamodb_backends["123456789012"][REGION]
    backend.create_table(
        "scan-bench",
        schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        throughput=None,
        attr=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=False,
        warm_throughput=None,
    )
    table = backend.get_table("scan-bench")
    for i in range(items):
        table.put_item({"pk": s(f"inv#{i:07d}"), "sk": s("delivery"), "state": s("SENT_EMAIL"),
                        "evidence": s("x" * 300), "due_pk": s("12-15#08")})
    start, pages, seen = None, 0, 0
    started = time.process_time()
    while True:  # bounded: each page moves the start key on
        found, _, last = table.scan({}, None, start, None, None, True, [["state"]])
        pages, seen = pages + 1, seen + len(found)
        if last is None:
            break
        start = {name: value.to_json() for name, value in last.items()}  # as the wire carries it
    spent = time.process_time() - started
    if seen != items:
        sys.exit(f"the scan found {seen} of {items} items")
    print(f"{which}: {items} items in {pages} pages, {spent:.1f} s of processor time")


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "compare"
    if mode == "compare":
        compare()
    elif mode in ("moto", "emulator"):
        for a in answers(mode):
            print(json.dumps(a))
    elif mode == "scan":
        import subprocess

        items = sys.argv[2] if len(sys.argv) > 2 else "100000"
        for which in ("moto", "emulator"):  # each in a process of its own: the paths patch moto
            subprocess.run([sys.executable, __file__, "scan-one", items, which], check=True)
    elif mode == "scan-one":
        scan_bench(int(sys.argv[2]), sys.argv[3])
    elif mode == "bench":
        rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
        which = sys.argv[3] if len(sys.argv) > 3 else "emulator"
        started = time.process_time()
        count = sum(1 for _ in answers(which, rounds))
        spent = time.process_time() - started
        print(f"{which}: {count} answers in {spent:.2f} s of processor time, {1000 * spent / count:.2f} ms each")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
