#!/usr/bin/env bash
# A jobstream external worker in a shell script: curl and jq.
#
# Claims jobs of the external kind it runs (POST /api/v1/workers/claim, a long-poll), runs each
# (here: "reads" params.pages pages, params.page_ms apart), and reports progress with steps, a
# log line and the result (POST /api/v1/jobs/{id}/events). A background loop sends a heartbeat
# every third of the lease. Any 409 answer means the job is no longer this worker's (a user
# cancelled it: "job_status": "cancelled", or its lease ran out and it was re-queued): it stops
# that job, writes nothing more, and claims the next.
#
#   JOBSTREAM_URL=http://127.0.0.1:8000   JOBSTREAM_TOKEN=<jwt with roles ["reporter"]>
#   JOBSTREAM_WORKER_KINDS=ocr            JOBSTREAM_WORKER_MAX_JOBS=0 (0: until Ctrl-C)
#
#   bash examples/shell-worker.sh
set -euo pipefail

BASE="${JOBSTREAM_URL:-http://127.0.0.1:8000}"
KINDS="${JOBSTREAM_WORKER_KINDS:-ocr}"
MAX_JOBS="${JOBSTREAM_WORKER_MAX_JOBS:-0}"
AUTH=()
if [[ -n "${JOBSTREAM_TOKEN:-}" ]]; then AUTH=(-H "Authorization: Bearer $JOBSTREAM_TOKEN"); fi

# post PATH JSON: sets STATUS (the HTTP status) and BODY.
post() {
  local out
  out=$(curl -sS -X POST ${AUTH[@]+"${AUTH[@]}"} -H 'Content-Type: application/json' \
    --data "$2" -w $'\n%{http_code}' "$BASE$1")
  STATUS=${out##*$'\n'}
  BODY=${out%$'\n'*}
}

# report TYPE [DATA]: 0 when stored, 1 when the job is no longer ours (409).
report() {
  local data="${2:-}"
  [[ -n "$data" ]] || data='{}'
  post "/api/v1/jobs/$JOB_ID/events" "$(jq -nc --arg lease "$LEASE" --arg type "$1" \
    --argjson data "$data" '{lease: $lease, type: $type, data: $data}')"
  case "$STATUS" in
    202) return 0 ;;
    409) echo "job $JOB_ID $(jq -r 'if .job_status == "cancelled" then "was cancelled"
           else "is no longer ours (\(.job_status))" end' <<<"$BODY"): stopped"
         return 1 ;;
    *) echo "$1 report refused ($STATUS): $BODY" >&2; exit 1 ;;
  esac
}

run_job() {
  local pages page_ms page
  pages=$(jq -r '.job.params.pages // 3' <<<"$CLAIM")
  page_ms=$(jq -r '.job.params.page_ms // 200' <<<"$CLAIM")
  report log "$(jq -nc --arg m "Reading $pages pages" '{level: "info", message: $m}')" || return 0
  for ((page = 1; page <= pages; page++)); do
    sleep "$(awk -v ms="$page_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"  # the real work
    report progress "$(jq -nc --argjson p "$page" --argjson n "$pages" \
      '{progress: ($p * 100 / $n), current_step: $p, total_steps: $n,
        step_name: "Page \($p)", message: "Read page \($p) of \($n)"}')" || return 0
  done
  report completed "$(jq -nc --argjson n "$pages" '{result: {pages: $n, words: ($n * 120)}}')" \
    || return 0
  echo "job $JOB_ID completed"
}

echo "worker for $KINDS on $BASE"
done_jobs=0
while [[ "$MAX_JOBS" == 0 || "$done_jobs" -lt "$MAX_JOBS" ]]; do
  post /api/v1/workers/claim "$(jq -nc --arg k "$KINDS" '{kinds: ($k | split(",")), wait: 20}')"
  case "$STATUS" in
    204) continue ;;
    200) ;;
    *) echo "claim refused ($STATUS): $BODY" >&2; exit 1 ;;
  esac
  CLAIM=$BODY
  JOB_ID=$(jq -r .job.id <<<"$CLAIM")
  LEASE=$(jq -r .lease <<<"$CLAIM")
  beat=$(jq -r '.lease_seconds / 3' <<<"$CLAIM")
  echo "job $JOB_ID ($(jq -r .job.kind <<<"$CLAIM")) claimed"
  (while sleep "$beat"; do report heartbeat >/dev/null || break; done) &
  heartbeats=$!
  run_job
  kill "$heartbeats" 2>/dev/null || true
  wait "$heartbeats" 2>/dev/null || true
  done_jobs=$((done_jobs + 1))
done
