#!/usr/bin/env python3
"""Builds T-Developer messages as a Python producer does, and checks Rust-sealed ones.

Formats (the specification is in shared/domain/src/messaging/envelope.rs):

- ``envelope``: the project envelope, version 1 (``--secret``/``--kid``).
- ``compat``: the existing producers' messages (``--passphrase``/``--signing-key``),
  signed, and with ``--encrypt`` encrypted; ``--compat-order`` says which wraps which.

Modes:

- default: print one body per line (or, with ``--queue-url``, send each with boto3;
  FIFO queues get ``MessageGroupId`` = the group and ``MessageDeduplicationId`` = the
  idempotency key).
- ``--verify``: read envelope bodies from stdin, one per line; check each (signature,
  decryption) and print ``{"id", "type", "payload", ...}`` per body as canonical JSON;
  exit 1 at the first that fails.
- ``--canonical``: read JSON texts from stdin, one per line, and print each as canonical
  JSON; ``--compat-text``: print ``json.dumps(sorted(obj.items()), separators=(",", ":"))``.

Uses only the standard library and ``cryptography`` (and ``boto3`` to send).
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import sys
import uuid

from cryptography.fernet import Fernet, InvalidToken

# Non-ASCII (BMP and astral), control characters, DEL, nested objects whose keys are not
# sorted, floats of every layout and an integer beyond 64 bits: what canonical JSON and
# the compatibility signature must both get exactly right.
DEFAULT_PAYLOAD = {
    "text": "Résumé: naïve café — 東京 😀 \"quoted\" \\ tab\t nl\n del\x7f ctl\x01",
    "nested": {"zeta": {"y": 1, "b": [True, False, None]}, "alpha": [1.5, 2.5e-07, 1e16, -0.0, 0.1, 1e-05]},
    "count": 3,
    "ratio": 0.30000000000000004,
    "big": 10**20,
    "négatif": -42,
}


def canonical(value):
    """Canonical JSON: what an envelope's signature covers."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compat_text(message):
    """What an existing producer signs."""
    return json.dumps(sorted(message.items()), separators=(",", ":"))


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def naive_utc_now():
    # datetime.utcnow().isoformat(), without utcnow's deprecation warning.
    return utc_now().replace(tzinfo=None).isoformat()


def envelope_keys(secret):
    secret = secret.encode("utf-8")
    signing = hmac.new(secret, b"tdev envelope signing", hashlib.sha256).digest()
    encryption = hmac.new(secret, b"tdev envelope encryption", hashlib.sha256).digest()
    return signing, Fernet(base64.urlsafe_b64encode(encryption))


def compat_fernet(passphrase):
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode("utf-8"), b"T-Developer-Salt", 100_000, 32)
    return Fernet(base64.urlsafe_b64encode(key))


def build_envelope(args, index, payload):
    signing, fernet = envelope_keys(args.secret)
    message_id = str(uuid.uuid4())
    envelope = {
        "v": 1,
        "kid": args.kid,
        "id": message_id,
        "type": args.type,
        "priority": args.priority,
        "group": args.group or recipient_label(args),
        "idempotency_key": f"{message_id}-key",
        "metadata": {"trace": f"trace-{index}", "attempt": index, "source": "producer.py"},
        "sender": "python-producer",
        "created_at": utc_now().isoformat(),
    }
    if args.capability:
        envelope["capability"] = args.capability
    else:
        envelope["to_agent"] = args.to_agent
    if args.encrypt:
        envelope["enc"] = "fernet"
        envelope["ciphertext"] = fernet.encrypt(canonical(payload).encode("utf-8")).decode("ascii")
    else:
        envelope["payload"] = payload
    envelope["sig"] = hmac.new(signing, canonical(envelope).encode("utf-8"), hashlib.sha256).hexdigest()
    # Any JSON layout will do: the default one (spaces, \\u escapes) tests the reader.
    return json.dumps(envelope), envelope["group"], envelope["idempotency_key"]


def compat_sign(message, signing_key):
    message["timestamp"] = naive_utc_now()
    message["signature"] = hmac.new(
        signing_key.encode("utf-8"), compat_text(message).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    return message


def compat_encrypt(message, fernet):
    token = fernet.encrypt(json.dumps(message).encode("utf-8"))
    return {
        "encrypted": True,
        "encrypted_payload": base64.b64encode(token).decode("ascii"),
        "timestamp": naive_utc_now(),
        "encryption_method": "fernet",
    }


def build_compat(args, index, payload):
    message_id = str(uuid.uuid4())
    message = {
        "message_id": message_id,
        "message_type": args.type,
        "content": payload,
        "priority": args.priority,
        "from_agent": "legacy-producer",
        "metadata": {"trace": f"trace-{index}", "attempt": index},
    }
    if args.capability:
        message["capability"] = args.capability
    else:
        message["recipient"] = args.to_agent
    if args.group:
        message["correlation_id"] = args.group
    body = message
    if args.encrypt:
        fernet = compat_fernet(args.passphrase)
        if args.compat_order in ("sign-then-encrypt", "both"):
            body = compat_sign(body, args.signing_key)
        body = compat_encrypt(body, fernet)
        if args.compat_order in ("encrypt-then-sign", "both"):
            body = compat_sign(body, args.signing_key)
    else:
        body = compat_sign(body, args.signing_key)
    return json.dumps(body), args.group or recipient_label(args), message_id


def recipient_label(args):
    return f"capability:{args.capability}" if args.capability else f"agent:{args.to_agent}"


def verify(args):
    """Checks envelopes sealed by anyone (Rust) and prints what they carry."""
    signing, fernet = envelope_keys(args.secret)
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        envelope = json.loads(line)
        if envelope.get("v") != 1 or envelope.get("kid") != args.kid:
            fail(number, f"not a version 1 envelope with kid {args.kid!r}")
        signature = envelope.pop("sig", None)
        expected = hmac.new(signing, canonical(envelope).encode("utf-8"), hashlib.sha256).hexdigest()
        if not isinstance(signature, str) or not hmac.compare_digest(signature, expected):
            fail(number, "the signature does not match")
        if envelope.get("enc") == "fernet":
            try:
                plaintext = fernet.decrypt(envelope["ciphertext"].encode("ascii")).decode("utf-8")
            except (InvalidToken, UnicodeDecodeError) as error:
                fail(number, f"cannot decrypt: {error!r}")
            if canonical(json.loads(plaintext)) != plaintext:
                fail(number, "the plaintext is not canonical JSON")
            payload = json.loads(plaintext)
        else:
            payload = envelope["payload"]
        created_at = datetime.datetime.fromisoformat(envelope["created_at"].replace("Z", "+00:00"))
        if created_at.tzinfo is None:
            fail(number, "created_at has no offset")
        opened = {key: envelope.get(key) for key in ("id", "type", "to_agent", "capability", "priority", "group",
                                                      "idempotency_key", "metadata", "sender", "created_at")}
        opened["payload"] = payload
        print(canonical(opened))


def fail(number, reason):
    print(f"body {number}: {reason}", file=sys.stderr)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("envelope", "compat"), default="envelope")
    parser.add_argument("--encrypt", action="store_true")
    parser.add_argument("--compat-order", choices=("sign-then-encrypt", "encrypt-then-sign", "both"),
                        default="sign-then-encrypt", help="with --format compat --encrypt: what is signed")
    parser.add_argument("--secret", help="envelope key secret")
    parser.add_argument("--kid", help="envelope key id")
    parser.add_argument("--passphrase", help="compat Fernet passphrase")
    parser.add_argument("--signing-key", help="compat HMAC key")
    parser.add_argument("--to-agent", default="summarizer")
    parser.add_argument("--capability", help="address a capability instead of --to-agent")
    parser.add_argument("--type", default="task.assign")
    parser.add_argument("--payload", help="JSON (default: one exercising every corner of the format)")
    parser.add_argument("--priority", type=int, default=5)
    parser.add_argument("--group")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--queue-url", help="send with boto3 instead of printing")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--verify", action="store_true", help="check envelopes read from stdin")
    parser.add_argument("--canonical", action="store_true", help="canonicalize JSON read from stdin")
    parser.add_argument("--compat-text", action="store_true", help="compat signing text of JSON from stdin")
    args = parser.parse_args()

    if args.canonical or args.compat_text:
        for line in sys.stdin:
            if line.strip():
                value = json.loads(line)
                print(canonical(value) if args.canonical else compat_text(value))
        return
    if args.format == "envelope" and not (args.secret and args.kid):
        parser.error("--format envelope needs --secret and --kid")
    if args.verify:
        verify(args)
        return
    if args.format == "compat" and not (args.passphrase and args.signing_key):
        parser.error("--format compat needs --passphrase and --signing-key")

    payload = json.loads(args.payload) if args.payload else DEFAULT_PAYLOAD
    build = build_envelope if args.format == "envelope" else build_compat
    queue = None
    if args.queue_url:
        import boto3

        queue = boto3.client("sqs", endpoint_url=args.endpoint_url, region_name=args.region)
    for index in range(args.count):
        body, group, dedup_id = build(args, index, payload)
        if queue is None:
            print(body)
            continue
        request = {"QueueUrl": args.queue_url, "MessageBody": body}
        if args.queue_url.endswith(".fifo"):
            request["MessageGroupId"] = group
            request["MessageDeduplicationId"] = dedup_id
        queue.send_message(**request)


if __name__ == "__main__":
    main()
