-- wrk script of benches/load/run.sh: after a run, print one machine-readable
-- line with the numbers run.sh reads (latencies in microseconds).
-- Only `done` is defined, so wrk's request loop stays the fast built-in one.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx3xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
