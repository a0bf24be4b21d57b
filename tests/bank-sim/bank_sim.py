#!/usr/bin/env python3
"""Issuer bank simulator for the switch's ISO 8583 link (issue 7).

Written with pyiso8583 (PyPI, an ISO 8583 library we did not write) and pycryptodome, so the
switch's own codec (settlement/src/iso8583) and MAC are checked against independent code. The
field layout below is written by hand from the dialect documented in
settlement/src/iso8583/spec.rs (packed BCD numerics, binary bitmaps, BCD length prefixes, a 2-byte
length frame, MAC in field 64 or 128), not generated from the Rust table.

MAC: ISO/IEC 9797-1 MAC algorithm 3 (retail MAC), padding method 1, 2-key TDES, over the packed
message from the MTI up to (not including) the 8 MAC bytes, which are always last.

Issuer rules for purchases (0100/0200 with processing code 000000 or none; amount in fen,
field 4), checked in this order (a refund 200000 or void 020000 passes only the MAC check and
is approved: the issuer undoes what it approved):
  * wrong MAC                      -> 39 = A0 (CUP "MAC verification failed"), nothing applied
  * amount ending in 51 / 55 / 05  -> decline with that code
  * amount ending in 98            -> no answer at all (the switch must time out and reverse)
  * amount ending in 99            -> garbage bytes in a valid frame
  * amount ending in 97            -> approve, but only after 2.5 s (late: after the switch's
                                      per-hop timeout, so the switch sees an unmatched response)
  * amount ending in 10            -> partial approval (39 = 10, field 4 = half the amount)
  * otherwise                      -> approve (39 = 00, field 38 = 6-digit authorisation code)
0400 reversals are applied once per original (field 90); a repeat is acknowledged (00) and not
applied again. 0800 sign-on (70 = 001) and echo (70 = 301) answer 0810 / 00.

Every applied event is appended as one JSON line to --events (flushed and fsynced), which the
tests read to count what landed. PANs are never written: only their last 4 digits.

Usage:
  bank_sim.py serve --port N --mac-key HEX32 --events FILE
  bank_sim.py decode --mac-key HEX32     (stdin: hex frame body; stdout: JSON, "mac_ok")
  bank_sim.py encode --mac-key HEX32     (stdin: JSON fields; stdout: hex body with MAC)
  bank_sim.py selftest --mac-key ANY     (the retail MAC against ISO 9797-1 Annex B.4 vectors)
"""

import argparse
import binascii
import json
import os
import socket
import socketserver
import sys
import threading
import time

import iso8583
from Crypto.Cipher import DES

FRAME_LEN_MAX = 2048


def _n(max_len, var=0):
    """Packed-BCD numeric: fixed (var=0, left pad 0) or LLVAR (1-byte BCD length, right pad F)."""
    spec = {"data_enc": "b", "len_enc": "bcd", "len_type": var, "max_len": max_len,
            "len_count": "nibbles"}
    if var:
        spec["right_pad"] = "F"
    elif max_len % 2:
        spec["left_pad"] = "0"
    return spec


def _a(max_len, var=0):
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": var, "max_len": max_len}


SPEC = {
    "h": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 0},
    "t": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2},
    "p": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8},
    "1": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8},
    "2": _n(19, 1),
    "3": _n(6),
    "4": _n(12),
    "7": _n(10),
    "11": _n(6),
    "12": _n(6),
    "13": _n(4),
    "22": _n(3),
    "23": _n(3),
    "25": _n(2),
    "32": _n(11, 1),
    "35": _n(37, 1),
    "37": _a(12),
    "38": _a(6),
    "39": _a(2),
    "41": _a(8),
    "42": _a(15),
    "49": _a(3),
    "55": {"data_enc": "b", "len_enc": "bcd", "len_type": 2, "max_len": 255},
    "64": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8},
    "70": _n(3),
    "90": _n(42),
    "128": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8},
}
# Fields pyiso8583 may see that our dialect lacks: decoding must fail on them, so they stay out.


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3, padding method 1 (zeros; empty data gets one block)."""
    k1, k2 = key[:8], key[8:16]
    if len(data) % 8 or not data:
        data = data + b"\x00" * (8 - len(data) % 8)
    h = b"\x00" * 8
    e1 = DES.new(k1, DES.MODE_ECB)
    for i in range(0, len(data), 8):
        h = e1.encrypt(bytes(a ^ b for a, b in zip(h, data[i:i + 8])))
    return e1.encrypt(DES.new(k2, DES.MODE_ECB).decrypt(h))


def decode(body: bytes, key: bytes):
    """(fields dict, mac_ok) — raises iso8583.DecodeError on a malformed message."""
    doc, _ = iso8583.decode(bytearray(body), SPEC)
    mac = doc.get("128") or doc.get("64")
    mac_ok = mac is not None and retail_mac(key, body[:-8]).hex().upper() == mac
    return doc, mac_ok


def encode(fields: dict, key: bytes) -> bytes:
    doc = {k: v for k, v in fields.items() if k not in ("64", "128", "p", "1")}
    mac_field = "128" if any(k.isdigit() and 64 < int(k) < 128 for k in doc) else "64"
    doc[mac_field] = "00" * 8
    body, _ = iso8583.encode(doc, SPEC)
    body = bytes(body)
    mac = retail_mac(key, body[:-8])
    return body[:-8] + mac


class Issuer:
    """Issuer state: applied reversals, authorisation counter, the events file."""

    def __init__(self, key: bytes, events_path: str):
        self.key = key
        self.lock = threading.Lock()
        self.events_path = events_path
        self.reversed = set()
        self.auth_seq = 0
        if events_path and os.path.exists(events_path):
            with open(events_path, encoding="utf-8") as f:
                for line in f:
                    event = json.loads(line)
                    if event.get("kind") == "reversal" and event.get("applied"):
                        self.reversed.add(event["original"])

    def event(self, **event):
        if not self.events_path:
            return
        with open(self.events_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def answer(self, body: bytes):
        """The response body, or None for 'no answer', or b'' for garbage."""
        try:
            doc, mac_ok = decode(body, self.key)
        except Exception as e:  # malformed: a real host drops it; log the reason only
            self.event(kind="malformed", reason=type(e).__name__)
            return None
        mti = doc["t"]
        resp = {"t": f"{int(mti) + 10:04d}"}
        for k in ("3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49", "70", "90"):
            if k in doc:
                resp[k] = doc[k]
        pan4 = doc.get("2", "")[-4:]
        if not mac_ok:
            resp["39"] = "A0"
            self.event(kind="bad_mac", mti=mti, stan=doc.get("11"))
            return encode(resp, self.key)
        if mti == "0800":
            resp["39"] = "00"
            self.event(kind="network", code=doc.get("70"))
            return encode(resp, self.key)
        if mti == "0400":
            original = doc.get("90", "")
            with self.lock:
                applied = original not in self.reversed
                self.reversed.add(original)
                self.event(kind="reversal", original=original, applied=applied,
                           amount=int(doc.get("4", "0")), pan4=pan4)
            resp["39"] = "00"
            return encode(resp, self.key)
        if mti not in ("0100", "0200"):
            resp["39"] = "12"
            return encode(resp, self.key)
        amount = int(doc.get("4", "0"))
        tail = amount % 100 if doc.get("3", "000000") == "000000" else 0
        if tail == 98:
            self.event(kind="timeout", mti=mti, stan=doc.get("11"), amount=amount, pan4=pan4)
            return None
        if tail == 99:
            self.event(kind="garbage", mti=mti, stan=doc.get("11"))
            return b""
        if tail == 97:
            time.sleep(2.5)
        code = {51: "51", 55: "55", 5: "05", 10: "10"}.get(tail, "00")
        if code in ("00", "10"):
            with self.lock:
                self.auth_seq += 1
                resp["38"] = f"{self.auth_seq % 1000000:06d}"
            if code == "10":
                amount //= 2
                resp["4"] = f"{amount:012d}"
        resp["39"] = code
        self.event(kind="auth", mti=mti, stan=doc.get("11"), rc=code, amount=amount,
                   processing=doc.get("3"), pan4=pan4, rrn=doc.get("37"))
        return encode(resp, self.key)


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve(port: int, key: bytes, events: str):
    issuer = Issuer(key, events)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            conn = self.request
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                head = recv_exact(conn, 2)
                if head is None:
                    return
                length = int.from_bytes(head, "big")
                if length > FRAME_LEN_MAX:
                    return
                body = recv_exact(conn, length)
                if body is None:
                    return
                out = issuer.answer(body)
                if out is None:
                    continue
                if out == b"":
                    out = b"\x07garbage\xff"
                conn.sendall(len(out).to_bytes(2, "big") + out)

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    with Server(("127.0.0.1", port), Handler) as server:
        print(f"listening {server.server_address[1]}", flush=True)
        server.serve_forever()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve", "decode", "encode", "selftest"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mac-key", required=True)
    parser.add_argument("--events", default="")
    args = parser.parse_args()
    key = binascii.unhexlify(args.mac_key)
    if args.command == "selftest":
        # ISO/IEC 9797-1:2011 Annex B.4 (MAC algorithm 3, padding method 1), also in
        # fixtures/vectors/mac.toml.
        vk = binascii.unhexlify("0123456789ABCDEFFEDCBA9876543210")
        ok = (retail_mac(vk, b"Now is the time for all ").hex().upper() == "A1C72E74EA3FA9B6"
              and retail_mac(vk, b"Now is the time for it").hex().upper() == "2E2B1428CC78254F")
        print("selftest ok" if ok else "selftest FAILED", flush=True)
        sys.exit(0 if ok else 1)
    if args.command == "serve":
        serve(args.port, key, args.events)
    elif args.command == "decode":
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            try:
                doc, mac_ok = decode(binascii.unhexlify(line), key)
                fields = {k: v for k, v in doc.items() if k not in ("h", "p", "1")}
                print(json.dumps({"ok": True, "fields": fields, "mac_ok": mac_ok}), flush=True)
            except Exception as e:
                print(json.dumps({"ok": False, "error": type(e).__name__}), flush=True)
    else:
        for line in sys.stdin:
            line = line.strip()
            if line:
                print(encode(json.loads(line), key).hex().upper(), flush=True)


if __name__ == "__main__":
    main()
