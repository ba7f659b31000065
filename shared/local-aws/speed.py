"""Faster answers from the emulator, with the same bytes on the wire.

The month job (`local-run month`) spends most of its time waiting on the emulator, one Python
process. Each function below replaces one slow path of moto that a profile of the month showed,
and leaves every answer as moto gives it. `install()` applies them all; emulator.py calls it
before the server starts.

DynamoDB attribute values: moto turns a DynamoDB answer into JSON by walking botocore's model
of the output, and for each attribute value (a structure of ten members: S, N, B, SS, NS, BS, M,
L, NULL, BOOL) it looks every member up through its attribute-alias providers, recursively for
maps and lists: about a fifth of the emulator's time in a month, most of it for Query, GetItem
and BatchGetItem answers. An attribute value arrives at the serializer as a one-key dict
(`dynamo_to_dict`); the emulator writes it out directly as the model would: strings and numbers
as strings, binaries in base64, sets as lists, maps and lists element by element, NULL and
BOOL as they are. A value of any other form goes moto's way.

DynamoDB requests: moto parses a request by walking botocore's model of its input the same way,
attribute value by attribute value. The emulator parses attribute values directly into what
the model walk gives (strings, numbers, NULL and BOOL as they are, binaries decoded from base64,
maps and lists element by element); any other form goes moto's way.

Items: moto keeps an item's attributes in a dict that checks DynamoDB's 400 KB limit on every
attribute it stores by summing the sizes of all the attributes already there, so building an
item of n attributes measures n²/2 of them, on every write and every read that copies an item.
When an item is built the emulator adds up the sizes as it goes: the same check at the same
attribute (ItemSizeTooLarge), each attribute measured once.

Updates: moto's UpdateItem deep-copies the item before changing it, for the table's stream
only. Without a stream the copy is not made.

Partitions of a query: emulator.py hands moto's Query only the items of the asked partition,
which it found by looking at every item of the table, so each query still cost O(table): at
100,000 deliveries, about 0.2 s for each of dispatch's 5,952 index queries a month. The
emulator keeps, per table and per attribute a query has asked by (a table's or an index's
partition key), a map from the attribute's string value to the items holding it. It is built
by the first such query and kept up to date by every write of an item (PutItem, UpdateItem,
DeleteItem and the batches, transactions and PartiQL statements, all of which write through
them): after each, the written item is filed again under its value now. A table replaced as a
whole (a transaction rolled back, a restore) starts without a map.

Comparing values: moto compares and hashes attribute values (sorting a query's items, finding
a key) through `cast_value`, which asks the type six questions before it returns a string as it
is. For strings, binaries and Booleans the emulator returns the value at once.
Update expressions: moto parses an UpdateExpression twice per UpdateItem (once to list the
names and values it uses, once to apply it), with a tokenizer that walks it character by
character, and its validator deep-copies the parsed tree through `copy.deepcopy` before
resolving it against the item. The emulator keeps the tree parsed from each expression text
(a tree is only read: the validator works on its copy) and copies a tree node by node, as
deepcopy would (each node's attributes copied, its child nodes copied the same way, whether a
class is a node asked once per class), when every node's parent is the node holding it (trees
the parser builds);
any other tree is deep-copied as before. The validator's passes ask each processor for the
node types it handles by building a map per node visited, and ask Python's abstract-class
machinery whether each node is one of them; the emulator asks once per processor class and node
class (the same walk, in the same order).

Condition expressions: moto lexes a ConditionExpression token by token with regular
expressions, twice per conditional write. The tokens of an expression depend on its text
alone, so the emulator lexes each text once and hands out the same tokens (immutable tuples)
in a new queue each time; names and values are looked up per request as before.

JSON-protocol requests: moto server finds the service of every request by its host and
signature (DomainDispatcherApplication), then hands it to a Flask application per service, whose
URL map, request context and view wrapper (`convert_to_flask_response`) call the service's
`dispatch` and build a Flask response from its (status, headers, body). `JsonRoutes`, a WSGI
middleware in front of moto, takes the requests whose X-Amz-Target names DynamoDB or SQS and
whose path is `/` (how the SDKs send DynamoDB and SQS JSON requests, where that URL map sends
them to the same `dispatch`) and does those steps itself: the same request class, the same
call, the same response class, the CORS headers flask_cors adds there; nothing else in
between. Every other request goes moto's way.

Connections: werkzeug's development server, under moto server, answers every request with
`Connection: close`, then waits up to 10 ms for stray request bytes before it closes the socket,
so every AWS request costs a TCP connection, a thread and that wait, whatever the client's
keep-alive. `keep_alive(handler)` keeps an HTTP/1.1 connection open when the request allows it
(HTTP/1.1, no `Connection: close`, a Content-Length or no body, no `Expect` and no chunked body,
not HEAD): it reads the body whole before the application runs, so the next request starts
where this one ended, and writes the answer as werkzeug does (the same status line, the same
headers in the same order, the body chunked when the application gives no Content-Length)
without `Connection: close`, in one write. It closes the connection as werkzeug does, with that header, when
the answer's length cannot be trusted (a declared length the body does not have, a body on a
1xx, 204 or 304 answer) or after an error. Any other request goes werkzeug's way.

Scans: moto's Scan sorts a table's items by comparing their keys as attribute values (a Python
call per comparison, on both sides), then walks the sorted items from the first and compares each
with the request's ExclusiveStartKey until it passes it, for every page: a scan of 100,000 items
in 37 pages of 1 MB took 24.7 s of processor time (`tests/same_answers.py scan 100000`; 9.0 s
the emulator's way). The emulator sorts by the keys' values (what those comparisons compare: the same
order), finds the first item after the start key by bisection (a first page starts at the
first item), and hands moto's Scan the items from there with no start key, so its page, its
filters, its segment test, its LastEvaluatedKey and its counts are moto's. A scan of an index, or
one whose start key lacks a key attribute of the table or is not a plain attribute value, goes
moto's way; so does every other reader of a table's items.

Reserved words: moto checks every attribute name of an expression against DynamoDB's 573
reserved words in a list; the emulator keeps them in a set (the same membership).
"""

import base64
import copy
import threading
import weakref

from botocore.exceptions import ClientError

# The members of DynamoDB's AttributeValue structure, by how they are written.
_STRINGS = ("S", "N")
_STRING_SETS = ("SS", "NS")
_BOOLEANS = ("NULL", "BOOL")


class _Slow(Exception):
    """A value the fast path does not write: moto's serializer takes it."""


def _text(value):
    # moto's JSON string serializer: str() of everything but None, {} and [].
    if value is None or value == {} or value == []:
        return value
    return str(value)


def _blob(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)):
        raise _Slow()
    return base64.b64encode(value).strip().decode("utf-8")


def attribute_value(value):
    """An AttributeValue (a one-key dict in moto's plain form) as DynamoDB's JSON writes it."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _Slow()
    ((kind, inner),) = value.items()
    if inner is None:
        # moto leaves out a member whose value is None: the structure is empty.
        return {}
    if kind in _STRINGS:
        return {kind: _text(inner)}
    if kind == "M":
        if not isinstance(inner, dict):
            raise _Slow()
        return {"M": {k: attribute_value(v) for k, v in inner.items()}}
    if kind == "L":
        if not isinstance(inner, (list, tuple)):
            raise _Slow()
        return {"L": [attribute_value(v) for v in inner]}
    if kind in _BOOLEANS:
        return {kind: inner}
    if kind in _STRING_SETS:
        if not isinstance(inner, (list, tuple, set)):
            raise _Slow()
        return {kind: [_text(v) for v in inner]}
    if kind == "B":
        return {"B": _blob(inner)}
    if kind == "BS":
        if not isinstance(inner, (list, tuple, set)):
            raise _Slow()
        return {"BS": [_blob(v) for v in inner]}
    raise _Slow()


def fast_attribute_values():
    """Write DynamoDB attribute values without the model walk (see the module doc)."""
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_structure

    def _serialize_type_structure(self, serialized, value, shape, key):
        if key and shape.name == "AttributeValue" and isinstance(value, dict):
            if self.operation_model.service_model.service_name == "dynamodb":
                try:
                    written = attribute_value(value)
                except _Slow:
                    pass
                else:
                    self._default_serialize(serialized, written, shape, key)
                    return
        original(self, serialized, value, shape, key)

    BaseJSONSerializer._serialize_type_structure = _serialize_type_structure


def parsed_attribute_value(value, blob):
    """An AttributeValue of a request as moto's model walk parses it (`blob` decodes a binary)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise _Slow()
    ((kind, inner),) = value.items()
    if inner is None:
        return {}
    if kind in _STRINGS or kind in _BOOLEANS:
        return {kind: inner}
    if kind == "M":
        if not isinstance(inner, dict):
            raise _Slow()
        return {"M": {k: parsed_attribute_value(v, blob) for k, v in inner.items()}}
    if kind == "L":
        if not isinstance(inner, list):
            raise _Slow()
        return {"L": [parsed_attribute_value(v, blob) for v in inner]}
    if kind in _STRING_SETS:
        if not isinstance(inner, list):
            raise _Slow()
        return {kind: list(inner)}
    try:
        if kind == "B":
            return {"B": blob(inner)}
        if kind == "BS" and isinstance(inner, list):
            return {"BS": [blob(v) for v in inner]}
    except Exception:  # moto's way raises its own error
        raise _Slow()
    raise _Slow()


def fast_attribute_value_parsing():
    """Parse DynamoDB attribute values without the model walk (see the module doc)."""
    from moto.core.parse import BaseJSONParser

    original = BaseJSONParser._parse_structure

    def _parse_structure(self, shape, value):
        if shape.name == "AttributeValue" and isinstance(value, dict) and self.MAP_TYPE is dict:
            if self.operation_model.service_model.service_name == "dynamodb":
                try:
                    return parsed_attribute_value(value, self._blob_parser)
                except _Slow:
                    pass
        return original(self, shape, value)

    BaseJSONParser._parse_structure = _parse_structure


def items_measured_once():
    """Build an item measuring each attribute once (see the module doc)."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    # moto's limit, as LimitedSizeDict.__setitem__ applies it.
    limit = 405000
    store = dict.__setitem__

    def __init__(self, hash_key, range_key, attrs):
        self.hash_key = hash_key
        self.range_key = range_key
        stored = LimitedSizeDict()
        size = 0  # what LimitedSizeDict sums: the names and values stored so far
        for key, value in attrs.items():
            value = DynamoType(value)
            entry = (value.size() if type(value) is DynamoType else bytesize(str(value))) + bytesize(str(key))
            if size + entry > limit:
                raise ItemSizeTooLarge
            store(stored, key, value)
            size += entry
        self.attrs = stored

    assert dynamo_type.Item is Item
    Item.__init__ = __init__


def updates_copy_for_streams_only():
    """UpdateItem copies the item only for a table with a stream (see the module doc)."""
    import copy as real_copy

    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import Item

    hint = threading.local()

    class Copy:
        """`copy` as moto.dynamodb.models sees it: deepcopy of an Item is skipped while an
        UpdateItem runs on a table without a stream (the copy would only feed the stream)."""

        def __getattr__(self, name):
            return getattr(real_copy, name)

        @staticmethod
        def deepcopy(value, *args, **kwargs):
            if getattr(hint, "no_stream", False) and type(value) is Item:
                hint.no_stream = False  # the one copy UpdateItem makes
                return None
            return real_copy.deepcopy(value, *args, **kwargs)

    original = DynamoDBBackend.update_item

    def update_item(self, table_name, *args, **kwargs):
        table = self.tables.get(table_name)
        hint.no_stream = table is not None and table.stream_shard is None
        try:
            return original(self, table_name, *args, **kwargs)
        finally:
            hint.no_stream = False

    assert models.copy is real_copy
    models.copy = Copy()
    DynamoDBBackend.update_item = update_item


class Partitions:
    """Per table and attribute: string value -> the items holding it (see the module doc)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kept = False  # whether every write files its item again
        # table -> {attribute: {"by_value": {value: {key: item}}, "of": {key: value}}}
        self.tables = weakref.WeakKeyDictionary()

    @staticmethod
    def key_of(item):
        return (item.hash_key, item.range_key)

    @staticmethod
    def all_of(table):
        if table.range_key_attr:
            return [item for hash_set in list(table.items.values()) for item in list(hash_set.values())]
        return list(table.items.values())

    def items_with(self, table, name, value):
        """The items of `table` whose attribute `name` is the string `value`."""
        with self.lock:
            maps = self.tables.get(table)
            if maps is None:
                maps = self.tables[table] = {}
            index = maps.get(name)
            if index is None:
                index = maps[name] = {"by_value": {}, "of": {}}
                for item in self.all_of(table):
                    self._file(index, name, item)
            return list(index["by_value"].get(value, {}).values())

    @staticmethod
    def _file(index, name, item):
        v = item.attrs.get(name)
        if v is not None and v.type == "S" and isinstance(v.value, str):
            key = (item.hash_key, item.range_key)
            index["by_value"].setdefault(v.value, {})[key] = item
            index["of"][key] = v.value

    def written(self, table, hash_key, range_key):
        """Files the item at this key again under its values now (or nowhere, when gone)."""
        with self.lock:
            maps = self.tables.get(table)
            if not maps:
                return
            key = (hash_key, range_key)
            if range_key is not None:
                item = table.items.get(hash_key, {}).get(range_key) if hash_key in table.items else None
            else:
                item = table.items.get(hash_key)
            for name, index in maps.items():
                old = index["of"].pop(key, None)
                if old is not None:
                    bucket = index["by_value"].get(old)
                    if bucket is not None:
                        bucket.pop(key, None)
                        if not bucket:
                            del index["by_value"][old]
                if item is not None:
                    self._file(index, name, item)

    def forget(self, table):
        with self.lock:
            self.tables.pop(table, None)


PARTITIONS = Partitions()


def items_with(table, name, value):
    """The items of `table` whose attribute `name` is the string `value`, from the map; None
    when the maps are not kept (the writes are not hooked)."""
    if not PARTITIONS.kept:
        return None
    return PARTITIONS.items_with(table, name, value)


def partitions_kept_up_to_date():
    """Every write of an item files it again in the partition maps (see the module doc)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_put, original_delete = Table.put_item, Table.delete_item
    original_update = DynamoDBBackend.update_item

    def keys_of(table, attrs):
        """(hash key, range key) of an item or key in DynamoDB's JSON, or None."""
        try:
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, TypeError, AttributeError):
            return None
        return hash_key, range_key

    def refile(table, keys):
        if keys is None:
            PARTITIONS.forget(table)
        else:
            PARTITIONS.written(table, *keys)

    def put_item(self, item_attrs, *args, **kwargs):
        try:
            return original_put(self, item_attrs, *args, **kwargs)
        finally:
            refile(self, keys_of(self, item_attrs) if isinstance(item_attrs, dict) else None)

    def delete_item(self, hash_key, range_key, *args, **kwargs):
        try:
            return original_delete(self, hash_key, range_key, *args, **kwargs)
        finally:
            PARTITIONS.written(self, hash_key, range_key)

    def update_item(self, table_name, key, *args, **kwargs):
        try:
            return original_update(self, table_name, key, *args, **kwargs)
        finally:
            table = self.tables.get(table_name)
            if table is not None:
                refile(table, keys_of(table, key) if isinstance(key, dict) else None)

    Table.put_item, Table.delete_item = put_item, delete_item
    DynamoDBBackend.update_item = update_item
    PARTITIONS.kept = True


def plain_values_cast_at_once():
    """`cast_value` of a string, binary or Boolean without the type questions (see the module
    doc)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = DynamoType.cast_value.fget
    plain = frozenset(("S", "B", "BOOL"))

    def cast_value(self):
        if self.type in plain:
            return self.value
        return original(self)

    DynamoType.cast_value = property(cast_value)


# Parsed expressions kept, by expression text; cleared when this many are held (an expression
# text with values inlined would otherwise grow them without end).
EXPRESSIONS_KEPT = 4096


def update_expressions_parsed_once():
    """Parse each UpdateExpression text once and copy trees node by node (see the module doc)."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    make = UpdateExpressionParser.make.__func__
    parsed = {}
    well_formed = {}  # id(tree) -> tree: the kept trees whose nodes' parents hold them

    def holds_its_children(node):
        for child in node.children or ():
            if isinstance(child, Node):
                if child.parent is not node or not holds_its_children(child):
                    return False
        return True

    def cached_make(cls, expression_str):
        if cls is not UpdateExpressionParser or type(expression_str) is not str:
            return make(cls, expression_str)
        tree = parsed.get(expression_str)
        if tree is None:
            tree = make(cls, expression_str)
            if len(parsed) >= EXPRESSIONS_KEPT:
                parsed.clear()
                well_formed.clear()
            parsed[expression_str] = tree
            if tree.parent is None and holds_its_children(tree):
                well_formed[id(tree)] = tree
        return tree

    plain = frozenset((str, int, bool, float, type(None)))
    node_classes = {}  # class -> whether it is a Node (asked once per class)

    def clone(node, parent):
        new = object.__new__(type(node))
        state = node.__dict__.copy()
        children = state.get("children")
        if isinstance(children, list):
            copied = []
            for c in children:
                kind = type(c)
                is_node = node_classes.get(kind)
                if is_node is None:
                    is_node = node_classes[kind] = isinstance(c, Node)
                copied.append(clone(c, new) if is_node else c if kind in plain else copy.deepcopy(c))
            state["children"] = copied
        state["parent"] = parent
        new.__dict__ = state
        return new

    real_deepcopy = validators.deepcopy

    def deepcopy(value, *args, **kwargs):
        if not args and not kwargs and well_formed.get(id(value)) is value:
            return clone(value, None)
        return real_deepcopy(value, *args, **kwargs)

    kinds = {}

    def nodes_to_be_processed(self):
        cls = type(self)
        found = kinds.get(cls)
        if found is None:
            found = kinds[cls] = tuple(self._processing_map().keys())
        return found

    # isinstance against the tree's abstract classes, answered once per (processor, node) class.
    is_node = {}
    handled = {}

    def traverse_node_recursively(self, node, child_id=-1):
        kind = type(node)
        node_kind = is_node.get(kind)
        if node_kind is None:
            node_kind = is_node[kind] = isinstance(node, Node)
        if node_kind:
            parent_node = node.parent
            if node.children is not None:
                for i, child_node in enumerate(node.children):
                    self.pre_processing_of_child(node, i)
                    self.traverse_node_recursively(child_node, i)
            pair = (type(self), kind)
            processed = handled.get(pair)
            if processed is None:
                processed = handled[pair] = isinstance(node, self.nodes_to_be_processed())
            if processed:
                node = self.process(node)
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
        return node

    assert validators.deepcopy is copy.deepcopy
    UpdateExpressionParser.make = classmethod(cached_make)
    validators.deepcopy = deepcopy
    DepthFirstTraverser.nodes_to_be_processed = nodes_to_be_processed
    DepthFirstTraverser.traverse_node_recursively = traverse_node_recursively


def condition_expressions_lexed_once():
    """Lex each ConditionExpression text once (see the module doc)."""
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = ConditionExpressionParser._lex_condition_expression
    lexed = {}

    def _lex_condition_expression(self):
        text = self.condition_expression
        if type(text) is not str:
            return original(self)
        tokens = lexed.get(text)
        if tokens is None:
            tokens = tuple(original(self))
            if any(node.children for node in tokens):
                return deque(tokens)  # not the plain tokens the lexer makes: not kept
            if len(lexed) >= EXPRESSIONS_KEPT:
                lexed.clear()
            lexed[text] = tokens
        return deque(tokens)

    ConditionExpressionParser._lex_condition_expression = _lex_condition_expression


def scans_start_at_their_key():
    """Sort a table's items by their keys' values and start a Scan's page at its start key by
    bisection (see the module doc)."""
    import bisect

    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original_scan, original_all_items = Table.scan, Table.all_items
    here = threading.local()  # the items a Scan in this thread hands moto's Scan

    def sort_key(item):
        # moto's all_items sorts by (hash key, range key) when there is a range key, by the hash
        # key alone otherwise; DynamoType compares by cast_value.
        if item.range_key:
            return (item.hash_key.cast_value, item.range_key.cast_value)
        return (item.hash_key.cast_value,)

    def sorted_items(table):
        items = Partitions.all_of(table)
        items.sort(key=sort_key)
        return items

    def all_items(self):
        tail = getattr(here, "tail", None)
        if tail is not None and tail[0] is self:
            return tail[1]
        return original_all_items(self)

    def start_of(table, start_key):
        """The start key as a sort key, or None when it is not one this path takes."""
        if not isinstance(start_key, dict):
            return None
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        values = []
        for name in names:
            value = start_key.get(name)
            if not isinstance(value, dict) or len(value) != 1:
                return None
            kind, raw = next(iter(value.items()))
            if kind not in ("S", "N", "B") or not isinstance(raw, str):
                return None
            values.append(DynamoType(value).cast_value)
        return tuple(values)

    def scan(self, filters, limit, exclusive_start_key, filter_expression=None, index_name=None,
             consistent_read=False, projection_expression=None, segments=(None, None)):
        start = None if exclusive_start_key is None else start_of(self, exclusive_start_key)
        if index_name or (exclusive_start_key is not None and start is None):
            return original_scan(self, filters, limit, exclusive_start_key, filter_expression, index_name,
                                 consistent_read, projection_expression, segments=segments)
        items = sorted_items(self)
        if start is not None:
            keys = [sort_key(item) for item in items]
            items = items[bisect.bisect_right(keys, start):]
        here.tail = (self, items)
        try:
            return original_scan(self, filters, limit, None, filter_expression, index_name,
                                 consistent_read, projection_expression, segments=segments)
        finally:
            here.tail = None

    Table.all_items = all_items
    Table.scan = scan


def reserved_words_in_a_set():
    """DynamoDB's reserved words as a set (see the module doc)."""
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords

    ReservedKeywords.KEYWORDS = frozenset(ReservedKeywords.get_reserved_keywords())


class JsonRoutes:
    """WSGI middleware: DynamoDB's and SQS's JSON requests straight to their handlers (see the
    module doc); the rest to `app` (moto server's DomainDispatcherApplication)."""

    def __init__(self, app):
        from flask import Response
        from moto.dynamodb.urls import url_paths as dynamodb_paths
        from moto.moto_api import recorder
        from moto.moto_server.werkzeug_app import BackendRequest
        from moto.sqs.urls import url_paths as sqs_paths

        self.app = app
        # The handlers moto's URL maps give the path "/" of each service.
        self.handlers = {
            "DynamoDB_20120810": dynamodb_paths["{0}/"],
            "AmazonSQS": sqs_paths["{0}/$"],
        }
        self.request_class = BackendRequest
        self.response_class = Response
        self.recorder = recorder
        self.cors = self.cors_resources()

    @staticmethod
    def cors_resources():
        """The resources and options flask_cors gives moto's Flask applications (`CORS(app)` in
        create_backend_app, resolved as its init_app resolves them), or None without it."""
        from moto.settings import DISABLE_GLOBAL_CORS

        if DISABLE_GLOBAL_CORS:
            return None
        from flask import Flask
        from flask_cors.core import get_cors_options, merge_options, parse_resources

        app = Flask("moto")
        merged = merge_options(app, {}, {})
        return [(pattern, get_cors_options(app, {}, {}, opts)) for pattern, opts in parse_resources(merged.get("resources", r"/*"))]

    def add_cors_headers(self, request, response):
        """What flask_cors's after-request function adds to a response of moto's Flask app."""
        from urllib.parse import unquote

        from flask_cors.core import ACL_ORIGIN, get_cors_headers, try_match_pattern

        if self.cors is None or response.headers.get(ACL_ORIGIN):
            return
        path = unquote(request.path)
        for pattern, options in self.cors:
            if try_match_pattern(path, pattern, caseSensitive=True):
                for k, v in get_cors_headers(options, request.headers, request.method).items():
                    response.headers.add(k, v)
                return

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target and environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/":
            handler = self.handlers.get(target.partition(".")[0])
            if handler is not None:
                return self.answer(handler, environ, start_response)
        return self.app(environ, start_response)

    def answer(self, handler, environ, start_response):
        # As convert_to_flask_response does it, without Flask's routing around it.
        request = self.request_class(environ)
        self.recorder._record_request(request)
        try:
            result = handler(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        if len(result) == 3:
            status, headers, content = result
        else:
            status, headers, content = 200, {}, result
        response = self.response_class(response=content, status=status, headers=headers)
        self.add_cors_headers(request, response)
        return response(environ, start_response)


def keep_alive(handler_class):
    """`handler_class` (a werkzeug request handler) keeping HTTP/1.1 connections open (see the
    module doc)."""
    import io
    import socket

    from werkzeug.exceptions import InternalServerError

    class KeepAlive(handler_class):
        protocol_version = "HTTP/1.1"

        def keeps_alive(self):
            headers = self.headers
            length = headers.get("Content-Length")
            return not (
                self.request_version != "HTTP/1.1"
                or self.close_connection
                or self.command == "HEAD"
                or headers.get("Expect") is not None
                or headers.get("Transfer-Encoding") is not None
                or (length is not None and not length.strip().isdigit())
            )

        def run_wsgi(self):
            if not self.keeps_alive():
                return super().run_wsgi()
            length = self.headers.get("Content-Length")
            size = int(length) if length else 0
            body = self.rfile.read(size) if size else b""
            if len(body) != size:  # the client went away in the middle of its request
                self.close_connection = True
                return
            self.environ = environ = self.make_environ()
            environ["wsgi.input"] = io.BytesIO(body)
            answer = {"status": None, "headers": None}
            chunks = []

            def start_response(status, headers, exc_info=None):
                if exc_info:
                    exc_info = None  # nothing is sent before the application returns
                answer["status"], answer["headers"] = status, headers
                return chunks.append  # WSGI's write()

            def run(app):
                result = app(environ, start_response)
                try:
                    for data in result:
                        assert isinstance(data, bytes), "applications must write bytes"
                        chunks.append(data)
                finally:
                    if hasattr(result, "close"):
                        result.close()

            failed = False
            try:
                run(self.server.app)
            except (ConnectionError, socket.timeout) as e:
                self.connection_dropped(e, environ)
                self.close_connection = True
                return
            except Exception as e:
                if self.server.passthrough_errors:
                    raise
                failed = True
                chunks.clear()
                try:
                    run(InternalServerError())
                except Exception:
                    self.close_connection = True
                    return
                from werkzeug.debug.tbtools import DebugTraceback

                self.server.log("error", f"Error on request:\n{DebugTraceback(e).render_traceback_text()}")
            self.answer(answer["status"], answer["headers"], b"".join(chunks), failed)

        def answer(self, status, headers, body, close):
            try:
                code_str, msg = status.split(None, 1)
            except ValueError:
                code_str, msg = status, ""
            code = int(code_str)
            bodiless = 100 <= code < 200 or code in (204, 304)
            declared = None
            for key, value in headers:
                if key.lower() == "content-length":
                    declared = value
            chunked = declared is None and not bodiless
            if declared is not None and declared.strip() != str(len(body)):
                close = True
            if bodiless and body:
                close = True
            self.send_response(code, msg)
            for key, value in headers:
                self.send_header(key, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            if close:
                self.send_header("Connection", "close")  # sets close_connection
            if chunked:
                payload = (hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
            else:
                payload = body
            # end_headers() with the body after the blank line: one write for the whole answer.
            self._headers_buffer.append(b"\r\n" + payload)
            self.flush_headers()
            self.wfile.flush()

    KeepAlive.__name__ = KeepAlive.__qualname__ = f"KeepAlive{handler_class.__name__}"
    return KeepAlive


def install():
    """Every fast path above."""
    fast_attribute_values()
    fast_attribute_value_parsing()
    items_measured_once()
    updates_copy_for_streams_only()
    partitions_kept_up_to_date()
    plain_values_cast_at_once()
    update_expressions_parsed_once()
    condition_expressions_lexed_once()
    reserved_words_in_a_set()
    scans_start_at_their_key()
