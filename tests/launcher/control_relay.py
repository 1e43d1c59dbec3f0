#!/usr/bin/python3
"""An on-path attacker for trainrun's control plane, for tests.

Relays a worker's connections to the head on 127.0.0.1 and, in the running
phase (once the head has sent Start), tampers once as --mode says. It does not
know the job token:
  none    relays only (shows that the relay itself is transparent)
  inject  sends the worker a forged Stop (exit code 42) right after Start,
          with a random tag
  replay  sends the worker the head's Start frame a second time
  flip    flips one payload byte of the worker's first frame to the head
          after Start
Frames are cut as control_protocol.h lays them out: a 12-byte header, the
payload, and a 32-byte tag from the third frame of each direction on (after
Hello and Auth one way, Challenge and Welcome the other).

Usage: control_relay.py HEAD_PORT MODE PORT_FILE LOG_FILE
It writes the port it listens on to PORT_FILE, and what it did to LOG_FILE.
"""
import json
import os
import socket
import struct
import sys
import threading

HEADER, TAG = 12, 32
START, STOP = 13, 23


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class Relay:
    def __init__(self, head_port, mode, log_path):
        self.head_port, self.mode, self.log_path = head_port, mode, log_path
        self.lock = threading.Lock()
        self.started = False
        self.acted = False

    def log(self, line):
        with self.lock, open(self.log_path, "a") as log:
            log.write(line + "\n")

    def act_once(self):
        with self.lock:
            if self.acted or not self.started:
                return False
            self.acted = True
            return True

    def pump(self, src, dst, direction):
        count = 0
        try:
            while True:
                header = read_exact(src, HEADER)
                (length,) = struct.unpack(">I", header[8:12])
                frame = header + read_exact(src, length + (TAG if count >= 2 else 0))
                count += 1
                kind = header[5]
                if (self.mode == "flip" and direction == "node->head" and length > 0
                        and self.act_once()):
                    frame = frame[:HEADER] + bytes([frame[HEADER] ^ 0x01]) + frame[HEADER + 1:]
                    self.log(f"flipped a payload byte of frame type {kind} to the head")
                dst.sendall(frame)
                if direction == "head->node" and kind == START:
                    with self.lock:
                        self.started = True
                    if self.mode == "replay" and self.act_once():
                        dst.sendall(frame)
                        self.log("replayed Start to the worker")
                    if self.mode == "inject" and self.act_once():
                        body = json.dumps({"exitCode": 42,
                                           "reason": "forged stop from the relay"}).encode()
                        forged = (b"TRNC" + bytes([header[4], STOP, 0, 0]) +
                                  struct.pack(">I", len(body)) + body + os.urandom(TAG))
                        dst.sendall(forged)
                        self.log("injected a forged Stop to the worker")
        except (EOFError, OSError):
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(self, node):
        try:
            head = socket.create_connection(("127.0.0.1", self.head_port))
        except OSError:
            node.close()  # the head is not up yet: the worker retries
            return
        threading.Thread(target=self.pump, args=(node, head, "node->head"), daemon=True).start()
        threading.Thread(target=self.pump, args=(head, node, "head->node"), daemon=True).start()


def main():
    head_port, mode, port_file, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    relay = Relay(head_port, mode, log_path)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    while True:
        node, _ = listener.accept()
        relay.serve(node)


if __name__ == "__main__":
    main()
