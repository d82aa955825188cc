"""The benchmarks run end to end at a tiny size and print their ratio; their figures are never judged here."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, *args: str) -> str:
    """Run a benchmark and return what it printed; fail with its output if it failed."""
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300,
                            cwd=BENCH.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def ratio_line(output: str, prefix: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(prefix)]
    assert lines, output
    return lines[-1]


@pytest.mark.parametrize("client", ["python", "wrk"])
def test_acceptance_prints_its_ratio(client):
    if client == "wrk" and not shutil.which("wrk"):
        pytest.skip("wrk is not installed")
    output = run_bench("acceptance.py", "--requests", "30", "--rounds", "1", "--connections", "2", "--workers", "1",
                       "--threads", "2", "--client", client)
    assert "bare RPUSH endpoint" in output and "bridge POST /hooks/shop" in output
    assert float(ratio_line(output, "ratio bridge/bare: ").split()[2]) > 0


def test_latency_prints_percentiles_and_its_ratio():
    output = run_bench("latency.py", "--samples", "3", "--workers", "1", "--threads", "2")
    assert "bridge: webhook -> first LMS call:" in output and "p99" in output
    assert ratio_line(output, "ratio bridge/baseline, first LMS call: p50 ")


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_worker_throughput_prints_its_ratio(mode):
    output = run_bench("worker_throughput.py", "--jobs", "5", "--rounds", "1", "--mode", mode)
    assert "bridge worker     5 jobs" in output, output
    assert float(ratio_line(output, "ratio worker/direct: ").split()[2]) > 0


def test_slow_lms_prints_the_rate_per_in_flight_count():
    output = run_bench("slow_lms.py", "--latency", "0.05", "--in-flight", "1,2", "--jobs-per-slot", "1", "--rounds", "1")
    assert ratio_line(output, "in flight  1: worker") and ratio_line(output, "in flight  2: worker")
    assert float(ratio_line(output, "in flight  2: worker").split()[-1]) > 0


@pytest.mark.parametrize("script", ["acceptance.py", "latency.py", "worker_throughput.py", "slow_lms.py"])
def test_help_names_the_size_option(script):
    output = run_bench(script, "--help")
    assert any(option in output for option in ("--requests", "--samples", "--jobs"))


def test_rules_scale_prints_its_ratios():
    output = run_bench("rules_scale.py", "--rounds", "20", "--rules", "200")
    assert ratio_line(output, "indexed:") and ratio_line(output, "scan:")
    assert float(ratio_line(output, "load:").split("ratio")[1]) > 0


def test_console_pages_prints_its_ratio():
    output = run_bench("console_pages.py", "--deliveries", "300", "--small", "20", "--rounds", "2")
    assert "stored 300 deliveries" in output
    assert float(ratio_line(output, "ratio 300/20 stored, median page time: worst ").split()[7]) > 0


def test_hostile_prints_every_case_and_the_worst_ratio():
    output = run_bench("hostile.py", "--size", "30000", "--rounds", "1")
    assert "benign json order, signed, 30000 B" in output and "status 202" in output
    assert output.count("hostile ") >= 19 and "status 5" not in output
    assert float(ratio_line(output, "ratio hostile/benign, worst: ").split()[3]) > 0
