"""A lean S3 client for the hot path: PUT, GET, HEAD and DELETE of single objects, signed
with SigV4 directly and sent over a pooled urllib3 connection manager.

A botocore call costs 1.5-3 ms of CPU (its event system, parameter validation, response
parsing, checksums); the requests a relayed file needs are simple enough to sign and send
in a few tens of microseconds. botocore keeps everything else (multipart uploads, listings,
presigned URLs) and is the fall-back whenever the configuration is one this client does not
handle (:func:`lean_client` returns ``None``): a proxy (configured or from the
environment), accelerate / dual-stack / FIPS endpoints, TLS verification turned off,
signature versions other than SigV4, or no credentials. Where requests go (path or
virtual-hosted style, the regional host) and the signing region are botocore's own answer,
read once from a locally presigned URL.

Payload signing: over TLS the payload is ``UNSIGNED-PAYLOAD`` (what botocore does over
https too: TLS protects the body). Over plain http the body's SHA-256 is signed, as botocore
does; the caller usually has it already (wirelab's own digest of the body), else it is
computed (a small object: at most one part).

Errors are raised as :class:`LeanError`, shaped like botocore's ``ClientError``
(``.response["Error"]["Code"]``), so that :mod:`._s3client` maps both the same way;
network failures are urllib3's errors, mapped like botocore's ``BotoCoreError``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .._digests import empty_digest

if TYPE_CHECKING:  # imported when a client is made: urllib3 comes with wirelab[s3]
    import urllib3

__all__ = ["EMPTY_SHA256", "LeanError", "LeanS3", "lean_client"]

EMPTY_SHA256 = empty_digest("sha256")
_UNSIGNED = "UNSIGNED-PAYLOAD"
# Statuses and codes worth another try (botocore's standard retry mode retries these).
_RETRY_STATUS = {500, 502, 503, 504}
_RETRY_CODES = {"SlowDown", "RequestTimeout", "InternalError", "Throttling"}
_ATTEMPTS = 4


class LeanError(Exception):
    """An S3 error answer, shaped like botocore's ``ClientError`` (see the module doc)."""

    def __init__(self, status: int, code: str, message: str, operation: str) -> None:
        super().__init__(f"An error occurred ({code}) when calling {operation}: {message}")
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }


@dataclass(frozen=True)
class _Target:
    """Where a bucket's objects are: scheme, the Host header, and the path prefix."""

    scheme: str
    host: str
    path: str  # "/bucket" (path style) or "" (virtual-hosted style)


class LeanS3:
    """Signs and sends single-object requests to one bucket (thread-safe, blocking)."""

    def __init__(
        self,
        target: _Target,
        region: str,
        credentials: Any,
        *,
        ca_certs: str | None = None,
        pool_size: int = 32,
    ) -> None:
        self.target = target
        self.region = region
        self._credentials = credentials  # botocore Credentials (refreshed by botocore)
        self._keys: dict[tuple[str, str], bytes] = {}  # (date, secret) -> signing key
        kwargs: dict[str, Any] = {"maxsize": pool_size, "block": False, "retries": False}
        if ca_certs is not None:
            kwargs["ca_certs"] = ca_certs
        import urllib3  # wirelab[s3]; the package imports without it

        self._http = urllib3.PoolManager(**kwargs)
        self._http_error: type[Exception] = urllib3.exceptions.HTTPError
        self._base = f"{target.scheme}://{target.host}"
        self._signed_payloads = target.scheme != "https"
        #: Called with the operation's name (``"GetObject"``...) before each request,
        #: as botocore's ``before-call`` event is (counts, in tests and benchmarks).
        self.listeners: list[Callable[[str], None]] = []

    def _signing_key(self, date: str, secret: str) -> bytes:
        key = self._keys.get((date, secret))
        if key is None:
            key = f"AWS4{secret}".encode()
            for part in (date, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(date, secret): key}  # one day's key: the dict stays small
        return key

    def _sign(self, method: str, path: str, headers: dict[str, str], payload: str) -> None:
        """Add the SigV4 headers (``x-amz-date``, ``Authorization``...) to *headers*."""
        creds = self._credentials.get_frozen_credentials()
        now = datetime.datetime.now(datetime.UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        date = stamp[:8]
        headers["host"] = self.target.host
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = payload
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        canonical = "\n".join(
            [
                method,
                path,
                "",  # no query string
                "".join(f"{name}:{headers[name].strip()}\n" for name in names),
                ";".join(names),
                payload,
            ]
        )
        scope = f"{date}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = self._signing_key(date, creds.secret_key)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )

    def request(
        self,
        method: str,
        key: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        payload_sha256: str | None = None,
        stream: bool = False,
        operation: str = "",
    ) -> urllib3.BaseHTTPResponse:
        """Send one request for the object *key*; the response (2xx).

        *headers* (lower-case names) are signed too. *payload_sha256*: the hex SHA-256 of
        *body* when the caller has it (used over plain http). *stream*: the body is left
        unread (the caller reads it, then :func:`release`\\ s the response). An error
        answer raises :class:`LeanError`; a network failure urllib3's error, after up to
        four tries with back-off (the body is bytes: every try resends it whole).
        """
        path = f"{self.target.path}/{quote(key, safe='/~')}"
        if not self._signed_payloads:
            payload = _UNSIGNED
        elif body:
            payload = payload_sha256 or hashlib.sha256(body).hexdigest()
        else:
            payload = EMPTY_SHA256
        for listener in self.listeners:
            listener(operation or method)
        for attempt in range(1, _ATTEMPTS + 1):
            signed = dict(headers or {})
            self._sign(method, path, signed, payload)
            try:
                return self._send(method, path, body, signed, stream, operation or method)
            except (LeanError, self._http_error) as exc:
                if attempt == _ATTEMPTS or not _retryable(exc):
                    raise
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        stream: bool,
        operation: str,
    ) -> urllib3.BaseHTTPResponse:
        """One try of :meth:`request`: a 2xx answer, else :class:`LeanError`."""
        response = self._http.request(
            method,
            self._base + path,
            body=body,
            headers=headers,
            preload_content=not stream,
            redirect=False,
            retries=False,
        )
        if response.status < 300:
            return response
        # 3xx too: S3 redirects only a request sent to another region's host (botocore
        # would follow it; here it is an error, as a 4xx is)
        raise _error(response, method == "HEAD", operation)


def _retryable(exc: Exception) -> bool:
    """Whether another try may succeed: a network failure, a 5xx, throttling."""
    if not isinstance(exc, LeanError):
        return True
    status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return status in _RETRY_STATUS or exc.response["Error"]["Code"] in _RETRY_CODES


def _error(response: urllib3.BaseHTTPResponse, head: bool, operation: str) -> LeanError:
    """The :class:`LeanError` of an error answer (read and released)."""
    try:
        raw = b"" if head else response.data
    finally:
        response.release_conn()
    # A HEAD answer has no body: botocore then reports the status as the code.
    code = _tag(raw, "Code") or str(response.status)
    message = _tag(raw, "Message") or (response.reason or "")
    return LeanError(response.status, code, message, operation)


def _tag(xml: bytes, name: str) -> str | None:
    """The text of the first ``<name>`` element of an S3 error document."""
    found = re.search(rb"<%s>(.*?)</%s>" % (name.encode(), name.encode()), xml, re.S)
    return found.group(1).decode("utf-8", "replace") if found else None


def release(response: urllib3.BaseHTTPResponse, *, complete: bool) -> None:
    """Give a streamed response's connection back to the pool when it was read to the
    end (*complete*), else close it (the rest of the body is not worth reading)."""
    if complete:
        response.release_conn()
    else:
        response.close()


def lean_client(client: Any, bucket: str) -> LeanS3 | None:
    """A :class:`LeanS3` for *bucket* configured as the botocore *client* is, or ``None``
    when the configuration is one it does not handle (see the module docstring)."""
    if os.environ.get("WIRELAB_S3_LEAN", "1") == "0":
        return None
    try:
        config = client.meta.config
        credentials = client._request_signer._credentials
        verify = client._endpoint.http_session._verify
    except AttributeError:  # not a botocore client as we know it
        return None
    if credentials is None or config.proxies or verify is False:
        return None
    if config.signature_version not in (None, "s3v4") or config.use_fips_endpoint:
        return None
    s3 = config.s3 or {}
    if any(s3.get(flag) for flag in ("use_accelerate_endpoint", "use_dualstack_endpoint")):
        return None
    found = _locate(client, bucket)
    if found is None:
        return None
    target, region = found
    if target.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(
        target.host
    ):
        return None
    ca_certs = verify if isinstance(verify, str) else None
    return LeanS3(target, region, credentials, ca_certs=ca_certs)


def _locate(client: Any, bucket: str) -> tuple[_Target, str] | None:
    """Where botocore sends requests for *bucket*'s objects, and the signing region, or
    ``None``. botocore's endpoint rules decide (path or virtual-hosted style, regional
    hosts): a presigned URL of a probe key, made locally, shows their answer."""
    probe = "wirelab-probe"
    try:
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": probe}, ExpiresIn=60
        )
    except Exception:
        return None
    parts = urlsplit(url)
    scope = re.search(r"X-Amz-Credential=[^&]*?%2F\d{8}%2F([^%&]+)%2Fs3%2Faws4_request", url)
    path = parts.path
    if parts.scheme not in ("http", "https") or scope is None or not path.endswith(f"/{probe}"):
        return None
    return _Target(parts.scheme, parts.netloc, path[: -len(probe) - 1]), scope.group(1)
