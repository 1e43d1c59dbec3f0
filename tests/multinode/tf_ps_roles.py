"""A TensorFlow parameter-server job without TensorFlow: reads TF_CONFIG as
TensorFlow would, parameter servers ("ps") listen on their host:port and never
exit by themselves; the chief and the workers connect to every parameter server,
exchange a message and exit 0. trainrun must then stop the servers."""
import json
import os
import socket
import socketserver
import sys
import time

config = json.loads(os.environ["TF_CONFIG"])
cluster, task = config["cluster"], config["task"]
me = f"{task['type']} {task['index']}"
rank = os.environ.get("RANK")
print(f"rank {rank} is {me}; cluster {json.dumps(cluster, sort_keys=True)}", flush=True)

if task["type"] == "ps":
    host, port = cluster["ps"][task["index"]].rsplit(":", 1)

    class Answer(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode().strip()
            print(f"{me} heard '{line}'", flush=True)
            self.wfile.write(f"{me} acks {line}\n".encode())

    socketserver.TCPServer.allow_reuse_address = True
    with socketserver.ThreadingTCPServer((host, int(port)), Answer) as server:
        print(f"{me} listening on {host}:{port}", flush=True)
        server.serve_forever()  # as a TensorFlow server: never returns
    sys.exit(3)

for index, address in enumerate(cluster.get("ps", [])):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(f"hello from {me}\n".encode())
                reply = s.makefile().readline().strip()
            break
        except OSError as e:
            if time.monotonic() > deadline:
                print(f"{me} could not reach ps {index} at {address}: {e}", file=sys.stderr)
                sys.exit(4)
            time.sleep(0.1)
    print(f"{me} got '{reply}'", flush=True)
    if reply != f"ps {index} acks hello from {me}":
        sys.exit(5)
print(f"{me} done", flush=True)
