#!/usr/bin/env python3
"""The Kubernetes examples (docker/examples/kubernetes) place every pod right.

For each manifest, and each pod index of its Indexed Job, this builds the pod's
environment as Kubernetes fills it (the container's env: plain values, the Secret,
the downward API's labels, and JOB_COMPLETION_INDEX, which the Job controller adds),
runs `trainrun run JOB --dry-run` under it, and checks the node count, the node rank
and the head in what trainrun prints, that the head's name is pod 0's DNS name
(<hostname>.<subdomain>) with a headless Service behind it, and that trainrun is
told the pod's terminationGracePeriodSeconds (TRAINRUN_STOP_TIMEOUT).

  check_kubernetes_examples.py TRAINRUN_BINARY SOURCE_DIR
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

trainrun, source = sys.argv[1], sys.argv[2]
examples = os.path.join(source, "docker", "examples")
failures = []


def check(condition, what):
    print(("ok:   " if condition else "FAIL: ") + what)
    if not condition:
        failures.append(what)


def pod_env(container, labels, index):
    env = {"JOB_COMPLETION_INDEX": str(index)}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source_ = var["valueFrom"]
        if "secretKeyRef" in source_:
            env[var["name"]] = "token-from-the-secret"
            continue
        path = source_["fieldRef"]["fieldPath"]
        m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
        if not m or m.group(1) not in labels:
            raise SystemExit(f"{var['name']}: fieldPath {path} is not modelled by this test")
        env[var["name"]] = labels[m.group(1)]
    return env


def dry_run(container, env, home):
    args = [a.replace("/app/examples", examples) for a in container["args"]]
    assert args[0] == "run", args
    full = {"PATH": os.environ["PATH"], "HOME": home}
    full.update(env)
    full["TRAINRUN_HISTORY"] = os.path.join(home, "history")  # /history is the pod's volume
    r = subprocess.run([trainrun] + args + ["--dry-run"], env=full, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
    return r.returncode, r.stdout


def check_stop_budget(name, pod):
    env = {v["name"]: v.get("value") for v in pod["containers"][0].get("env", [])}
    check(env.get("TRAINRUN_STOP_TIMEOUT") == str(pod.get("terminationGracePeriodSeconds", 30)),
          f"{name}: TRAINRUN_STOP_TIMEOUT is the pod's terminationGracePeriodSeconds")


def check_pods(name, container, pods, labels_of, head_name, home):
    for index in range(pods):
        env = pod_env(container, labels_of(index), index)
        code, out = dry_run(container, env, home)
        check(code == 0, f"{name} pod {index}: trainrun --dry-run exits 0")
        nodes = re.search(r"^nodes:\s+(\d+) \(this node: (\d+);", out, re.M)
        check(nodes is not None and nodes.groups() == (str(pods), str(index)),
              f"{name} pod {index}: {pods} nodes, this node {index} "
              f"(got {nodes.group(0) if nodes else 'no nodes: line'})")
        placement = re.search(r"^placement:\s+(.*)$", out, re.M)
        head = re.search(r"head (\S+) from", placement.group(1)) if placement else None
        check(head is not None and head.group(1) == head_name,
              f"{name} pod {index}: head {head_name} "
              f"(got {placement.group(1) if placement else 'no placement: line'})")
        check(f"node rank {index} from Kubernetes" in (placement.group(1) if placement else ""),
              f"{name} pod {index}: node rank from JOB_COMPLETION_INDEX")


def indexed_job(home):
    docs = list(yaml.safe_load_all(open(os.path.join(examples, "kubernetes", "indexed-job.yaml"))))
    service = next(d for d in docs if d["kind"] == "Service")
    job = next(d for d in docs if d["kind"] == "Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    check(spec["completionMode"] == "Indexed", "indexed-job: completionMode Indexed")
    check(spec["completions"] == spec["parallelism"], "indexed-job: completions = parallelism")
    check(service["spec"]["clusterIP"] == "None", "indexed-job: the Service is headless")
    check(pod["subdomain"] == service["metadata"]["name"], "indexed-job: subdomain is the Service")
    check(service["spec"]["selector"] == {"job-name": job["metadata"]["name"]},
          "indexed-job: the Service selects the Job's pods")
    # Pod i of an Indexed Job has the host name <job>-<i> in the subdomain.
    check_stop_budget("indexed-job", pod)
    head = f"{job['metadata']['name']}-0.{pod['subdomain']}"
    check_pods("indexed-job", pod["containers"][0], spec["parallelism"], lambda i: {}, head, home)


def jobset(home):
    js = yaml.safe_load(open(os.path.join(examples, "kubernetes", "jobset.yaml")))
    check(js["apiVersion"] == "jobset.x-k8s.io/v1alpha2", "jobset: apiVersion")
    network = js["spec"].get("network", {})
    check(network.get("enableDNSHostnames", True), "jobset: DNS host names on")
    subdomain = network.get("subdomain", js["metadata"]["name"])
    rjobs = js["spec"]["replicatedJobs"]
    check(len(rjobs) == 1 and rjobs[0].get("replicas", 1) == 1, "jobset: one replicated Job")
    rjob = rjobs[0]
    spec, pod = rjob["template"]["spec"], rjob["template"]["spec"]["template"]["spec"]
    check(spec["completionMode"] == "Indexed", "jobset: completionMode Indexed")
    labels = {
        "jobset.sigs.k8s.io/jobset-name": js["metadata"]["name"],
        "jobset.sigs.k8s.io/replicatedjob-name": rjob["name"],
        "jobset.sigs.k8s.io/job-index": "0",
    }
    # Pod i of Job j: <jobset>-<rjob>-<j>-<i> in the subdomain.
    check_stop_budget("jobset", pod)
    head = f"{js['metadata']['name']}-{rjob['name']}-0-0.{subdomain}"
    check_pods("jobset", pod["containers"][0], spec["parallelism"], lambda i: labels, head, home)


with tempfile.TemporaryDirectory() as home:
    indexed_job(home)
    jobset(home)
if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("every pod of both examples is placed right")
