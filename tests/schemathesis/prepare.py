#!/usr/bin/env python3
"""Prepares a fresh Jetrack server for Schemathesis and checks its authentication.

    prepare.py setup BASE TOKEN      creates the first account through the setup endpoint,
                                     a full API key through the session, and two websites
                                     with that key; prints the key on stdout
    prepare.py auth BASE KEY         for every operation of the OpenAPI document: a protected
                                     one (security not empty) answers 401 without a credential
                                     and with an unknown key, a public one never answers 401
                                     for the lack of one; the same key works in both headers

Only the standard library, so it runs with any python3.
"""

import http.cookiejar
import json
import sys
import urllib.error
import urllib.request
import uuid

EMAIL = "fuzz@example.com"
PASSWORD = "correct horse battery staple"
PUBLIC = {
    ("get", "/openapi.json"),
    ("get", "/auth/setup"),
    ("post", "/auth/setup"),
    ("post", "/auth/login"),
}


def request(opener, method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method.upper())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def expect(cond, message):
    if not cond:
        print("FAIL: " + message, file=sys.stderr)
        sys.exit(1)


def setup(base, token):
    jar = http.cookiejar.CookieJar()
    s = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    api = base + "/api/v1"
    status, _, body = request(
        s, "post", api + "/auth/setup",
        {"token": token, "email": EMAIL, "password": PASSWORD, "firstName": "Fuzz"},
    )
    expect(status == 201, f"setup answered {status}: {body[:300]!r}")
    csrf = json.loads(body)["data"]["csrfToken"]
    status, _, body = request(
        s, "post", api + "/account/api-keys", {"name": "schemathesis"},
        {"X-CSRF-Token": csrf},
    )
    expect(status == 201, f"creating the key answered {status}: {body[:300]!r}")
    key = json.loads(body)["data"]["key"]
    plain = urllib.request.build_opener()
    for name, domain in [("Fuzzed", "fuzz.example.com"), ("Second", "second.example.org")]:
        status, _, body = request(
            plain, "post", api + "/websites", {"name": name, "domain": domain},
            {"X-API-Key": key},
        )
        expect(status == 201, f"creating {domain} answered {status}: {body[:300]!r}")
    print(key)


def concrete(path):
    out = []
    for seg in path.split("/"):
        out.append(str(uuid.uuid4()) if seg.startswith("{") and seg.endswith("}") else seg)
    return "/".join(out)


def auth(base, key):
    plain = urllib.request.build_opener()
    status, headers, body = request(plain, "get", base + "/api/v1/openapi.json")
    expect(status == 200, f"openapi.json answered {status}")
    doc = json.loads(body)
    unknown_key = "bj_live_" + "0" * 64
    checked = 0
    refusals = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            url = base + "/api/v1" + concrete(path)
            body = {} if method in ("post", "put", "patch") else None
            where = f"{method.upper()} {path}"
            security = op.get("security", doc.get("security", []))
            if security:
                expect((method, path) not in PUBLIC, f"{where} is public in SPEC 2.1 but has security {security}")
                for headers in ({}, {"X-API-Key": unknown_key}, {"Authorization": "Bearer " + unknown_key}):
                    status, h, raw = request(plain, method, url, body, headers)
                    expect(status == 401, f"{where} with {headers or 'no credential'} answered {status}, not 401: {raw[:300]!r}")
                    env = json.loads(raw)
                    expect(env.get("success") is False and env.get("data") is None
                           and env.get("meta", {}).get("status") == 401,
                           f"{where}: 401 is not an error envelope: {raw[:300]!r}")
                    expect(h.get("WWW-Authenticate") == 'Bearer realm="jetrack"',
                           f"{where}: 401 without WWW-Authenticate: {dict(h)}")
                    refusals.add(raw)
                # The real key is accepted in both header styles (or refused with 403 where
                # only a session may go), never 401 — except on /auth/session and
                # /auth/logout, which are about the request's own session: without one, 401.
                for headers in ({"X-API-Key": key}, {"Authorization": "Bearer " + key}):
                    status, _, raw = request(plain, method, url, body, headers)
                    if path.startswith("/auth/"):
                        expect(status == 401, f"{where} with a key and no session answered {status}: {raw[:300]!r}")
                    else:
                        expect(status != 401, f"{where} refused a valid key in {list(headers)[0]}: {raw[:300]!r}")
                checked += 1
            else:
                expect((method, path) in PUBLIC, f"{where} has no security but SPEC 2.1 does not make it public")
                status, _, raw = request(plain, method, url, body)
                if (method, path) != ("post", "/auth/login"):
                    expect(status != 401, f"public {where} answered 401 without a credential")
    expect(checked > 0, "no protected operation in the document")
    expect(len(refusals) == 1, f"the 401 bodies differ: {refusals}")
    print(f"auth: {checked} protected operations answer 401 without a credential or with an unknown key")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("setup", "auth"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    {"setup": setup, "auth": auth}[sys.argv[1]](sys.argv[2], sys.argv[3])
