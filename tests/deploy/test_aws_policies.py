#!/usr/bin/env python3
"""deploy/aws is least privilege and self-consistent: every policy parses, no
wildcard actions or *FullAccess, capture needs only the KVS upload, and the managed
policies in the CloudFormation template grant exactly the actions of the
standalone policy documents; the stores' resources have their retention
(snapshot lifecycle on frames/, metadata TTL) and encryption."""
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


def check_metadata_table(res, docs):
    """The metadata store's table (lib/store/meta_dynamodb.c) and who may use it."""
    out = []
    t = res.get("MetadataTable", {}).get("Properties")
    if not t:
        return ["template lacks MetadataTable"]
    keys = {k["AttributeName"]: k["KeyType"] for k in t["KeySchema"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in t["AttributeDefinitions"]}
    if keys != {"camera": "HASH", "sk": "RANGE"} or types != {"camera": "S", "sk": "S"}:
        out.append(f"MetadataTable keys {keys} {types}: want camera S (HASH) + sk S (RANGE)")
    ttl = t.get("TimeToLiveSpecification", {})
    if ttl.get("AttributeName") != "expires_at" or ttl.get("Enabled") is not True:
        out.append("MetadataTable: TTL on expires_at is not enabled")
    if t.get("BillingMode") != "PAY_PER_REQUEST":
        out.append("MetadataTable is not on-demand")
    if t.get("SSESpecification", {}).get("SSEEnabled") is not True:
        out.append("MetadataTable is not encrypted")
    want = {"dispatch": {"dynamodb:PutItem"}, "facematch": {"dynamodb:PutItem"},
            "dedupe": {"dynamodb:PutItem"}, "console": {"dynamodb:Query"}}
    for svc, acts in want.items():
        got = set()
        for s in docs.get(svc, {}).get("Statement", []):
            if "${MetadataTable}" in json.dumps(s.get("Resource")):
                got |= actions([s])
        if got != acts:
            out.append(f"{svc} on the metadata table: {sorted(got)}, want {sorted(acts)}")
    for svc, act in (("dispatch", "s3:PutObject"), ("notifier", "s3:GetObject"),
                     ("console", "s3:GetObject")):
        ok = any(act in actions([s]) and s.get("Resource") ==
                 "arn:${Partition}:s3:::${BucketName}/frames/*"
                 for s in docs.get(svc, {}).get("Statement", []))
        if not ok:
            out.append(f"{svc}: {act} is not limited to frames/* of the bucket")
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
    if actions(docs.get("capture", {}).get("Statement", [])) != {
            "kinesisvideo:GetDataEndpoint", "kinesisvideo:PutMedia"}:
        failures.append("capture needs only the KVS upload (GetDataEndpoint, PutMedia)")
    with open(os.path.join(AWS, "vigil.cfn.yaml")) as f:
        text = f.read()
    if "FullAccess" in text or "FullAccess" in json.dumps(docs):
        failures.append("a *FullAccess policy is referenced")
    cfn = yaml.load(text, Loader=CfnLoader)
    res = cfn["Resources"]
    for svc in ("capture", "dispatch", "facematch", "dedupe", "notifier", "console", "operator"):
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
    rules = bucket.get("LifecycleConfiguration", {}).get("Rules", [])
    if not any(r.get("Prefix") == "frames/" and r.get("Status") == "Enabled" and
               r.get("ExpirationInDays") == {"Ref": "SnapshotRetentionDays"} for r in rules):
        failures.append("no lifecycle rule expires frames/ after SnapshotRetentionDays")
    failures += check_metadata_table(res, docs)
    for f in failures:
        print("not ok -", f)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
