"""Callback signature check and AES decryption (WXBizMsgCrypt), on top of wechatpy.

wechatpy checks the signature but not the timestamp, and raises a zoo of exceptions on bad input;
this wrapper adds a freshness window (stale or replayed-late callbacks are refused) and turns every
failure into one of three exceptions the connector maps to HTTP statuses, never to a 500.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, Optional

import xmltodict
from wechatpy.crypto import _get_signature
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import random_string, to_text

from bot.wecom.errors import DecryptError, MalformedCallback, SignatureError

DEFAULT_MAX_SKEW_S = 300


def _safe_eq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest((a or "").encode(), (b or "").encode())


class CallbackCrypto:
    """One surface's Token + EncodingAESKey + ReceiveId (corp id; "" for the 智能机器人)."""

    def __init__(
        self,
        token: Optional[str],
        encoding_aes_key: Optional[str],
        receive_id: Optional[str],
        *,
        max_skew_s: Optional[float] = DEFAULT_MAX_SKEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not token or not encoding_aes_key:
            raise ValueError("token and encoding_aes_key are required")
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        self.token = token
        self.receive_id = receive_id or ""
        self.max_skew_s = max_skew_s
        self.clock = clock
        self._crypto = WeChatCrypto(token, encoding_aes_key, self.receive_id)

    # -- checks ----------------------------------------------------------------------------
    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return _get_signature(self.token, timestamp, nonce, encrypt)

    # Callback query arguments may be missing (None): refused here, with 403.
    def _check(
        self,
        msg_signature: Optional[str],
        timestamp: Optional[str],
        nonce: Optional[str],
        encrypt: Optional[str],
    ) -> None:
        if not (msg_signature and timestamp and nonce and encrypt):
            raise SignatureError("missing msg_signature/timestamp/nonce/payload")
        if not _safe_eq(self.signature(timestamp, nonce, encrypt), msg_signature):
            raise SignatureError("msg_signature mismatch")
        if self.max_skew_s is not None:
            try:
                ts = int(timestamp)
            except ValueError:
                raise SignatureError("timestamp is not an integer") from None
            if abs(self.clock() - ts) > self.max_skew_s:
                raise SignatureError(f"stale timestamp {ts}")

    def _decrypt(self, encrypt: str) -> str:
        try:
            return PrpCrypto(self._crypto.key).decrypt(encrypt, self.receive_id)
        except Exception as exc:  # bad base64, padding, length, receive id: all "cannot decrypt"
            raise DecryptError(f"cannot decrypt: {type(exc).__name__}") from None

    # -- inbound -----------------------------------------------------------------------------
    def verify_url(
        self,
        msg_signature: Optional[str],
        timestamp: Optional[str],
        nonce: Optional[str],
        echostr: str,
    ) -> str:
        """GET verification: returns the plaintext echo to answer with."""
        self._check(msg_signature, timestamp, nonce, echostr)
        return self._decrypt(echostr)

    def decrypt_xml(
        self,
        body: bytes | str,
        msg_signature: Optional[str],
        timestamp: Optional[str],
        nonce: Optional[str],
    ) -> str:
        """POST XML envelope (<xml><Encrypt>..</Encrypt></xml>) -> plaintext XML."""
        encrypt = extract_xml_encrypt(body)
        self._check(msg_signature, timestamp, nonce, encrypt)
        return self._decrypt(encrypt)

    def decrypt_json(
        self,
        body: bytes | str,
        msg_signature: Optional[str],
        timestamp: Optional[str],
        nonce: Optional[str],
    ) -> Dict[str, Any]:
        """POST JSON envelope ({"encrypt": ...}, 智能机器人) -> the decrypted JSON object."""
        try:
            envelope = json.loads(to_text(body) if body else "")
        except (ValueError, UnicodeDecodeError):
            raise MalformedCallback("body is not JSON") from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("encrypt"), str):
            raise MalformedCallback("no encrypt field")
        self._check(msg_signature, timestamp, nonce, envelope["encrypt"])
        plaintext = self._decrypt(envelope["encrypt"])
        try:
            message = json.loads(plaintext)
        except ValueError:
            raise MalformedCallback("decrypted payload is not JSON") from None
        if not isinstance(message, dict):
            raise MalformedCallback("decrypted payload is not an object")
        return message

    # -- outbound (passive replies; the sandbox uses these to play WeCom) ---------------------
    def encrypt(
        self, plaintext: str, nonce: Optional[str] = None, timestamp: Optional[str] = None
    ) -> Dict[str, str]:
        nonce = nonce or random_string(10)
        timestamp = timestamp or str(int(self.clock()))
        encrypt = to_text(PrpCrypto(self._crypto.key).encrypt(plaintext, self.receive_id))
        return {
            "encrypt": encrypt,
            "msgsignature": self.signature(timestamp, nonce, encrypt),
            "timestamp": timestamp,
            "nonce": nonce,
        }

    def encrypt_xml(
        self, plaintext: str, to_user: str = "", agent_id: str = "", nonce=None, timestamp=None
    ):
        """-> (xml_body, query params) as WeCom POSTs an XML callback."""
        sealed = self.encrypt(plaintext, nonce, timestamp)
        body = (
            "<xml><ToUserName><![CDATA[{to}]]></ToUserName>"
            "<Encrypt><![CDATA[{enc}]]></Encrypt><AgentID><![CDATA[{agent}]]></AgentID></xml>"
        ).format(to=to_user or self.receive_id, enc=sealed["encrypt"], agent=agent_id)
        return body, _query(sealed)

    def encrypt_json(self, payload: Dict[str, Any], nonce=None, timestamp=None):
        """-> (json_body, query params) as WeCom POSTs a 智能机器人 callback."""
        sealed = self.encrypt(json.dumps(payload, ensure_ascii=False), nonce, timestamp)
        return json.dumps({"encrypt": sealed["encrypt"]}), _query(sealed)

    def passive_json_reply(self, payload: Dict[str, Any]) -> str:
        """The encrypted JSON body a 智能机器人 callback can be answered with."""
        return json.dumps(self.encrypt(json.dumps(payload, ensure_ascii=False)))

    def echostr_for(self, plaintext: str, nonce=None, timestamp=None) -> Dict[str, str]:
        """Query params of a GET URL verification (sandbox/tests)."""
        sealed = self.encrypt(plaintext, nonce, timestamp)
        return {
            "msg_signature": sealed["msgsignature"],
            "timestamp": sealed["timestamp"],
            "nonce": sealed["nonce"],
            "echostr": sealed["encrypt"],
        }


def _query(sealed: Dict[str, str]) -> Dict[str, str]:
    return {
        "msg_signature": sealed["msgsignature"],
        "timestamp": sealed["timestamp"],
        "nonce": sealed["nonce"],
    }


def extract_xml_encrypt(body: bytes | str) -> str:
    """The <Encrypt> element of an XML envelope, or MalformedCallback."""
    doc = parse_xml(body)
    encrypt = doc.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedCallback("no Encrypt element")
    return encrypt


def parse_xml(body: bytes | str) -> Dict[str, Any]:
    """<xml>...</xml> -> flat dict; any parse problem -> MalformedCallback.

    DTDs are refused outright: WeCom never sends one, and refusing them rules out entity tricks.
    """
    try:
        text = to_text(body) if body else ""
    except UnicodeDecodeError:
        raise MalformedCallback("body is not UTF-8") from None
    if not text.strip():
        raise MalformedCallback("empty body")
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise MalformedCallback("DTDs are not accepted")
    try:
        doc = xmltodict.parse(text, disable_entities=True)
    except Exception:
        raise MalformedCallback("body is not well-formed XML") from None
    root = doc.get("xml") if isinstance(doc, dict) else None
    if not isinstance(root, dict):
        raise MalformedCallback("no <xml> root")
    return root


__all__ = ["CallbackCrypto", "InvalidSignatureException", "parse_xml", "extract_xml_encrypt"]
