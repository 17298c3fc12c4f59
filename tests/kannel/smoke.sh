#!/usr/bin/env bash
# Kannel round-trip smoke test: stub gateway <- MO <- fakesmsc, sendsms -> MT -> fakesmsc, DLR -> stub.
# Usage: tests/kannel/smoke.sh   (KEEP=1 keeps the work dir). Exits 0 on success.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
FAKESMSC=/usr/lib/kannel/test/fakesmsc
W="$(mktemp -d /tmp/kannel-smoke.XXXXXX)"
PIDS=()
cleanup() {
  trap '' INT TERM
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${KEEP:-}" == 1 ]]; then echo "work dir: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "FAIL: $*" >&2; echo "--- logs in $W" >&2; KEEP=1; exit 1; }
wait_for() { # wait_for <seconds> <cmd...>
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}

read -r ADMIN SMSBOX SENDSMS SMSC GW < <(python3 -c '
import socket; ss=[socket.socket() for _ in range(5)]
[s.bind(("127.0.0.1",0)) for s in ss]; print(*[s.getsockname()[1] for s in ss])')
PW=adminpw USER=hotline PASS=s3cret SECRET=topsecret

# Render template (python: no sed-escaping issues with '&' in the URL).
python3 - "$HERE/kannel.conf.tmpl" "$W/kannel.conf" <<EOF
import sys
s = open(sys.argv[1]).read()
for k, v in {"WORKDIR": "$W", "ADMIN_PORT": "$ADMIN", "ADMIN_PASSWORD": "$PW",
             "SMSBOX_PORT": "$SMSBOX", "SENDSMS_PORT": "$SENDSMS", "SMSC_PORT": "$SMSC",
             "SENDSMS_USER": "$USER", "SENDSMS_PASSWORD": "$PASS",
             "MO_URL": "http://127.0.0.1:$GW/webhooks/kannel/sms?secret=$SECRET"}.items():
    s = s.replace("@%s@" % k, v)
open(sys.argv[2], "w").write(s)
EOF

# Stub gateway: logs every raw request line, answers 200 with an (ignored) body.
cat > "$W/stub.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as f: f.write(self.path + "\n")
        self.send_response(200); self.end_headers(); self.wfile.write(b"this body must NOT become an SMS")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
touch "$W/stub.log"
python3 "$W/stub.py" "$GW" "$W/stub.log" & PIDS+=($!)

t0=$SECONDS
bearerbox -v 2 "$W/kannel.conf" >"$W/bearerbox.out" 2>&1 & PIDS+=($!)
status() { curl -sf "http://127.0.0.1:$ADMIN/status.txt?password=$PW"; }
# Admin HTTP opens *before* the smsbox port; smsbox panics if it cannot connect, so wait for both.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for 10 port_open "$SMSBOX" && wait_for 10 status >/dev/null || fail "bearerbox not up"
smsbox -v 2 "$W/kannel.conf" >"$W/smsbox.out" 2>&1 & PIDS+=($!)
smsbox_ready() { status | grep -q '^Box connections:' && port_open "$SENDSMS"; }
wait_for 10 smsbox_ready || fail "smsbox not connected"
echo "kannel ready after $((SECONDS - t0))s (admin=$ADMIN smsbox=$SMSBOX sendsms=$SENDSMS smsc=$SMSC gw=$GW)"

# 1. ASCII MO (fakesmsc never exits by itself; kill it once delivered).
"$FAKESMSC" -H 127.0.0.1 -r "$SMSC" -i 0 -m 1 "+79001234567 1234 text hello  world" 2>"$W/fakesmsc1.err" & F1=$!; PIDS+=($F1)
wait_for 10 grep -q 'text=hello++world' "$W/stub.log" || fail "ASCII MO not received"
kill "$F1"; wait "$F1" 2>/dev/null || true

# 2. Cyrillic MO "ПОМОЩЬ" as UCS-2BE; this fakesmsc stays connected to receive the MT.
"$FAKESMSC" -H 127.0.0.1 -r "$SMSC" -i 0 -m 1 "+79001234567 1234 ucs2 %04%1F%04%1E%04%1C%04%1E%04%29%04%2C" 2>"$W/fakesmsc2.err" & PIDS+=($!)
wait_for 10 grep -q 'text=%D0%9F%D0%9E%D0%9C%D0%9E%D0%A9%D0%AC&.*coding=0&charset=UTF-8' "$W/stub.log" \
  || fail "Cyrillic MO not received as UTF-8"

# 3. MT via sendsms: UTF-8 "Привет" as UCS-2, with DLR callback.
DLR=$(python3 -c "import urllib.parse as u;print(u.quote('http://127.0.0.1:$GW/dlr?msg=42&status=%d&answer=%A',safe=''))")
REPLY=$(curl -s -m 10 -w ' HTTP%{http_code}' "http://127.0.0.1:$SENDSMS/cgi-bin/sendsms?username=$USER&password=$PASS&from=1234&to=%2B79001234567&text=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82&charset=UTF-8&coding=2&dlr-mask=31&dlr-url=$DLR")
[[ "$REPLY" == "0: Accepted for delivery HTTP202" ]] || fail "sendsms reply: $REPLY"
wait_for 10 grep -q 'Got message 1: <1234 +79001234567 ucs-2 %04%1F%04%40%048%042%045%04B>' "$W/fakesmsc2.err" \
  || fail "MT not seen by fakesmsc"
wait_for 10 grep -q '^/dlr?msg=42&status=1&' "$W/stub.log" || fail "no delivered DLR"
BAD=$(curl -s -m 10 -w ' HTTP%{http_code}' "http://127.0.0.1:$SENDSMS/cgi-bin/sendsms?username=$USER&password=wrong&to=1&text=x")
[[ "$BAD" == "Authorization failed for sendsms HTTP403" ]] || fail "bad-credentials reply: $BAD"
sleep 1  # max-messages = 0: the stub's reply body must not come back as an SMS
! grep -q 'Got message 2' "$W/fakesmsc2.err" || fail "unexpected extra MT: $(grep 'Got message 2' "$W/fakesmsc2.err")"

echo "--- stub gateway received:"; cat "$W/stub.log"
echo "--- fakesmsc got:"; grep 'Got message' "$W/fakesmsc2.err"
echo "OK"
