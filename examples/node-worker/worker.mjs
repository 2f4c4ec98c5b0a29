#!/usr/bin/env node
// A jobstream external worker in Node 20: plain `fetch`, no dependency.
//
// It claims jobs of the external kinds it runs (POST /api/v1/workers/claim, a long-poll), runs
// each with a handler, and reports what happens (POST /api/v1/jobs/{id}/events): progress with
// steps, log lines, and the end (completed or failed). Between reports it sends a heartbeat
// every third of the lease, so a long step does not look like a dead worker.
//
// Cancellation: a user's cancel ends the job on the server at once; the worker learns it from
// the answer to its next report (or heartbeat): 409 with "job_status": "cancelled". Any 409 means
// the same to a worker: the job is no longer its own (cancelled, or its lease ran out and the
// job was re-queued); it stops working on it, writes nothing more, and claims the next one.
//
//   JOBSTREAM_URL=http://127.0.0.1:8000      the server (default)
//   JOBSTREAM_TOKEN=<jwt whose roles hold "reporter">   (not needed with JOBSTREAM_AUTH=none)
//   JOBSTREAM_WORKER_KINDS=ocr                the kinds to claim (comma-separated)
//   JOBSTREAM_WORKER_MAX_JOBS=0               stop after this many jobs (0: run until SIGTERM)
//
//   jobstream serve --external-kinds ocr &
//   node examples/node-worker/worker.mjs
//   jobstream submit ocr --param pages=5

const BASE = (process.env.JOBSTREAM_URL ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
const TOKEN = process.env.JOBSTREAM_TOKEN ?? "";
const KINDS = (process.env.JOBSTREAM_WORKER_KINDS ?? "ocr")
  .split(",")
  .map((kind) => kind.trim())
  .filter(Boolean);
const MAX_JOBS = Number(process.env.JOBSTREAM_WORKER_MAX_JOBS ?? "0");
const CLAIM_WAIT_SECONDS = 20;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The handlers, one per kind: (job, params) => result. `params` is the JSON object given at
// submit; the result is any JSON. A thrown error fails the job with its message.
const HANDLERS = {
  async ocr(job, params) {
    const pages = Number.isInteger(params.pages) && params.pages > 0 ? params.pages : 3;
    const pageMs = typeof params.page_ms === "number" ? params.page_ms : 200;
    await job.log(`Reading ${pages} pages`);
    let words = 0;
    for (let page = 1; page <= pages; page += 1) {
      await sleep(pageMs); // the real work would go here
      words += 120;
      await job.progress({
        progress: (page * 100) / pages,
        current_step: page,
        total_steps: pages,
        step_name: `Page ${page}`,
        message: `Read page ${page} of ${pages}`,
      });
    }
    return { pages, words };
  },
};

/** The job is no longer this worker's (409): cancelled, or its lease was lost. */
class JobGone extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function post(path, body, signal) {
  const headers = { "content-type": "application/json" };
  if (TOKEN) headers.authorization = `Bearer ${TOKEN}`;
  return fetch(`${BASE}${path}`, { method: "POST", headers, body: JSON.stringify(body), signal });
}

/** A claimed job: its object, its lease, and the reports its handler makes. */
class ClaimedJob {
  constructor({ job, lease, lease_seconds: leaseSeconds }) {
    this.job = job;
    this.lease = lease;
    this.gone = null;
    // A heartbeat every third of the lease; its 409 stops the job at its next report.
    this.timer = setInterval(() => {
      this.report("heartbeat").catch(() => {});
    }, (leaseSeconds * 1000) / 3);
  }

  async report(type, data) {
    if (this.gone) throw this.gone;
    const body = { lease: this.lease, type };
    if (data !== undefined) body.data = data;
    const answer = await post(`/api/v1/jobs/${this.job.id}/events`, body);
    const reply = await answer.json().catch(() => ({}));
    if (answer.status === 202) return reply.seq;
    if (answer.status === 409) {
      this.gone = this.gone ?? new JobGone(reply.job_status, reply.detail);
      throw this.gone;
    }
    // 422: this worker sent something the server refuses; the detail says what.
    throw new Error(`${type} report refused (${answer.status}): ${JSON.stringify(reply.detail)}`);
  }

  progress(data) {
    return this.report("progress", data);
  }

  log(message, level = "info") {
    return this.report("log", { level, message });
  }

  stop() {
    clearInterval(this.timer);
  }
}

async function run(claimed) {
  const job = new ClaimedJob(claimed);
  const { id, kind } = job.job;
  console.log(`job ${id} (${kind}) claimed`);
  try {
    const handler = HANDLERS[kind];
    if (!handler) throw new Error(`this worker has no handler for kind ${kind}`);
    const result = await handler(job, job.job.params ?? {});
    await job.report("completed", { result });
    console.log(`job ${id} completed`);
  } catch (error) {
    if (error instanceof JobGone) {
      const why = error.status === "cancelled" ? "was cancelled" : `is no longer ours (${error.status})`;
      console.log(`job ${id} ${why}: stopped`);
    } else {
      console.error(`job ${id} failed: ${error.message}`);
      await job.report("failed", { message: String(error.message || error) }).catch(() => {});
    }
  } finally {
    job.stop();
  }
}

async function main() {
  const stopping = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => stopping.abort());
  }
  console.log(`worker for ${KINDS.join(", ")} on ${BASE}`);
  let done = 0;
  while (!stopping.signal.aborted && (MAX_JOBS === 0 || done < MAX_JOBS)) {
    let answer;
    try {
      answer = await post(
        "/api/v1/workers/claim",
        { kinds: KINDS, wait: CLAIM_WAIT_SECONDS },
        stopping.signal,
      );
    } catch (error) {
      if (stopping.signal.aborted) break;
      console.error(`claim failed: ${error.message}; retrying`);
      await sleep(2000);
      continue;
    }
    if (answer.status === 204) continue; // nothing queued: ask again
    if (answer.status !== 200) {
      // 401/403: a bad token; 422: a kind that is not external. Retrying will not help.
      console.error(`claim refused (${answer.status}): ${await answer.text()}`);
      process.exitCode = 1;
      return;
    }
    await run(await answer.json());
    done += 1;
  }
}

await main();
