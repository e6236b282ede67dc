"""The scale-out topology rehearsed on one machine (docs/scaling.md, "The rehearsal").

``scripts/rehearse.sh start|stop|status|manage|ratio`` runs this module. ``start`` brings up, under one
directory (default ``var/rehearsal``), with real processes:

- a Redis Cluster of 3 masters and 3 replicas (``scripts/redis_cluster.sh``) on ports from
  ``REHEARSAL_REDIS_PORT`` (default 7100; its cluster-bus ports are +10000);
- a database of its own (``REHEARSAL_NAME``, default ``adsite_rehearsal``) on the machine's PostgreSQL
  (``REHEARSAL_POSTGRES``, default ``postgres://postgres@127.0.0.1:5432``), migrated, with the demo site,
  its campaigns and some demo traffic;
- a RabbitMQ virtual host of its own (the same name) on the machine's RabbitMQ (``rabbitmqctl``), the
  Celery broker, so its queues never meet another site's;
- five hosts, each ``scripts/serve.sh`` with its own ``ADSITE_ROLES`` and var directory, in a session of
  its own (``benchmarks.stack.Site``): ``web-a`` and ``web-b`` (granian, 2 worker processes each, on two
  ports), ``worker-1`` and ``worker-2`` (a Celery worker each), and ``beat``;
- shared between the hosts as a real deployment shares them: the model directory (shared storage),
  the secret key (signed links from one host verify on the other), the API token.

It ends by training a first model on a worker (the task goes through RabbitMQ) and waiting until both
web hosts serve it. Everything it started is written to ``DIR/rehearsal.json``, so ``stop`` and ``status``
work from another process; ``stop`` ends the hosts, the cluster, the virtual host and the database.
Nothing of the machine's own services is stopped or reconfigured.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.stack import ROOT, Site, pg_query, wait_for

CLUSTER_SCRIPT = ROOT / "scripts" / "redis_cluster.sh"
MASTERS, REPLICAS = 3, 1
HOSTS: dict[str, str] = {"web-a": "web", "web-b": "web", "worker-1": "worker", "worker-2": "worker", "beat": "beat"}
WEB_HOSTS = [name for name, role in HOSTS.items() if role == "web"]


def _rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("rabbitmqctl")
    if binary is None:
        raise RuntimeError("rabbitmqctl is not installed: the rehearsal needs the machine's RabbitMQ")
    done = subprocess.run([binary, "-q", *args], capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done


@dataclass
class Rehearsal:
    """One rehearsal's pieces (see the module docstring); ``save``/``load`` keep them in ``DIR/rehearsal.json``."""

    dir: Path
    name: str = "adsite_rehearsal"
    postgres: str = "postgres://postgres@127.0.0.1:5432"
    redis_base: int = 7100
    redis_dir: Path | None = None  # None: DIR/redis, started and stopped by the rehearsal
    broker_host: str = "127.0.0.1:5672"
    secret_key: str = ""
    token: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    sites: dict[str, Site] = field(default_factory=dict, repr=False)

    # --- where things are ----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.dir / "rehearsal.json"

    @property
    def cluster_dir(self) -> Path:
        return self.redis_dir or self.dir / "redis"

    @property
    def manages_cluster(self) -> bool:
        return self.redis_dir is None

    @property
    def redis_ports(self) -> list[int]:
        return [self.redis_base + i for i in range(MASTERS * (1 + REPLICAS))]

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_base}/0"

    @property
    def database_url(self) -> str:
        return f"{self.postgres.rstrip('/')}/{self.name}"

    @property
    def broker_url(self) -> str:
        return f"amqp://guest:guest@{self.broker_host}/{urllib.parse.quote(self.name, safe='')}"

    def env(self) -> dict[str, str]:
        """The environment every host shares: scale-out mode on the rehearsal's cluster, database and broker."""
        return {
            "REDIS_CLUSTER": "1",
            "CELERY_BROKER_URL": self.broker_url,
            "DJANGO_SECRET_KEY": self.secret_key,
            "INFERENCE_MODEL_DIR": str(self.dir / "models"),  # the shared storage of model artifacts
            "TRACKING_FLUSH_SECONDS": "1",
            "LOG_LEVEL": "INFO",
        }

    def site(self, name: str) -> Site:
        """The host ``name`` (a ``Site``; ``web-a`` also runs the rehearsal's management commands)."""
        if name not in self.sites:
            env = {**self.env(), "ADSITE_ROLES": HOSTS[name], "ADSITE_WORKER_NAME": name}
            if name in self.ports:
                env["PORT"] = str(self.ports[name])
            site = Site(self.dir / name, self.redis_url, self.database_url, **env)
            site.token = self.token
            site.pid = self.pids.get(name)
            self.ports[name] = site.port
            self.sites[name] = site
        return self.sites[name]

    def manage(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.site("web-a").manage(*args, timeout=timeout, check=check)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return pg_query(self.database_url, sql, params)

    # --- state ---------------------------------------------------------------------------------------

    def save(self) -> None:
        self.pids = {name: site.pid for name, site in self.sites.items() if site.pid is not None}
        state = {
            "name": self.name, "postgres": self.postgres, "redis_base": self.redis_base,
            "redis_dir": str(self.redis_dir) if self.redis_dir else None, "broker_host": self.broker_host,
            "secret_key": self.secret_key, "token": self.token, "ports": self.ports, "pids": self.pids,
        }
        self.state_path.write_text(json.dumps(state, indent=2))
        os.chmod(self.state_path, 0o600)  # the secret key and the API token

    @classmethod
    def load(cls, directory: Path) -> Rehearsal:
        state = json.loads((directory / "rehearsal.json").read_text())
        return cls(
            directory, name=state["name"], postgres=state["postgres"], redis_base=state["redis_base"],
            redis_dir=Path(state["redis_dir"]) if state["redis_dir"] else None, broker_host=state["broker_host"],
            secret_key=state["secret_key"], token=state["token"], ports=state["ports"], pids=state["pids"],
        )

    # --- start and stop ------------------------------------------------------------------------------

    def _cluster(self, action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLUSTER_SCRIPT), action, str(self.cluster_dir), str(self.redis_base), str(REPLICAS)],
            capture_output=True, text=True, timeout=120,
        )

    def _database_create(self) -> None:
        server = f"{self.postgres.rstrip('/')}/postgres"
        pg_query(server, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        pg_query(server, f'CREATE DATABASE "{self.name}"')

    def _vhost_create(self) -> None:
        _rabbitmqctl("delete_vhost", self.name, check=False)
        _rabbitmqctl("add_vhost", self.name)
        _rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")

    def start(self, *, progress: bool = True, visitors: int = 150, train: bool = True) -> None:
        """Start it all (see the module docstring); ``visitors``: the demo traffic's; ``train``: a first model."""
        started = time.monotonic()

        def say(message: str) -> None:
            if progress:
                print(f"rehearsal [{time.monotonic() - started:5.0f} s]: {message}", flush=True)

        self.dir.mkdir(parents=True, exist_ok=True)
        self.secret_key = self.secret_key or secrets.token_urlsafe(50)
        self.save()
        if self.manages_cluster:
            say(f"Redis Cluster, 3 masters + 3 replicas, ports {self.redis_ports[0]}-{self.redis_ports[-1]}")
            done = self._cluster("start")
            if done.returncode != 0:
                raise RuntimeError(f"the Redis Cluster did not start: {done.stdout}{done.stderr}")
        say(f"database {self.database_url}; RabbitMQ virtual host {self.name}")
        self._database_create()
        self._vhost_create()
        say("migrate, demo site, campaigns and demo traffic")
        web_a = self.site("web-a")
        web_a.prepare()
        self.token = web_a.token
        self.manage("bootstrap_demo", "--visitors", str(visitors), "--skip-training")
        for name in HOSTS:
            self.site(name).token = self.token
        say("hosts: " + ", ".join(f"{name} ({role})" for name, role in HOSTS.items()))
        for name in HOSTS:
            self.site(name).launch()
        self.save()
        for name in HOSTS:
            self.site(name).wait_started()
        if train:
            say("a first model, trained by a worker")
            self.train_and_wait()
        say(f"up in {time.monotonic() - started:.0f} s: " + ", ".join(
            f"{name} http://127.0.0.1:{self.ports[name]}/" for name in WEB_HOSTS))

    def train(self, *, timeout: float = 400) -> set[str]:
        """Enqueue a training run (gbdt, activated) through RabbitMQ, where a worker takes it; returns the
        versions it activated (the gbdt model and the baseline ranker registered beside it)."""
        before = self.active_versions()
        self.manage("shell", "-c", "from inference.api import training_start; "
                    "print(training_start(algorithm='gbdt', activate='always'))")
        wait_for(lambda: bool(self.active_versions() - before), timeout=timeout,
                 what="a model trained by a worker and activated", every=0.5)
        return self.active_versions() - before

    def train_and_wait(self, *, timeout: float = 400) -> set[str]:
        """``train``, then wait until every web process of both web hosts has loaded what it activated (several
        ``/readyz`` answers in a row each, as they come from either of a host's processes)."""
        versions = self.train(timeout=timeout)
        for name in WEB_HOSTS:
            streak = {"n": 0}

            def loaded_everywhere(name: str = name, streak: dict[str, int] = streak) -> bool:
                loaded = set(self.readyz(name)[1].get("checks", {}).get("models", {}).get("loaded", {}).values())
                streak["n"] = streak["n"] + 1 if versions <= loaded else 0
                return streak["n"] >= 6

            wait_for(loaded_everywhere, timeout=60, what=f"{name} loading {sorted(versions)}", every=0.1)
        return versions

    def active_versions(self) -> set[str]:
        return {str(row[0]) for row in self.query(
            "SELECT version FROM inference_registry_modelversion WHERE status = 'active'"
        )}

    def served_version(self, name: str, user_id: str) -> str | None:
        """The model version that answered ``user_id``'s interests on host ``name`` (None: no answer within 5 s)."""
        return self.served_answer(name, user_id)[0]

    def served_answer(self, name: str, user_id: str) -> tuple[str | None, str | None]:
        """``served_version`` and the answer's ``fallback_reason`` (None: none, or no answer)."""
        try:
            status, body, _ = self.site(name).request(
                "GET", f"/api/v1/users/{user_id}/interests?top=3",
                headers={"Authorization": f"Token {self.token}"}, timeout=5,
            )
        except OSError:  # refused, reset or timed out
            return None, None
        if status != 200:
            return None, None
        answer = json.loads(body)
        return str(answer["model_version"]), answer.get("fallback_reason")

    def readyz(self, name: str) -> tuple[int, dict[str, Any]]:
        status, body = self.site(name).get("/readyz", timeout=5)
        try:
            return status, dict(json.loads(body))
        except ValueError:
            return status, {"body": body.decode(errors="replace")}

    def stop(self) -> None:
        # the hosts stop at once, as separate machines would: each waits up to 30 s for its graceful stop
        # (a Celery worker finishing its task), and one after the other that added up to half a minute
        stopping = [threading.Thread(target=self.site(name).stop) for name in HOSTS
                    if name in self.pids or name in self.sites]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        if self.manages_cluster and self.cluster_dir.exists():
            self._cluster("stop")
        _rabbitmqctl("delete_vhost", self.name, check=False)
        pg_query(f"{self.postgres.rstrip('/')}/postgres", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.pids = {}
        if self.state_path.exists():
            self.state_path.unlink()

    def status(self) -> dict[str, Any]:
        hosts: dict[str, Any] = {}
        for name, role in HOSTS.items():
            site = self.site(name)
            entry: dict[str, Any] = {"role": role, "running": site.pid is not None and site.running()}
            if role == "web" and entry["running"]:
                entry["url"] = f"http://127.0.0.1:{site.port}/"
                try:
                    entry["readyz_status"], entry["readyz"] = self.readyz(name)
                except OSError as exc:
                    entry["readyz_status"], entry["readyz"] = 0, {"error": str(exc)}
            hosts[name] = entry
        cluster = self._cluster("status")
        return {
            "redis_cluster": {"ok": cluster.returncode == 0, "nodes": cluster.stdout.strip().splitlines()},
            "database": self.database_url,
            "broker": self.broker_url.replace("guest:guest@", "guest:***@"),
            "hosts": hosts,
        }

    # --- faults --------------------------------------------------------------------------------------

    def redis_masters(self) -> list[int]:
        """The ports of the cluster's masters now, as the first node that answers sees them (a failover
        changes them; a master flagged failing is left out)."""
        import redis

        for port in self.redis_ports:
            try:
                client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
                nodes = client.execute_command("CLUSTER NODES")  # {"host:port@bus": {"flags": ...}}
                client.close()
            except redis.RedisError:
                continue
            return sorted(
                int(address.split("@")[0].rsplit(":", 1)[1])
                for address, node in nodes.items()
                if "master" in node["flags"] and "fail" not in node["flags"]
            )
        return []

    def redis_command_costs(self, *, reset: bool = False) -> dict[str, dict[str, dict[str, float]]]:
        """Per master: each command's calls and server time per call (``INFO commandstats``), the commands
        that took the most of the shard's one thread first; ``reset`` zeroes the counters first."""
        import redis

        costs: dict[str, dict[str, dict[str, float]]] = {}
        for port in self.redis_masters():
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            try:
                if reset:
                    client.config_resetstat()
                    continue
                stats = client.info("commandstats")
            finally:
                client.close()
            ranked = sorted(stats.items(), key=lambda kv: -float(kv[1]["usec"]))[:6]
            costs[str(port)] = {name.removeprefix("cmdstat_"): {
                "calls": int(v["calls"]), "usec_per_call": float(v["usec_per_call"]), "usec": int(v["usec"])}
                for name, v in ranked}
        return costs

    def redis_kill(self, port: int) -> None:
        """SIGKILL the Redis node on ``port`` (its pid from the cluster script's pidfile)."""
        pid = int((self.cluster_dir / str(port) / "redis.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)

    def cluster_ok(self) -> bool:
        """Every node that answers says ``cluster_state:ok`` (a killed node answers nothing)."""
        import redis

        states = []
        for port in self.redis_ports:
            try:
                client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
                states.append(client.execute_command("CLUSTER INFO").get("cluster_state"))
                client.close()
            except redis.RedisError:
                continue
        return bool(states) and all(state == "ok" for state in states)


# --- the ratio: 2 web hosts against 1 ------------------------------------------------------------------


_FLUSHED = re.compile(r"Task tracking\.flush_events\[[^\]]+\] succeeded in ([0-9.]+)s: (\{.*\})")


def flush_rates(rehearsal: Rehearsal, offsets: dict[str, int]) -> dict[str, Any]:
    """What one flush task stored per second of its own run, over the worker hosts' logs since ``offsets``
    (flushes of at least 500 events: a small one measures the task's overhead, not the flusher)."""
    rates: list[float] = []
    inserted = 0
    for name, offset in offsets.items():
        for match in _FLUSHED.finditer(rehearsal.site(name).log_since(offset)):
            seconds, result = float(match.group(1)), ast.literal_eval(match.group(2))
            inserted += int(result.get("inserted", 0))
            if int(result.get("entries", 0)) >= 500 and seconds > 0:
                rates.append(int(result["entries"]) / seconds)
    rates.sort()
    return {"flushes_of_500_or_more": len(rates), "events_inserted": inserted,
            "median_events_per_s": round(rates[len(rates) // 2]) if rates else None,
            "best_events_per_s": round(rates[-1]) if rates else None}


@dataclass(frozen=True)
class _Load:
    path: str
    headers: dict[str, str]
    lua: str
    factory: Callable[[int, int], bytes]
    per_request: int  # events per request


def ratio(rehearsal: Rehearsal, *, rounds: int, seconds: float, clients: int,
          only: Sequence[str] = ("events", "decisions")) -> dict[str, Any]:
    """events/s (``/api/v1/events``, batches of 10) and decisions/s (3 placements) with every client on ``web-a``
    against the same clients split over ``web-a`` and ``web-b``; rounds interleaved (1, 2, 1, 2...)."""
    from benchmarks.ads import DECISIONS_LUA, decisions_body
    from benchmarks.load import LoadResult, run_load
    from benchmarks.run import collect_body, collect_lua

    batch = 10
    api = {"Content-Type": "application/json", "Authorization": f"Token {rehearsal.token}"}
    kinds = {
        # server to server (a tracker's /collect needs each visitor's identity cookie): the same ingestion
        "events": _Load("/api/v1/events", api, collect_lua(batch), collect_body(batch), batch),
        "decisions": _Load("/api/v1/ads/decisions", api, DECISIONS_LUA, decisions_body, 1),
    }
    kinds = {kind: spec for kind, spec in kinds.items() if kind in only}
    figures: dict[str, dict[str, list[float]]] = {k: {"1": [], "2": []} for k in kinds}
    errors: dict[str, int] = {k: 0 for k in kinds}
    rehearsal.redis_command_costs(reset=True)
    offsets = {name: rehearsal.site(name).log_offset() for name, role in HOSTS.items() if role == "worker"}
    for round_n in range(rounds):
        for hosts in ("1", "2"):
            for kind, spec in kinds.items():
                names = WEB_HOSTS[: int(hosts)]
                results: list[LoadResult] = []

                def one(name: str, share: int, spec: _Load = spec, results: list[LoadResult] = results) -> None:
                    results.append(run_load(
                        port=rehearsal.ports[name], path=spec.path, method="POST", headers=spec.headers,
                        body_factory=spec.factory, lua_body=spec.lua, clients=share, seconds=seconds, warmup=0.5,
                    ))

                threads = [threading.Thread(target=one, args=(n, clients // len(names))) for n in names]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                # only 2xx answers count (an error or a refusal is no event stored, no decision made)
                ok = [sum(n for code, n in r.statuses.items() if 200 <= code < 300) for r in results]
                rate = sum(n / r.seconds for n, r in zip(ok, results, strict=True) if r.seconds) * spec.per_request
                failed = sum(r.requests for r in results) - sum(ok)
                errors[kind] += failed
                figures[kind][hosts].append(rate)
                print(f"round {round_n + 1}/{rounds}, {hosts} web host(s), {kind}: {rate:.0f}/s "
                      f"({sum(r.requests for r in results)} requests, {failed} not 2xx)", flush=True)
    summary: dict[str, Any] = {"redis_masters": rehearsal.redis_command_costs(),
                               "flushes": flush_rates(rehearsal, offsets)}
    for kind, by_hosts in figures.items():
        one_host = sorted(by_hosts["1"])[len(by_hosts["1"]) // 2]
        two_hosts = sorted(by_hosts["2"])[len(by_hosts["2"]) // 2]
        summary[kind] = {"one_host_per_s": round(one_host, 1), "two_hosts_per_s": round(two_hosts, 1),
                         "ratio": round(two_hosts / one_host, 2) if one_host else None,
                         "rounds": by_hosts, "errors": errors[kind]}
    return summary


def _machine() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.1f} at the end, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


# --- command line --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/rehearse.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status", "manage", "ratio"])
    parser.add_argument("args", nargs="*", help="manage: the manage.py arguments")
    parser.add_argument("--dir", default=os.environ.get("REHEARSAL_DIR", str(ROOT / "var" / "rehearsal")))
    parser.add_argument("--rounds", type=int, default=3, help="ratio: rounds of each")
    parser.add_argument("--seconds", type=float, default=10.0, help="ratio: seconds per measurement")
    parser.add_argument("--clients", type=int, default=8, help="ratio: concurrent clients in all")
    parser.add_argument("--only", default="events,decisions", help="ratio: what to measure (events, decisions)")
    parser.add_argument("--no-train", action="store_true", help="start: no first model (the prior serves)")
    options, unknown = parser.parse_known_args(argv)
    if unknown and options.action != "manage":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    options.args = [*options.args, *unknown]
    directory = Path(options.dir).resolve()
    if options.action == "start":
        if (directory / "rehearsal.json").exists():
            print(f"rehearsal: already started ({directory}); `scripts/rehearse.sh stop` first", file=sys.stderr)
            return 2
        rehearsal = Rehearsal(
            directory,
            name=os.environ.get("REHEARSAL_NAME", "adsite_rehearsal"),
            postgres=os.environ.get("REHEARSAL_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
            redis_base=int(os.environ.get("REHEARSAL_REDIS_PORT", "7100")),
        )
        try:
            rehearsal.start(train=not options.no_train)
        except BaseException:
            print("rehearsal: start failed; stopping what was started", file=sys.stderr)
            rehearsal.stop()
            raise
        return 0
    if not (directory / "rehearsal.json").exists():
        print(f"rehearsal: nothing started in {directory}", file=sys.stderr)
        return 1
    rehearsal = Rehearsal.load(directory)
    if options.action == "stop":
        rehearsal.stop()
        print("rehearsal: stopped (hosts, Redis Cluster, RabbitMQ virtual host, database)")
        return 0
    if options.action == "status":
        status = rehearsal.status()
        print(json.dumps(status, indent=2))
        healthy = status["redis_cluster"]["ok"] and all(h["running"] for h in status["hosts"].values())
        return 0 if healthy else 1
    if options.action == "manage":
        done = rehearsal.manage(*options.args, check=False)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return done.returncode
    figures = ratio(rehearsal, rounds=options.rounds, seconds=options.seconds, clients=options.clients,
                    only=[k for k in options.only.split(",") if k])
    print(json.dumps({"machine": _machine(), **figures}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

