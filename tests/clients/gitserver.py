"""A real Git smart-HTTP server for tests: `git http-backend` behind Python's HTTP server.

Passes what the protocol needs (Git-Protocol for v2, gzip-encoded requests, chunked bodies) and
maps the CGI `Status:` line. Counts upload-pack (fetch) and ls-refs requests, and `git`'s
capability advertisements, per repository so tests can prove how often and how gitsync talked to a
remote. Push works (`http.receivepack`).
"""
import collections
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # Open connections are tracked so that stopping the server drops them, as a server that goes
    # down does: gitsync keeps connections alive between listings.
    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self):
        self.server.connections.discard(self.connection)
        super().finish()

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _run(self):
        url = urlsplit(self.path)
        body = self._body() if self.command == "POST" else b""
        stats = self.server.stats
        repo = url.path.split(".git/")[0] + ".git" if ".git/" in url.path else url.path
        if url.path.endswith("/git-upload-pack"):
            # A v2 request is a fetch when it says so; ls-refs requests only list refs.
            stats[(repo, "fetch" if b"command=fetch" in body or b"want " in body else "ls-refs")] += 1
        elif url.path.endswith("/info/refs"):
            # The capability advertisement `git` asks for first; gitsync's own listings skip it.
            stats[(repo, "advertisement")] += 1
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": self.server.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "tester",
            "REMOTE_ADDR": self.client_address[0],
        }
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            if not line:
                continue
            name, _, value = line.decode().partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            else:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _run
    do_POST = _run


class GitHttpServer:
    """Serves every bare repository under `root` at http://127.0.0.1:PORT/<path>.git."""

    def __init__(self, root, port=0):
        self.root = root
        self.port = port
        self.httpd = None

    def start(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), GitHandler)
        self.httpd.daemon_threads = True
        self.httpd.root = self.root
        self.httpd.stats = collections.Counter()
        self.httpd.connections = set()
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats(self):
        return self.httpd.stats

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            for connection in list(self.httpd.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.httpd = None


GIT_ENV = {
    "GIT_AUTHOR_NAME": "gitsync test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "gitsync test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd, *args):
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {result.stderr}")
    return result.stdout.strip()


class Repo:
    """A bare repository under a server root, and a work tree that pushes to it."""

    def __init__(self, root, owner, name, work_dir):
        self.bare = os.path.join(root, owner, f"{name}.git")
        os.makedirs(os.path.dirname(self.bare), exist_ok=True)
        git(root, "init", "--bare", "-q", "-b", "main", self.bare)
        git(self.bare, "config", "http.receivepack", "true")
        self.work = work_dir
        os.makedirs(work_dir, exist_ok=True)
        git(work_dir, "init", "-q", "-b", "main")
        git(work_dir, "remote", "add", "origin", self.bare)

    def commit(self, files, message="change", branch="main", delete=()):
        for path, contents in files.items():
            full = os.path.join(self.work, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(contents)
        for path in delete:
            os.remove(os.path.join(self.work, path))
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", "origin", f"HEAD:{branch}")
        return git(self.work, "rev-parse", "HEAD")
