#!/usr/bin/env python3
"""vigilctl's AWS commands end to end: `aws whoami` (with every credential source
of the chain that hands out temporary credentials), `faces create-collection`,
`faces create-table`, `faces index` (IndexFaces, then the profile as a
DynamoDB item keyed by FaceId), `faces list` and `faces profile`, against the
SigV4-checking AWS fake (Rekognition, STS) and dynalite behind the SigV4
proxy. Also: throttling is retried, a wrong secret is refused clearly."""
import argparse
import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, check, free_port, port_open, wait_for  # noqa: E402

KEY, SECRET = "AKIDVIGILCTL", "ctl/secret+key"
FACE = "/usr/share/doc/opencv-doc/examples/data/HappyFish.jpg"


def start_port_file(name, argv, logs):
    port_file = os.path.join(logs, f"{name}.port")
    p = Proc(name, argv + ["--port", "0", "--port-file", port_file], os.environ, logs)
    wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 15, name)
    return p, int(open(port_file).read())


PERSON = os.path.join(os.environ.get("VIGIL_FACE_DATA", "/var/cache/vigil-testdata/faces"),
                      "kphotoalbum", "movie", "50.jpg")


def enrol_for_every_matcher(ctl, env, logs):
    """The matcher-neutral CLI (faces add/list/test/profile/remove) with
    matcher rekognition and seed 002's profiles in DynamoDB: IndexFaces of
    the cropped face, one profile item per FaceId, SearchFacesByImage."""
    if not os.path.exists(PERSON):
        raise AssertionError(f"{PERSON} is missing: run scripts/face-testdata (kphotoalbum)")
    cfg = os.path.join(logs, "vigil.yaml")
    with open(cfg, "w") as f:
        f.write("faces: { collection: home, profile_table: people }\n"
                "facematch: { matcher: rekognition, profiles: dynamodb }\n"
                "nats_url: nats://127.0.0.1:1\n")
    e = dict(env, VIGIL_CONFIG=cfg)
    rc, out, err = ctl("faces", "add", "jesper", "--image", PERSON, "--profile",
                       "Bio=KPhotoAlbum's author", environ=e)
    check(rc == 0 and '"faces":1' in out, f"faces add with rekognition: {out}{err[-300:]}")
    rc, out, _ = ctl("faces", "list", environ=e)
    check(rc == 0 and "jesper\t1 face" in out, f"faces list: {out.strip()}")
    rc, out, err = ctl("faces", "profile", "jesper", environ=e)
    prof = json.loads(out) if rc == 0 else {}
    check(prof.get("Bio") == "KPhotoAlbum's author" and prof.get("display_name") == "jesper" and
          prof.get("ExternalImageId") == "jesper", f"the profile item by FaceId: {out}{err}")
    rc, out, _ = ctl("faces", "test", PERSON, environ=e)
    check(rc == 0 and "jesper (similarity" in out, f"faces test: {out.strip()}")
    rc, out, err = ctl("faces", "remove", "jesper", environ=e)
    check(rc == 0, f"faces remove: {err}")
    rc, _, err = ctl("faces", "profile", "jesper", environ=e)
    check(rc == 1, "the profile went with the faces")
    rc, _, err = ctl("faces", "remove", "jesper", environ=e)
    check(rc == 1 and "nobody called jesper" in err, f"removing twice: {err.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--src", required=True)
    args = ap.parse_args()
    logs = subprocess.check_output(["mktemp", "-d", "/tmp/vigil-ctl-XXXXXX"]).decode().strip()
    fakes = os.path.join(args.src, "tests", "fakes")
    dynalite = os.path.join(args.src, "tests", "emulators", "node_modules", ".bin", "dynalite")
    procs = []
    ok = False
    try:
        fake, fake_port = start_port_file("fake_aws", [
            "python3", os.path.join(fakes, "fake_aws.py"), "--access-key", KEY,
            "--secret-key", SECRET], logs)
        procs.append(fake)
        ddb_port = free_port()
        procs.append(Proc("dynalite", ["node", dynalite, "--host", "127.0.0.1", "--port",
                                       str(ddb_port)], os.environ, logs))
        wait_for(lambda: port_open(ddb_port), 20, "dynalite")
        proxy, proxy_port = start_port_file("proxy", [
            "python3", os.path.join(fakes, "sigv4_proxy.py"), "--service", "dynamodb",
            "--upstream", f"http://127.0.0.1:{ddb_port}", "--access-key", KEY,
            "--secret-key", SECRET], logs)
        procs.append(proxy)

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{fake_port}",
                   AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{proxy_port}",
                   AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                   AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
                   AWS_CONFIG_FILE="/nonexistent")
        env.pop("VIGIL_CONFIG", None)

        def ctl(*a, environ=env):
            r = subprocess.run([os.path.join(args.bin, "vigilctl"), *a], env=environ,
                               capture_output=True, timeout=60)
            return r.returncode, r.stdout.decode(), r.stderr.decode()

        rc, out, err = ctl("aws", "whoami")
        who = json.loads(out) if rc == 0 else {}
        check(rc == 0 and who.get("account") == "123456789012" and who.get("credentials") == "env",
              f"aws whoami: {out.strip() or err.strip()}")
        rc, out, err = ctl("aws", "whoami", environ=dict(env, AWS_SECRET_ACCESS_KEY="wrong"))
        check(rc == 1 and "SignatureDoesNotMatch" in err, "a wrong secret is refused clearly")

        # Every temporary-credential source of the chain, end to end: the
        # fake issues the credentials and then checks the signed call,
        # session token included.
        base = {k: v for k, v in env.items()
                if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        token_file = os.path.join(logs, "web-identity-token")
        with open(token_file, "w") as f:
            f.write("test-web-identity-token\n")
        sources = {
            "web-identity": dict(base, AWS_WEB_IDENTITY_TOKEN_FILE=token_file,
                                 AWS_ROLE_ARN="arn:aws:iam::123456789012:role/vigil-dispatch",
                                 AWS_ROLE_SESSION_NAME="it"),
            "container": dict(base, AWS_CONTAINER_CREDENTIALS_FULL_URI=(
                f"http://127.0.0.1:{fake_port}/container-credentials/vigil"),
                AWS_CONTAINER_AUTHORIZATION_TOKEN="test-container-token"),
            "imds": dict(base, AWS_EC2_METADATA_DISABLED="false",
                         AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{fake_port}"),
        }
        for source, environ in sources.items():
            rc, out, err = ctl("aws", "whoami", environ=environ)
            who = json.loads(out) if rc == 0 else {}
            check(who.get("credentials") == source and who.get("account") == "123456789012",
                  f"whoami with {source} credentials: {who.get('arn') or err.strip()[-200:]}")
        rc, out, err = ctl("aws", "whoami", environ=dict(base, AWS_EC2_METADATA_DISABLED="true"))
        check(rc == 1 and "no AWS credentials" in err and "web identity" in err,
              "no credentials at all: every source is named")

        rc, out, _ = ctl("faces", "create-collection", "home")
        check(rc == 0 and json.loads(out)["created"], "faces create-collection home")
        rc, out, _ = ctl("faces", "create-collection", "home")
        check(rc == 0 and not json.loads(out)["created"], "creating it again is not an error")
        rc, out, err = ctl("faces", "create-table", "people")
        check(rc == 0, f"faces create-table people {err.strip()}")

        # Two throttling answers first: the client retries and succeeds.
        req = urllib.request.Request(
            f"http://127.0.0.1:{fake_port}/_fake/fail", method="POST",
            data=json.dumps({"api": "rekognition.IndexFaces", "count": 2, "status": 400,
                             "code": "ThrottlingException"}).encode())
        urllib.request.urlopen(req, timeout=5).read()
        rc, out, err = ctl("faces", "index", "--collection", "home", "--table", "people",
                           "--image", FACE, "--external-id", "alice",
                           "--profile", "Bio=Alice lives here", "--profile", "role=family")
        check(rc == 0, f"faces index through two throttling answers {err.strip()[-300:]}")
        face_id = json.loads(out)["face_id"]

        rc, out, _ = ctl("faces", "list", "--collection", "home")
        faces = [json.loads(line) for line in out.splitlines()]
        check(rc == 0 and [(f["face_id"], f["external_image_id"]) for f in faces] ==
              [(face_id, "alice")], "faces list shows the indexed face")
        rc, out, _ = ctl("faces", "profile", face_id, "--table", "people")
        check(rc == 0 and json.loads(out) == {"FaceId": face_id, "ExternalImageId": "alice",
                                              "Bio": "Alice lives here", "role": "family"},
              "the profile is in DynamoDB, keyed by FaceId")
        rc, _, err = ctl("faces", "index", "--collection", "nosuch", "--image", FACE,
                         "--external-id", "bob", "--table", "people")
        check(rc == 1 and "ResourceNotFoundException" in err, "an unknown collection is named")
        enrol_for_every_matcher(ctl, env, logs)
        ok = True
    finally:
        for p in reversed(procs):
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - teardown
                pass
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
