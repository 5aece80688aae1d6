#!/usr/bin/env python3
"""A partner subscriber for the stockpile ledger's STOCKPILE_EVENTS stream (stockpile.v1).

Reads records through a durable JetStream pull consumer and, for every record, checks what a
partner must check before trusting it (docs/PARTNERS.md):

  * the payload validates against schemas/v1/record.schema.json (offline: every schema file is
    loaded into a `referencing` Registry, so `common.schema.json#/...` references resolve);
  * SHA-256 of the raw `body` bytes equals `hash` and the `Stockpile-Hash` header;
  * stream seq = `body.seq` = the `Stockpile-Seq` header, and `Nats-Msg-Id` = `hash`;
  * seqs run on without gaps and `prev_hash` is the previous record's `hash` (64 zeros at
    seq 1). A gap (a subject filter skips other subjects' records, or the consumer starts
    past what this process has verified) is repaired from `stockpile.v1.ledger.range`, and
    the repaired records are verified the same way, so the chain is checked end to end.

Then it acks the message and prints one JSON line per record it received from the stream:
{"seq": ..., "kind": ..., "event_id": ...}. It stops after COUNT records, or fails when
--timeout passes first. Any failure: a message on stderr and exit status 1 (2 for bad usage).

    python partner_subscriber.py nats://127.0.0.1:4222 10 \
        --filter 'stockpile.v1.events.NL.>' --durable nl-auditor --state nl-auditor.json

**On the accounts of `stockpile nats-config`** (`--partner P --nkey partner-P.nk`), a partner
sees its own records only: it reads its feed through the durable consumer `P` on
`STOCKPILE_FEEDS` that the ledger made for it (JetStream API prefix `$JS.STOCKPILE.API`, inbox
`_INBOX.<its public NKey>`), checks each record as above except the chain (the records between
its own are other partners') plus the feed's headers (`Stockpile-Partner` = P,
`Nats-Msg-Id` = `<event_id>@P`, subject `stockpile.v1.feed.P.…`, seqs rising), and proves each
record is in the ledger's signed log: the latest checkpoint (direct get of the last message on
`stockpile.v1.checkpoints`), its Ed25519 signature (`stockpile.v1.checkpoint\n` followed by the
canonical JSON of `key`, `recorded_at`, `root`, `tree_size`; pin the key with --ledger-key), and
an RFC 6962 inclusion proof from `stockpile.v1.ledger.proof` (hashes only). Each line then also
says `"proved": <tree size>`.

    python partner_subscriber.py nats://127.0.0.1:4222 10 --partner NL --nkey partner-NL.nk

Requires: nats-py, jsonschema >= 4.18 (with rfc3339-validator for `date-time` checks); for
--partner also nkeys (NATS NKey authentication) and PyNaCl (Ed25519).
"""

import argparse
import asyncio
import hashlib
import json
import os
import pathlib
import sys
import time

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

STREAM = "STOCKPILE_EVENTS"
ALL_EVENTS = "stockpile.v1.events.>"
RANGE = "stockpile.v1.ledger.range"
RECORD_SCHEMA_ID = "https://stockpile.example/schemas/v1/record.schema.json"
ZERO_HASH = "0" * 64
PREFIX = b'{"body":'
SUFFIX_HEAD = b',"hash":"'
SUFFIX_LEN = len(SUFFIX_HEAD) + 64 + len(b'"}')
DEFAULT_SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"


class Invalid(Exception):
    """A record (or the stream) broke the contract."""


def load_validator(schemas_dir):
    """A validator for record.schema.json with every schema file registered under its $id."""
    resources = []
    for path in sorted(pathlib.Path(schemas_dir).rglob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT202012)))
    if not resources:
        raise Invalid(f"no *.schema.json files under {schemas_dir}")
    registry = Registry().with_resources(resources)
    schema = registry.contents(RECORD_SCHEMA_ID)
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def canonical(value):
    """Canonical JSON (schemas/CANONICAL.md): valid for v1 values, which hold no floats."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def split_record(payload):
    """(raw body bytes, hash) of a record `{"body":<body>,"hash":"<64 hex>"}`, exactly as sent."""
    if not payload.startswith(PREFIX):
        raise Invalid(f"payload does not start with {PREFIX!r}")
    suffix = payload[-SUFFIX_LEN:]
    if len(payload) < len(PREFIX) + SUFFIX_LEN or not (suffix.startswith(SUFFIX_HEAD) and suffix.endswith(b'"}')):
        raise Invalid('payload does not end with ,"hash":"<64 hex>"}')
    digest = suffix[len(SUFFIX_HEAD):-2].decode("ascii", errors="replace")
    return payload[len(PREFIX):-SUFFIX_LEN], digest


def expected_subject(body):
    partners = body["scope"].get("partners") or ["_"]
    material = body["scope"].get("material", "_")
    return f"stockpile.v1.events.{partners[0]}.{material}.{body['kind']}"


class Chain:
    """The verified end of the ledger's hash chain: last seq and its hash."""

    def __init__(self, validator, seq=0, digest=ZERO_HASH):
        self.validator = validator
        self.seq = seq
        self.hash = digest

    def verify(self, payload, body_bytes=None):
        """Verifies one record that must be seq + 1 and advances; returns its decoded body."""
        try:
            record = json.loads(payload)
        except ValueError as e:
            raise Invalid(f"record after seq {self.seq} is not JSON: {e}") from None
        errors = sorted(self.validator.iter_errors(record), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
            raise Invalid(f"record after seq {self.seq} does not match record.schema.json at {where}: {errors[0].message}")
        body = record["body"]
        if body_bytes is None:  # from a range reply: hash the canonical re-encoding
            body_bytes = canonical(body)
        elif canonical(body) != body_bytes:
            raise Invalid(f"record {body['seq']}: body is not in canonical form")
        actual = hashlib.sha256(body_bytes).hexdigest()
        if actual != record["hash"]:
            raise Invalid(f"record {body['seq']}: SHA-256 of the body is {actual}, the record says {record['hash']}")
        if body["seq"] != self.seq + 1:
            raise Invalid(f"expected seq {self.seq + 1}, got {body['seq']}")
        if body["prev_hash"] != self.hash:
            raise Invalid(f"record {body['seq']}: prev_hash {body['prev_hash']} is not the hash of record {self.seq} ({self.hash})")
        self.seq, self.hash = body["seq"], record["hash"]
        return body


async def repair(nc, chain, upto, timeout):
    """Fetches records chain.seq+1 ..= upto from ledger.range and verifies them into the chain."""
    while chain.seq < upto:
        request = json.dumps({"from": chain.seq + 1, "to": upto}).encode()
        reply = await nc.request(RANGE, request, timeout=timeout)
        answer = json.loads(reply.data)
        if "error" in answer:
            raise Invalid(f"ledger.range refused {request.decode()}: {answer['error']}")
        if not answer["records"]:
            raise Invalid(f"ledger.range returned no records from {chain.seq + 1} (head {answer['head']})")
        for record in answer["records"]:
            chain.verify(canonical(record))
        print(f"repaired records up to {chain.seq} from {RANGE}", file=sys.stderr)


def check_message(msg, chain):
    """Verifies one stream message; returns its body, or None for a redelivery."""
    stream_seq = msg.metadata.sequence.stream
    if stream_seq <= chain.seq:
        return None  # already verified (a redelivery): ack and ignore
    headers = msg.headers or {}
    body_bytes, digest = split_record(msg.data)
    body = chain.verify(msg.data, body_bytes)
    if stream_seq != body["seq"]:
        raise Invalid(f"stream seq {stream_seq} carries ledger seq {body['seq']}")
    if headers.get("Stockpile-Seq") != str(body["seq"]):
        raise Invalid(f"record {body['seq']}: Stockpile-Seq header is {headers.get('Stockpile-Seq')!r}")
    if headers.get("Stockpile-Hash") != digest:
        raise Invalid(f"record {body['seq']}: Stockpile-Hash header is {headers.get('Stockpile-Hash')!r}, hash is {digest}")
    if headers.get("Nats-Msg-Id") != digest:
        raise Invalid(f"record {body['seq']}: Nats-Msg-Id header is {headers.get('Nats-Msg-Id')!r}")
    if msg.subject != expected_subject(body):
        raise Invalid(f"record {body['seq']} arrived on {msg.subject}, expected {expected_subject(body)}")
    return body


FEEDS = "STOCKPILE_FEEDS"
JS_IMPORT_PREFIX = "$JS.STOCKPILE.API"
LATEST_CHECKPOINT = f"{JS_IMPORT_PREFIX}.DIRECT.GET.STOCKPILE_CHECKPOINTS.stockpile.v1.checkpoints"
PROOF = "stockpile.v1.ledger.proof"
CHECKPOINT_DOMAIN = b"stockpile.v1.checkpoint\n"


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, path, root):
    """RFC 9162 section 2.1.3.2: does `path` lead from leaf hash `leaf` at `index` to `root`?"""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_checkpoint(checkpoint, pinned_key):
    """Checks a JSON checkpoint's Ed25519 signature (and its key, when pinned)."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    if pinned_key and checkpoint["key"] != pinned_key:
        raise Invalid(f"the checkpoint is signed by {checkpoint['key']}, not the pinned ledger key {pinned_key}")
    signed = {k: checkpoint[k] for k in ("key", "recorded_at", "root", "tree_size")}
    try:
        VerifyKey(bytes.fromhex(checkpoint["key"])).verify(
            CHECKPOINT_DOMAIN + canonical(signed), bytes.fromhex(checkpoint["signature"])
        )
    except (BadSignatureError, ValueError) as e:
        raise Invalid(f"the checkpoint of tree size {checkpoint['tree_size']} does not verify: {e}") from None


class Prover:
    """Proves records are in the ledger's signed log, against its latest checkpoint."""

    def __init__(self, nc, pinned_key, timeout):
        self.nc, self.pinned_key, self.timeout = nc, pinned_key, timeout
        self.checkpoint = None

    async def covering(self, seq, deadline):
        """The latest checkpoint, once one covers `seq` (the ledger signs one every interval)."""
        while self.checkpoint is None or self.checkpoint["tree_size"] < seq:
            reply = await self.nc.request(LATEST_CHECKPOINT, b"", timeout=self.timeout)
            status = (reply.headers or {}).get("Status")
            if status is None:
                checkpoint = json.loads(reply.data)
                verify_checkpoint(checkpoint, self.pinned_key)
                self.checkpoint = checkpoint
                if checkpoint["tree_size"] >= seq:
                    break
            elif status != "404":
                raise Invalid(f"the latest checkpoint: status {status}")
            if time.monotonic() >= deadline:
                raise Invalid(f"no signed checkpoint covers record {seq} yet")
            await asyncio.sleep(0.5)
        return self.checkpoint

    async def prove(self, seq, record_hash, deadline):
        checkpoint = await self.covering(seq, deadline)
        size = checkpoint["tree_size"]
        request = json.dumps({"inclusion": {"seq": seq, "tree_size": size}}).encode()
        answer = json.loads((await self.nc.request(PROOF, request, timeout=self.timeout)).data)
        if "error" in answer:
            raise Invalid(f"ledger.proof refused {request.decode()}: {answer['error']}")
        if answer.get("proof") != "inclusion" or answer["seq"] != seq or answer["record_hash"] != record_hash:
            raise Invalid(f"record {seq}: the ledger proved another record: {answer}")
        leaf = hashlib.sha256(b"\x00" + bytes.fromhex(record_hash)).digest()
        path = [bytes.fromhex(h) for h in answer["path"]]
        if not verify_inclusion(leaf, seq - 1, size, path, bytes.fromhex(checkpoint["root"])):
            raise Invalid(f"record {seq} is not in the signed tree of {size} records: the inclusion proof fails")
        return size


def check_feed_message(msg, validator, partner, last_seq):
    """Verifies one feed message of `partner`; returns its body, or None for a redelivery."""
    headers = msg.headers or {}
    body_bytes, digest = split_record(msg.data)
    try:
        record = json.loads(msg.data)
    except ValueError as e:
        raise Invalid(f"a feed message is not JSON: {e}") from None
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        raise Invalid(f"a feed message does not match record.schema.json at {where}: {errors[0].message}")
    body = record["body"]
    seq = body["seq"]
    if seq <= last_seq:
        return None  # already verified (a redelivery): ack and ignore
    if canonical(body) != body_bytes:
        raise Invalid(f"record {seq}: body is not in canonical form")
    if hashlib.sha256(body_bytes).hexdigest() != digest:
        raise Invalid(f"record {seq}: SHA-256 of the body is not its hash {digest}")
    expected = {"Stockpile-Seq": str(seq), "Stockpile-Hash": digest, "Stockpile-Partner": partner,
                "Nats-Msg-Id": f"{body['event_id']}@{partner}"}
    for name, want in expected.items():
        if headers.get(name) != want:
            raise Invalid(f"record {seq}: header {name} is {headers.get(name)!r}, expected {want!r}")
    if not msg.subject.startswith(f"stockpile.v1.feed.{partner}."):
        raise Invalid(f"record {seq} arrived on {msg.subject}, not on {partner}'s feed")
    if partner not in (body["scope"].get("partners") or []):
        raise Invalid(f"record {seq} on {partner}'s feed does not concern {partner}")
    return body


async def run_partner(args):
    """The accounts mode: the partner's own feed, each record proved in the signed log."""
    import nkeys

    validator = load_validator(args.schemas)
    last_seq, _ = load_state(args.state)
    with open(args.nkey, encoding="ascii") as f:
        seed = f.read().strip().encode()
    public = nkeys.from_seed(seed).public_key.decode()
    nc = await nats.connect(
        args.url,
        nkeys_seed=args.nkey,
        inbox_prefix=f"_INBOX.{public}",
        connect_timeout=args.timeout,
        max_reconnect_attempts=3,
    )
    try:
        js = nc.jetstream(prefix=JS_IMPORT_PREFIX)
        sub = await js.pull_subscribe_bind(durable=args.partner, stream=FEEDS)
        prover = Prover(nc, args.ledger_key, timeout=10.0)
        deadline = time.monotonic() + args.timeout
        received = 0
        while received < args.count:
            msgs, _ = await next_batch(sub, args, received, deadline)
            for msg in msgs:
                body = check_feed_message(msg, validator, args.partner, last_seq)
                if body is not None and received < args.count:
                    proved = await prover.prove(body["seq"], split_record(msg.data)[1], deadline)
                    received += 1
                    last_seq = body["seq"]
                    line = {"seq": body["seq"], "kind": body["kind"], "event_id": body["event_id"], "proved": proved}
                    print(json.dumps(line), flush=True)
                    if args.state:
                        with open(f"{args.state}.tmp", "w", encoding="utf-8") as f:
                            json.dump({"seq": last_seq, "hash": ZERO_HASH}, f)
                        os.replace(f"{args.state}.tmp", args.state)
                await msg.ack()
    finally:
        await nc.close()


async def next_batch(sub, args, received, deadline):
    """The next messages of the pull subscription (at most what is left of COUNT) and the
    seconds left; fails once the deadline passes without COUNT records."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Invalid(f"received {received} of {args.count} records within {args.timeout}s")
        try:
            return await sub.fetch(min(args.count - received, 256), timeout=min(left, 5.0)), left
        except nats.errors.TimeoutError:
            continue


def load_state(path):
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        return state["seq"], state["hash"]
    return 0, ZERO_HASH


def save_state(path, chain):
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"seq": chain.seq, "hash": chain.hash}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


async def run(args):
    chain = Chain(load_validator(args.schemas), *load_state(args.state))
    nc = await nats.connect(args.url, connect_timeout=args.timeout, max_reconnect_attempts=3)
    try:
        js = nc.jetstream()
        # Created on first use to start right after the last verified record (stream seq =
        # ledger seq); afterwards the server remembers the position and this just binds.
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=chain.seq + 1,
            ack_wait=30,
        )
        sub = await js.pull_subscribe(args.filter, durable=args.durable, stream=STREAM, config=config)
        deadline = time.monotonic() + args.timeout
        received = 0
        while received < args.count:
            msgs, left = await next_batch(sub, args, received, deadline)
            for msg in msgs:
                stream_seq = msg.metadata.sequence.stream
                if stream_seq > chain.seq + 1:  # a gap: filtered out, or never verified here
                    await repair(nc, chain, stream_seq - 1, timeout=min(max(left, 1.0), 10.0))
                body = check_message(msg, chain)
                if body is not None and received < args.count:
                    received += 1
                    print(json.dumps({"seq": body["seq"], "kind": body["kind"], "event_id": body["event_id"]}), flush=True)
                save_state(args.state, chain)
                await msg.ack()
    finally:
        await nc.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="NATS server URL, e.g. nats://127.0.0.1:4222")
    parser.add_argument("count", type=int, help="stop after this many records from the stream")
    parser.add_argument("--filter", default=ALL_EVENTS, help=f"subject filter (default {ALL_EVENTS})")
    parser.add_argument("--durable", default="partner-subscriber", help="durable consumer name")
    parser.add_argument("--state", help="file keeping the last verified seq and hash between runs")
    parser.add_argument("--schemas", default=str(DEFAULT_SCHEMAS), help="the schemas/ directory")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for COUNT records")
    parser.add_argument("--partner", help="on the accounts: this partner's feed, each record proved (needs --nkey)")
    parser.add_argument("--nkey", help="the partner user's NKey seed file (partner-<P>.nk of stockpile nats-config)")
    parser.add_argument("--ledger-key", help="with --partner: the ledger's checkpoint key (hex) to pin")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("count must be at least 1")
    if bool(args.partner) != bool(args.nkey):
        parser.error("--partner and --nkey go together")
    try:
        asyncio.run(run_partner(args) if args.partner else run(args))
    except Invalid as e:
        print(f"partner_subscriber: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # connection, JetStream API, timeouts: say what, and fail
        print(f"partner_subscriber: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
