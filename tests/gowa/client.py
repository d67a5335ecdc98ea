#!/usr/bin/env python3
"""A small typed client of go-whatsapp-web-multidevice's (GOWA's) device
routes, written only from GOWA's OpenAPI document (the vendored
openapi-device-routes.yaml, spec 9.0.0), and a script that drives it against
`wa-device-admin serve` and the wa-sim binary, the way a GOWA user's script
would.

The models are what a generator makes of GOWA's schemas: one dataclass per
response shape; parsing is strict: every field the schema documents must be
there with its documented type (a string is not an integer, a bool is not an
integer, a `date-time` must parse, an `enum` must hold), and `null` only
where GOWA's own example is `null` (GenericResponse.results and the error
schemas' results). Unknown extra fields are ignored, as generated clients do.

Usage: client.py [--bin-dir DIR]   (run inside tests/desktop-session.sh)
Binaries: --bin-dir, else $BIN_DIR, else target/debug.
Exit status 1 when a call does not parse or does not behave as GOWA's
document says; each problem is printed with its call and field.
"""

import argparse
import dataclasses
import datetime
import os
import sys
import time
import typing
from typing import List, Literal, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import qr  # noqa: E402


# --- models (components/schemas of GOWA's document) -----------------------

# ENVELOPE_STATUS: GOWA's document lists an integer `status` in some
# envelopes, but GOWA's server never sends it (utils.ResponseData's Status is
# tagged `json:"-"`), so a client that works with GOWA cannot require it: it
# is typed (an integer when present) but may be absent.

DeviceState = Literal["disconnected", "connecting", "connected", "logged_in"]


class DateTime(str):
    """`type: string, format: date-time` (RFC 3339)."""


@dataclasses.dataclass
class DeviceInfo:
    id: str
    phone_number: str
    display_name: str
    state: DeviceState
    jid: str
    created_at: DateTime


@dataclasses.dataclass
class DeviceListResponse:
    code: str
    message: str
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    results: List[DeviceInfo]


@dataclasses.dataclass
class DeviceAddResult:
    id: str
    display_name: str
    state: DeviceState
    jid: str
    created_at: DateTime
    # "echoed when provided on create"
    webhook_url: "Conditional[str]" = None
    webhook_secret: "Conditional[str]" = None
    webhook_events: "Conditional[str]" = None
    webhook_insecure_skip_verify: "Conditional[bool]" = None


@dataclasses.dataclass
class DeviceAddResponse:
    code: str
    message: str
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    results: DeviceAddResult


@dataclasses.dataclass
class DeviceInfoResponse:
    code: str
    message: str
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    results: DeviceInfo


@dataclasses.dataclass
class DeviceStatus:
    device_id: str
    is_connected: bool
    is_logged_in: bool


@dataclasses.dataclass
class DeviceStatusResponse:
    code: str
    message: str
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    results: DeviceStatus


@dataclasses.dataclass
class DeviceLogin:
    device_id: str
    qr_link: str
    qr_duration: int


@dataclasses.dataclass
class DeviceLoginResponse:
    code: str
    message: str
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    results: DeviceLogin


@dataclasses.dataclass
class DeviceLoginWithCode:
    device_id: str
    pair_code: str


@dataclasses.dataclass
class DeviceLoginWithCodeResponse:
    code: str
    message: str
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    results: DeviceLoginWithCode


@dataclasses.dataclass
class GenericResponse:
    code: str
    message: str
    results: Optional[str]  # type: string, example: null


@dataclasses.dataclass
class LoginResult:
    qr_duration: int
    qr_link: str


@dataclasses.dataclass
class LoginResponse:
    code: str
    message: str
    results: LoginResult


@dataclasses.dataclass
class PairCode:
    pair_code: str


@dataclasses.dataclass
class LoginWithCodeResponse:
    code: str
    message: str
    results: PairCode


@dataclasses.dataclass
class DeviceEntry:
    name: str
    device: str
    jid: str


@dataclasses.dataclass
class DeviceResponse:
    code: str
    message: str
    results: List[DeviceEntry]


@dataclasses.dataclass
class AppStatus:
    is_connected: bool
    is_logged_in: bool
    device_id: str
    jid: str


@dataclasses.dataclass
class AppStatusResponse:
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    code: str
    message: str
    results: AppStatus


@dataclasses.dataclass
class DeviceWebhook:
    device_id: str
    webhook_url: str
    webhook_secret: str
    webhook_events: str
    webhook_insecure_skip_verify: bool


@dataclasses.dataclass
class DeviceWebhookResponse:
    status: "Conditional[int]"  # see ENVELOPE_STATUS
    code: str
    message: str
    results: DeviceWebhook


@dataclasses.dataclass
class ErrorResponse:
    """ErrorBadRequest / ErrorNotFound / ErrorInternalServer: the same shape."""
    code: str
    message: str
    results: Optional[dict]  # type: object, example: null


T = typing.TypeVar("T")


class Conditional(typing.Generic[T]):
    """A field GOWA documents as present only in some answers."""


# --- strict parsing ---------------------------------------------------------

class ParseError(Exception):
    def __init__(self, model, problems, data):
        super().__init__(f"{model.__name__}: " + "; ".join(problems))
        self.model, self.problems, self.data = model, problems, data


def _type_name(value):
    return "null" if value is None else type(value).__name__


def _parse(tp, value, path, problems, lenient):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _parse(next(a for a in args if a is not type(None)), value, path, problems, lenient)
    if origin is Conditional:
        return _parse(args[0], value, path, problems, lenient)
    if origin is Literal:
        if value not in args:
            problems.append(f"{path}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            problems.append(f"{path}: expected an array, got {_type_name(value)}")
            return []
        return [_parse(args[0], v, f"{path}[{i}]", problems, lenient) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object ({tp.__name__}), got {_type_name(value)}")
            return None
        hints = typing.get_type_hints(tp, globalns=globals())
        fields = {}
        for field in dataclasses.fields(tp):
            ftype = hints[field.name]
            fpath = f"{path}.{field.name}" if path else field.name
            if field.name not in value:
                if typing.get_origin(ftype) is not Conditional:
                    problems.append(f"{fpath}: missing")
                fields[field.name] = None
                continue
            fields[field.name] = _parse(ftype, value[field.name], fpath, problems, lenient)
        return tp(**fields)
    if tp is DateTime:
        if not isinstance(value, str):
            problems.append(f"{path}: expected a date-time string, got {_type_name(value)}")
            return value
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{path}: {value!r} is not an RFC 3339 date-time")
        return DateTime(value)
    expected = {str: str, int: int, bool: bool, dict: dict}[tp]
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        problems.append(f"{path}: expected {expected.__name__}, got {_type_name(value)}")
    return value


def parse(model, data, lenient=False):
    """`model` from JSON `data`; raises ParseError listing every problem
    (with lenient=True it returns the best-effort object instead)."""
    problems = []
    obj = _parse(model, data, "", problems, lenient)
    if problems and not lenient:
        raise ParseError(model, problems, data)
    return obj


# --- the client -------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, error):
        super().__init__(f"HTTP {status}: {error.code}: {error.message}")
        self.status, self.error = status, error


class GowaClient:
    """GOWA's device operations (operationIds as method names, snake_case).
    `on_parse_error(operation, ParseError)` is called when an answer does
    not parse; without it the ParseError is raised."""

    def __init__(self, base_url, session, on_parse_error=None):
        self.base = base_url.rstrip("/")
        self.http = session
        self.on_parse_error = on_parse_error
        self.last_raw = None
        self.last_operation = None

    def _call(self, operation, model, method, path, device=None, **kw):
        headers = kw.pop("headers", {})
        if device is not None:
            headers["X-Device-Id"] = device
        self.last_operation = operation
        response = self.http.request(method, self.base + path, headers=headers, timeout=90, **kw)
        self.last_raw = response.content
        try:
            data = response.json()
        except ValueError:
            raise AssertionError(f"{operation}: HTTP {response.status_code}, body is not JSON")
        wanted = model if 200 <= response.status_code < 300 else ErrorResponse
        try:
            obj = parse(wanted, data)
        except ParseError as e:
            if self.on_parse_error is None:
                raise
            self.on_parse_error(operation, e)
            obj = parse(wanted, data, lenient=True)
        if wanted is ErrorResponse:
            raise ApiError(response.status_code, obj)
        return obj

    # device
    def list_devices(self) -> DeviceListResponse:
        return self._call("listDevices", DeviceListResponse, "GET", "/devices")

    def add_device(self, device_id=None, **webhook) -> DeviceAddResponse:
        body = {"device_id": device_id} if device_id else {}
        body.update(webhook)
        return self._call("addDevice", DeviceAddResponse, "POST", "/devices", json=body)

    def get_device(self, device_id) -> DeviceInfoResponse:
        return self._call("getDevice", DeviceInfoResponse, "GET", f"/devices/{device_id}")

    def remove_device(self, device_id) -> GenericResponse:
        return self._call("removeDevice", GenericResponse, "DELETE", f"/devices/{device_id}")

    def login_device(self, device_id) -> DeviceLoginResponse:
        return self._call("loginDevice", DeviceLoginResponse, "GET", f"/devices/{device_id}/login")

    def login_device_with_code(self, device_id, phone, phone_in_body=False) -> DeviceLoginWithCodeResponse:
        """GOWA documents `phone` as a query parameter; published GOWA
        clients send it as a JSON body, so both are offered."""
        kw = {"json": {"phone": phone}} if phone_in_body else {"params": {"phone": phone}}
        return self._call("loginDeviceWithCode", DeviceLoginWithCodeResponse, "POST",
                          f"/devices/{device_id}/login/code", **kw)

    def logout_device(self, device_id) -> GenericResponse:
        return self._call("logoutDevice", GenericResponse, "POST", f"/devices/{device_id}/logout")

    def reconnect_device(self, device_id) -> GenericResponse:
        return self._call("reconnectDevice", GenericResponse, "POST", f"/devices/{device_id}/reconnect")

    def get_device_status(self, device_id) -> DeviceStatusResponse:
        return self._call("getDeviceStatus", DeviceStatusResponse, "GET", f"/devices/{device_id}/status")

    def get_device_webhook(self, device_id) -> DeviceWebhookResponse:
        return self._call("getDeviceWebhook", DeviceWebhookResponse, "GET", f"/devices/{device_id}/webhook")

    def update_device_webhook(self, device_id, **body) -> DeviceWebhookResponse:
        return self._call("updateDeviceWebhook", DeviceWebhookResponse, "PATCH",
                          f"/devices/{device_id}/webhook", json=body)

    # app (the device from X-Device-Id)
    def app_login(self, device) -> LoginResponse:
        return self._call("appLogin", LoginResponse, "GET", "/app/login", device)

    def app_login_with_code(self, device, phone) -> LoginWithCodeResponse:
        return self._call("appLoginWithCode", LoginWithCodeResponse, "GET", "/app/login-with-code",
                          device, params={"phone": phone})

    def app_logout(self, device) -> GenericResponse:
        return self._call("appLogout", GenericResponse, "GET", "/app/logout", device)

    def app_reconnect(self, device) -> GenericResponse:
        return self._call("appReconnect", GenericResponse, "GET", "/app/reconnect", device)

    def app_devices(self) -> DeviceResponse:
        return self._call("appDevices", DeviceResponse, "GET", "/app/devices")

    def app_status(self, device) -> AppStatusResponse:
        return self._call("appStatus", AppStatusResponse, "GET", "/app/status", device)


# --- the script -------------------------------------------------------------

SEED_LOGOUT = b'{"code":"SUCCESS","message":"Device logged out successfully","results":null}'


class Flow:
    def __init__(self, servers):
        self.s = servers
        self.problems = []
        self.calls = []  # (operation, outcome)
        self.client = GowaClient(servers.base, servers.http, on_parse_error=self.parse_failed)

    def parse_failed(self, operation, error):
        for p in error.problems:
            self.problems.append(f"{operation}: {error.model.__name__}.{p}")
        self.calls.append((operation, "DOES NOT PARSE"))

    def call(self, fn, *args, **kw):
        before = len(self.problems)
        result = fn(*args, **kw)
        if len(self.problems) == before:
            self.calls.append((self.client.last_operation, "parsed"))
        return result

    def expect(self, what, condition):
        if not condition:
            self.problems.append(f"behaviour: {what}")

    def wait(self, device, logged_in, timeout=60):
        """Polls getDeviceStatus until is_logged_in is `logged_in`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = parse(DeviceStatusResponse, self.s.http.get(self.s.url(f"/devices/{device}/status")).json(),
                       lenient=True)
            if st.results and st.results.is_logged_in == logged_in:
                return
            time.sleep(0.2)
        raise AssertionError(f"{device} never reached is_logged_in={logged_in}")

    def scan(self, qr_link, phone):
        link = harness.loopback_only(qr_link)
        anonymous = self.s.session(auth=False).get(link, timeout=30)
        self.expect(f"qr_link needs the credentials (without them: {anonymous.status_code})",
                    anonymous.status_code == 401)
        png = self.s.http.get(link, timeout=30)
        self.expect(f"qr_link answers a PNG (got {png.status_code} {png.headers.get('content-type')})",
                    png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n")
        self.s.scan(phone, qr.decode_png(png.content))

    def run(self):
        c = self.client
        # Device routes: a QR login on one device...
        added = self.call(c.add_device, "sdk-qr")
        self.expect("addDevice answers the new id", added.results and added.results.id == "sdk-qr")
        self.expect("a new device is disconnected", added.results and added.results.state == "disconnected")
        first = self.call(c.login_device, "sdk-qr")
        # GOWA's qr_link is one code: its clients call login again for the next.
        again = self.call(c.login_device, "sdk-qr")
        self.expect("a repeated QR login gives a QR link", bool(again.results and again.results.qr_link))
        self.expect("qr_duration is positive", bool(first.results and first.results.qr_duration > 0))
        self.scan(again.results.qr_link, "628912341001")
        self.wait("sdk-qr", True)
        st = self.call(c.get_device_status, "sdk-qr")
        self.expect("status after the scan: connected and logged in",
                    st.results and st.results.is_connected and st.results.is_logged_in)
        listed = self.call(c.list_devices)
        mine = [d for d in listed.results or [] if d and d.id == "sdk-qr"]
        self.expect("listDevices has the device, logged_in", mine and mine[0].state == "logged_in")
        self.expect("a linked device has a JID", mine and mine[0].jid.endswith("@s.whatsapp.net"))
        self.call(c.reconnect_device, "sdk-qr")
        self.wait("sdk-qr", True)
        # ...a pairing-code login on another, the phone in a JSON body; this
        # one is created with GOWA's webhook fields (the events are this
        # app's: it sends device events, not GOWA's message events).
        hook = "http://127.0.0.1:9/hook"
        added = self.call(c.add_device, "sdk-code", webhook_url=hook, webhook_secret="sdk-secret",
                          webhook_events="device.logged_in", webhook_insecure_skip_verify=False)
        self.expect("addDevice echoes the webhook URL", added.results and added.results.webhook_url == hook)
        self.expect("addDevice never echoes the webhook secret",
                    added.results and added.results.webhook_secret not in ("", "sdk-secret"))
        hooked = self.call(c.get_device_webhook, "sdk-code")
        self.expect("getDeviceWebhook has the URL and events",
                    hooked.results and hooked.results.webhook_url == hook
                    and hooked.results.webhook_events == "device.logged_in")
        kept = self.call(c.update_device_webhook, "sdk-code", webhook_url=hook + "2",
                         webhook_secret=hooked.results.webhook_secret)
        self.expect("updateDeviceWebhook with the secret read back keeps a secret",
                    kept.results and kept.results.webhook_url == hook + "2" and kept.results.webhook_secret != "")
        cleared = self.call(c.update_device_webhook, "sdk-code", webhook_url="")
        self.expect("updateDeviceWebhook with an empty URL clears it",
                    cleared.results and cleared.results.webhook_url == "" and cleared.results.webhook_secret == "")
        code = self.call(c.login_device_with_code, "sdk-code", "628912341002", phone_in_body=True)
        self.s.enter_code("628912341002", code.results.pair_code)
        self.wait("sdk-code", True)
        info = self.call(c.get_device, "sdk-code")
        self.expect("getDevice after the code login: logged_in", info.results and info.results.state == "logged_in")
        out = self.call(c.logout_device, "sdk-qr")
        self.expect("logoutDevice answers the seed's exact body", c.last_raw == SEED_LOGOUT)
        self.expect("logoutDevice results is null", out.results is None)
        info = self.call(c.get_device, "sdk-qr")
        self.expect("after logout the slot stays, disconnected, without JID",
                    info.results and info.results.state == "disconnected" and info.results.jid == "")
        self.call(c.remove_device, "sdk-qr")
        try:
            self.call(c.get_device, "sdk-qr")
            self.expect("getDevice of a removed device is 404", False)
        except ApiError as e:
            self.calls.append(("getDevice (removed)", f"{e.status} {e.error.code}, parsed"))
            self.expect("getDevice of a removed device is 404", e.status == 404)

        # The same through /app/*, the device named by X-Device-Id.
        app = "sdk-code"
        st = self.call(c.app_status, app)
        self.expect("appStatus: logged in", st.results and st.results.is_logged_in)
        self.expect("appStatus names the device", st.results and st.results.device_id == app)
        devices = self.call(c.app_devices)
        self.expect("appDevices lists the device by its id",
                    any(d and d.device == app for d in devices.results or []))
        self.call(c.app_reconnect, app)
        self.wait(app, True)
        self.call(c.app_logout, app)
        self.wait(app, False)
        login = self.call(c.app_login, app)
        self.scan(login.results.qr_link, "628912341003")
        self.wait(app, True)
        self.call(c.app_logout, app)
        self.wait(app, False)
        # A code login while a QR login is pending: GOWA asks for the code on
        # the open connection.
        self.call(c.app_login, app)
        code = self.call(c.app_login_with_code, app, "628912341004")
        self.s.enter_code("628912341004", code.results.pair_code)
        self.wait(app, True)
        st = self.call(c.app_status, app)
        self.expect("appStatus after the code login: logged in", st.results and st.results.is_logged_in)
        self.call(c.app_logout, app)
        self.call(c.remove_device, app)
        try:
            self.call(c.app_status, app)
            self.expect("appStatus of a removed device is an error", False)
        except ApiError as e:
            self.calls.append(("appStatus (removed)", f"{e.status} {e.error.code}, parsed"))


def main():
    parser = argparse.ArgumentParser(description="A GOWA client's device calls against `serve`")
    parser.add_argument("--bin-dir")
    args = parser.parse_args()
    app, sim = harness.binaries(args.bin_dir)
    started = time.monotonic()
    with harness.Servers(app, sim) as servers:
        print(f"client: serve at {servers.base}")
        flow = Flow(servers)
        try:
            flow.run()
        except (AssertionError, ApiError, AttributeError, TypeError) as e:
            flow.problems.append(f"the flow stopped: {type(e).__name__}: {e}")
    width = max(len(name) for name, _ in flow.calls) if flow.calls else 10
    print(f"\n{'call'.ljust(width)}  outcome")
    for name, outcome in flow.calls:
        print(f"{name.ljust(width)}  {outcome}")
    problems = list(dict.fromkeys(flow.problems))
    print(f"\n{len(problems)} problem(s) ({time.monotonic() - started:.0f} s):")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
