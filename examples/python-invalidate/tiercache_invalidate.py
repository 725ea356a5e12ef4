"""Invalidate a tiercache fleet's keys and patterns from Python (redis-py).

This follows docs/protocol.md: Redis first (UNLINK the keys, or SCAN and
UNLINK the keys matching a pattern), then one message on the namespace's bus
channel, so that every Go node drops the keys from its L1.

    import redis
    from tiercache_invalidate import Invalidator, escape

    inv = Invalidator(redis.Redis(host="127.0.0.1", port=6379))
    inv.invalidate("user:42", "post:7")                 # keys, as Group.Key gives them
    inv.invalidate_patterns("user:" + escape(uid) + "_*")  # glob patterns

From a shell:

    python3 tiercache_invalidate.py --port 6379 keys user:42 post:7
    python3 tiercache_invalidate.py --port 6379 patterns 'user:4?'

This sketch talks to one Redis server; on a Redis Cluster, SCAN every primary.
"""

import argparse
import json
import os
import re
import struct
import sys
import time

WIRE_VERSION = 1
KIND_KEYS, KIND_PATTERNS, KIND_HEARTBEAT, KIND_FLUSH = 1, 2, 3, 4
KIND_TAGS = 5  # items "<stamp>:<id>" (docs/protocol.md)
DEFAULT_NAMESPACE = "tiercache"
MAX_MESSAGE_BYTES = 64 << 10  # what a Go node sends and reads at most; split above it
HEADER_BYTES = 34  # version, kind, origin, seq, sent
VARINT_BYTES = 10  # the most a uvarint takes, as the Go bus counts it
NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def uvarint(n):
    """Encode n as a protobuf-style unsigned varint (Go's AppendUvarint)."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_message(kind, origin, seq, sent_ns, items):
    """Return the bytes of one bus message (docs/protocol.md, "The bus message")."""
    if len(origin) != 16:
        raise ValueError("origin must be 16 bytes")
    out = bytearray([WIRE_VERSION, kind])
    out += origin
    out += struct.pack(">Qq", seq, sent_ns)
    out += uvarint(len(items))
    for item in items:
        b = item.encode() if isinstance(item, str) else bytes(item)
        out += uvarint(len(b)) + b
    return bytes(out)


def validate_namespace(namespace):
    """Raise ValueError unless namespace is valid, as remote.ValidateNamespace
    decides: 1 to 64 bytes, each in [A-Za-z0-9_.-]. A namespace is a prefix of
    Redis keys and of a SCAN pattern: "*" would reach every other namespace.
    """
    if not isinstance(namespace, str) or not NAMESPACE_RE.fullmatch(namespace):
        raise ValueError("namespace %r must be 1 to 64 bytes, each in [A-Za-z0-9_.-]" % (namespace,))
    return namespace


def escape(value):
    """Escape a value for a glob pattern, as tiered.Escape does."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in value)


def encode_name(group):
    """Encode a group name as it appears in keys, as tiered.EncodeName does."""
    return group.replace("%", "%25").replace(":", "%3A")


def group_key(group, id_):
    """Return the key (within the namespace) of id_ in group: Group.Key."""
    return encode_name(group) + ":" + id_


class Invalidator:
    """Publishes invalidations for one namespace, as a Go node would.

    With sequence=True (the default) the messages of this instance are
    numbered from 1 with no gaps, so that a node that misses one flushes its
    L1; with sequence=False every message carries 0, which a node never
    counts as a gap. Not safe for concurrent use: give each thread its own.
    """

    def __init__(self, client, namespace=DEFAULT_NAMESPACE, sequence=True, sharded=False):
        self.client = client
        self.namespace = validate_namespace(namespace)
        self.channel = namespace + ":tiercache:bus"
        self.origin = os.urandom(16)
        self.sequence = sequence
        self.sharded = sharded
        self.seq = 0
        # Flushes sent in place of a message too large for a node to read
        # (one key or pattern above MAX_MESSAGE_BYTES): each empties every
        # node's whole L1.
        self.flushes = 0

    def invalidate(self, *keys):
        """UNLINK the keys, then publish one keys message."""
        if not keys:
            return
        if any(k == "" for k in keys):
            raise ValueError("empty key")
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.unlink(self.namespace + ":" + k)
        pipe.execute()
        self._publish(KIND_KEYS, keys)

    def invalidate_patterns(self, *patterns):
        """Remove the keys matching each pattern, then publish one patterns message.

        The namespace holds no glob metacharacter, so "namespace:" + pattern
        as SCAN's MATCH selects exactly the namespace's keys that match.
        Keys whose local part begins with ":" (tag stamps, hand-offs) are
        tiercache's own and are left alone, as tiercache's patterns do.
        Returns how many keys were removed from Redis.
        """
        if not patterns:
            return 0
        removed = 0
        for p in patterns:
            if p == "":
                raise ValueError("empty pattern")
            batch = []
            skip = len(self.namespace) + 1
            for k in self.client.scan_iter(match=self.namespace + ":" + p, count=1000):
                if k[skip:skip + 1] in (b":", ":"):
                    continue  # tiercache's own keys (tag stamps, hand-offs): never removed
                batch.append(k)
                if len(batch) == 1000:
                    removed += self._unlink(batch)
                    batch = []
            removed += self._unlink(batch)
        self._publish(KIND_PATTERNS, patterns)
        return removed

    def _unlink(self, keys):
        if not keys:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.unlink(k)
        return sum(pipe.execute())

    def _publish(self, kind, items):
        for part in split(items, MAX_MESSAGE_BYTES):
            part_kind = kind
            if message_size(part) > MAX_MESSAGE_BYTES:
                # One item too large for a message, which every node would
                # drop unread: send a flush instead, as a Go node does
                # (docs/protocol.md, "Size").
                part_kind, part = KIND_FLUSH, []
                self.flushes += 1
            if self.sequence:
                self.seq += 1  # used up even if the publish fails: nodes see a gap and flush
            msg = encode_message(part_kind, self.origin, self.seq, time.time_ns(), part)
            if self.sharded:
                self.client.execute_command("SPUBLISH", self.channel, msg)
            else:
                self.client.publish(self.channel, msg)


def message_size(items):
    """Bound the size of a message of items, as the Go bus counts it."""
    return HEADER_BYTES + VARINT_BYTES + sum(VARINT_BYTES + len(it.encode()) for it in items)


def split(items, max_bytes):
    """Cut items into parts whose messages stay within max_bytes, as the Go bus does.

    A part of one item may still exceed max_bytes: _publish sends a flush for it.
    """
    parts, start, size = [], 0, HEADER_BYTES + VARINT_BYTES
    for i, it in enumerate(items):
        n = VARINT_BYTES + len(it.encode())
        if i > start and size + n > max_bytes:
            parts.append(list(items[start:i]))
            start, size = i, HEADER_BYTES + VARINT_BYTES
        size += n
    if start < len(items):
        parts.append(list(items[start:]))
    return parts


def selftest(path):
    """Check encode_message against the message vectors of testdata/protocol."""
    kinds = {"keys": KIND_KEYS, "patterns": KIND_PATTERNS, "heartbeat": KIND_HEARTBEAT, "flush": KIND_FLUSH, "tags": KIND_TAGS}
    with open(path) as f:
        vectors = json.load(f)
    for v in vectors:
        got = encode_message(kinds[v["kind"]], bytes.fromhex(v["origin"]), v["seq"], v["sent_ns"], v["items"]).hex()
        if got != v["hex"]:
            raise SystemExit("vector %s: encoded %s, want %s" % (v["name"], got, v["hex"]))
    print("%d vectors ok" % len(vectors))


def main(argv):
    ap = argparse.ArgumentParser(description="Invalidate a tiercache fleet's keys or patterns.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--namespace", default=DEFAULT_NAMESPACE, type=namespace_arg,
                    help="the fleet's namespace: 1 to 64 bytes of [A-Za-z0-9_.-]")
    ap.add_argument("--no-sequence", action="store_true", help="send sequence number 0")
    ap.add_argument("what", choices=["keys", "patterns", "selftest"])
    ap.add_argument("items", nargs="+")
    args = ap.parse_args(argv)
    if args.what == "selftest":
        selftest(args.items[0])
        return
    import redis  # only the publishing commands need redis-py

    inv = Invalidator(redis.Redis(host=args.host, port=args.port), args.namespace, sequence=not args.no_sequence)
    if args.what == "keys":
        inv.invalidate(*args.items)
        print("invalidated %d key(s)" % len(args.items))
    else:
        n = inv.invalidate_patterns(*args.items)
        print("invalidated %d pattern(s): %d key(s) removed from Redis" % (len(args.items), n))
    if inv.flushes:
        print("sent %d flush(es) in place of messages over %d bytes: every node empties its whole L1"
              % (inv.flushes, MAX_MESSAGE_BYTES))


def namespace_arg(value):
    """argparse type of --namespace: a usage error (exit 2) unless valid."""
    try:
        return validate_namespace(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


if __name__ == "__main__":
    main(sys.argv[1:])
