// Following a job over its SSE stream (GET /api/v1/jobs/{id}/stream).
//
// Events: progress {percent, message, timestamp}; the end {done: true, status, ...} or
// {error: true, message}. Day-by-day jobs also carry {event: day_started|day_completed|...,
// data}. EventSource reconnects by itself with Last-Event-ID after a dropped connection;
// once the job has ended we close it so it does not reconnect and replay.

import { api } from './api.js';

/**
 * followJob(jobId, {onProgress(percent, message, data), onEvent(data), onDone(data),
 * onError(message, data)}) -> {close()}
 */
export function followJob(jobId, handlers) {
  const { onProgress = () => {}, onEvent = () => {}, onDone = () => {}, onError = () => {} } = handlers;
  let ended = false;
  let failures = 0;
  const source = new EventSource(`/api/v1/jobs/${encodeURIComponent(jobId)}/stream`, { withCredentials: true });

  const finish = () => { ended = true; source.close(); };

  source.onmessage = (ev) => {
    failures = 0;
    let data;
    try { data = JSON.parse(ev.data); } catch { return; }
    onEvent(data);
    if (data.done) {
      finish();
      onProgress(100, data.status === 'completed' ? 'Completed' : data.status, data);
      onDone(data);
    } else if (data.error) {
      finish();
      onError(data.message || 'the job failed', data);
    } else if (typeof data.percent === 'number') {
      onProgress(data.percent, data.message, data);
    }
  };

  source.onerror = async () => {
    if (ended) return;
    failures += 1;
    // The stream refused (404, 401) or the gateway went away: ask the job itself what happened.
    if (source.readyState === EventSource.CLOSED || failures >= 5) {
      finish();
      try {
        const job = await api(`/api/v1/jobs/${encodeURIComponent(jobId)}`);
        if (job.status === 'completed') {
          onProgress(100, 'Completed', job);
          onDone({ done: true, status: 'completed', sweep_run_id: job.sweep_run_id, job });
        } else if (job.status === 'failed' || job.status === 'cancelled') {
          onError(job.error_message || `job ${job.status}`, job);
        } else {
          onError(`Lost the progress stream of job ${jobId} (it is ${job.status}); reload to follow it again.`, job);
        }
      } catch (err) {
        onError(err.message || String(err), null);
      }
    }
  };

  return { close: finish };
}
