#!/usr/bin/env python3
"""Recall of writ scan and gitleaks on the planted secrets of the history
corpus, or with --tree of the working tree (bench/README.md, "Secret
scanning"): the planted values and their look-alikes come from gen.go (go
run gen.go -planted N [-planted-tree]), writ's findings are matched by
keyed fingerprint under the benchmark key, gitleaks' by value.

  python3 recall.py [--tree] WRIT.json GITLEAKS.json
"""
import hmac, hashlib, json, os, re, subprocess, sys

key = b"bench-fingerprint-key-0123456789"
here = os.path.dirname(os.path.abspath(__file__))
tree = "--tree" in sys.argv
if tree:
    sys.argv.remove("--tree")
args = ["go", "run", "gen.go", "-planted", "537" if tree else "400"] + (["-planted-tree"] if tree else [])
tsv = subprocess.run(args, cwd=here, check=True, capture_output=True, text=True).stdout
secrets, looks = set(), set()
for line in tsv.splitlines():
    kind, text = line.split("\t", 1)
    if kind == "S":
        secrets.add(re.search(r"(ghp_\S+|AKIA\S+|sk_live_\S+|glpat-\S+)", text).group(1))
    else:
        m = re.search(r'"([0-9a-f-]{36})"|(AKIAIOSFODNN7EXAMPLE)|sha256:([0-9a-f]{64})', text)
        looks.add(next(g for g in m.groups() if g))
fp = lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest()
sfp, lfp = {fp(v) for v in secrets}, {fp(v) for v in looks}
w = json.load(open(sys.argv[1]))["findings"]
wf = {f["fingerprint"] for f in w}
print(f"writ:     {len(w)} findings; planted found {len(sfp & wf)}/{len(secrets)}; look-alikes flagged {len(lfp & wf)}/{len(looks)}")
g = json.load(open(sys.argv[2])) or []
gs = {f["Secret"] for f in g}
found = {s for s in secrets if any(s in x for x in gs)}
flag = {l for l in looks if any(l in x for x in gs)}
print(f"gitleaks: {len(g)} findings ({len(gs)} distinct values); planted found {len(found)}/{len(secrets)}; look-alikes flagged {len(flag)}/{len(looks)}")
