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
"""

import threading
import weakref

import base64

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


def install():
    """Every fast path above."""
    fast_attribute_values()
    fast_attribute_value_parsing()
    items_measured_once()
    updates_copy_for_streams_only()
    partitions_kept_up_to_date()
    plain_values_cast_at_once()
