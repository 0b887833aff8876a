"""A test Git host: one HTTP server that serves repositories over smart HTTP (`git http-backend`,
as gitserver.GitHttpServer does) and the REST endpoints gitsync calls on its providers, checking
every call against the provider's published API description and recording it.

Where each provider's API lives on it (the server's URL is U):
- GitHub Enterprise Server: U/api/v3 (a host whose ProviderEndpoint is U), checked against GitHub's
  OpenAPI description for GHES (npm `@octokit/openapi`, the newest `ghes-3.*.json` in it);
- GitHub: U/github (`gitsync serve --api-base GitHub=U/github`), checked against
  `api.github.com.json` of the same package;
- GitLab self-managed: U/api/v4; GitLab: U/gitlab/api/v4 (`--api-base GitLab=...`);
- Bitbucket Cloud: U/bitbucket/2.0 (`--api-base Bitbucket=...`).
GitLab and Bitbucket publish no machine-readable description gitsync's tests can install, so their
contracts are written below from their API documentation (cited at each).

A call that breaks its contract is answered as the provider would refuse it (400/404/422) and
recorded in `violations`, which every test asserts empty. Failures can be injected to prove that a
host that errs or rate-limits does not fail a sync.
"""
import base64
import collections
import glob
import json
import os
import re
import threading
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema

from gitserver import GitHandler, GitHttpServer

HERE = os.path.dirname(os.path.abspath(__file__))


def _modules():
    return os.environ.get("GITSYNC_JS_MODULES", os.path.join(HERE, "..", "js", "node_modules"))


_SPECS = {}
_SPECS_LOCK = threading.Lock()


def github_description(flavour):
    """GitHub's OpenAPI description: `api.github.com` or the newest `ghes` one in the package."""
    with _SPECS_LOCK:
        if flavour not in _SPECS:
            generated = os.path.join(_modules(), "@octokit", "openapi", "generated")
            if flavour == "ghes":
                def version(path):
                    return tuple(int(n) for n in re.findall(r"ghes-(\d+)\.(\d+)\.json$", path)[0])
                files = [f for f in glob.glob(os.path.join(generated, "ghes-*.json")) if not f.endswith(".deref.json")]
                path = max(files, key=version)
            else:
                path = os.path.join(generated, "api.github.com.json")
            with open(path) as f:
                spec = json.load(f)
            spec["x-file"] = os.path.basename(path)
            _SPECS[flavour] = spec
        return _SPECS[flavour]


# GitLab REST API v4, "Set the pipeline status of a commit"
# (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit): `id` is the project's
# id or its URL-encoded path, `sha` the commit; `state` is required, one of the listed values; `ref`,
# `name` (or its alias `context`), `target_url`, `description`, `coverage` and `pipeline_id` are
# optional. Authentication: `PRIVATE-TOKEN: <token>` or `Authorization: Bearer <token>`
# (https://docs.gitlab.com/api/rest/authentication/).
GITLAB = [
    {
        "method": "POST",
        "path": r"/projects/(?P<id>[^/]+)/statuses/(?P<sha>[0-9a-f]{40})",
        "operation": "set-commit-status",
        "body": {
            "type": "object",
            "required": ["state"],
            "additionalProperties": False,
            "properties": {
                "state": {"enum": ["pending", "running", "success", "failed", "canceled", "skipped"]},
                "ref": {"type": "string"},
                "name": {"type": "string"},
                "context": {"type": "string"},
                "target_url": {"type": "string"},
                "description": {"type": "string", "maxLength": 255},
                "coverage": {"type": "number"},
                "pipeline_id": {"type": "integer"},
            },
        },
    },
]

# GitLab REST API v4, merge requests and their notes: "List project merge requests" (`state`,
# `target_branch`, `per_page`, `page` among its documented query parameters), "Get single MR"
# (https://docs.gitlab.com/api/merge_requests/), "List all merge request notes" (`per_page`,
# `page`, `sort`, `order_by`), "Create new merge request note" (`body` required) and "Modify
# existing merge request note" (`body` required) (https://docs.gitlab.com/api/notes/).
NOTE_BODY = {"type": "object", "required": ["body"], "additionalProperties": False,
             "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 1000000},
                            "internal": {"type": "boolean"}, "created_at": {"type": "string"},
                            "merge_request_diff_head_sha": {"type": "string"}}}
GITLAB += [
    {"method": "GET", "path": r"/projects/(?P<id>[^/]+)/merge_requests", "operation": "list-merge-requests",
     "query": {"state": {"enum": ["opened", "closed", "locked", "merged", "all"]}, "target_branch": {"type": "string"},
               "source_branch": {"type": "string"}, "per_page": {"type": "integer", "maximum": 100},
               "page": {"type": "integer", "minimum": 1}, "order_by": {"type": "string"}, "sort": {"type": "string"}}},
    {"method": "GET", "path": r"/projects/(?P<id>[^/]+)/merge_requests/(?P<iid>\d+)", "operation": "get-merge-request",
     "query": {}},
    {"method": "GET", "path": r"/projects/(?P<id>[^/]+)/merge_requests/(?P<iid>\d+)/notes", "operation": "list-notes",
     "query": {"per_page": {"type": "integer", "maximum": 100}, "page": {"type": "integer", "minimum": 1},
               "sort": {"enum": ["asc", "desc"]}, "order_by": {"enum": ["created_at", "updated_at"]}}},
    {"method": "POST", "path": r"/projects/(?P<id>[^/]+)/merge_requests/(?P<iid>\d+)/notes", "operation": "create-note",
     "body": NOTE_BODY},
    {"method": "PUT", "path": r"/projects/(?P<id>[^/]+)/merge_requests/(?P<iid>\d+)/notes/(?P<note_id>\d+)",
     "operation": "update-note", "body": NOTE_BODY},
]

# Bitbucket Cloud REST API 2.0, "Create a build status for a commit"
# (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/):
# POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build with a `commitstatus`
# object: `key` and `state` (INPROGRESS, SUCCESSFUL, FAILED, STOPPED) are required, `url` links the
# status (its examples always give one), `name`, `description` and `refname` are optional.
# Authentication: `Authorization: Bearer <access token>` or basic auth with an app password
# (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication).
BITBUCKET = [
    {
        "method": "POST",
        "path": r"/repositories/(?P<workspace>[^/]+)/(?P<repo_slug>[^/]+)/commit/(?P<commit>[0-9a-f]{40})/statuses/build",
        "operation": "create-commit-build-status",
        "body": {
            "type": "object",
            "required": ["key", "state", "url"],
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "state": {"enum": ["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"]},
                "url": {"type": "string", "pattern": "^https?://"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "refname": {"type": "string"},
            },
        },
    },
]

# Bitbucket Cloud REST API 2.0, pull requests and their comments
# (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-pullrequests/): "List pull
# requests" (`state`: OPEN, MERGED, DECLINED, SUPERSEDED; paging with `page` and `pagelen`), "Get a
# pull request", "List comments on a pull request", "Create a comment on a pull request" and
# "Update a comment on a pull request", whose body is a `pullrequest_comment` with `content.raw`.
COMMENT_BODY = {"type": "object", "required": ["content"], "additionalProperties": False,
                "properties": {"content": {"type": "object", "required": ["raw"], "additionalProperties": False,
                                           "properties": {"raw": {"type": "string", "minLength": 1}}}}}
PAGING = {"page": {"type": "integer", "minimum": 1}, "pagelen": {"type": "integer", "minimum": 1, "maximum": 100}}
BITBUCKET += [
    {"method": "GET", "path": r"/repositories/(?P<workspace>[^/]+)/(?P<repo_slug>[^/]+)/pullrequests",
     "operation": "list-pull-requests",
     "query": {"state": {"enum": ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"]}, "q": {"type": "string"},
               "sort": {"type": "string"}, **PAGING}},
    {"method": "GET", "path": r"/repositories/(?P<workspace>[^/]+)/(?P<repo_slug>[^/]+)/pullrequests/(?P<pull_request_id>\d+)",
     "operation": "get-pull-request", "query": {}},
    {"method": "GET", "path": r"/repositories/(?P<workspace>[^/]+)/(?P<repo_slug>[^/]+)/pullrequests/(?P<pull_request_id>\d+)/comments",
     "operation": "list-pull-request-comments", "query": {"q": {"type": "string"}, "sort": {"type": "string"}, **PAGING}},
    {"method": "POST", "path": r"/repositories/(?P<workspace>[^/]+)/(?P<repo_slug>[^/]+)/pullrequests/(?P<pull_request_id>\d+)/comments",
     "operation": "create-pull-request-comment", "body": COMMENT_BODY},
    {"method": "PUT", "path": r"/repositories/(?P<workspace>[^/]+)/(?P<repo_slug>[^/]+)/pullrequests/(?P<pull_request_id>\d+)/comments/(?P<comment_id>\d+)",
     "operation": "update-pull-request-comment", "body": COMMENT_BODY},
]

# Where each provider's API is mounted on the test host.
MOUNTS = [
    ("/api/v3", "ghes"),
    ("/github", "github"),
    ("/api/v4", "gitlab"),
    ("/gitlab/api/v4", "gitlab"),
    ("/bitbucket/2.0", "bitbucket"),
]


class Call:
    """One REST call the host received, as it was checked."""

    def __init__(self, provider, method, path, headers, body):
        self.provider, self.method, self.path, self.headers, self.body = provider, method, path, headers, body
        self.operation = None
        self.params = {}
        self.query = {}
        self.answered = None

    def __repr__(self):
        return f"<{self.provider} {self.method} {self.path} -> {self.answered}>"


class Refusal(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _match_github(spec, method, path):
    """The operation of GitHub's description that `method path` is, with its path parameters: of
    the templates that match, the most specific (fewest parameters)."""
    found = []
    for template, item in spec["paths"].items():
        if method.lower() not in item:
            continue
        names = re.findall(r"{([^}]+)}", template)
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "([^/]+)", re.escape(template)) + "$"
        m = re.match(pattern, path)
        if m:
            found.append((len(names), item[method.lower()], dict(zip(names, (unquote(v) for v in m.groups())))))
    if not found:
        return None, None
    _, op, params = min(found, key=lambda f: f[0])
    return op, params


def _schema(spec, schema):
    """A schema of the description, validatable on its own: its $refs resolve in the document."""
    return {**schema, "components": spec["components"]}


def _resolve(spec, node):
    """`node`, or what its $ref names in the description."""
    while "$ref" in node:
        target = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _unknown_members(schema, body):
    props = schema.get("properties")
    if props is None or not isinstance(body, dict):
        return []
    return sorted(set(body) - set(props))


class HostHandler(GitHandler):
    def _api(self):
        url = urlsplit(self.path)
        for mount, provider in MOUNTS:
            if url.path.startswith(mount + "/"):
                return provider, url.path[len(mount):]
        return None, None

    def _run(self):
        provider, path = self._api()
        if provider is None:
            return super()._run()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        host = self.server.host
        query = urlsplit(self.path).query
        call = Call(provider, self.command, path, {k.lower(): v for k, v in self.headers.items()}, raw)
        call.query = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        call.body = body
        try:
            self._check(host, call)
            status, headers, answer = host.answer(call)
        except Refusal as refused:
            status, headers, answer = refused.status, {}, {"message": refused.message}
        call.answered = status
        with host.lock:
            host.calls.append(call)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _violation(self, host, call, status, message):
        host.violations.append(f"{call.provider} {call.method} {call.path}: {message}")
        raise Refusal(status, message)

    def _check(self, host, call):
        if not call.headers.get("user-agent"):
            self._violation(host, call, 403, "no User-Agent (GitHub refuses such requests)")
        self._check_auth(host, call)
        if call.provider in ("github", "ghes"):
            self._check_github(host, call)
        else:
            self._check_contract(host, call, GITLAB if call.provider == "gitlab" else BITBUCKET)

    def _check_auth(self, host, call):
        token = host.token
        h = call.headers
        if call.provider in ("github", "ghes"):
            ok = h.get("authorization") in (f"Bearer {token}", f"token {token}")
            if h.get("accept") not in ("application/vnd.github+json", "application/vnd.github.v3+json", None):
                self._violation(host, call, 415, f"Accept {h.get('accept')} is not a GitHub media type")
        elif call.provider == "gitlab":
            ok = h.get("private-token") == token or h.get("authorization") == f"Bearer {token}"
        else:
            basic = "Basic " + base64.b64encode(token.encode()).decode()
            ok = h.get("authorization") in (f"Bearer {token}", basic)
        if not ok:
            # A wrong token is no contract violation: the provider answers 401, and so does this.
            raise Refusal(401, "Bad credentials")

    def _check_github(self, host, call):
        spec = github_description(call.provider if call.provider == "github" else "ghes")
        op, params = _match_github(spec, call.method, call.path)
        if op is None:
            self._violation(host, call, 404, f"no such operation in {spec['x-file']}")
        call.operation, call.params = op["operationId"], params
        declared = {}
        for p in op.get("parameters", []):
            p = _resolve(spec, p)
            if p["in"] == "path":
                value = params[p["name"]]
                if _resolve(spec, p["schema"]).get("type") == "integer":
                    if not value.isdigit():
                        self._violation(host, call, 404, f"path parameter {p['name']}={value} is not an integer")
                    value = int(value)
                try:
                    jsonschema.Draft4Validator(_schema(spec, p["schema"])).validate(value)
                except jsonschema.ValidationError as e:
                    self._violation(host, call, 422, f"path parameter {p['name']}: {e.message}")
            elif p["in"] == "query":
                declared[p["name"]] = p["schema"]
        self._check_query(host, call, {k: _schema(spec, v) for k, v in declared.items()})
        request_body = op.get("requestBody")
        if request_body is None:
            if call.body not in (None, b""):
                self._violation(host, call, 400, f"{call.operation} takes no body")
            return
        schema = _resolve(spec, request_body["content"]["application/json"]["schema"])
        if call.headers.get("content-type", "").split(";")[0] != "application/json":
            self._violation(host, call, 415, "the body is not sent as application/json")
        try:
            jsonschema.Draft4Validator(_schema(spec, schema)).validate(call.body)
        except jsonschema.ValidationError as e:
            self._violation(host, call, 422, f"body of {call.operation}: {e.message}")
        unknown = _unknown_members(schema, call.body)
        if unknown:
            self._violation(host, call, 422, f"body of {call.operation} has members the description does not know: {unknown}")

    def _check_query(self, host, call, declared):
        """Every query parameter is one the operation declares, with a value its schema allows."""
        for name, value in call.query.items():
            if name not in declared:
                self._violation(host, call, 400, f"query parameter {name} is not one {call.operation} takes")
            schema = declared[name]
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    self._violation(host, call, 400, f"query parameter {name}={value} is not an integer")
            try:
                jsonschema.Draft4Validator(schema).validate(value)
            except jsonschema.ValidationError as e:
                self._violation(host, call, 422, f"query parameter {name}: {e.message}")

    def _check_contract(self, host, call, contract):
        for entry in contract:
            m = re.fullmatch(entry["path"], call.path)
            if m and entry["method"] == call.method:
                call.operation, call.params = entry["operation"], {k: unquote(v) for k, v in m.groupdict().items()}
                self._check_query(host, call, entry.get("query", {}))
                if "body" not in entry and call.body not in (None, b""):
                    self._violation(host, call, 400, f"{call.operation} takes no body")
                if "body" in entry:
                    if call.headers.get("content-type", "").split(";")[0] != "application/json":
                        self._violation(host, call, 415, "the body is not sent as application/json")
                    try:
                        jsonschema.Draft7Validator(entry["body"]).validate(call.body)
                    except jsonschema.ValidationError as e:
                        self._violation(host, call, 400, f"body of {call.operation}: {e.message}")
                return
        self._violation(host, call, 404, "no such operation in the written contract")

    do_GET = _run
    do_POST = _run
    do_PATCH = _run
    do_PUT = _run
    do_DELETE = _run


class GitHost(GitHttpServer):
    """Repositories over smart HTTP, and the providers' REST APIs, on one port."""

    def __init__(self, root, token="host-api-token"):
        super().__init__(root)
        self.token = token
        self.calls = []
        self.violations = []
        self.lock = threading.Lock()
        self._failures = []
        # Commit statuses as the host keeps them: (provider, repository, sha) -> [status dicts].
        self.statuses = {}
        # Pull requests: (provider, repository) -> {number: pull}; their comments:
        # (provider, repository, number) -> [{"id", "body", "updates"}].
        self.pulls = {}
        self.comments = {}
        self._next_comment = 1000

    def start(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), HostHandler)
        self.httpd.daemon_threads = True
        self.httpd.root = self.root
        self.httpd.stats = collections.Counter()
        self.httpd.connections = set()
        self.httpd.host = self
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def fail_next(self, times, status, headers=None, body=None):
        """Answers the next `times` well-formed calls with `status` instead of serving them."""
        with self.lock:
            self._failures.extend([(status, headers or {}, body or {"message": "injected failure"})] * times)

    def answer(self, call):
        with self.lock:
            if self._failures:
                return self._failures.pop(0)
        if call.operation in ("repos/create-commit-status", "set-commit-status", "create-commit-build-status"):
            return self._commit_status(call)
        handler = PULL_OPERATIONS.get(call.operation)
        if handler is None:
            raise Refusal(501, f"the test host does not serve {call.operation}")
        with self.lock:
            return handler(self, call)

    # ----- pull requests, as a test opens, moves and closes them -----

    def open_pull(self, kind, repo, number, base, head_sha, source_branch, fork=False):
        """Opens (or moves the head of) pull request `number` of `repo` on provider `kind`."""
        with self.lock:
            self.pulls.setdefault((kind, repo), {})[number] = {
                "number": number, "base": base, "head_sha": head_sha, "source_branch": source_branch,
                "fork": fork, "state": "open"}

    def close_pull(self, kind, repo, number):
        with self.lock:
            self.pulls[(kind, repo)][number]["state"] = "closed"

    def comments_of(self, kind, repo, number):
        with self.lock:
            return [dict(c) for c in self.comments.get((kind, repo, number), [])]

    def _repo(self, call):
        p = call.params
        if call.provider in ("github", "ghes"):
            return f"{p['owner']}/{p['repo']}"
        if call.provider == "gitlab":
            return p["id"]
        return f"{p['workspace']}/{p['repo_slug']}"

    def _pull(self, call, number):
        pull = self.pulls.get((call.provider, self._repo(call)), {}).get(int(number))
        if pull is None:
            raise Refusal(404, "Not Found")
        return pull

    def _pull_json(self, call, pull):
        repo = self._repo(call)
        head_repo = f"fork-of/{repo}" if pull["fork"] else repo
        state = pull["state"]
        if call.provider in ("github", "ghes"):
            return {"number": pull["number"], "state": state, "html_url": f"{self.url}/{repo}/pull/{pull['number']}",
                    "head": {"sha": pull["head_sha"], "ref": pull["source_branch"], "repo": {"full_name": head_repo}},
                    "base": {"ref": pull["base"], "repo": {"full_name": repo}}}
        if call.provider == "gitlab":
            return {"iid": pull["number"], "state": "opened" if state == "open" else "closed", "sha": pull["head_sha"],
                    "source_branch": pull["source_branch"], "target_branch": pull["base"],
                    "source_project_id": 2 if pull["fork"] else 1, "target_project_id": 1,
                    "web_url": f"{self.url}/{repo}/-/merge_requests/{pull['number']}"}
        return {"id": pull["number"], "state": "OPEN" if state == "open" else "DECLINED",
                # Bitbucket names commits by a 12-character hash here.
                "source": {"commit": {"hash": pull["head_sha"][:12]}, "branch": {"name": pull["source_branch"]},
                           "repository": {"full_name": head_repo}},
                "destination": {"branch": {"name": pull["base"]}, "repository": {"full_name": repo}},
                "links": {"html": {"href": f"{self.url}/{repo}/pull-requests/{pull['number']}"}}}

    def _list_pulls(self, call):
        repo, q = self._repo(call), call.query
        pulls = [p for p in self.pulls.get((call.provider, repo), {}).values() if p["state"] == "open"]
        if call.provider in ("github", "ghes"):
            pulls = [p for p in pulls if "base" not in q or p["base"] == q["base"]]
            return 200, {}, [self._pull_json(call, p) for p in pulls]
        if call.provider == "gitlab":
            pulls = [p for p in pulls if "target_branch" not in q or p["base"] == q["target_branch"]]
            return 200, {}, [self._pull_json(call, p) for p in pulls]
        return 200, {}, {"values": [self._pull_json(call, p) for p in pulls], "pagelen": 50, "page": 1}

    def _get_pull(self, call):
        number = call.params.get("pull_number") or call.params.get("iid") or call.params.get("pull_request_id")
        return 200, {}, self._pull_json(call, self._pull(call, number))

    def _number(self, call):
        return int(call.params.get("issue_number") or call.params.get("iid") or call.params.get("pull_request_id"))

    def _comment_json(self, call, comment):
        if call.provider == "bitbucket":
            return {"id": comment["id"], "content": {"raw": comment["body"]}}
        return {"id": comment["id"], "body": comment["body"]}

    def _list_comments(self, call):
        number = self._number(call)
        self._pull(call, number)
        comments = [self._comment_json(call, c) for c in self.comments.get((call.provider, self._repo(call), number), [])]
        if call.provider == "bitbucket":
            return 200, {}, {"values": comments, "pagelen": 100, "page": 1}
        return 200, {}, comments

    def _body_text(self, call):
        return call.body["content"]["raw"] if call.provider == "bitbucket" else call.body["body"]

    def _create_comment(self, call):
        number = self._number(call)
        self._pull(call, number)
        self._next_comment += 1
        comment = {"id": self._next_comment, "body": self._body_text(call), "updates": 0}
        self.comments.setdefault((call.provider, self._repo(call), number), []).append(comment)
        return 201, {}, self._comment_json(call, comment)

    def _update_comment(self, call):
        wanted = int(call.params.get("comment_id") or call.params.get("note_id"))
        for (kind, repo, _), comments in self.comments.items():
            if kind != call.provider or repo != self._repo(call):
                continue
            for comment in comments:
                if comment["id"] == wanted:
                    comment["body"] = self._body_text(call)
                    comment["updates"] += 1
                    return 200, {}, self._comment_json(call, comment)
        raise Refusal(404, "Not Found")

    def _commit_status(self, call):
        p, b = call.params, call.body
        if call.provider in ("github", "ghes"):
            repo, sha = f"{p['owner']}/{p['repo']}", p["sha"]
            kept = {"state": b["state"], "context": b.get("context", "default"), "description": b.get("description")}
        elif call.provider == "gitlab":
            repo, sha = p["id"], p["sha"]
            kept = {"state": b["state"], "context": b.get("name") or b.get("context") or "default",
                    "description": b.get("description")}
        else:
            repo, sha = f"{p['workspace']}/{p['repo_slug']}", p["commit"]
            kept = {"state": b["state"], "context": b["key"], "description": b.get("description"), "url": b["url"]}
        if not os.path.isdir(os.path.join(self.root, repo + ".git")):
            raise Refusal(404, f"Not Found: repository {repo}")
        with self.lock:
            self.statuses.setdefault((call.provider, repo, sha), []).append(kept)
        return 201, {}, {"id": len(self.calls) + 1, **kept}

    def statuses_of(self, provider, repo, sha):
        with self.lock:
            return list(self.statuses.get((provider, repo, sha), []))


# The pull request operations the test host serves, by the operation id of the description or
# contract that checked the call.
PULL_OPERATIONS = {
    "pulls/list": GitHost._list_pulls,
    "pulls/get": GitHost._get_pull,
    "issues/list-comments": GitHost._list_comments,
    "issues/create-comment": GitHost._create_comment,
    "issues/update-comment": GitHost._update_comment,
    "list-merge-requests": GitHost._list_pulls,
    "get-merge-request": GitHost._get_pull,
    "list-notes": GitHost._list_comments,
    "create-note": GitHost._create_comment,
    "update-note": GitHost._update_comment,
    "list-pull-requests": GitHost._list_pulls,
    "get-pull-request": GitHost._get_pull,
    "list-pull-request-comments": GitHost._list_comments,
    "create-pull-request-comment": GitHost._create_comment,
    "update-pull-request-comment": GitHost._update_comment,
}
