#!/usr/bin/env python3
"""Cost of `writ scan --validate` (#15): the same tree scanned by a writ
built before live validation (BEFORE), the one with it (AFTER) without
the flag, and AFTER with --validate against a loopback fake of every
provider (answering 401 at once), alternating per round. Prints wall and
CPU seconds (user + system of the child, getrusage) per run and the
median ratios.

usage: validate_overhead.py BEFORE AFTER TREE ROUNDS
"""
import http.server, os, resource, statistics, subprocess, sys, threading, time

before, after, tree, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

calls = 0
class Fake(http.server.BaseHTTPRequestHandler):
    def answer(self):
        global calls
        calls += 1
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = answer
    def log_message(self, *a): pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % srv.server_address[1]
env = dict(os.environ, WRIT_SCAN_VALIDATE_BASE=",".join(
    "%s=%s/%s" % (p, base, p) for p in ["github", "slack", "openai", "anthropic", "stripe"]))
data = "/tmp/scanval-overhead-data"

def run(binary, extra):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([binary, "--data-dir", data, "scan", "--no-ignore-file", "--no-progress", "--fail-on", "none",
                        "-o", "json", *extra, tree], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit("%s: exit %d: %s" % (binary, p.returncode, p.stderr.decode()[-500:]))
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, p.stdout.count(b'"rule_id"')

variants = [("before", before, []), ("after", after, []), ("after --validate", after, ["--validate"])]
res = {v[0]: [] for v in variants}
print("loadavg", open("/proc/loadavg").read().strip())
for i in range(rounds):
    for name, b, extra in variants:
        c0 = calls
        wall, cpu, n = run(b, extra)
        res[name].append(cpu)
        print("round %d %-17s wall %6.2f s  cpu %6.2f s  findings %d  provider calls %d" % (i, name, wall, cpu, n, calls - c0))
print("loadavg", open("/proc/loadavg").read().strip())
m = {k: statistics.median(v) for k, v in res.items()}
print("median cpu: " + ", ".join("%s %.2f s" % kv for kv in m.items()))
print("after/before %.3f, --validate/after %.3f" % (m["after"] / m["before"], m["after --validate"] / m["after"]))
