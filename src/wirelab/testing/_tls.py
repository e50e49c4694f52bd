"""TLS for the scripted servers: a throwaway CA, good certificates and bad ones on purpose.

Everything is made in memory with ``trustme`` (and ``cryptography`` for the self-signed
certificate), once per process and kind, so a TLS server starts in about a millisecond
after the first. Certificates name ``localhost``, ``127.0.0.1`` and ``::1``, except the
wrong-host one.

Clients verify against :attr:`TLSSetup.ca`, normally via :meth:`TLSSetup.client_ssl_context`
(a default context that trusts only that CA). Each :class:`BadCert` breaks exactly one
thing, so the client fails with one specific ``ssl.SSLCertVerificationError.verify_code``.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import UsageError

if TYPE_CHECKING:
    import trustme

__all__ = ["SERVER_HOSTNAME", "BadCert", "TLSFiles", "TLSSetup", "tls_setup", "write_tls_files"]

SERVER_HOSTNAME: Final = "localhost"
"""The host name the good certificates are issued for (with ``127.0.0.1`` and ``::1``)."""

_IDENTITIES: Final = (SERVER_HOSTNAME, "127.0.0.1", "::1")
_WRONG_HOST: Final = "wrong-host.invalid"


class BadCert(enum.Enum):
    """Certificates that a correct client must reject; pass one as ``tls=``.

    The value's :attr:`verify_code` is the OpenSSL ``X509_V_ERR_*`` code the client's
    ``ssl.SSLCertVerificationError`` carries (with a context from ``client_ssl_context()``
    and ``server_hostname="localhost"`` or the server's IP address). On the server side the
    failed handshake is expected: it is noted in the transcript, not reported as an error.
    """

    EXPIRED = "expired"
    """Issued by the trusted CA, but its validity ended yesterday (code 10,
    ``certificate has expired``)."""

    NOT_YET_VALID = "not-yet-valid"
    """Issued by the trusted CA, valid only from tomorrow (code 9,
    ``certificate is not yet valid``)."""

    WRONG_HOST = "wrong-host"
    """Issued by the trusted CA for ``wrong-host.invalid`` only (code 62,
    ``Hostname mismatch``); a client with ``check_hostname=False`` accepts it."""

    SELF_SIGNED = "self-signed"
    """Signed by its own key, names the right host (code 18,
    ``self-signed certificate``)."""

    UNKNOWN_CA = "unknown-ca"
    """Issued by another throwaway CA, which the client does not trust (code 20,
    ``unable to get local issuer certificate``)."""

    @property
    def verify_code(self) -> int:
        """The ``verify_code`` a verifying client's error carries."""
        return _VERIFY_CODES[self]


_VERIFY_CODES: Final = {
    BadCert.EXPIRED: 10,  # X509_V_ERR_CERT_HAS_EXPIRED
    BadCert.NOT_YET_VALID: 9,  # X509_V_ERR_CERT_NOT_YET_VALID
    BadCert.WRONG_HOST: 62,  # X509_V_ERR_HOSTNAME_MISMATCH
    BadCert.SELF_SIGNED: 18,  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    BadCert.UNKNOWN_CA: 20,  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
}


@dataclass(frozen=True)
class TLSSetup:
    """What a TLS server presents (``server_context``) and what its clients should trust."""

    server_context: ssl.SSLContext
    ca: trustme.CA | None
    """The CA clients should trust; ``None`` for a server context supplied by the caller."""
    bad: BadCert | None = None

    def client_ssl_context(self) -> ssl.SSLContext:
        """A fresh client context (``ssl.create_default_context``) trusting only :attr:`ca`:
        hostname checks and verification on, as in production."""
        if self.ca is None:
            raise UsageError("the server uses a caller-supplied SSLContext: no CA is known")
        return ssl.create_default_context(cadata=self.ca.cert_pem.bytes().decode("ascii"))


_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _trustme() -> Any:
    try:
        import trustme
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise UsageError("TLS test servers need trustme: install wirelab[testing]") from exc
    return trustme


def _ca(name: str) -> trustme.CA:
    key = f"ca:{name}"
    if key not in _cache:
        _cache[key] = _trustme().CA(organization_name=f"wirelab throwaway {name} CA")
    ca: trustme.CA = _cache[key]
    return ca


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _self_signed_pem() -> bytes:
    """A self-signed leaf certificate and its key, as PEM (key first)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_HOSTNAME)])
    sans: list[x509.GeneralName] = [x509.DNSName(SERVER_HOSTNAME)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _IDENTITIES[1:]]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _server_context(kind: BadCert | None) -> ssl.SSLContext:
    key = f"ctx:{kind.value if kind else 'good'}"
    if key in _cache:
        context: ssl.SSLContext = _cache[key]
        return context
    trustme = _trustme()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # TLS 1.3 session tickets stay on: sent right after the handshake, they carry the ACK
    # that a client writing at once waits for (Nagle), which would otherwise take 40 ms.
    now = _now()
    day = dt.timedelta(days=1)
    if kind is BadCert.SELF_SIGNED:
        with trustme.Blob(_self_signed_pem()).tempfile() as path:
            ctx.load_cert_chain(path)
    else:
        issuer = _ca("unknown" if kind is BadCert.UNKNOWN_CA else "trusted")
        identities = (_WRONG_HOST,) if kind is BadCert.WRONG_HOST else _IDENTITIES
        not_before = not_after = None
        if kind is BadCert.EXPIRED:
            not_before, not_after = now - 2 * day, now - day
        elif kind is BadCert.NOT_YET_VALID:
            not_before, not_after = now + day, now + 2 * day
        leaf = issuer.issue_cert(*identities, not_before=not_before, not_after=not_after)
        leaf.configure_cert(ctx)
    _cache[key] = ctx
    return ctx


def tls_setup(tls: bool | BadCert | ssl.SSLContext | None) -> TLSSetup | None:
    """Turn a server's ``tls=`` argument into a :class:`TLSSetup` (None: plain TCP).

    ``True``: a good certificate from the process's throwaway CA. A :class:`BadCert`: that
    bad certificate (clients still trust the same CA, so only the intended check fails). An
    ``ssl.SSLContext``: used as is (a server-side context; ``ca`` is then unknown).
    """
    if tls is None or tls is False:
        return None
    if isinstance(tls, ssl.SSLContext):
        return TLSSetup(server_context=tls, ca=None)
    if tls is not True and not isinstance(tls, BadCert):
        raise UsageError(f"tls must be True, a BadCert or an ssl.SSLContext, got {tls!r}")
    kind = tls if isinstance(tls, BadCert) else None
    with _lock:
        return TLSSetup(server_context=_server_context(kind), ca=_ca("trusted"), bad=kind)


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a real server (``wirelab serve --tls-certfile cert --tls-keyfile
    key``) and its clients (``--cacert ca``)."""

    ca: Path
    cert: Path
    key: Path


def write_tls_files(folder: Path) -> TLSFiles:
    """Write the throwaway CA (``ca.pem``) and a good server certificate it issued
    (``server.pem``, chain included) with its key (``server.key``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    with _lock:
        ca = _ca("trusted")
        leaf = ca.issue_cert(*_IDENTITIES)
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.private_key_pem.write_to_path(str(files.key))
    files.cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    return files
