"""The load test's figures from a run's folder (bench/loadtest.sh's LOADTEST_OUT): requests,
failures and p50/p95/p99 per kind of request (Locust's CSV statistics), the outcomes the
locustfile counted, what the jobs did, and the instances' errors.

    python bench/loadtest_report.py OUT

Exits 1 when the run must fail: a 5xx or a connection error (a request reset on a kept-alive
connection and sent again by the locustfile, as browsers do, is listed, not counted: see its
RESENDABLE), an exception in the harness
(Locust's exceptions CSV), a `jobs run` that failed, an unhandled error or a worker timeout
in an instance's log, or no successful sign-in / usage posting / signed-in page at all (a
harness that did nothing). Other 4xx answers the locustfile did not expect are listed (with
their request ids) but do not fail the run: a 4xx is the portal refusing, not breaking.
"""

import csv
import json
import re
import sys
from pathlib import Path

CORE = ("sign in", "usage (new key)", "billing settings")


def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def ms(value: str) -> str:
    try:
        return f"{float(value):,.0f}"
    except ValueError:
        return value


def main(out: Path) -> int:
    fatal = []
    stats = read_csv(out / "locust_stats.csv")
    if not stats:
        print(f"no statistics in {out} (locust_stats.csv)")
        return 1
    rows = [r for r in stats if r["Name"] != "Aggregated"]
    total = next(r for r in stats if r["Name"] == "Aggregated")
    print(f"\n{'kind of request':<44} {'requests':>8} {'fail':>5} {'p50':>6} {'p95':>6} "
          f"{'p99':>6} {'max':>6}  (ms)")
    for r in sorted(rows, key=lambda r: -int(r["Request Count"])):
        print(f"{r['Type'] + ' ' + r['Name']:<44} {int(r['Request Count']):>8,} "
              f"{int(r['Failure Count']):>5} {ms(r['50%']):>6} {ms(r['95%']):>6} "
              f"{ms(r['99%']):>6} {ms(r['Max Response Time']):>6}")
    print(f"{'all':<44} {int(total['Request Count']):>8,} {int(total['Failure Count']):>5} "
          f"{ms(total['50%']):>6} {ms(total['95%']):>6} {ms(total['99%']):>6} "
          f"{ms(total['Max Response Time']):>6}")
    print(f"throughput: {float(total['Requests/s']):.1f} requests/s")
    succeeded = {r["Name"] for r in rows if int(r["Request Count"]) > int(r["Failure Count"])}
    missing = [kind for kind in CORE if kind not in succeeded]
    if missing:
        fatal.append(f"no successful request of kind {', '.join(missing)}")

    failures = read_csv(out / "locust_failures.csv")
    broken = [f for f in failures if not f["Error"].startswith("HTTP 4")
              and f["Error"] != "signed out"]
    refused = [f for f in failures if f not in broken]
    n_broken = sum(int(f["Occurrences"]) for f in broken)
    n_refused = sum(int(f["Occurrences"]) for f in refused)
    print(f"\nfailures: {n_broken} 5xx or connection errors, {n_refused} unexpected 4xx")
    for f in failures:
        print(f"  {f['Occurrences']:>5} x {f['Method']} {f['Name']}: {f['Error']}")
    if n_broken:
        fatal.append(f"{n_broken} 5xx or connection errors")
    details = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()
               if line] if (out / "failures.jsonl").exists() else []
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(out.glob("instance-*.log")))
    for d in details[:10]:
        print(f"  {d['status']} {d['method']} {d['url']} request_id={d['request_id']}")
        for line in logs.splitlines():
            if d["request_id"] in line:
                print("      " + line[:1500])

    resent = [json.loads(line) for line in (out / "resent.jsonl").read_text().splitlines()
              if line] if (out / "resent.jsonl").exists() else []
    print(f"resent: {len(resent)} request(s) reset on a kept-alive connection before any "
          "answer and sent again on a new one, as a browser does (not failures; each below)")
    for r in resent:
        print(f"  {r['method']} {r['kind']} {r['url']}: idle {r['idle_before']} s, "
              f"{r['error'][:100]}")

    exceptions = read_csv(out / "locust_exceptions.csv")
    if exceptions:
        fatal.append(f"{len(exceptions)} exception(s) in the harness")
        for e in exceptions:
            print(f"harness exception x{e['Count']}: {e['Message']}\n{e['Traceback'][-1500:]}")

    summary_path = out / "summary.json"
    if summary_path.exists():
        print("\noutcomes counted by the simulated users:")
        for name, count in json.loads(summary_path.read_text()).items():
            print(f"  {count:>6,}  {name}")

    runs, asked, failed_jobs = 0, 0, 0
    for path in sorted(out.glob("jobs-*.log")):
        text = path.read_text(errors="replace")
        runs += text.count("pending charge(s) asked again")
        asked += sum(int(n) for n in re.findall(r"charges: (\d+) pending", text))
        failed_jobs += text.count("JOBS RUN FAILED")
    print(f"\njobs: {runs} runs of `jobs run` from the two instances, {asked} pending charges "
          f"asked again, {failed_jobs} failed runs")
    if failed_jobs:
        fatal.append(f"{failed_jobs} failed `jobs run`")
        for path in sorted(out.glob("jobs-*.log")):
            print(f"--- {path.name} (end)\n" + path.read_text(errors="replace")[-3000:])

    # SQLite (portal/transactions.py): writers that waited over a second for the one write
    # lock, and transactions that held it over a second (a WARNING each, not a failure).
    jobs_logs = "\n".join(p.read_text(errors="replace") for p in sorted(out.glob("jobs-*.log")))
    for what in ("waited", "held"):
        seconds = [float(s) for s in re.findall(
            rf"SQLite write lock: {what} ([\d.]+) s", logs + "\n" + jobs_logs)]
        if seconds:
            print(f"SQLite write lock {what} over 1 s: {len(seconds)} times, the longest "
                  f"{max(seconds):.1f} s")
    unhandled = [line for line in logs.splitlines() if "unhandled error" in line]
    timeouts = logs.count("WORKER TIMEOUT")
    errors = [line for line in logs.splitlines() if " ERROR " in line]
    print(f"instances' logs: {len(errors)} ERROR lines, {len(unhandled)} unhandled errors, "
          f"{timeouts} worker timeouts")
    for line in errors[:10]:
        print("  " + line[:1500])
    if unhandled:
        fatal.append(f"{len(unhandled)} unhandled errors in the instances' logs")
    if timeouts:
        fatal.append(f"{timeouts} worker timeouts")

    print("\nload: " + ("FAIL: " + "; ".join(fatal) if fatal else
                        "PASS (no 5xx, no connection error, no harness or jobs error)"))
    return 1 if fatal else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(Path(sys.argv[1])))
