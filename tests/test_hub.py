"""Loading from the Hugging Face Hub, end to end through huggingface_hub itself.

A loopback HTTP server plays the Hub (the few endpoints `snapshot_download` uses), `HF_ENDPOINT`
points at it and `HF_HOME` at a temporary folder. huggingface_hub reads those variables and
`HF_HUB_OFFLINE` when it is imported, so each load runs in a fresh interpreter with its own environment.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


REPO = "coala-test/coala-embed-tiny"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves model repositories {repo id: {file name: bytes}}, each at one commit (`main` or its hash)."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.respond(head=True)

            def do_GET(self):
                self.respond(head=False)

            def send(self, status, body=b"", content_type="application/json", headers=None, head=False):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def not_found(self, head, what="Repository"):
                self.send(404, json.dumps({"error": f"{what} Not Found"}).encode(), head=head,
                          headers={"X-Error-Code": f"{what}NotFound", "X-Error-Message": f"{what} Not Found"})

            def respond(self, head):
                url = urlparse(self.path)
                path = unquote(url.path)
                hub.requests.append(f"{self.command} {path}")
                for repo, files in hub.repos.items():
                    if path.startswith((f"/api/models/{repo}/", f"/{repo}/resolve/")):
                        return self.serve_repo(head, path, repo, files)
                return self.not_found(head)

            def serve_repo(self, head, path, repo, files):
                api = f"/api/models/{repo}/"
                if path.startswith(api + "revision/"):
                    if path[len(api + "revision/"):] not in ("main", COMMIT):
                        return self.not_found(head, "Revision")
                    info = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                            "siblings": [{"rfilename": name} for name in files]}
                    return self.send(200, json.dumps(info).encode(), head=head)
                if path.startswith(api + "tree/"):
                    tree = [{"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                            for name, data in files.items()]
                    return self.send(200, json.dumps(tree).encode(), head=head)
                prefix = f"/{repo}/resolve/"
                if path.startswith(prefix):
                    rev, _, name = path[len(prefix):].partition("/")
                    if rev not in ("main", COMMIT):
                        return self.not_found(head, "Revision")
                    if name not in files:
                        return self.not_found(head, "Entry")
                    data = files[name]
                    etag = '"' + hashlib.sha1(data).hexdigest() + '"'
                    return self.send(200, data, "application/octet-stream", head=head,
                                     headers={"X-Repo-Commit": COMMIT, "ETag": etag})
                return self.not_found(head)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


SCRIPT = r"""
import json, sys
import numpy as np
import coala_embed
from coala_embed import CheckpointError
out = {}
for source in sys.argv[1:]:
    try:
        m = coala_embed.load_model(source, device="cpu")
        emb = coala_embed.get_embedding(np.full(30000, 0.1, np.float32), 22050, model=m)
        out[source] = {"ok": True, "sha256": m.sha256, "n_tags": len(m.tags), "dim": int(emb.shape[0]),
                       "folder": str(coala_embed.checkpoint.resolve_source(source))}
    except CheckpointError as e:
        out[source] = {"ok": False, "error": str(e)}
print("RESULT" + json.dumps(out))
"""


def load_in_subprocess(sources, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(env_extra, OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    p = subprocess.run([sys.executable, "-c", SCRIPT, *sources], capture_output=True, text=True, env=env, timeout=180)
    assert p.returncode == 0, p.stderr
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_hub_download_then_offline_reload(ckpt_dir, tmp_path):
    files = {name: (ckpt_dir / name).read_bytes() for name in ("config.json", "model.safetensors")}
    files["README.md"] = b"# a test repo\n"  # not fetched: load_model asks only for the checkpoint files
    hf_home = tmp_path / "hf_home"
    sha = json.loads(files["config.json"])["weights_sha256"]

    tampered = dict(files, **{"model.safetensors": files["model.safetensors"][:-4] + b"\0\0\0\0"})

    with FakeHub({REPO: files, "coala-test/tampered": tampered}) as hub:
        online = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(hf_home)}
        res = load_in_subprocess([REPO, f"{REPO}@main", "coala-test/missing-repo", f"{REPO}@no-such-branch",
                                  "coala-test/tampered"], online)
        assert res[REPO]["ok"], res
        assert res[REPO]["sha256"] == sha and res[REPO]["n_tags"] == 20 and res[REPO]["dim"] == 1920
        folder = res[REPO]["folder"]
        assert folder.startswith(str(hf_home / "hub")) and folder.endswith(COMMIT)
        assert res[f"{REPO}@main"]["ok"] and res[f"{REPO}@main"]["folder"] == folder
        assert not res["coala-test/missing-repo"]["ok"]
        assert "coala-test/missing-repo" in res["coala-test/missing-repo"]["error"]
        assert not res[f"{REPO}@no-such-branch"]["ok"]
        assert not res["coala-test/tampered"]["ok"] and "does not match" in res["coala-test/tampered"]["error"]
        assert any(r.startswith("GET /" + REPO + "/resolve/") for r in hub.requests), hub.requests
        assert not any("README.md" in r for r in hub.requests)
        assert not (hf_home / "hub" / "models--coala-test--coala-embed-tiny" / "snapshots" / COMMIT / "README.md").exists()

        # offline: the cache it filled is used, the server is not contacted; an uncached repo is a clear error
        n_before = len(hub.requests)
        offline = {**online, "HF_HUB_OFFLINE": "1"}
        res = load_in_subprocess([REPO, f"{REPO}@{COMMIT}", "coala-test/never-fetched"], offline)
        assert res[REPO]["ok"] and res[REPO]["sha256"] == sha and res[REPO]["folder"] == folder
        assert res[f"{REPO}@{COMMIT}"]["ok"]
        err = res["coala-test/never-fetched"]
        assert not err["ok"]
        assert "coala-test/never-fetched: not in the local Hugging Face cache" in err["error"]
        assert "HF_HUB_OFFLINE=1" in err["error"]
        assert len(hub.requests) == n_before


def test_hub_id_parsing():
    from coala_embed.checkpoint import HUB_ID

    assert HUB_ID.match("org/name")["repo"] == "org/name"
    m = HUB_ID.match("hf://org/name@v1.0")
    assert m["repo"] == "org/name" and m["rev"] == "v1.0"
    assert HUB_ID.match("just-a-name") is None
