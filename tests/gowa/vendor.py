#!/usr/bin/env python3
"""Extracts the device-route part of go-whatsapp-web-multidevice's (GOWA's)
OpenAPI document into tests/gowa/openapi-device-routes.yaml, mechanically:
the device paths, plus every component they reference, transitively.

Usage:
  vendor.py [--mirror GIT_DIR] [--commit REV] [--spec FILE] [--out FILE]

With --spec it reads that file (the commit and version in the header are
then what --commit says, or "unknown"); otherwise it reads
docs/openapi.yaml at REV (default HEAD) of the bare git mirror.
Needs PyYAML only; never contacts the network.
"""

import argparse
import copy
import os
import subprocess
import sys

import yaml

SOURCE_REPO = "https://github.com/aldinokemal/go-whatsapp-web-multidevice"
DEFAULT_MIRROR = "/work/.mirror/aldinokemal+go-whatsapp-web-multidevice/repo"
HERE = os.path.dirname(os.path.abspath(__file__))


def is_device_path(path):
    """GOWA's device routes: /devices..., and the device-scoped /app/* ones
    (login, login-with-code, logout, reconnect, devices, status). Left out:
    /app/passkey* (WebAuthn pairing, no counterpart here), /app/info
    (server metadata), and /devices/{id}/chatwoot/* (a Chatwoot integration)."""
    if path.startswith("/devices"):
        return "/chatwoot" not in path
    return path in {
        "/app/login",
        "/app/login-with-code",
        "/app/logout",
        "/app/reconnect",
        "/app/devices",
        "/app/status",
    }


def refs_in(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def subset(spec):
    paths = {p: copy.deepcopy(v) for p, v in spec["paths"].items() if is_device_path(p)}
    components = {}
    pending = list(refs_in(paths))
    seen = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        if not ref.startswith("#/components/"):
            sys.exit(f"vendor.py: external reference {ref!r} is not supported")
        _, _, kind, name = ref.split("/", 3)
        target = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = copy.deepcopy(target)
        pending.extend(refs_in(target))
    # The security scheme every operation uses (the document-wide default).
    for requirement in spec.get("security", []):
        for name in requirement:
            components.setdefault("securitySchemes", {})[name] = copy.deepcopy(
                spec["components"]["securitySchemes"][name]
            )
    out = {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"]["title"],
            "version": spec["info"]["version"],
            "description": "The device routes of go-whatsapp-web-multidevice's API (a subset).",
        },
        "security": spec.get("security", []),
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(components.items())},
    }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirror", default=DEFAULT_MIRROR)
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--spec")
    parser.add_argument("--out", default=os.path.join(HERE, "openapi-device-routes.yaml"))
    args = parser.parse_args()
    if args.spec:
        with open(args.spec, encoding="utf-8") as f:
            text = f.read()
        commit = args.commit if args.commit != "HEAD" else "unknown"
    else:
        git = ["git", "-C", args.mirror]
        commit = subprocess.check_output(git + ["rev-parse", args.commit], text=True).strip()
        text = subprocess.check_output(git + ["show", f"{commit}:docs/openapi.yaml"], text=True)
    spec = yaml.safe_load(text)
    out = subset(spec)
    header = (
        "# The device-route part of go-whatsapp-web-multidevice's OpenAPI document,\n"
        "# extracted mechanically by tests/gowa/vendor.py (do not edit by hand).\n"
        f"# Source: {SOURCE_REPO}\n"
        f"#   file docs/openapi.yaml at commit {commit}\n"
        f"#   spec version (info.version): {spec['info']['version']}\n"
        "# Licence: MIT, Copyright (c) 2022 Aldino Kemal; the full text is in\n"
        "#   tests/gowa/LICENCE-gowa.txt (copied from the repository's LICENCE.txt).\n"
        f"# Paths: {', '.join(out['paths'])}\n"
    )
    body = yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(header + body)
    print(f"vendor.py: wrote {len(out['paths'])} paths and "
          f"{sum(len(v) for v in out['components'].values())} components to {args.out}")


if __name__ == "__main__":
    main()
