#!/usr/bin/env python3
"""Side-by-side secret scanning: writ scan and the gitleaks CLI on the same
inputs, alternating, in one run. Prints wall seconds, CPU seconds (user +
system of the child) and findings per run. See bench/README.md.

  python3 run.py WRIT GITLEAKS TREE REPO ROUNDS
"""
import json, os, resource, subprocess, sys, tempfile, time

writ, gitleaks, tree, repo, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
key = tempfile.NamedTemporaryFile(delete=False)
key.write(b"bench-fingerprint-key-0123456789\n"); key.close()
out = tempfile.mktemp(suffix=".json")

def run(args):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    with open(out, "w") as f:
        subprocess.run(args, stdout=f, stderr=subprocess.DEVNULL, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu

def count_writ():
    with open(out) as f:
        return len(json.load(f)["findings"])

def count_gitleaks(path):
    with open(path) as f:
        return len(json.load(f) or [])

cases = {
    "tree": (
        [writ, "scan", "--key-file", key.name, "--no-ignore-file", "--fail-on", "none", "-o", "json", tree],
        [gitleaks, "dir", tree, "--no-banner", "--exit-code", "0", "--report-format", "json", "--report-path", out + ".gl"],
    ),
    "history": (
        [writ, "scan", "--git", "--key-file", key.name, "--fail-on", "none", "-o", "json", repo],
        [gitleaks, "git", repo, "--log-opts=--all", "--no-banner", "--exit-code", "0", "--report-format", "json", "--report-path", out + ".gl"],
    ),
}
for r in range(rounds):
    for name, (w, g) in cases.items():
        wall, cpu = run(w)
        print(f"round {r} {name:8s} writ     wall {wall:7.2f}s cpu {cpu:7.2f}s findings {count_writ()}", flush=True)
        wall, cpu = run(g)
        print(f"round {r} {name:8s} gitleaks wall {wall:7.2f}s cpu {cpu:7.2f}s findings {count_gitleaks(out + '.gl')}", flush=True)
