#!/usr/bin/env bash
# bench.capture: what vigil-capture costs per camera, next to what `ffmpeg`
# needs just to decode the same file in the same run (ratios are what to
# compare between runs: absolute times on a shared machine are noise).
#
#   bench_capture.sh BUILD_DIR SRC_DIR
#
# 1. baseline: `ffmpeg -benchmark` decoding vtest.avi to nothing;
# 2. capture taking every frame (fps 1000, publish_all): decode + scale +
#    motion + JPEG + publish per frame, against a real nats-server;
# 3. capture at the default fps 5, publishing only frames with motion (the
#    default) and publishing every sampled frame (publish_all, the old
#    behaviour); vtest has people walking in nearly every frame, so the two
#    are close there. A still clip (vtest's first frame, frozen) shows what
#    encode-on-motion saves on an empty scene;
# 4. sample: keyframes next to full decoding, on vtest re-encoded with a
#    keyframe every 25 frames (vtest itself has 4 keyframes in 80 s):
#    ffmpeg decoding every frame vs `-skip_frame nokey`, and capture at fps 5
#    vs capture in keyframes mode.
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

ff() { ffmpeg -hide_banner -nostdin -loglevel error -y "$@" || die "ffmpeg $* failed"; }

# ---- the videos ----------------------------------------------------------------
read -r VW VH VDUR < <(ffprobe -v error -select_streams v:0 \
    -show_entries stream=width,height:format=duration -of default=nw=1:nk=1 "$VTEST" | xargs)

# Cameras mostly send H.264: use it for the made clips when FFmpeg can encode it.
ENCODERS=$(ffmpeg -hide_banner -encoders 2>/dev/null || true)  # not piped: grep -q would SIGPIPE it
if grep -q ' libx264 ' <<<"$ENCODERS"; then
    CODEC=(-c:v libx264 -preset veryfast -pix_fmt yuv420p)
else
    CODEC=(-c:v mpeg4 -q:v 4)
fi
GOP25=$WORK/gop25.mp4
STILL=$WORK/still.mp4
ff -i "$VTEST" -an "${CODEC[@]}" -g 25 -keyint_min 25 -sc_threshold 0 "$GOP25"
ff -i "$VTEST" -frames:v 1 "$WORK/first.png"
ff -loop 1 -framerate 10 -i "$WORK/first.png" -t "$VDUR" "${CODEC[@]}" -g 25 "$STILL"

# ---- ffmpeg decode only ------------------------------------------------------------
ffmpeg_decode() { # NAME FILE [input options...] -> $WORK/NAME.ff: frames cpu_s wall_s
    local name=$1 file=$2
    shift 2
    ffmpeg -hide_banner -nostdin -benchmark "$@" -i "$file" -an -f null - \
        >"$WORK/$name.fflog" 2>&1 || die "ffmpeg ($name) failed: $(tail -3 "$WORK/$name.fflog")"
    python3 - "$WORK/$name.fflog" >"$WORK/$name.ff" <<'EOF'
import re, sys
t = open(sys.argv[1], errors="replace").read().replace("\r", "\n")
frames = re.findall(r"frame=\s*(\d+)", t)
b = re.search(r"bench: utime=([\d.]+)s stime=([\d.]+)s rtime=([\d.]+)s", t)
u, s, r = map(float, b.groups()) if b else (0, 0, 0)
print(frames[-1] if frames else 0, u + s, r)
EOF
}

ffmpeg_decode ff_vtest "$VTEST"
ffmpeg_decode ff_still "$STILL"
ffmpeg_decode ff_gop25 "$GOP25"
ffmpeg_decode ff_gop25_key "$GOP25" -skip_frame nokey

# ---- nats-server ------------------------------------------------------------------
PORT=$(free_port)
nats-server -a 127.0.0.1 -p "$PORT" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
wait_port "$PORT" || die "nats-server did not start: $(tail -3 "$WORK/nats.log")"

# ---- capture runs -------------------------------------------------------------------
write_config() { # FILE URL FPS [extra camera keys...]
    local file=$1 url=$2 fps=$3 extra
    shift 3
    cat >"$file" <<EOF
prefix: benchcap
log_level: info
nats_url: nats://127.0.0.1:$PORT
max_payload: 1048576
cameras:
  - id: bench
    url: $url
    fps: $fps
    speed: 0
    loop: false
    record: false       # the recording's own cost: bench.recording
EOF
    for extra in "$@"; do echo "    $extra" >>"$file"; done
}

# Peak RSS and CPU: /usr/bin/time -v when it exists, else VmHWM and
# utime+stime polled from /proc while it runs (the last poll is close enough).
run_capture() { # NAME URL FPS [extra camera keys...] -> $WORK/NAME.{log,time,hwm,cpu,wall}
    local name=$1 url=$2 fps=$3 cfg=$WORK/$1.yaml t0 t1 pid hwm=0 ticks=0 rc=0 v st
    shift 3
    write_config "$cfg" "$url" "$fps" "$@"
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

run_capture every "$VTEST" 1000 "publish_all: true"
run_capture motion "$VTEST" 5
run_capture all5 "$VTEST" 5 "publish_all: true"
run_capture still_motion "$STILL" 5
run_capture still_all "$STILL" 5 "publish_all: true"
run_capture gop25_fps "$GOP25" 5
run_capture gop25_key "$GOP25" 5 "sample: keyframes"

# ---- report -----------------------------------------------------------------------
python3 - "$WORK" "$VW" "$VH" "$VDUR" "${CODEC[1]}" <<'EOF'
import json, re, sys
work, vw, vh, vdur, codec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]

def ff(name):
    frames, cpu, wall = open(f"{work}/{name}.ff").read().split()
    return {"frames": int(frames), "cpu": float(cpu), "wall": float(wall)}

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

def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "n/a"

def share(r):
    return "n/a" if r["cpu"] is None else f"{100 * r['cpu'] / vdur:.1f}% of one core"

def counts(r):
    return (f"{r['frames_published']:.0f} published, {r['frames_skipped']:.0f} skipped of"
            f" {r['frames_sampled']:.0f} sampled, {r['frames_read']:.0f} decoded")

fv, fs, fg, fk = ff("ff_vtest"), ff("ff_still"), ff("ff_gop25"), ff("ff_gop25_key")
ev, mo, a5 = capture("every"), capture("motion"), capture("all5")
sm, sa = capture("still_motion"), capture("still_all")
gf, gk = capture("gop25_fps"), capture("gop25_key")

bfps = fv["frames"] / fv["wall"] if fv["wall"] > 0 else 0.0
efps = ev["frames_published"] / ev["elapsed_s"] if ev.get("elapsed_s") else 0.0
print(f"bench.capture: {vw}x{vh}, {fv['frames']} frames, {vdur:.1f} s of video")
print(f"  baseline (ffmpeg decode only):     {fv['frames']} frames in {fv['wall']:.3f} s ="
      f" {bfps:.0f} fps (cpu {fv['cpu']:.2f} s)")
print(f"  capture, every frame (fps 1000, publish_all): {ev['frames_published']:.0f} published of"
      f" {ev['frames_read']:.0f} read in {ev['elapsed_s']:.3f} s = {efps:.0f} fps"
      f" (process wall {ev['wall']:.2f} s, cpu {cpu(ev)}, dropped {ev['frames_dropped']:.0f},"
      f" decode errors {ev['decode_errors']:.0f})")
print(f"  ratio capture/baseline:            {efps / bfps if bfps else 0:.3f}"
      f"  ({1000 / efps if efps else 0:.2f} ms per frame vs {1000 / bfps if bfps else 0:.2f} ms decode)")
print(f"  capture peak RSS (every frame):    {ev['rss_kb'] / 1024:.1f} MiB")
print("  fps 5 on vtest (people walking through nearly every frame):")
print(f"    encode on motion (default):      cpu {cpu(mo)} = {ratio(mo['cpu'], fv['cpu'])} ffmpeg's"
      f" decode, {share(mo)} in real time; {counts(mo)}; peak RSS {mo['rss_kb'] / 1024:.1f} MiB")
print(f"    publish_all (every sampled):     cpu {cpu(a5)} = {ratio(a5['cpu'], fv['cpu'])} ffmpeg's"
      f" decode, {share(a5)}; {counts(a5)}")
print(f"  fps 5 on a still scene ({codec}, vtest's first frame for {vdur:.0f} s; ffmpeg decode"
      f" cpu {fs['cpu']:.2f} s):")
print(f"    encode on motion (default):      cpu {cpu(sm)} = {ratio(sm['cpu'], fs['cpu'])} ffmpeg's"
      f" decode; {counts(sm)}")
print(f"    publish_all:                     cpu {cpu(sa)} = {ratio(sa['cpu'], fs['cpu'])} ffmpeg's"
      f" decode; {counts(sa)}")
print(f"  keyframes only ({codec}, vtest re-encoded with a keyframe every 25 frames):")
print(f"    ffmpeg, full decode:             {fg['frames']} frames, cpu {fg['cpu']:.2f} s")
print(f"    ffmpeg, -skip_frame nokey:       {fk['frames']} frames, cpu {fk['cpu']:.2f} s"
      f" = {ratio(fk['cpu'], fg['cpu'])} of full decode")
print(f"    capture, sample fps (fps 5):     cpu {cpu(gf)}; {counts(gf)}")
print(f"    capture, sample keyframes:       cpu {cpu(gk)} = {ratio(gk['cpu'], gf['cpu'])} of"
      f" fps mode, {ratio(gk['cpu'], fg['cpu'])} of ffmpeg's full decode; {counts(gk)}")
EOF
