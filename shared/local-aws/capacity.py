"""DynamoDB capacity, counted by DynamoDB's rules, per table and per index.

The emulator counts requests; what DynamoDB bills is capacity units, which depend on the size of
the items each request touches and on the table's global secondary indexes. This module sits
between the emulator's router and moto (a WSGI middleware, `Meter`) and counts, for every
DynamoDB request moto answers, the units DynamoDB would consume:

    GET  /_local/capacity?contains=S
        {"tables": {"t": {"write_units": w, "read_units": r,
                          "operations": {"PutItem": {"write_units": w, "read_units": 0}, ...},
                          "indexes": {"Due": {"write_units": w, "read_units": r,
                                              "operations": {...}}}}}}
        units since the start or the last reset, for tables whose name contains S
        (case-insensitive; every table without S). A table's own units leave out its indexes'.
    POST /_local/capacity/reset
        forgets every count; `POST /_local/requests/reset` does the same.

Item size ("Item sizes and formats" in the DynamoDB developer guide): the sum over attributes
of the UTF-8 bytes of the name plus the value's size: a string its UTF-8 bytes, a number
(1 byte per two significant digits, leading and trailing zeros trimmed) + 1, a binary its raw
bytes, a Boolean or null 1, a list or map 3 bytes + its elements' sizes + 1 byte per element
(a map element's size includes its name). Sets are not described there: a set counts the sum
of its elements' sizes.

Writes ("Capacity unit consumption for write operations", "Conditional writes"):
- PutItem, UpdateItem: the larger of the item's size before and after, rounded up to 1 KB
  (at least 1 unit); DeleteItem: the size of the item deleted (at least 1).
- BatchWriteItem: each put or delete as above, each rounded on its own; requests the caller
  gets back as UnprocessedItems never reach moto (the emulator's fault switch takes them out
  first) and cost nothing.
- A write whose condition fails still consumes: the size of the existing item, at least 1;
  nothing is written to an index.
- TransactWriteItems: twice the units of each Put, Update, Delete and ConditionCheck (a
  condition check counts the item checked). A cancelled transaction is counted like failed
  conditional writes of its items, twice: DynamoDB documents no figure for it.
- Each global secondary index, for an item written: nothing when the item is in the index
  neither before nor after, or when no key or projected attribute of the index changed; one
  write when it enters or leaves the index, or when a projected attribute changes; two (a
  delete and a put) when the index's key changes. Each write is the size of the index entry
  (the table's key, the index's key and the projected attributes), rounded up to 1 KB. Index
  writes are not doubled in a transaction.

Reads ("Capacity unit consumption for read operations"), 1 unit per 4 KB strongly consistent
(`ConsistentRead`), half eventually consistent, at least one such unit per request or item:
- GetItem: the size of the whole item (a projection does not reduce it); an item not found
  still costs the minimum. BatchGetItem: each key as a GetItem. TransactGetItems: 2 per 4 KB.
- Query, Scan: the sizes of the items read before any filter, summed and then rounded up to
  4 KB once per request. Reads of an index are the index's, sized by its entries, and
  eventually consistent.

Sizes are read from moto's stored items: a write's item before and after it (DynamoDB writes
are applied one at a time by the router, so nothing changes in between), a read's item after
it, and a Query's or Scan's page as moto assembles it, before its filter and projection.
"""

import base64
import io
import json
import math
import threading
import urllib.parse

CAPACITY_PATH = "/_local/capacity"
DYNAMODB_PREFIX = "DynamoDB_20120810."
WRITE_UNIT = 1024
READ_UNIT = 4096
METERED = {
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "GetItem",
    "BatchGetItem",
    "TransactGetItems",
    "Query",
    "Scan",
}

_meters = []
_page = threading.local()  # the sizes of the items a Query or Scan read, on its thread
_installed = False


def reset():
    """Forgets the counts of every meter (with the request counts)."""
    for meter in _meters:
        meter.reset()


# --- item sizes ---------------------------------------------------------------------------


def utf8_len(s):
    return len(s.encode("utf-8")) if isinstance(s, str) else len(s)


def number_size(text):
    """1 byte per two significant digits, plus 1."""
    digits = str(text).lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def binary_size(value):
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    try:
        return len(base64.b64decode(value, validate=True))
    except (ValueError, TypeError):
        return utf8_len(value)


def value_size(value):
    """The size of one value, a moto `DynamoType` or an AttributeValue in DynamoDB's JSON."""
    if isinstance(value, dict):  # {"S": "..."} as it comes in a request
        ((kind, inner),) = value.items()
    else:
        kind, inner = value.type, value.value
    if kind == "S":
        return utf8_len(inner)
    if kind == "N":
        return number_size(inner)
    if kind == "B":
        return binary_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + utf8_len(k) + value_size(v) for k, v in inner.items())
    if kind == "SS":
        return sum(utf8_len(v) for v in inner)
    if kind == "NS":
        return sum(number_size(v) for v in inner)
    if kind == "BS":
        return sum(binary_size(v) for v in inner)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(attrs):
    """The size of an item: attribute name → value (moto `DynamoType`s or DynamoDB JSON)."""
    return sum(utf8_len(name) + value_size(value) for name, value in attrs.items())


def plain(value):
    """A comparable form of a moto `DynamoType` (sets compare without order)."""
    kind, inner = value.type, value.value
    if kind == "M":
        return kind, tuple(sorted((k, plain(v)) for k, v in inner.items()))
    if kind == "L":
        return kind, tuple(plain(v) for v in inner)
    if kind in ("SS", "NS", "BS"):
        return kind, tuple(sorted(str(v) for v in inner))
    return kind, inner if not isinstance(inner, (bytes, bytearray)) else bytes(inner)


def write_units(size):
    return max(1, math.ceil(size / WRITE_UNIT))


def read_units(size, consistent):
    units = max(1, math.ceil(size / READ_UNIT))
    return units if consistent else units / 2


# --- indexes ------------------------------------------------------------------------------


class IndexEntry:
    """What one item puts into one index: its key's values, its projected values, its size."""

    __slots__ = ("key", "values", "size")

    def __init__(self, key, values, size):
        self.key, self.values, self.size = key, values, size


def index_entry(table, index, item):
    """The entry `item` (a moto Item or None) makes in `index`, or None when it is not in it
    (an item lacking one of the index's key attributes is not in the index)."""
    if item is None:
        return None
    attrs = item.attrs
    key_names = index.schema_key_attrs
    if any(name not in attrs for name in key_names):
        return None
    projection = (index.projection or {}).get("ProjectionType", "ALL")
    if projection == "ALL":
        names = list(attrs)
    else:
        names = list(dict.fromkeys(table.table_key_attrs + key_names))
        if projection == "INCLUDE":
            names += [n for n in index.projection.get("NonKeyAttributes", []) if n not in names]
        names = [n for n in names if n in attrs]
    projected = {n: attrs[n] for n in names}
    return IndexEntry(
        tuple(plain(attrs[n]) for n in key_names),
        tuple(sorted((n, plain(v)) for n, v in projected.items())),
        item_size(projected),
    )


def index_write_units(old, new):
    """Units one index takes for an item going from entry `old` to entry `new`."""
    if old is None and new is None:
        return 0
    if old is None:
        return write_units(new.size)
    if new is None:
        return write_units(old.size)
    if old.key != new.key:
        return write_units(old.size) + write_units(new.size)
    if old.values == new.values:
        return 0
    return write_units(max(old.size, new.size))


# --- the middleware -----------------------------------------------------------------------


class Write:
    """One item a write request touches, with what it was before the request."""

    __slots__ = ("table", "key", "kind", "before", "entries")

    def __init__(self, table, key, kind):
        self.table, self.key, self.kind = table, key, kind
        self.before = None
        self.entries = {}


class Meter:
    """WSGI middleware in front of moto: counts the capacity each DynamoDB request consumes
    and serves `/_local/capacity`."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.units = {}  # (table, index or "", operation) -> [write units, read units]
        install_page_capture()
        _meters.append(self)

    def reset(self):
        with self.lock:
            self.units.clear()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == CAPACITY_PATH or path.startswith(CAPACITY_PATH + "/"):
            return self.serve(environ.get("REQUEST_METHOD", "GET"), path, environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        operation = target[len(DYNAMODB_PREFIX):] if target.startswith(DYNAMODB_PREFIX) else None
        if operation not in METERED or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return self.app(environ, start_response)
        backend = None
        try:
            backend = backend_of(environ)
            writes = self.writes_of(backend, operation, request) if backend else []
        except Exception:  # an odd request: moto answers it; nothing is counted
            writes = []
        if operation in ("Query", "Scan"):
            _page.sizes = []
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return start_response(status, headers, exc_info)

        try:
            answer = b"".join(self.app(environ, capture))
        finally:
            sizes, _page.sizes = getattr(_page, "sizes", None), None
        try:
            self.count(backend, operation, request, writes, sizes, captured.get("status", ""), answer)
        except Exception:  # counting never changes an answer
            pass
        return [answer]

    # --- what a request touches ----------------------------------------------------------

    def writes_of(self, backend, operation, request):
        """The items a write request touches, each with its state before the request."""
        items = []
        if operation == "PutItem":
            items.append((request.get("TableName"), request.get("Item"), "put"))
        elif operation in ("UpdateItem", "DeleteItem"):
            kind = "update" if operation == "UpdateItem" else "delete"
            items.append((request.get("TableName"), request.get("Key"), kind))
        elif operation == "BatchWriteItem":
            for name, requests in (request.get("RequestItems") or {}).items():
                for r in requests:
                    if "PutRequest" in r:
                        items.append((name, r["PutRequest"].get("Item"), "put"))
                    elif "DeleteRequest" in r:
                        items.append((name, r["DeleteRequest"].get("Key"), "delete"))
        elif operation == "TransactWriteItems":
            kinds = {"Put": "put", "Update": "update", "Delete": "delete", "ConditionCheck": "check"}
            for entry in request.get("TransactItems") or []:
                for op, kind in kinds.items():
                    if op in entry:
                        part = entry[op]
                        items.append((part.get("TableName"), part.get("Item") or part.get("Key"), kind))
        writes = []
        for name, attrs, kind in items:
            table = table_of(backend, name)
            if table is None or not isinstance(attrs, dict):
                continue
            key = key_of(table, attrs)
            if key is None:
                continue
            w = Write(table, key, kind)
            before = stored(table, key)
            w.before = item_size(before.attrs) if before is not None else None
            w.entries = {index.name: index_entry(table, index, before) for index in indexes_of(table)}
            writes.append(w)
        return writes

    # --- counting ------------------------------------------------------------------------

    def count(self, backend, operation, request, writes, sizes, status, answer):
        ok = status.startswith("200")
        error = ""
        if not ok:
            try:
                error = json.loads(answer).get("__type", "")
            except (ValueError, AttributeError):
                error = ""
        if writes:
            self.count_writes(operation, writes, ok, error)
            return
        if not ok or backend is None:
            return
        if operation in ("Query", "Scan"):
            table = table_of(backend, request.get("TableName"))
            if table is None or sizes is None:
                return
            index = request.get("IndexName") or ""
            consistent = bool(request.get("ConsistentRead")) and not index
            self.add(table.name, index, operation, 0, read_units(sum(sizes), consistent))
        elif operation == "GetItem":
            self.count_get(backend, operation, request.get("TableName"), request.get("Key"),
                           bool(request.get("ConsistentRead")), 1)
        elif operation == "BatchGetItem":
            try:
                unprocessed = json.loads(answer).get("UnprocessedKeys") or {}
            except (ValueError, AttributeError):
                unprocessed = {}
            for name, asked in (request.get("RequestItems") or {}).items():
                left = (unprocessed.get(name) or {}).get("Keys") or []
                for key in asked.get("Keys") or []:
                    if key in left:
                        continue
                    self.count_get(backend, operation, name, key, bool(asked.get("ConsistentRead")), 1)
        elif operation == "TransactGetItems":
            for entry in request.get("TransactItems") or []:
                get = entry.get("Get") or {}
                self.count_get(backend, operation, get.get("TableName"), get.get("Key"), True, 2)

    def count_get(self, backend, operation, name, key_attrs, consistent, factor):
        table = table_of(backend, name)
        if table is None or not isinstance(key_attrs, dict):
            return
        key = key_of(table, key_attrs)
        item = stored(table, key) if key is not None else None
        size = item_size(item.attrs) if item is not None else 0
        self.add(table.name, "", operation, 0, factor * read_units(size, consistent))

    def count_writes(self, operation, writes, ok, error):
        factor = 2 if operation == "TransactWriteItems" else 1
        failed = error.endswith("ConditionalCheckFailedException") or error.endswith(
            "TransactionCanceledException"
        )
        if not ok and not failed:
            return  # refused before anything was read or written (validation, no table, ...)
        for w in writes:
            if not ok or w.kind == "check":
                self.add(w.table.name, "", operation, factor * write_units(w.before or 0), 0)
                continue
            after = stored(w.table, w.key)
            after_size = item_size(after.attrs) if after is not None else None
            sizes = [s for s in (w.before, after_size) if s is not None]
            units = write_units(w.before or 0) if w.kind == "delete" else write_units(max(sizes or [0]))
            self.add(w.table.name, "", operation, factor * units, 0)
            for index in indexes_of(w.table):
                units = index_write_units(w.entries.get(index.name), index_entry(w.table, index, after))
                if units:
                    self.add(w.table.name, index.name, operation, units, 0)

    def add(self, table, index, operation, write, read):
        with self.lock:
            counts = self.units.setdefault((table, index, operation), [0, 0])
            counts[0] += write
            counts[1] += read

    # --- the read-only API ---------------------------------------------------------------

    def serve(self, method, path, environ, start_response):
        if method == "POST" and path == CAPACITY_PATH + "/reset":
            self.reset()
            return respond(start_response, "200 OK", {"reset": True})
        if method != "GET" or path.rstrip("/") != CAPACITY_PATH:
            return respond(start_response, "404 Not Found", {"error": f"no such call: {method} {path}"})
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        contains = (query.get("contains") or [""])[0].lower()
        with self.lock:
            units = dict(self.units)
        tables = {}
        for (table, index, operation), (write, read) in sorted(units.items()):
            if contains not in table.lower():
                continue
            t = tables.setdefault(table, {"write_units": 0, "read_units": 0, "operations": {}, "indexes": {}})
            node = t
            if index:
                node = t["indexes"].setdefault(index, {"write_units": 0, "read_units": 0, "operations": {}})
            node["write_units"] += write
            node["read_units"] += read
            op = node["operations"].setdefault(operation, {"write_units": 0, "read_units": 0})
            op["write_units"] += write
            op["read_units"] += read
        return respond(start_response, "200 OK", {"tables": tables})


def respond(start_response, status, document):
    payload = json.dumps(document).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


# --- moto's state -------------------------------------------------------------------------


def backend_of(environ):
    """moto's DynamoDB backend for the request's account and region (from its signature)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        region = auth.split(",")[0].split("/")[2]
    except IndexError:
        region = "us-east-1"
    account = environ.get("HTTP_X_MOTO_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID
    regions = dynamodb_backends.get(account) if account in dynamodb_backends else None
    if regions is None or region not in regions:
        return None
    return regions[region]


def table_of(backend, name):
    if backend is None or not name:
        return None
    try:
        return backend.get_table(name)
    except Exception:
        return None


def key_of(table, attrs):
    """The (hash, range) key of `attrs` (DynamoDB JSON) in `table`, as moto's types."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    hash_value = attrs.get(table.hash_key_attr)
    if hash_value is None:
        return None
    range_value = None
    if table.range_key_attr is not None:
        range_value = attrs.get(table.range_key_attr)
        if range_value is None:
            return None
        range_value = DynamoType(range_value)
    return DynamoType(hash_value), range_value


def stored(table, key):
    try:
        return table.get_item(*key)
    except Exception:
        return None


def indexes_of(table):
    return list(table.global_indexes or []) + list(table.indexes or [])


def install_page_capture():
    """Make moto's Query and Scan note the sizes of the items they read before the filter and
    the projection (which they then apply as moto does: same answers)."""
    global _installed
    if _installed:
        return
    _installed = True
    from moto.dynamodb.models.table import Table

    original_query, original_scan = Table.query, Table.scan

    def take(args, kwargs, position, name):
        if len(args) > position:
            value, args[position] = args[position], None
        else:
            value = kwargs.pop(name, None)
        return value

    def finish(results, filter_expression, projection):
        sizes = getattr(_page, "sizes", None)
        if sizes is not None:
            sizes.extend(item_size(r.attrs) for r in results)
        if filter_expression is not None:
            results = [r for r in results if filter_expression.expr(r)]
        if projection:
            results = [r.project(projection) for r in results]
        return results

    def query(self, *args, **kwargs):
        args = list(args)
        projection = take(args, kwargs, 6, "projection_expressions")
        filter_expression = take(args, kwargs, 9, "filter_expression")
        results, scanned, last = original_query(self, *args, **kwargs)
        return finish(results, filter_expression, projection), scanned, last

    def scan(self, *args, **kwargs):
        args = list(args)
        filter_expression = take(args, kwargs, 3, "filter_expression")
        projection = take(args, kwargs, 6, "projection_expression")
        results, scanned, last = original_scan(self, *args, **kwargs)
        return finish(results, filter_expression, projection), scanned, last

    Table.query, Table.scan = query, scan
