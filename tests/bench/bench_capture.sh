#!/usr/bin/env bash
# bench.capture: what vigil-capture costs per camera.
#
#   bench_capture.sh BUILD_DIR SRC_DIR
#
# 1. baseline: `ffmpeg -benchmark` decoding vtest.avi to nothing (decode only);
# 2. vigil-capture on the same file as fast as possible taking every frame
#    (fps 1000, speed 0): decode + scale + motion + JPEG + publish per frame,
#    against a real nats-server on a free loopback port;
# 3. vigil-capture at the default sampling (fps 5), the cost of one camera at
#    normal settings, given as a share of one core to keep up in real time.
#
# Prints figures and exits 0; it fails only when something does not run at all
# (timings on shared machines are noise, so nothing is judged against a limit).
set -euo pipefail

BUILD=${1:?usage: bench_capture.sh BUILD_DIR SRC_DIR}
SRC=${2:?usage: bench_capture.sh BUILD_DIR SRC_DIR}
VTEST=${VIGIL_BENCH_VIDEO:-/usr/share/doc/opencv-doc/examples/data/vtest.avi}
CAPTURE=$BUILD/vigil-capture

die() { echo "bench.capture: $*" >&2; exit 1; }
[ -x "$CAPTURE" ] || die "$CAPTURE not built"
[ -r "$VTEST" ] || die "$VTEST missing (Debian package opencv-doc)"
for tool in ffmpeg ffprobe nats-server python3; do
    command -v "$tool" >/dev/null || die "$tool not installed"
done

WORK=$(mktemp -d /tmp/vigil-bench-capture.XXXXXX)
NATS_PID=
cleanup() {
    if [ -n "$NATS_PID" ]; then kill "$NATS_PID" 2>/dev/null || true; wait "$NATS_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    python3 - "$1" <<'EOF'
import socket, sys, time
deadline = time.time() + 10
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

now() { date +%s.%N; }

# ---- the video ---------------------------------------------------------------
read -r VW VH VDUR < <(ffprobe -v error -select_streams v:0 \
    -show_entries stream=width,height:format=duration -of default=nw=1:nk=1 "$VTEST" | xargs)

# ---- baseline: ffmpeg decode only ---------------------------------------------
ffmpeg -hide_banner -nostdin -benchmark -i "$VTEST" -an -f null - >"$WORK/ffmpeg.log" 2>&1 \
    || die "ffmpeg failed: $(tail -3 "$WORK/ffmpeg.log")"
read -r B_FRAMES B_UTIME B_STIME B_RTIME < <(python3 - "$WORK/ffmpeg.log" <<'EOF'
import re, sys
t = open(sys.argv[1], errors="replace").read().replace("\r", "\n")
frames = re.findall(r"frame=\s*(\d+)", t)
b = re.search(r"bench: utime=([\d.]+)s stime=([\d.]+)s rtime=([\d.]+)s", t)
print(frames[-1] if frames else 0, *(b.groups() if b else (0, 0, 0)))
EOF
)

# ---- nats-server ------------------------------------------------------------------
PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$PORT" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$PORT" || die "nats-server did not start: $(tail -3 "$WORK/nats.log")"

# ---- capture runs -------------------------------------------------------------------
write_config() { # FILE FPS
    cat >"$1" <<EOF
prefix: benchcap
log_level: info
nats_url: nats://127.0.0.1:$PORT
max_payload: 1048576
cameras:
  - id: bench
    url: $VTEST
    fps: $2
    speed: 0
    loop: false
EOF
}

# Peak RSS and CPU: /usr/bin/time -v when it exists, else VmHWM and
# utime+stime polled from /proc while it runs (the last poll is close enough).
run_capture() { # NAME FPS -> $WORK/NAME.{log,time,hwm,cpu,wall}
    local name=$1 fps=$2 cfg=$WORK/$1.yaml t0 t1 pid hwm=0 ticks=0 rc=0 v st
    write_config "$cfg" "$fps"
    t0=$(now)
    if [ -x /usr/bin/time ]; then
        VIGIL_HTTP_ADDR=off /usr/bin/time -v -o "$WORK/$name.time" \
            "$CAPTURE" --config "$cfg" --camera bench 2>"$WORK/$name.log" || rc=$?
    else
        VIGIL_HTTP_ADDR=off "$CAPTURE" --config "$cfg" --camera bench 2>"$WORK/$name.log" &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
            [ -n "$v" ] && hwm=$v
            if read -r -a st <"/proc/$pid/stat" 2>/dev/null; then ticks=$((st[13] + st[14])); fi
            sleep 0.05
        done
        wait "$pid" || rc=$?
    fi
    t1=$(now)
    echo "$hwm" >"$WORK/$name.hwm"
    echo "$ticks $(getconf CLK_TCK)" >"$WORK/$name.cpu"
    echo "$t0 $t1" >"$WORK/$name.wall"
    [ "$rc" -eq 0 ] || die "vigil-capture ($name) exited $rc: $(tail -3 "$WORK/$name.log")"
    grep -q '"event":"source.eof"' "$WORK/$name.log" || die "vigil-capture ($name) logged no source.eof"
}

run_capture every 1000
run_capture default 5

# ---- report -----------------------------------------------------------------------
python3 - "$WORK" "$VW" "$VH" "$VDUR" "$B_FRAMES" "$B_UTIME" "$B_STIME" "$B_RTIME" <<'EOF'
import json, re, sys
work, vw, vh, vdur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
bframes, butime, bstime, brtime = int(sys.argv[5]), *map(float, sys.argv[6:9])

def capture(name):
    eof = {}
    for line in open(f"{work}/{name}.log", errors="replace"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "source.eof":
            eof = dict(re.findall(r"(\w+)=([\d.]+)", rec.get("msg", "")))
    t0, t1 = map(float, open(f"{work}/{name}.wall").read().split())
    r = {"wall": t1 - t0, "rss_kb": int(open(f"{work}/{name}.hwm").read() or 0), "cpu": None}
    ticks, hz = map(int, open(f"{work}/{name}.cpu").read().split())
    if ticks:
        r["cpu"] = ticks / hz
    try:
        tv = open(f"{work}/{name}.time").read()
        r["rss_kb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv).group(1))
        r["cpu"] = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", tv))
    except (OSError, AttributeError):
        pass
    r.update({k: float(v) for k, v in eof.items()})
    return r

def cpu(r):
    return "n/a" if r["cpu"] is None else f"{r['cpu']:.2f} s"

bfps = bframes / brtime if brtime > 0 else 0.0
ev, de = capture("every"), capture("default")
efps = ev["frames_published"] / ev["elapsed_s"] if ev.get("elapsed_s") else 0.0
print(f"bench.capture: {vw}x{vh}, {bframes} frames, {vdur:.1f} s of video")
print(f"  baseline (ffmpeg decode only):     {bframes} frames in {brtime:.3f} s = {bfps:.0f} fps"
      f" (cpu {butime + bstime:.2f} s)")
print(f"  capture, every frame (fps 1000):   {ev['frames_published']:.0f} published of"
      f" {ev['frames_read']:.0f} read in {ev['elapsed_s']:.3f} s = {efps:.0f} fps"
      f" (process wall {ev['wall']:.2f} s, cpu {cpu(ev)}, dropped {ev['frames_dropped']:.0f},"
      f" decode errors {ev['decode_errors']:.0f})")
print(f"  ratio capture/baseline:            {efps / bfps if bfps else 0:.3f}"
      f"  ({1000 / efps if efps else 0:.2f} ms per frame vs {1000 / bfps if bfps else 0:.2f} ms decode)")
print(f"  capture peak RSS (every frame):    {ev['rss_kb'] / 1024:.1f} MiB")
dfps = de["frames_read"] / de["elapsed_s"] if de.get("elapsed_s") else 0.0
share = f"{100 * de['cpu'] / vdur:.1f}% of one core" if de["cpu"] is not None else "n/a"
print(f"  capture, default sampling (fps 5): {de['frames_published']:.0f} published of"
      f" {de['frames_read']:.0f} read in {de['elapsed_s']:.3f} s = {dfps:.0f} frames/s decoded"
      f" (cpu {cpu(de)}, peak RSS {de['rss_kb'] / 1024:.1f} MiB)")
print(f"  per-camera cost in real time at fps 5: {share}"
      f" (cpu for {vdur:.1f} s of {vw}x{vh} video)")
EOF
