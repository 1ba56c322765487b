#!/usr/bin/env python3
"""Camera health alerts with real nats-server, redis-server and two
vigil-dedupe replicas; CameraStatus messages are played on
vigil.status.<camera> and the alerts stream is read back directly.
Hold-downs are short here: offline after 3 s down, online after 2 s up.

- porch's stream stalls (ONLINE, frames_read stuck) and resumes: one
  camera_offline, then one camera_online.
- yard's capture ends (OFFLINE, then silence) and returns: one of each.
- shed's capture dies without a word (no status at all) and returns: one
  of each.
- gate flaps (OFFLINE/ONLINE every second for 10 s): at most one of each.
- Two replicas, one alert per transition; the hold-downs are kept.
- Statuses of unknown cameras and malformed ones are counted, not judged.
- Redis down: each replica alerts on its own with the same derived id, so
  the stream keeps one (fail_open); Redis back (empty): the camera's return
  is alerted once.
- A real capture on a file that ends publishes OFFLINE: one camera_offline.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEMO_VIDEO, check, run, wait_for  # noqa: E402
from pbframe import OFFLINE, ONLINE, camera_status  # noqa: E402
from rawio import NatsPub, alert, stream_messages  # noqa: E402

OFFLINE_AFTER_S, ONLINE_AFTER_S = 3, 2
PLAYED = ("porch", "yard", "shed", "gate")
REPLICAS = ("dd-a", "dd-b")


def config():
    cams = "".join(f"  - {{ id: {c}, url: /dev/null }}\n" for c in PLAYED)
    return f"""
cameras:
{cams}  - {{ id: clip, url: {DEMO_VIDEO}, speed: 0, fps: 2 }}
dedupe:
  health: {{ offline_after_s: {OFFLINE_AFTER_S}, online_after_s: {ONLINE_AFTER_S} }}
"""


def steady(cam, t):
    return ONLINE, True


def scenes(cam, t):
    """(state, frames progressed) of cam's status at t s, or None: silence."""
    if cam == "porch":                      # the stream stalls from 6 s to 14 s
        return ONLINE, not 6 <= t < 14
    if cam == "yard":                       # capture ends at 5 s, back at 13 s
        if 5 <= t < 13:
            return (OFFLINE, False) if t == 5 else None
    if cam == "shed" and 5 <= t < 13:       # capture killed at 5 s, back at 13 s
        return None
    if cam == "gate" and 4 <= t < 14 and int(t) % 2 == 0:   # flaps
        return OFFLINE, False
    return ONLINE, True


class Player:
    """Plays every camera's status every 0.5 s from the current plan."""

    def __init__(self, port):
        self.nc = NatsPub(port)
        self.frames = {c: 0 for c in PLAYED}
        self.plan, self.t0 = steady, time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def start(self, plan):
        self.plan, self.t0 = plan, time.monotonic()
        return self.t0

    def _run(self):
        k = 0
        start = time.monotonic()
        while not self.stop.is_set():
            plan, t0 = self.plan, self.t0
            t = round((time.monotonic() - t0) * 2) / 2
            for cam in PLAYED:
                s = plan(cam, t)
                if s:
                    self.frames[cam] += 10 if s[1] else 0
                    self.nc.pub(f"vigil.status.{cam}", camera_status(cam, s[0], self.frames[cam]))
            k += 1
            self.stop.wait(max(0, start + k * 0.5 - time.monotonic()))

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.nc.close()


def alerts(stack):
    return [alert(data) for _, data in stream_messages(stack.nats_port)]


def labels(found, cam):
    return [a["label"] for a in found if a["camera"] == cam]


def total(stack, metric):
    return sum(stack.metric(n, metric) for n in REPLICAS)


def check_scenes(stack, player):
    player.start(scenes)
    time.sleep(24)
    found = alerts(stack)
    for cam in ("porch", "yard", "shed"):
        check(labels(found, cam) == ["camera_offline", "camera_online"],
              f"{cam}: one camera_offline, then one camera_online ({labels(found, cam)})")
    gate = labels(found, "gate")
    check(gate.count("camera_offline") <= 1 and gate.count("camera_online") <= 1 and
          gate[:1] != ["camera_online"], f"gate flapped 10 s: at most one of each ({gate})")
    check(len({a["alert_id"] for a in found}) == len(found) and
          not any(a["fail_open"] for a in found), "unique ids, all decided in Redis")
    for a in found:
        held = (a["publish_ts_us"] - a["capture_ts_us"]) / 1e6
        want = OFFLINE_AFTER_S if a["label"] == "camera_offline" else ONLINE_AFTER_S
        if held < want - 0.2:
            check(False, f"{a['camera']} {a['label']} after {held:.1f} s, not {want} s")
    check(True, "every alert waited out its hold-down")
    published = total(stack, 'vigil_dedupe_health_alerts_total{kind="camera_offline"}') + \
        total(stack, 'vigil_dedupe_health_alerts_total{kind="camera_online"}')
    check(published == len(found), f"the two replicas published {published:.0f} alerts, "
          f"one per transition")
    check(total(stack, "vigil_dedupe_health_elsewhere_total") >= 1,
          "the other replica saw each transition taken")
    return len(found)


def check_bad_input(stack):
    before = {n: stack.metric(n, "vigil_dedupe_unknown_camera_total") for n in REPLICAS}
    malformed = {n: stack.metric(n, "vigil_dedupe_malformed_total") for n in REPLICAS}
    nc = NatsPub(stack.nats_port)
    nc.pub("vigil.status.ghost", camera_status("ghost", OFFLINE, 0))
    nc.pub("vigil.status.porch", b"\xff\xff not a status")
    nc.flush()
    nc.close()
    for n in REPLICAS:
        wait_for(lambda: stack.metric(n, "vigil_dedupe_unknown_camera_total") > before[n] and
                 stack.metric(n, "vigil_dedupe_malformed_total") > malformed[n], 10,
                 f"{n} to count them")
    check(True, "every replica counted the unknown camera's and the malformed status")


def redis_down(cam, t):
    if cam == "porch" and t < 8:
        return OFFLINE, False
    return ONLINE, True


def check_redis_down(stack, player, stored):
    offline = 'vigil_dedupe_health_alerts_total{kind="camera_offline"}'
    before = total(stack, offline)
    stack.procs["redis"].stop()
    t0 = player.start(redis_down)
    wait_for(lambda: total(stack, offline) >= before + 2, 15,
             "both replicas to alert porch offline on their own")
    time.sleep(max(0, t0 + 4.5 - time.monotonic()))
    stack.start_redis()                     # empty: it forgot the health state
    time.sleep(max(0, t0 + 14 - time.monotonic()))
    new = alerts(stack)[stored:]
    check([a["label"] for a in new] == ["camera_offline", "camera_online"],
          f"Redis down: porch offline stored once, its return once ({[a['label'] for a in new]})")
    check(new[0]["fail_open"] and not new[1]["fail_open"],
          "the offline one marked fail_open, the return decided in Redis again")
    return stored + len(new)


def check_real_capture(stack, stored):
    if not os.path.exists(DEMO_VIDEO):
        print(f"# skipped the real capture: no {DEMO_VIDEO}", flush=True)
        return
    cap = stack.start_service("capture", "--camera", "clip", wait_ready=False)
    check(cap.p.wait(120) == 0, "capture read the whole clip and exited 0")
    wait_for(lambda: "camera_offline" in labels(alerts(stack)[stored:], "clip"), 15,
             "clip's camera_offline")
    time.sleep(ONLINE_AFTER_S + 1)
    check(labels(alerts(stack)[stored:], "clip") == ["camera_offline"],
          "the clip ended (capture said OFFLINE): one camera_offline")


def body(stack, args):
    stack.write_config(config())
    stack.start_nats()
    stack.start_redis()
    for n in REPLICAS:
        stack.start_service("dedupe", name=n)
    player = Player(stack.nats_port)
    try:
        time.sleep(ONLINE_AFTER_S + 1.5)    # every camera seen up, nothing alerted
        check(alerts(stack) == [], "cameras that were never offline raise no alert")
        check_bad_input(stack)
        stored = check_scenes(stack, player)
        stored = check_redis_down(stack, player, stored)
        check_real_capture(stack, stored)
    finally:
        player.close()
    for n in REPLICAS:
        check(stack.procs[n].stop() == 0, f"{n} drains and exits 0")


if __name__ == "__main__":
    sys.exit(run(body, dump=("dd", "capture")))
