"""A local stand-in for the Hugging Face Hub HTTP API, for tests.

Why: pushing to and pulling from the Hub is part of the library's contract, but tests must not reach the network.
This server speaks just enough of the Hub API, on 127.0.0.1 and with the standard library only, for the real
`huggingface_hub` client (and `transformers` / `peft` loading on top of it) to create repos, commit regular and
LFS files, make branches, list and download files. The shapes of the answers follow what the installed client
reads (`hf_api.py`, `_commit_api.py`, `lfs.py`, `file_download.py`, `utils/_http.py`).

Clients must run in a subprocess: `huggingface_hub` reads `HF_ENDPOINT` and `HF_HUB_OFFLINE` when imported, and the
test process itself is offline. `HubServer.client_env` builds that subprocess's environment (Xet is switched off:
only the classic LFS upload is implemented).

Not implemented: spaces, tags, pull requests (`create_pr`), Xet, LFS multipart uploads, Range requests.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# Files the server asks the client to send through LFS, as the Hub does for weights, data and images.
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".msgpack", ".npy", ".npz", ".pkl",
    ".parquet", ".arrow", ".zip", ".gz", ".png", ".jpg", ".jpeg",
)  # fmt: skip
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub also sends any file of 10 MB or more through LFS
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()
LFS_UPLOAD_ROUTE = "lfs-upload"  # where the LFS batch answer tells the client to PUT an object
REPO_ACTIONS = {"revision", "tree", "preupload", "commit", "branch", "refs", "commits", "paths-info"}
REPO_TYPES = {"models": "model", "datasets": "dataset"}
# Variables that would point a client at a real Hub, a real token or a real cache.
_CLIENT_VARS_DROPPED = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE",
    "HF_XET_CACHE", "HUGGINGFACE_CO_STAGING", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE", "XDG_CACHE_HOME",
)  # fmt: skip


def git_blob_oid(data: bytes) -> str:
    """The git sha1 of a blob: the Hub's id (and download ETag) of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file that stands in git for an LFS file."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\nsize {len(data)}\n"
    ).encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Commit:
    """One commit: the full file set it leaves (path -> bytes) and which of those files live in LFS."""

    id: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, bytes]
    lfs: frozenset[str]


class Repo(dict):
    """Branch name -> {path: bytes} at that branch's head, plus the history behind it.

    `heads` maps each branch to its head commit id and `commits` holds every commit by id, so tests can check both
    the current content (`repo["main"]["config.json"]`) and what was committed when.
    """

    def __init__(self, repo_id: str, repo_type: str, private: bool):
        super().__init__()
        self.repo_id = repo_id
        self.repo_type = repo_type
        self.private = private
        self.created = _now()
        self.heads: dict[str, str] = {}
        self.commits: dict[str, Commit] = {}

    def resolve(self, revision: str) -> Commit | None:
        """A branch name or a full commit id -> that commit (None if neither)."""
        if revision in self.heads:
            return self.commits[self.heads[revision]]
        return self.commits.get(revision)

    def advance(self, branch: str, commit: Commit) -> None:
        self.commits[commit.id] = commit
        self.heads[branch] = commit.id
        self[branch] = commit.files


@dataclass
class RecordedRequest:
    """A request as the server received it; `status` is what it answered."""

    method: str
    path: str  # as sent (percent-encoded), without the query string
    query: str
    headers: Message  # case-insensitive: headers.get("authorization")
    status: int | None = None


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Fail(Exception):
    """An HTTP error answer shaped like the Hub's: JSON body, X-Error-Message and (typed errors) X-Error-Code."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None, **extra
    ):
        super().__init__(message)
        # headers are one latin-1 line
        header_safe = message.encode("ascii", "backslashreplace").decode().replace("\n", " ")
        error_headers = {"X-Error-Message": header_safe, **({"X-Error-Code": code} if code else {}), **(headers or {})}
        self.reply = _json(status, {"error": message, **extra}, error_headers)


def _json(
    status: int, payload, headers: dict[str, str] | None = None, content_type: str = "application/json"
) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), {"Content-Type": content_type, **(headers or {})})


class HubServer:
    """An in-memory Hub on 127.0.0.1, started in a background thread; use it as a context manager.

    `token` is the only token it accepts (as `Authorization: Bearer <token>`) for writes, whoami and private repos.
    `repos` maps repo ids (`"datasets/<id>"` for datasets) to `Repo`s; `requests` lists every request received;
    set `fail_next_commit` to an HTTP status to make the next commit fail with it (once).
    """

    def __init__(self, token: str, user: str = "test-user"):
        self.token = token
        self.user = user
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content, as uploaded through the LFS batch API
        self.requests: list[RecordedRequest] = []
        self.fail_next_commit: int | None = None
        self._lock = threading.RLock()
        self._commit_counter = itertools.count()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            self._httpd.daemon_threads = True
            self._httpd.hub = self  # type: ignore[attr-defined]
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def client_env(self, hf_home: str | os.PathLike, *, token: bool = True) -> dict[str, str]:
        """The environment for a client subprocess that talks to this server only, with a throw-away HF_HOME.

        Why: `huggingface_hub` fixes its endpoint and offline mode at import, so the client must be a fresh
        process; dropping the real token and cache variables keeps a developer's own Hub login out of the tests.
        """
        env = {key: value for key, value in os.environ.items() if key not in _CLIENT_VARS_DROPPED}
        env.update(
            HF_ENDPOINT=self.url,
            HF_HOME=str(Path(hf_home)),
            HF_HUB_OFFLINE="0",
            TRANSFORMERS_OFFLINE="0",
            HF_DATASETS_OFFLINE="0",
            HF_HUB_DISABLE_XET="1",  # with Xet on, uploads skip the LFS path this server implements
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        if token:
            env["HF_TOKEN"] = self.token
        return env

    # State changes, called with the lock held.

    def _new_commit(
        self, parent: Commit | None, title: str, message: str, files: dict[str, bytes], lfs: set[str]
    ) -> Commit:
        seed = f"{parent.id if parent else ''}\n{title}\n{next(self._commit_counter)}\n" + "".join(
            f"{path}:{git_blob_oid(data)}\n" for path, data in sorted(files.items())
        )
        commit_id = hashlib.sha1(seed.encode()).hexdigest()
        return Commit(
            commit_id, parent.id if parent else None, title, message, _now(), files, frozenset(lfs & files.keys())
        )

    def _create_repo(self, repo_id: str, repo_type: str, private: bool) -> Repo:
        """A new repo with the Hub's initial commit (a .gitattributes routing weights and data to LFS)."""
        repo = Repo(repo_id, repo_type, private)
        repo.advance("main", self._new_commit(None, "initial commit", "", {".gitattributes": GITATTRIBUTES}, set()))
        self.repos[_repo_key(repo_type, repo_id)] = repo
        return repo


def _repo_key(repo_type: str, repo_id: str) -> str:
    return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"


def _url_prefix(repo_type: str) -> str:
    return "" if repo_type == "model" else f"{repo_type}s/"


def _upload_mode(path: str, size: int) -> str:
    return "lfs" if path.lower().endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE else "regular"


def _folders(paths) -> set[str]:
    return {"/".join(parts[:i]) for parts in (p.split("/") for p in paths) for i in range(1, len(parts))}


def _file_entry(commit: Commit, path: str) -> dict:
    """A file as the tree and paths-info endpoints describe it (an LFS file's oid is its pointer's)."""
    data = commit.files[path]
    entry = {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}
    if path in commit.lfs:
        pointer = lfs_pointer(data)
        entry["oid"] = git_blob_oid(pointer)
        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
    return entry


def _folder_entry(commit: Commit, path: str) -> dict:
    return {
        "type": "directory",
        "oid": hashlib.sha1(f"{commit.id}:{path}".encode()).hexdigest(),
        "size": 0,
        "path": path,
    }


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


class _Handler(BaseHTTPRequestHandler):
    """Parses a request, routes it to the matching Hub endpoint and writes the answer."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the Hub; every answer carries a Content-Length
    timeout = 30  # an idle keep-alive connection is closed after this many seconds

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        """Quiet: tests read `HubServer.requests` instead of a log on stderr."""

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        record = RecordedRequest(method, split.path, split.query, self.headers)
        body = self._read_body()  # always read first: an unread body would corrupt the next request on this connection
        try:
            with self.hub._lock:
                self.hub.requests.append(record)
                reply = self._route(
                    method, [unquote(s) for s in split.path.split("/")[1:]], parse_qs(split.query), body
                )
        except _Fail as fail:
            reply = fail.reply
        # a request this server cannot handle (or a bug in it): 501, which clients do not retry
        except Exception as exc:
            reply = _Fail(501, f"hub_server could not handle {method} {split.path}: {exc!r}").reply
        record.status = reply.status
        self.send_response(reply.status)
        for name, value in {**reply.headers, "Content-Length": str(len(reply.body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # Routing

    def _route(self, method: str, segments: list[str], query: dict[str, list[str]], body: bytes) -> _Reply:
        if segments[:1] == ["api"]:
            return self._api(method, segments[1:], query, body)
        if method == "PUT" and len(segments) == 2 and segments[0] == LFS_UPLOAD_ROUTE:
            return self._lfs_upload(segments[1], body)
        repo_type = "dataset" if segments[:1] == ["datasets"] else "model"
        rest = segments[1:] if repo_type == "dataset" else segments
        if (
            method == "POST"
            and len(rest) >= 5
            and rest[-4:] == ["info", "lfs", "objects", "batch"]
            and rest[-5].endswith(".git")
        ):
            return self._lfs_batch(repo_type, "/".join(rest[:-4]).removesuffix(".git"), body)
        if method in ("GET", "HEAD") and "resolve" in rest[1:3]:
            at = rest.index("resolve", 1)
            if len(rest) > at + 2:
                return self._resolve(repo_type, "/".join(rest[:at]), rest[at + 1], "/".join(rest[at + 2 :]))
        raise _Fail(404, f"hub_server: no route for {method} {self.path}")

    def _api(self, method: str, segments: list[str], query: dict[str, list[str]], body: bytes) -> _Reply:
        if (method, segments) == ("GET", ["whoami-v2"]):
            return self._whoami()
        if (method, segments) == ("POST", ["repos", "create"]):
            return self._create_repo(json.loads(body or b"{}"))
        if (method, segments) == ("POST", ["validate-yaml"]):
            return _json(200, {"errors": [], "warnings": []})
        if len(segments) < 2 or segments[0] not in REPO_TYPES:
            raise _Fail(404, f"hub_server: no route for {method} {self.path}")
        repo_type, rest = REPO_TYPES[segments[0]], segments[1:]
        cut = 2 if len(rest) >= 2 and rest[1] not in REPO_ACTIONS else 1
        repo_id, action, args = "/".join(rest[:cut]), (rest[cut:] or [None])[0], rest[cut + 1 :]
        arg = "/".join(args)
        if method == "GET" and action is None:
            return self._info(repo_type, repo_id, "main", query)
        if method == "GET" and action == "revision" and arg:
            return self._info(repo_type, repo_id, arg, query)
        if method == "GET" and action == "tree" and args:
            return self._tree(repo_type, repo_id, args[0], "/".join(args[1:]), _flag(query, "recursive"))
        if method == "POST" and action == "paths-info" and arg:
            return self._paths_info(repo_type, repo_id, arg, parse_qs(body.decode()))
        if method == "GET" and action == "refs":
            return self._refs(repo_type, repo_id)
        if method == "GET" and action == "commits" and arg:
            return self._commits(repo_type, repo_id, arg)
        if method == "POST" and action == "preupload" and arg:
            return self._preupload(repo_type, repo_id, arg, json.loads(body or b"{}"))
        if method == "POST" and action == "commit" and arg:
            return self._commit(repo_type, repo_id, arg, query, body)
        if method in ("POST", "DELETE") and action == "branch" and arg:
            return self._branch(method, repo_type, repo_id, arg, json.loads(body or b"{}"))
        raise _Fail(404, f"hub_server: no route for {method} {self.path}")

    # Access

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _require_token(self) -> None:
        if not self._authorized():
            raise _Fail(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        """The repo, if this request may see it (and, for `write`, change it); otherwise the Hub's error.

        A private repo is answered like the Hub does to an anonymous caller: 401 with `RepoNotFound`, which the
        client turns into `RepositoryNotFoundError` just like a missing repo's 404.
        """
        if write:
            self._require_token()
        repo = self.hub.repos.get(_repo_key(repo_type, repo_id))
        if repo is None:
            raise _Fail(404, "Repository not found", "RepoNotFound")
        if repo.private and not self._authorized():
            raise _Fail(401, "Invalid username or password.", "RepoNotFound")
        return repo

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _Fail(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # Endpoints

    def _whoami(self) -> _Reply:
        self._require_token()
        user = self.hub.user
        return _json(200, {
            "type": "user", "id": hashlib.sha1(user.encode()).hexdigest()[:24], "name": user, "fullname": user,
            "email": None, "emailVerified": False, "canPay": False, "isPro": False, "periodEnd": None, "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "hub_server", "role": "write"}},
        })  # fmt: skip

    def _create_repo(self, payload: dict) -> _Reply:
        self._require_token()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES.values():
            raise _Fail(400, f"hub_server: repo type {repo_type!r} is not supported")
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.url}/{_url_prefix(repo_type)}{repo_id}"
        if _repo_key(repo_type, repo_id) in self.hub.repos:
            # `create_repo(exist_ok=True)` reads the url from this 409's body
            raise _Fail(409, f"You already created this {repo_type} repo", url=url)
        private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
        self.hub._create_repo(repo_id, repo_type, private)
        return _json(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def _info(self, repo_type: str, repo_id: str, revision: str, query: dict[str, list[str]]) -> _Reply:
        repo = self._repo(repo_type, repo_id)
        commit = self._revision(repo, revision)
        with_blobs = _flag(query, "blobs")
        siblings = []
        for path in sorted(commit.files):
            sibling = {"rfilename": path}
            if with_blobs:
                entry = _file_entry(commit, path)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"size": lfs["size"], "sha256": lfs["oid"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        return _json(200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo_id.split("/")[0],
            "sha": commit.id, "lastModified": commit.date, "createdAt": repo.created, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
        })  # fmt: skip

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, recursive: bool) -> _Reply:
        """Entries under `path` at `revision`: direct children, or every descendant (folders too) when recursive."""
        commit = self._revision(self._repo(repo_type, repo_id), revision)
        path = path.strip("/")
        folders = _folders(commit.files)
        if path and path not in folders:
            raise _Fail(404, f"{path} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": commit.id})
        prefix = f"{path}/" if path else ""

        def listed(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        entries = [_folder_entry(commit, p) for p in sorted(folders) if listed(p)]
        entries += [_file_entry(commit, p) for p in sorted(commit.files) if listed(p)]
        return _json(200, entries)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str, form: dict[str, list[str]]) -> _Reply:
        commit = self._revision(self._repo(repo_type, repo_id), revision)
        folders = _folders(commit.files)
        entries = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                entries.append(_file_entry(commit, path))
            elif path in folders:
                entries.append(_folder_entry(commit, path))
        return _json(200, entries)

    def _refs(self, repo_type: str, repo_id: str) -> _Reply:
        repo = self._repo(repo_type, repo_id)
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": target} for name, target in repo.heads.items()
        ]
        return _json(200, {"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> _Reply:
        """The history of `revision`, newest first."""
        repo = self._repo(repo_type, repo_id)
        commit, history = self._revision(repo, revision), []
        while commit is not None:
            author = [{"user": self.hub.user}]
            history.append(
                {
                    "id": commit.id,
                    "authors": author,
                    "date": commit.date,
                    "title": commit.title,
                    "message": commit.message,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return _json(200, history)

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> _Reply:
        """Which files go through LFS; `oid` of a file already there lets the client skip unchanged ones."""
        repo = self._repo(repo_type, repo_id, write=True)
        commit = self._revision(repo, revision)
        files = []
        for item in payload.get("files", []):
            path, mode = item["path"], _upload_mode(item["path"], int(item.get("size", 0)))
            oid = None
            if path in commit.files:  # the client compares it with its sha256 (LFS) or git sha1 (regular)
                data = commit.files[path]
                oid = hashlib.sha256(data).hexdigest() if mode == "lfs" else git_blob_oid(data)
            files.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return _json(200, {"files": files, "commitOid": commit.id})

    def _lfs_batch(self, repo_type: str, repo_id: str, body: bytes) -> _Reply:
        """LFS batch API, uploads only: an upload URL on this server for each object not stored yet."""
        self._repo(repo_type, repo_id, write=True)
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            raise _Fail(400, "hub_server: only LFS uploads are supported")
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self.hub.url}/{LFS_UPLOAD_ROUTE}/{obj['oid']}"}}
            objects.append(answer)
        return _json(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            content_type="application/vnd.git-lfs+json",
        )

    def _lfs_upload(self, oid: str, body: bytes) -> _Reply:
        """The storage side of an LFS upload (S3 on the real Hub): keeps the object under its sha256."""
        if hashlib.sha256(body).hexdigest() != oid:
            raise _Fail(400, f"hub_server: uploaded content does not match LFS oid {oid}")
        self.hub.lfs_objects[oid] = body
        return _Reply(200, headers={"ETag": f'"{oid}"'})

    def _commit(self, repo_type: str, repo_id: str, branch: str, query: dict[str, list[str]], body: bytes) -> _Reply:
        """Applies an NDJSON commit (header line, then one line per file added, LFS file referenced or path deleted)."""
        repo = self._repo(repo_type, repo_id, write=True)
        if self.hub.fail_next_commit is not None:
            status, self.hub.fail_next_commit = self.hub.fail_next_commit, None
            raise _Fail(status, f"hub_server: commit failed on purpose (HTTP {status})")
        if _flag(query, "create_pr"):
            raise _Fail(400, "hub_server: pull requests are not supported")
        if branch not in repo.heads:
            raise _Fail(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        parent = repo.resolve(branch)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _Fail(400, "hub_server: a commit must start with a header line")
        header = lines[0]["value"]
        if header.get("parentCommit") not in (None, parent.id):
            raise _Fail(412, f"A commit has happened since. Please refresh and try again. (head is {parent.id})")
        files, lfs = dict(parent.files), set(parent.lfs)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"].strip("/")
            if key == "file":
                content = value["content"]
                files[path] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
                lfs.discard(path)
            elif key == "lfsFile":
                if value["oid"] not in self.hub.lfs_objects:
                    raise _Fail(
                        422,
                        f"Your push was rejected because an LFS pointer pointed to a file that does not exist ({path})",
                    )
                files[path] = self.hub.lfs_objects[value["oid"]]
                lfs.add(path)
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise _Fail(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                for existing in [p for p in files if p.startswith(f"{path}/")]:
                    del files[existing]
            else:
                raise _Fail(400, f"hub_server: unknown commit operation {key!r}")
        commit = self.hub._new_commit(parent, header.get("summary", ""), header.get("description", ""), files, lfs)
        repo.advance(branch, commit)
        commit_url = f"{self.hub.url}/{_url_prefix(repo_type)}{repo_id}/commit/{commit.id}"
        return _json(
            200,
            {
                "success": True,
                "commitOid": commit.id,
                "commitUrl": commit_url,
                "pullRequestUrl": None,
                "hookOutput": "",
            },
        )

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str, payload: dict) -> _Reply:
        """Creates a branch at `startingPoint` (default: the head of main), or deletes one."""
        repo = self._repo(repo_type, repo_id, write=True)
        if method == "DELETE":
            if branch not in repo.heads or branch == "main":
                raise _Fail(
                    404 if branch not in repo.heads else 403,
                    f"hub_server: cannot delete branch {branch}",
                    "RevisionNotFound",
                )
            del repo.heads[branch], repo[branch]
            return _json(200, {})
        if branch in repo.heads:
            raise _Fail(409, f"Reference already exists: refs/heads/{branch}")
        start = self._revision(repo, payload.get("startingPoint") or "main")
        repo.heads[branch], repo[branch] = start.id, start.files
        return _json(200, {})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> _Reply:
        """A file download (GET) or its metadata (HEAD), with the headers `hf_hub_download` relies on.

        `X-Repo-Commit` names the commit (the client refuses a file without it), `ETag` is the git oid and, for an
        LFS file, `X-Linked-Etag` / `X-Linked-Size` carry its sha256 and size, which the client prefers.
        """
        repo = self._repo(repo_type, repo_id)
        commit = self._revision(repo, revision)
        if path not in commit.files:
            raise _Fail(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
        data = commit.files[path]
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.id,
            "ETag": f'"{git_blob_oid(data)}"',
        }
        if path in commit.lfs:
            headers.update({
                "ETag": f'"{git_blob_oid(lfs_pointer(data))}"',
                "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                "X-Linked-Size": str(len(data)),
            })  # fmt: skip
        return _Reply(200, data, headers)
