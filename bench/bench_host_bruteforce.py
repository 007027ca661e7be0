"""Brute-force log matching speed: fsbrain vs fail2ban-regex on the same sshd log, in one run.

Generates a realistic sshd auth log (attack connections with failed passwords, invalid users, PAM
records and preauth disconnects; legitimate public-key logins and sessions; other daemons' lines), then
times, on the same file and the same machine, one after the other:

1. ``fail2ban-regex`` (Debian's fail2ban) with Debian's ``/etc/fail2ban/filter.d/sshd.conf``;
2. fsbrain with its own ``sshd`` filter, one process: in batches (``LogFilter.process_batch``, what
   ``fsbrain host scan`` does; with the compiled per-line loop when it is built — calling RE2 directly when
   built with libre2-dev, and on Arrow's kernels as without it — and with the pure-Python loop) and line by
   line (``LogFilter.process``, what ``fsbrain host follow`` does);
3. fsbrain running Debian's ``sshd.conf`` as it is (the loader's compatibility path);
4. fsbrain with its own filter on ``--jobs`` worker processes (lines split in chunks; only the
   stateless date/regex work is parallel, connection-id merging runs in order afterwards).

It then checks the matches are identical: the set of lines fail2ban-regex reports as matched (from an
untimed ``--print-all-matched`` run) against the lines fsbrain reports as failures.

Usage::

    python bench/bench_host_bruteforce.py --lines 200000 --out docs/benchmarks/host_bruteforce.md
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import describe  # noqa: E402

from fsbrain.domains.host.fail2ban import load_filter  # noqa: E402
from fsbrain.domains.host.logparse import LogFilter  # noqa: E402
from fsbrain.domains.host.logparse_batch import BatchPlan, load_fastlog, use_re2  # noqa: E402 - pyarrow imported before timing
from fsbrain.domains.host.logparse_parallel import parallel_failures  # noqa: E402

DEBIAN_SSHD = Path("/etc/fail2ban/filter.d/sshd.conf")
USERS = ["root", "admin", "test", "oracle", "ubuntu", "postgres", "user", "guest", "ftp", "pi", "git", "deploy"]


def generate(path: Path, n: int, seed: int = 7) -> None:
    """Write about ``n`` lines of realistic sshd syslog."""
    rnd = random.Random(seed)
    attackers = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
                 for _ in range(3000)]
    admins = [f"10.0.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}" for _ in range(20)]
    t = 1_700_000_000.0
    pid = 20000
    out: list[str] = []

    def emit(p: int, msg: str, daemon: str = "sshd") -> None:
        stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(t))
        stamp = stamp[:4] + stamp[4:6].replace("0", " ", 1) + stamp[6:] if stamp[4] == "0" else stamp
        out.append(f"{stamp} bastion {daemon}[{p}]: {msg}")

    while len(out) < n:
        t += rnd.expovariate(1 / 0.4)
        pid = pid + rnd.randint(1, 9) if pid < 4_000_000 else 20000
        port = rnd.randint(1024, 65535)
        r = rnd.random()
        if r < 0.70:  # an attack connection
            ip = attackers[int(rnd.paretovariate(1.2)) % len(attackers)]
            user = rnd.choice(USERS + [f"u{rnd.randint(1, 999)}"])
            invalid = user not in ("root", "ubuntu", "git", "deploy")
            if invalid:
                emit(pid, f"Invalid user {user} from {ip} port {port}")
            for _ in range(rnd.choice([1, 1, 2, 3, 6])):
                t += rnd.uniform(0.5, 3)
                if rnd.random() < 0.3 and not invalid:
                    emit(pid, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                              f"ruser= rhost={ip}  user={user}")
                who = "invalid user " if invalid else ""
                emit(pid, f"Failed password for {who}{user} from {ip} port {port} ssh2")
            end = rnd.random()
            if end < 0.5:
                who = "invalid user" if invalid else "authenticating user"
                emit(pid, f"Connection closed by {who} {user} {ip} port {port} [preauth]")
            elif end < 0.8:
                emit(pid, f"Received disconnect from {ip} port {port}:11: Bye Bye [preauth]")
                emit(pid, f"Disconnected from {'invalid' if invalid else 'authenticating'} user {user} {ip} "
                          f"port {port} [preauth]")
            else:
                emit(pid, f"error: maximum authentication attempts exceeded for {user} from {ip} port {port} "
                          "ssh2 [preauth]")
                emit(pid, "Disconnecting: Too many authentication failures [preauth]")
        elif r < 0.85:  # a legitimate login
            ip, user = rnd.choice(admins), rnd.choice(["deploy", "ops", "backup"])
            emit(pid, f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:"
                      f"{rnd.getrandbits(128):032x}")
            emit(pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)")
            t += rnd.uniform(5, 600)
            emit(pid, f"Received disconnect from {ip} port {port}:11: disconnected by user")
            emit(pid, f"pam_unix(sshd:session): session closed for user {user}")
        elif r < 0.93:  # scanners
            ip = attackers[rnd.randrange(len(attackers))]
            emit(pid, f"Connection closed by {ip} port {port} [preauth]")
        else:  # other daemons
            emit(rnd.randint(100, 999), "(root) CMD (run-parts /etc/cron.hourly)", "CRON")
    path.write_text("\n".join(out[:n]) + "\n", encoding="utf-8")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_fail2ban(log: Path) -> dict[str, float]:
    t0, c0 = time.perf_counter(), _children_cpu()
    p = subprocess.run(["fail2ban-regex", str(log), str(DEBIAN_SSHD)], capture_output=True, text=True, check=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", p.stdout)
    proc = re.search(r"\[processed in ([\d.]+) sec\]", p.stdout)
    if not m:
        raise SystemExit(f"unexpected fail2ban-regex output:\n{p.stdout[-2000:]}")
    return {"lines": int(m[1]), "ignored": int(m[2]), "matched": int(m[3]), "missed": int(m[4]),
            "wall": wall, "cpu": cpu, "processed": float(proc[1]) if proc else wall}


def fail2ban_matched_lines(log: Path) -> list[str]:
    p = subprocess.run(["fail2ban-regex", "--print-all-matched", str(log), str(DEBIAN_SSHD)],
                       capture_output=True, text=True, check=True)
    return [x[3:] for x in p.stdout.splitlines() if re.match(r"\|  [A-Z][a-z]{2} ", x)]


BATCH = 16384  # lines per LogFilter.process_batch call (as fsbrain host scan does)


def run_fsbrain(log: Path, spec: str, dirs: list[Path] | None, *, batch: bool = True,
                speedups: bool | None = None, re2: bool | None = None) -> tuple[dict[str, float], list[bytes]]:
    """fsbrain over the file: in batches (``process_batch``, the scan path) or line by line (``process``,
    the live-follow path); ``speedups=False``: batches with the pure-Python per-line loop; ``re2=False``:
    the compiled loop on Arrow's kernels instead of RE2 called directly (the build without libre2-dev)."""
    t0, c0 = time.perf_counter(), time.process_time()
    flt = LogFilter(load_filter(spec, dirs), speedups=speedups)
    if re2 is not None:
        flt._batch_plan = BatchPlan(flt, re2=re2)
    failures = []
    with open(log, "rb") as fh:
        if batch:
            while True:
                lines = [raw.rstrip(b"\n") for raw in itertools.islice(fh, BATCH)]
                if not lines:
                    break
                failures += [line for line, res in zip(lines, flt.process_batch(lines), strict=True)
                             if res.status == "failure"]
        else:
            process = flt.process
            for raw in fh:
                line = raw.rstrip(b"\n")
                if process(line).status == "failure":
                    failures.append(line)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {**flt.counts, "wall": wall, "cpu": cpu}, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    ap.add_argument("--log", type=Path, default=None, help="use this sshd log instead of generating one")
    ap.add_argument("--runs", type=int, default=1,
                    help="time fail2ban-regex and fsbrain's default batches this many times (the ratio per run)")
    args = ap.parse_args()
    if shutil.which("fail2ban-regex") is None or not DEBIAN_SSHD.exists():
        raise SystemExit("fail2ban-regex is not installed: apt-get install -y fail2ban")
    tmp = Path(tempfile.mkdtemp(prefix="fsb-bench-"))
    log = args.log or tmp / "auth.log"
    if args.log is None:
        generate(log, args.lines)
    n = sum(1 for _ in open(log, "rb"))
    print(f"log: {log} ({n} lines, {log.stat().st_size / 1e6:.1f} MB)", flush=True)
    load_before = os.getloadavg()
    f2b = run_fail2ban(log)
    print(f"fail2ban-regex: {f2b}", flush=True)
    own, own_fail = run_fsbrain(log, "sshd", None)
    print(f"fsbrain (own sshd filter, batches): {own}", flush=True)
    fast = load_fastlog()
    compiled = fast is not None
    direct = compiled and fast.re2_available() and use_re2()
    arrow, arrow_fail = run_fsbrain(log, "sshd", None, re2=False)
    print(f"fsbrain (own sshd filter, batches, compiled loop on Arrow's kernels): {arrow}", flush=True)
    py, py_fail = run_fsbrain(log, "sshd", None, speedups=False)
    print(f"fsbrain (own sshd filter, batches, pure-Python loop): {py}", flush=True)
    one, one_fail = run_fsbrain(log, "sshd", None, batch=False)
    print(f"fsbrain (own sshd filter, line by line): {one}", flush=True)
    deb, deb_fail = run_fsbrain(log, "sshd", [DEBIAN_SSHD.parent])
    print(f"fsbrain (Debian sshd.conf): {deb}", flush=True)
    t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
    par_fail = parallel_failures(log, "sshd", jobs=args.jobs)
    par_wall = time.perf_counter() - t0
    par_cpu = time.process_time() - c0 + _children_cpu() - k0
    print(f"fsbrain parallel x{args.jobs}: {len(par_fail)} failures in {par_wall:.2f}s", flush=True)
    repeats = [(f2b, own, load_before[0], load_after_first := os.getloadavg()[0])]
    for _ in range(args.runs - 1):
        before = os.getloadavg()[0]
        f2b_k = run_fail2ban(log)
        own_k, own_k_fail = run_fsbrain(log, "sshd", None)
        if sorted(own_k_fail) != sorted(own_fail) or f2b_k["matched"] != f2b["matched"]:
            raise SystemExit("a repeated run matched other lines")
        repeats.append((f2b_k, own_k, before, os.getloadavg()[0]))
        print(f"repeat: fail2ban-regex {f2b_k['cpu']:.2f} CPU-s, fsbrain {own_k['cpu']:.2f} CPU-s", flush=True)
    load_after = os.getloadavg() if args.runs == 1 else (load_after_first,)
    theirs = sorted(fail2ban_matched_lines(log))
    same_own = (theirs == sorted(x.decode() for x in own_fail) == sorted(x.decode() for x in one_fail)
                == sorted(x.decode() for x in py_fail) == sorted(x.decode() for x in arrow_fail))
    same_deb = theirs == sorted(x.decode() for x in deb_fail)
    same_par = sorted(par_fail) == sorted(own_fail)
    rows = [
        ("fail2ban-regex (Debian sshd.conf)", f2b["wall"], f2b["cpu"], f2b["matched"]),
        ("fail2ban-regex, its own 'processed in'", f2b["processed"], None, f2b["matched"]),
        ("fsbrain, own sshd filter, 1 process, batches of 16384 lines ("
         + ("compiled loop, RE2 called directly" if direct else "compiled loop, Arrow's kernels" if compiled
            else "pure-Python loop") + ")", own["wall"], own["cpu"], own["failure"]),
        ("fsbrain, own sshd filter, 1 process, batches, compiled loop on Arrow's kernels (FSBRAIN_RE2=0; "
         "the build without libre2-dev)", arrow["wall"], arrow["cpu"], arrow["failure"]),
        ("fsbrain, own sshd filter, 1 process, batches, pure-Python loop (FSBRAIN_SPEEDUPS=0)", py["wall"], py["cpu"],
         py["failure"]),
        ("fsbrain, own sshd filter, 1 process, line by line", one["wall"], one["cpu"], one["failure"]),
        ("fsbrain, Debian sshd.conf as is, 1 process", deb["wall"], deb["cpu"], deb["failure"]),
        (f"fsbrain, own sshd filter, {args.jobs} processes", par_wall, par_cpu, len(par_fail)),
    ]
    base = n / f2b["wall"]
    base_cpu = n / f2b["cpu"]
    lines = [
        "# Host brute force: fsbrain vs fail2ban-regex",
        "",
        f"Machine: {describe()}",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"Load average (1 min) before / after the timed runs: {load_before[0]:.1f} / {load_after[0]:.1f} "
        f"on {os.cpu_count()} cores (the machine is shared: both tools ran under the same load, one after "
        "the other, so the ratio is the comparable number, not the absolute lines/s).",
        "",
        f"Input: {n} generated sshd syslog lines ({log.stat().st_size / 1e6:.1f} MB; attacks, PAM records, "
        "preauth disconnects, legitimate key logins, other daemons), one file, read once per tool, "
        "one tool after the other in the same run.",
        "",
        "| run | wall s | lines/s (wall) | vs fail2ban-regex (wall) | CPU s | lines per CPU-s | vs fail2ban-regex "
        "(CPU) | failures matched |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, sec, cpu, matched in rows:
        cpu_cols = (f"{cpu:.2f} | {n / cpu:,.0f} | {n / cpu / base_cpu:.1f}x" if cpu else "- | - | -")
        lines.append(f"| {name} | {sec:.2f} | {n / sec:,.0f} | {n / sec / base:.1f}x | {cpu_cols} | {matched} |")
    lines += [
        "",
        f"Identical matches (same set of lines as fail2ban-regex --print-all-matched): own filter "
        f"**{'yes' if same_own else 'NO'}**, Debian sshd.conf through fsbrain's loader "
        f"**{'yes' if same_deb else 'NO'}**; parallel run equals the single-process run: "
        f"**{'yes' if same_par else 'NO'}**.",
        "",
        "Reproduce: `apt-get install -y fail2ban libre2-dev && .venv/bin/python bench/bench_host_bruteforce.py "
        f"--lines {n} --runs {args.runs} --out docs/benchmarks/host_bruteforce.md`",
    ]
    if args.runs > 1:
        lines += [
            "",
            f"The first two rows again, {args.runs} times in this run (fail2ban-regex, then fsbrain's default "
            "batches; CPU seconds of each process; identical matches checked every time):",
            "",
            "| run | load (1 min) before / after | fail2ban-regex CPU s | fsbrain CPU s | vs fail2ban-regex (CPU) |",
            "|---:|---|---:|---:|---:|",
        ]
        for k, (f, o, lb, la) in enumerate(repeats, 1):
            lines.append(f"| {k} | {lb:.1f} / {la:.1f} | {f['cpu']:.2f} | {o['cpu']:.2f} | {f['cpu'] / o['cpu']:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if not (same_own and same_deb and same_par):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
