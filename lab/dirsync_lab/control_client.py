"""Client of the emulator's control API (plain HTTP on loopback), used by the CLI and tests."""

import json
import urllib.error
import urllib.request

from dirsync_lab.process import LabError


class ControlClient:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def call(self, method, path, body=None, timeout=120):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec - loopback control API
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise LabError("lab control %s %s failed: %s %s" % (method, path, exc.code, exc.read().decode(errors="replace"))) from exc
        except OSError as exc:
            raise LabError("The lab's control interface at %s is not reachable (%s). Is the lab up? Run: make lab-up"
                           % (self.url, exc)) from exc
        return json.loads(raw) if raw else None

    def get(self, path):
        return self.call("GET", path)

    def post(self, path, body=None, timeout=120):
        return self.call("POST", path, body if body is not None else {}, timeout=timeout)

    def delete(self, path):
        return self.call("DELETE", path)
