#!/usr/bin/env python3
"""deploy/aws is least privilege and self-consistent: every policy parses, no
wildcard actions or *FullAccess, capture needs nothing, and the managed
policies in the CloudFormation template grant exactly the actions of the
standalone policy documents."""
import glob
import json
import os
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
AWS = os.path.join(ROOT, "deploy", "aws")


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}


CfnLoader.add_multi_constructor("!", _tag)


def actions(statements):
    out = set()
    for s in statements:
        a = s.get("Action", [])
        out.update([a] if isinstance(a, str) else a)
    return out


def main():
    failures = []
    docs = {}
    for path in sorted(glob.glob(os.path.join(AWS, "policies", "*.json"))):
        name = os.path.basename(path)[:-5]
        with open(path) as f:
            docs[name] = json.load(f)
        for s in docs[name]["Statement"]:
            acts = actions([s])
            if any(a == "*" or a.endswith(":*") for a in acts):
                failures.append(f"{name}: wildcard action in {s.get('Sid')}")
            if s.get("Effect") != "Allow":
                failures.append(f"{name}: {s.get('Sid')} is not an Allow")
    if docs.get("capture", {}).get("Statement") != []:
        failures.append("capture must need no AWS permission")
    with open(os.path.join(AWS, "vigil.cfn.yaml")) as f:
        text = f.read()
    if "FullAccess" in text or "FullAccess" in json.dumps(docs):
        failures.append("a *FullAccess policy is referenced")
    cfn = yaml.load(text, Loader=CfnLoader)
    res = cfn["Resources"]
    for svc in ("dispatch", "facematch", "notifier", "console", "operator"):
        key = svc.capitalize() + "Policy"
        if key not in res:
            failures.append(f"template lacks {key}")
            continue
        got = actions(res[key]["Properties"]["PolicyDocument"]["Statement"])
        want = actions(docs[svc]["Statement"])
        if got != want:
            failures.append(f"{key}: template {sorted(got)} != policies/{svc}.json {sorted(want)}")
    bucket = res["SnapshotBucket"]["Properties"]
    if not all(bucket["PublicAccessBlockConfiguration"].values()):
        failures.append("bucket is not fully private")
    if "BucketEncryption" not in bucket:
        failures.append("bucket is not encrypted")
    for f in failures:
        print("not ok -", f)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
