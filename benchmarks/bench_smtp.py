"""Benchmark: e-mail through SmtpProvider to a loopback aiosmtpd server.

The server runs in its own process (aiosmtpd, a handler that counts and discards
messages), so the client's Python thread is not shared with it. The client, in a child
process whose peak RSS is recorded, renders a personalised EmailContent for each user
and delivers:

* ``reuse``: one SmtpProvider keeping ``--connections`` connections open (default 2),
  batches of 500 messages;
* ``pipelined``: the same against a second aiosmtpd server whose EHLO also offers
  PIPELINING (RFC 2920; aiosmtpd reads commands line by line, so it honours it): the
  provider then sends MAIL/RCPT/DATA in one write, two round trips a message instead of
  four;
* ``per-message``: a new connection (connect, EHLO, send, QUIT) for every message.

Every message is counted at the server; client CPU time (getrusage in the child) and
server CPU time (``/proc/<pid>/stat``) are recorded next to wall time, because on a
shared 2-core machine the wall-clock rate mostly measures the competition. Three runs
of each, medians reported in the ``smtp`` section of ``benchmarks/RESULTS.md`` (only that
section is replaced).

Run: ``python benchmarks/bench_smtp.py [--messages 3000] [--single 300] [--runs 3]
[--connections 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, now, run_child, write_section  # noqa: E402

SERVER = r"""
import sys, threading
from aiosmtpd.controller import Controller

class Count:
    n = 0
    pipelining = sys.argv[2] == "1"
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"

c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "count":
        print(Count.n, flush=True)
    elif line.strip() == "stop":
        break
c.stop()
"""

CLIENT = r"""
import datetime as dt, json, resource, sys, time
from engagelab.channels import EmailContent, preview
from engagelab.delivery.protocol import OutgoingMessage
from engagelab.delivery.smtp import SmtpProvider

port, n, mode, tag, conns = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
content = EmailContent(
    sender="Shop <news@shop.example>",
    subject="{{ profile.name | default('Hello') }}, your spring offer",
    html="<h1>Hi {{ profile.name | default('there') }}</h1><p>" + "Offer text. " * 40 + "</p>",
    text="Hi {{ profile.name | default('there') }}\n" + "Offer text. " * 40,
)
t0 = time.perf_counter()
msgs = []
at = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
for i in range(n):
    profile = {"user_id": f"u{i}", "email": f"u{i}@x.example", "name": f"User {i}"}
    msgs.append(OutgoingMessage(f"{tag}.u{i}.0", f"u{i}", "bench", "A", "email", profile["email"],
                                preview(content, profile), at, ("Bench",), None))
render_s = time.perf_counter() - t0
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t0, c0 = time.perf_counter(), cpu()
ok = 0
if mode in ("reuse", "pipelined"):
    p = SmtpProvider("127.0.0.1", port, connections=conns)
    p.open()
    for i in range(0, n, 500):
        ok += sum(r.ok for r in p.deliver(msgs[i:i + 500]))
    p.close()
    conns = p.connections
else:
    conns = 0
    for m in msgs:
        p = SmtpProvider("127.0.0.1", port)
        p.open()
        ok += sum(r.ok for r in p.deliver([m]))
        p.close()
        conns += p.connections
send_s, cpu_s = time.perf_counter() - t0, cpu() - c0
print(json.dumps({"ok": ok, "render_s": render_s, "send_s": send_s, "cpu_s": cpu_s,
                  "connections": conns}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--single", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=2, help="kept-open connections (reuse)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.delivery.servers import free_port

    servers = {}
    for pipelining in ("0", "1"):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port), pipelining],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        servers[pipelining] = (port, proc)
    try:
        for _port, proc in servers.values():
            assert proc.stdout.readline().strip() == "ready"

        def server_cpu(proc) -> float:
            f = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

        def count(proc) -> int:
            proc.stdin.write("count\n")
            proc.stdin.flush()
            return int(proc.stdout.readline())

        results: dict[str, list[dict]] = {"reuse": [], "pipelined": [], "per-message": []}
        modes = (("reuse", args.messages, "0"), ("pipelined", args.messages, "1"),
                 ("per-message", args.single, "0"))  # fmt: skip
        for run in range(args.runs):
            for mode, n, srv in modes:
                port, proc = servers[srv]
                before, scpu = count(proc), server_cpu(proc)
                out, rss = run_child(
                    CLIENT, str(port), str(n), mode, f"r{run}{mode}", str(args.connections)
                )
                r = json.loads(out.strip().splitlines()[-1])
                r["rss_mb"] = rss
                r["server_count"] = count(proc) - before
                r["server_cpu_s"] = server_cpu(proc) - scpu
                assert r["ok"] == n == r["server_count"], r
                r["rate"] = n / r["send_s"]
                r["load"] = os.getloadavg()[0]
                results[mode].append(r)
                print(f"run {run + 1} {mode:<12} {n:>6} msgs  {r['rate']:8.0f} msg/s  "
                      f"{r['connections']} connection(s)  client CPU {r['cpu_s'] / n * 1e3:.2f} ms/msg  "
                      f"server CPU {r['server_cpu_s'] / n * 1e3:.2f} ms/msg  peak RSS {rss} MB  "
                      f"load {r['load']:.1f}", flush=True)  # fmt: skip
    finally:
        for _port, proc in servers.values():
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            proc.wait(timeout=30)

    reuse, piped, single = results["reuse"], results["pipelined"], results["per-message"]
    r_rate, s_rate = median([r["rate"] for r in reuse]), median([r["rate"] for r in single])
    p_rate = median([r["rate"] for r in piped])
    best = max(r_rate, p_rate)
    c_ms = median([r["cpu_s"] for r in reuse]) / args.messages * 1e3
    s_ms = median([r["server_cpu_s"] for r in reuse]) / args.messages * 1e3
    pc_ms = median([r["cpu_s"] for r in piped]) / args.messages * 1e3
    ps_ms = median([r["server_cpu_s"] for r in piped]) / args.messages * 1e3
    loads = [r["load"] for rs in results.values() for r in rs]
    body = "\n".join(
        [
            "## SMTP delivery to a loopback aiosmtpd server (`benchmarks/bench_smtp.py`)",
            "",
            f"Measured {now()} on {machine(('aiosmtpd', 'jinja2'))}.",
            "",
            "Client: `SmtpProvider` in a child process (peak RSS below), rendering a personalised "
            "multipart e-mail (HTML + text, ~1 KB) per user; server: aiosmtpd in its own process, "
            "counting every message it accepted (all counts matched). Median of "
            f"{args.runs} runs.",
            "",
            "| mode | messages | send time (s) | messages/s | connections | client CPU (ms/msg) "
            "| server CPU (ms/msg) | render (s) | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            _row(
                f"{args.connections} kept-open connection(s), batches of 500",
                args.messages,
                reuse,
                args.connections,
                bold=True,
            ),
            _row(
                f"{args.connections} kept-open connection(s), server offers PIPELINING",
                args.messages,
                piped,
                args.connections,
                bold=True,
            ),
            _row("new connection per message", args.single, single, args.single),
            "",
            f"Connection reuse is {r_rate / s_rate:.1f}x faster than a connection per message, "
            f"pipelining {p_rate / r_rate:.2f}x faster than reuse alone; "
            f"target >= 500 messages/s: {'met' if best >= 500 else 'NOT met'} in this run "
            f"(load average during the runs {min(loads):.1f}-{max(loads):.1f} on 2 cores). "
            f"CPU per message with reuse: client {c_ms:.2f} ms, server {s_ms:.2f} ms, i.e. "
            f"{1000 / max(c_ms, s_ms):,.0f} messages/s with client and server each on an "
            f"idle core ({1000 / (c_ms + s_ms):,.0f}/s sharing one); with pipelining: client "
            f"{pc_ms:.2f} ms, server {ps_ms:.2f} ms ({1000 / max(pc_ms, ps_ms):,.0f}/s on two "
            "idle cores). The wall-clock rate is lower when other processes compete for the 2 "
            "cores.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("smtp", body)


def _row(label: str, n: int, runs: list[dict], conns: int, bold: bool = False) -> str:
    rate = median([r["rate"] for r in runs])
    rate_s = f"**{rate:,.0f}**" if bold else f"{rate:,.0f}"
    return (
        f"| {label} | {n:,} | {median([r['send_s'] for r in runs]):.2f} | {rate_s} | {conns:,} | "
        f"{median([r['cpu_s'] for r in runs]) / n * 1e3:.2f} | "
        f"{median([r['server_cpu_s'] for r in runs]) / n * 1e3:.2f} | "
        f"{median([r['render_s'] for r in runs]):.2f} | {max(r['rss_mb'] for r in runs)} |"
    )


if __name__ == "__main__":
    main()
