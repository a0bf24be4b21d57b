#!/usr/bin/env python3
"""An independent partner client for the partner API tests (settlement/tests/partner_*.rs).

It implements the signing scheme SSC-PARTNER-SIG-V1 from its description (partner/canonical.rs
module doc), with crypto we did not write: SM2 from `gmssl` (SM3 with the default distinguishing
ID 1234567812345678, GM/T 0009) and ECDSA P-256/SHA-256 from `cryptography`.

Commands (every output is one JSON object on stdout):
  pubkey  --alg sm2|p256 --priv HEX
      -> {"public_key": "04..."}
  call    --base URL --alg sm2|p256 --priv HEX --key-id ID --method M --path PATH [--query Q]
          [--body TEXT] [--send-body TEXT] [--send-path PATH] [--ts-offset-ms N] [--nonce N]
          [--repeat K]
      -> {"responses": [{"status": 200, "retry_after": null, "body": {...}}, ...]}
      --send-body / --send-path: send something other than what was signed (tampering).
      --repeat K: send the identical signed request K times (replay).
      --count N: make N distinct signed requests (fresh timestamp and nonce each), quickly.
  verify-webhook --public HEX --event-id ID --timestamp MS --body-file FILE --signature HEX
      -> {"valid": true|false}   (SM2 with SM3, default ID, over SSC-WEBHOOK-V1 text)
"""

import argparse
import hashlib
import json
import secrets
import sys
import time
import urllib.parse

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from gmssl import sm2

SCHEME = "SSC-PARTNER-SIG-V1"


def sm2_public(priv_hex):
    """04||X||Y of d*G on the SM2 curve (gmssl's scalar multiplication)."""
    crypt = sm2.CryptSM2(private_key=priv_hex, public_key="")
    xy = crypt._kg(int(priv_hex, 16), sm2.default_ecc_table["g"])
    return "04" + xy.upper()


def p256_key(priv_hex):
    return ec.derive_private_key(int(priv_hex, 16), ec.SECP256R1())


def p256_public(priv_hex):
    numbers = p256_key(priv_hex).public_key().public_numbers()
    return "04%064X%064X" % (numbers.x, numbers.y)


def encode(text):
    # RFC 3986 unreserved characters stay; everything else %XX (upper hex).
    return urllib.parse.quote(text.encode("utf-8"), safe="-_.~")


def canonical_query(query):
    pairs = []
    for part in [p for p in query.split("&") if p]:
        name, _, value = part.partition("=")
        pairs.append((urllib.parse.unquote(name), urllib.parse.unquote(value)))
    pairs.sort()
    return "&".join(encode(k) + "=" + encode(v) for k, v in pairs)


def canonical_request(method, path, query, body, timestamp, nonce, key_id):
    return "\n".join([
        SCHEME,
        method.upper(),
        path,
        canonical_query(query),
        hashlib.sha256(body).hexdigest(),
        timestamp,
        nonce,
        key_id,
    ])


def sm2_crypt(priv_hex, public_xy):
    """gmssl's CryptSM2 over the 128 hex digits X||Y. gmssl 3.2.2 strips a leading "04" from the
    key it is given with `lstrip("04")`, which also eats every following '0' and '4' digit: a
    key whose X starts with 0x04 (1 in 256) was mangled and verification crashed. The key is set
    after construction instead."""
    crypt = sm2.CryptSM2(private_key=priv_hex, public_key="")
    crypt.public_key = public_xy.lower()
    return crypt


def sign(alg, priv_hex, text):
    data = text.encode("utf-8")
    if alg == "sm2":
        crypt = sm2_crypt(priv_hex, sm2_public(priv_hex)[2:])
        signature = None
        while signature is None:
            signature = crypt.sign_with_sm3(data, secrets.token_hex(32))
        return signature
    der = p256_key(priv_hex).sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return "%064x%064x" % (r, s)


def call(args):
    responses = []
    text = ""
    for _ in range(args.count):
        text, replies = call_once(args)
        responses.extend(replies)
    return {"responses": responses, "canonical": text}


def call_once(args):
    body = (args.body or "").encode("utf-8")
    timestamp = str(int(time.time() * 1000) + args.ts_offset_ms)
    nonce = args.nonce or secrets.token_urlsafe(24)
    text = canonical_request(args.method, args.path, args.query or "", body, timestamp, nonce,
                             args.key_id)
    signature = sign(args.alg, args.priv, text)
    headers = {
        "x-ssc-key-id": args.key_id,
        "x-ssc-timestamp": timestamp,
        "x-ssc-nonce": nonce,
        "x-ssc-signature": signature,
    }
    if args.body is not None:
        headers["content-type"] = "application/json"
    sent_body = args.send_body.encode("utf-8") if args.send_body is not None else body
    sent_path = args.send_path or args.path
    url = args.base + sent_path + ("?" + args.query if args.query else "")
    responses = []
    for _ in range(args.repeat):
        reply = requests.request(args.method, url, data=sent_body or None, headers=headers,
                                 timeout=30)
        try:
            parsed = reply.json()
        except ValueError:
            parsed = reply.text
        responses.append({
            "status": reply.status_code,
            "retry_after": reply.headers.get("retry-after"),
            "body": parsed,
        })
    return text, responses


def verify_webhook(args):
    body = open(args.body_file, "rb").read()
    text = "SSC-WEBHOOK-V1\n%s\n%s\n%s" % (args.event_id, args.timestamp,
                                           hashlib.sha256(body).hexdigest())
    public = args.public[2:] if len(args.public) == 130 else args.public
    crypt = sm2_crypt("", public)
    return {"valid": bool(crypt.verify_with_sm3(args.signature.lower(), text.encode("utf-8")))}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pubkey")
    p.add_argument("--alg", choices=["sm2", "p256"], required=True)
    p.add_argument("--priv", required=True)
    c = sub.add_parser("call")
    c.add_argument("--base", required=True)
    c.add_argument("--alg", choices=["sm2", "p256"], required=True)
    c.add_argument("--priv", required=True)
    c.add_argument("--key-id", required=True)
    c.add_argument("--method", required=True)
    c.add_argument("--path", required=True)
    c.add_argument("--query")
    c.add_argument("--body")
    c.add_argument("--send-body")
    c.add_argument("--send-path")
    c.add_argument("--ts-offset-ms", type=int, default=0)
    c.add_argument("--nonce")
    c.add_argument("--repeat", type=int, default=1)
    c.add_argument("--count", type=int, default=1)
    w = sub.add_parser("verify-webhook")
    w.add_argument("--public", required=True)
    w.add_argument("--event-id", required=True)
    w.add_argument("--timestamp", required=True)
    w.add_argument("--body-file", required=True)
    w.add_argument("--signature", required=True)
    args = parser.parse_args()
    if args.command == "pubkey":
        public = sm2_public(args.priv) if args.alg == "sm2" else p256_public(args.priv)
        out = {"public_key": public}
    elif args.command == "call":
        out = call(args)
    else:
        out = verify_webhook(args)
    json.dump(out, sys.stdout, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
